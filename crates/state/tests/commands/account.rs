//! Account settings: recorded per owner and name, in force as own → account → none, removed
//! idempotently, and carried by snapshots (World checks every state it leaves round-trips).

use berth_model::account::{SettingName, SettingOwner};
use berth_model::command::{DeleteAccountSetting, PutAccountSetting};

use crate::common::*;

fn alice() -> SettingOwner {
    SettingOwner::Principal("user/alice".into())
}

fn put(owner: SettingOwner, name: SettingName, value: &str) -> PutAccountSetting {
    PutAccountSetting {
        owner,
        name,
        value: value.into(),
    }
}

#[test]
fn own_settings_win_over_the_account_default() {
    let mut w = World::with_cluster("prod");
    let insights = SettingName::ContainerInsights;
    assert!(
        w.state
            .account_setting_in_force(&alice(), insights)
            .is_none()
    );

    w.ok(put(SettingOwner::Account, insights, "enabled"));
    let in_force = w
        .state
        .account_setting_in_force(&alice(), insights)
        .unwrap();
    assert_eq!(
        (&in_force.owner, in_force.value.as_str()),
        (&SettingOwner::Account, "enabled")
    );

    let own = w.ok(put(alice(), insights, "enhanced"));
    assert_eq!(own.version, w.state.index());
    assert_eq!(
        w.state
            .account_setting_in_force(&alice(), insights)
            .unwrap()
            .value,
        "enhanced"
    );
    // Replaced, not added.
    w.ok(put(alice(), insights, "disabled"));
    assert_eq!(
        w.state.account_setting(&alice(), insights).unwrap().value,
        "disabled"
    );
    assert_eq!(
        w.state
            .account_setting(&SettingOwner::Account, insights)
            .unwrap()
            .value,
        "enabled"
    );

    let removed = w.ok(DeleteAccountSetting {
        owner: alice(),
        name: insights,
    });
    assert_eq!(removed.unwrap().value, "disabled");
    assert_eq!(
        w.state
            .account_setting_in_force(&alice(), insights)
            .unwrap()
            .owner,
        SettingOwner::Account
    );
    let again = w.ok(DeleteAccountSetting {
        owner: alice(),
        name: insights,
    });
    assert!(again.is_none(), "removing what is not set changes nothing");
}

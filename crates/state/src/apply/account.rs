//! Account settings: recorded per owner (a principal, or the account default) and name.

use std::sync::Arc;

use berth_model::account::{AccountSetting, SettingName, SettingOwner};
use berth_model::command::{DeleteAccountSetting, PutAccountSetting};
use berth_model::{Error, Millis};

use super::Apply;
use crate::State;

impl State {
    /// `owner`'s own setting of `name`, if it set one.
    pub fn account_setting(
        &self,
        owner: &SettingOwner,
        name: SettingName,
    ) -> Option<&Arc<AccountSetting>> {
        self.account_settings.get(&(owner.clone(), name))
    }

    /// What is in force for `owner`: its own setting, else the account default; `None` when
    /// ECS's default applies.
    pub fn account_setting_in_force(
        &self,
        owner: &SettingOwner,
        name: SettingName,
    ) -> Option<&Arc<AccountSetting>> {
        self.account_setting(owner, name)
            .or_else(|| self.account_setting(&SettingOwner::Account, name))
    }
}

impl Apply for PutAccountSetting {
    fn apply(&self, state: &mut State, _: Millis) -> Result<Arc<AccountSetting>, Error> {
        let setting = Arc::new(AccountSetting {
            owner: self.owner.clone(),
            name: self.name,
            value: self.value.clone(),
            version: state.index,
        });
        state
            .account_settings
            .insert((self.owner.clone(), self.name), setting.clone());
        Ok(setting)
    }
}

impl Apply for DeleteAccountSetting {
    fn apply(&self, state: &mut State, _: Millis) -> Result<Option<Arc<AccountSetting>>, Error> {
        Ok(state
            .account_settings
            .remove(&(self.owner.clone(), self.name)))
    }
}

//! Account setting commands: a principal's (or the account's) setting recorded or removed.

use serde::{Deserialize, Serialize};

use crate::account::{SettingName, SettingOwner};

/// Records `owner`'s `name` as `value` (validated by the proposer), replacing what it had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutAccountSetting {
    pub owner: SettingOwner,
    pub name: SettingName,
    pub value: String,
}

/// Removes `owner`'s own `name`, so the account default (or ECS's) is in force for it again.
/// Answers with what was removed; removing what is not set changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteAccountSetting {
    pub owner: SettingOwner,
    pub name: SettingName,
}

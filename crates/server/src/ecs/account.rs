//! PutAccountSetting, PutAccountSettingDefault, ListAccountSettings, DeleteAccountSetting.
//!
//! Settings belong to a principal or to the account (the default for principals without one;
//! ECS's root user). A principal reads and changes its own with `ecs:<Operation>`; naming
//! another principal (or the root user) in `principalArn` also needs
//! `berth:ManageAccountSettings`, which only admins have — ECS's rule that only the root user
//! acts for others. berth records the settings and answers with what is in force. One has an
//! effect: `containerInsights` is the setting clusters the principal creates get when they
//! name none, as in ECS; the rest change nothing (berth's ARNs are always the long format).

use berth_api::EcsError;
use berth_api::types as api;
use berth_auth::action::MANAGE_ACCOUNT_SETTINGS;
use berth_model::account::{
    AccountSetting, SettingName, SettingOwner, setting_name, valid_setting,
};
use berth_model::command::{DeleteAccountSetting, PutAccountSetting};
use berth_state::State;

use super::Ctx;
use crate::App;
use crate::pagination;

/// Settings per ListAccountSettings page, and the most a caller may ask for.
const MAX_RESULTS: usize = 10;

/// Whose setting a request names: `principalArn`, else the caller. Acting for anyone else
/// needs `berth:ManageAccountSettings`.
fn owner(ctx: &Ctx, principal_arn: &Option<String>) -> Result<SettingOwner, EcsError> {
    let account = &ctx.arn.account;
    let caller = SettingOwner::parse(&ctx.principal.arn(&ctx.arn), account).map_err(|_| {
        EcsError::invalid(format!(
            "{} has no account settings: only users have them",
            ctx.principal.arn(&ctx.arn)
        ))
    });
    let named = match principal_arn.as_deref() {
        None | Some("") => return caller,
        Some(arn) => SettingOwner::parse(arn, account)?,
    };
    if caller.as_ref().ok() != Some(&named) {
        ctx.authorize(MANAGE_ACCOUNT_SETTINGS, &[], None)?;
    }
    Ok(named)
}

fn render(ctx: &Ctx, owner: &SettingOwner, name: SettingName, value: &str) -> api::Setting {
    api::Setting {
        name: Some(name.as_str().into()),
        value: Some(value.into()),
        principal_arn: Some(owner.arn(&ctx.arn.partition, &ctx.arn.account)),
        r#type: Some(name.kind().into()),
    }
}

fn rendered(ctx: &Ctx, s: &AccountSetting) -> api::Setting {
    render(ctx, &s.owner, s.name, &s.value)
}

/// What is in force for `owner`: its own, the account's, or ECS's default (shown as the
/// root user's, as ECS shows defaults).
fn in_force(ctx: &Ctx, state: &State, owner: &SettingOwner, name: SettingName) -> api::Setting {
    match state.account_setting_in_force(owner, name) {
        Some(s) => rendered(ctx, s),
        None => render(ctx, &SettingOwner::Account, name, name.aws_default()),
    }
}

/// The value of `name` set for the caller or for the account, if either set one (ECS's own
/// default is not a choice anybody made, so it is not returned).
pub(crate) fn chosen_for_caller(app: &App, ctx: &Ctx, name: SettingName) -> Option<String> {
    let caller = SettingOwner::parse(&ctx.principal.arn(&ctx.arn), &ctx.arn.account).ok()?;
    app.node
        .state()
        .account_setting_in_force(&caller, name)
        .map(|s| s.value.clone())
}

async fn put(
    app: &App,
    ctx: &Ctx,
    owner: SettingOwner,
    name: &Option<String>,
    value: &Option<String>,
) -> Result<api::Setting, EcsError> {
    let (name, value) = valid_setting(name.as_deref(), value.as_deref(), &owner)?;
    let stored = app
        .write_by(&ctx.principal, PutAccountSetting { owner, name, value })
        .await?;
    Ok(rendered(ctx, &stored))
}

pub async fn put_setting(
    app: &App,
    ctx: &Ctx,
    req: api::PutAccountSettingRequest,
) -> Result<api::PutAccountSettingResponse, EcsError> {
    let owner = owner(ctx, &req.principal_arn)?;
    let setting = put(app, ctx, owner, &req.name, &req.value).await?;
    Ok(api::PutAccountSettingResponse {
        setting: Some(setting),
    })
}

pub async fn put_default(
    app: &App,
    ctx: &Ctx,
    req: api::PutAccountSettingDefaultRequest,
) -> Result<api::PutAccountSettingDefaultResponse, EcsError> {
    let setting = put(app, ctx, SettingOwner::Account, &req.name, &req.value).await?;
    Ok(api::PutAccountSettingDefaultResponse {
        setting: Some(setting),
    })
}

/// Removes the owner's own setting; answers with it, or (when it had none) with what is in
/// force for the owner.
pub async fn delete(
    app: &App,
    ctx: &Ctx,
    req: api::DeleteAccountSettingRequest,
) -> Result<api::DeleteAccountSettingResponse, EcsError> {
    let name = setting_name(req.name.as_deref())?;
    if name == SettingName::GuardDutyActivate {
        return Err(EcsError::invalid(
            "guardDutyActivate is managed by AWS (read-only): it cannot be deleted",
        ));
    }
    let owner = owner(ctx, &req.principal_arn)?;
    let removed = app
        .write_by(
            &ctx.principal,
            DeleteAccountSetting {
                owner: owner.clone(),
                name,
            },
        )
        .await?;
    let setting = match removed {
        Some(s) => rendered(ctx, &s),
        None => in_force(ctx, &app.node.state(), &owner, name),
    };
    Ok(api::DeleteAccountSettingResponse {
        setting: Some(setting),
    })
}

pub async fn list(
    app: &App,
    ctx: &Ctx,
    req: api::ListAccountSettingsRequest,
) -> Result<api::ListAccountSettingsResponse, EcsError> {
    const OP: &str = "ListAccountSettings";
    let name = match req.name.as_deref() {
        None | Some("") => None,
        n => Some(setting_name(n)?),
    };
    let value = req.value.as_deref().filter(|v| !v.is_empty());
    if value.is_some() && name.is_none() {
        return Err(EcsError::invalid(
            "value filters the settings of one name: give name too",
        ));
    }
    let max = match req.max_results {
        None => MAX_RESULTS,
        Some(n @ 1..=10) => n as usize,
        Some(n) => {
            return Err(EcsError::invalid(format!(
                "maxResults must be between 1 and {MAX_RESULTS}; got {n}"
            )));
        }
    };
    let after: Option<SettingName> =
        pagination::decode(OP, req.next_token.as_deref().filter(|t| !t.is_empty()))?;
    let owner = owner(ctx, &req.principal_arn)?;
    let effective = req.effective_settings.unwrap_or(false);
    let state = app.node.state();
    let names = SettingName::ALL
        .iter()
        .copied()
        .filter(|n| name.is_none_or(|wanted| wanted == *n))
        .filter(|n| after.is_none_or(|last| *n > last));
    let settings = names.filter_map(|n| {
        let setting = if effective {
            in_force(ctx, &state, &owner, n)
        } else {
            rendered(ctx, state.account_setting(&owner, n)?)
        };
        let matches = value.is_none_or(|v| setting.value.as_deref() == Some(v));
        matches.then_some((n, setting))
    });
    let (page, next_token) = pagination::page(OP, settings, max, |(n, _)| *n);
    Ok(api::ListAccountSettingsResponse {
        settings: Some(page.into_iter().map(|(_, s)| s).collect()),
        next_token,
    })
}

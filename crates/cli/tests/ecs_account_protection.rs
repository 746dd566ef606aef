//! Account settings (PutAccountSetting, PutAccountSettingDefault, ListAccountSettings,
//! DeleteAccountSetting) and task scale-in protection (UpdateTaskProtection,
//! GetTaskProtection), through the official AWS SDK for Rust against a real `berth server`,
//! signed with real credentials of each role; protection with real hollow agents running a
//! service that is scaled in. Operations berth refuses answer with their reason.

mod common;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::http::HttpResponse;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::{ContainerDefinition, Setting, SettingName, SettingType};
use common::agent::AgentProcess;
use common::{Berth, credential, ecs_op, eventually, expect_error};

const ACCOUNT: &str = "000000000000";
const ROOT: &str = "arn:aws:iam::000000000000:root";

fn user(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

/// The call was refused for want of permission (HTTP 403); returns the message.
#[track_caller]
fn denied<T: Debug, E: ProvideErrorMetadata + Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> String {
    let err = result.expect_err("the call must be refused");
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    err.message().unwrap_or_default().to_owned()
}

fn shown(s: &Setting) -> (String, String, String) {
    (
        s.name().map(|n| n.as_str().to_owned()).unwrap_or_default(),
        s.value().unwrap_or_default().to_owned(),
        s.principal_arn().unwrap_or_default().to_owned(),
    )
}

/// Every page of ListAccountSettings for `principal` (the caller when `None`).
async fn list_all(
    ecs: &Client,
    principal: Option<&str>,
    effective: bool,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .list_account_settings()
            .set_principal_arn(principal.map(str::to_owned))
            .effective_settings(effective)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        out.extend(page.settings().iter().map(shown));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
}

#[tokio::test]
async fn account_settings_per_principal_and_account_default() {
    let b = Berth::start();
    let admin = b.client();

    // Its own setting, for the caller.
    let own = admin
        .put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("enhanced")
        .send()
        .await
        .unwrap();
    let own = own.setting().unwrap();
    assert_eq!(own.value(), Some("enhanced"));
    assert_eq!(own.r#type(), Some(&SettingType::User));
    let admin_arn = own.principal_arn().unwrap().to_owned();
    assert!(admin_arn.starts_with(&user("")), "{admin_arn}");

    // The account default: the root user's.
    let default = admin
        .put_account_setting_default()
        .name(SettingName::AwsvpcTrunking)
        .value("enabled")
        .send()
        .await
        .unwrap();
    assert_eq!(
        shown(default.setting().unwrap()),
        ("awsvpcTrunking".into(), "enabled".into(), ROOT.into())
    );
    // The root user's own setting is the account default too.
    admin
        .put_account_setting()
        .name(SettingName::FargateTaskRetirementWaitPeriod)
        .value("14")
        .principal_arn(ROOT)
        .send()
        .await
        .unwrap();

    // Only what the caller set, unless the effective settings are asked for.
    assert_eq!(
        list_all(&admin, None, false).await,
        [(
            "containerInsights".into(),
            "enhanced".into(),
            admin_arn.clone()
        )]
    );
    let effective = list_all(&admin, None, true).await;
    assert_eq!(effective.len(), 11, "every setting name: {effective:?}");
    let of = |name: &str| effective.iter().find(|s| s.0 == name).cloned().unwrap();
    assert_eq!(of("containerInsights").2, admin_arn);
    assert_eq!(
        of("awsvpcTrunking"),
        ("awsvpcTrunking".into(), "enabled".into(), ROOT.into())
    );
    assert_eq!(of("fargateTaskRetirementWaitPeriod").1, "14");
    assert_eq!(of("serviceLongArnFormat").1, "enabled", "ECS's default");
    assert_eq!(of("tagResourceAuthorization").1, "on");
    assert_eq!(of("guardDutyActivate").1, "disabled");

    // Pages of at most ten (the default and the maximum).
    let first = admin
        .list_account_settings()
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    assert_eq!(first.settings().len(), 10);
    assert!(first.next_token().is_some());
    let small = admin
        .list_account_settings()
        .effective_settings(true)
        .max_results(4)
        .send()
        .await
        .unwrap();
    assert_eq!(small.settings().len(), 4);
    let rest = admin
        .list_account_settings()
        .effective_settings(true)
        .max_results(4)
        .next_token(small.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(shown(&rest.settings()[0]), effective[4]);

    // Filters: a name, and a value of that name.
    let one = admin
        .list_account_settings()
        .name(SettingName::AwsvpcTrunking)
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    assert_eq!(one.settings().len(), 1);
    let none = admin
        .list_account_settings()
        .name(SettingName::AwsvpcTrunking)
        .value("disabled")
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    assert!(none.settings().is_empty());
    assert!(none.next_token().is_none());

    // An operator sets its own, sees the account's defaults, and may not act for others.
    let alice = b.client_as(&credential(&b, "alice", "operator:prod").await);
    let mine = alice
        .put_account_setting()
        .name(SettingName::ContainerInsights)
        .value("disabled")
        .send()
        .await
        .unwrap();
    assert_eq!(
        mine.setting().unwrap().principal_arn(),
        Some(user("alice").as_str())
    );
    let seen = list_all(&alice, None, true).await;
    assert!(seen.contains(&("containerInsights".into(), "disabled".into(), user("alice"))));
    assert!(seen.contains(&("awsvpcTrunking".into(), "enabled".into(), ROOT.into())));
    let message = denied(
        alice
            .put_account_setting()
            .name(SettingName::ContainerInsights)
            .value("enabled")
            .principal_arn(&admin_arn)
            .send()
            .await,
    );
    assert!(message.contains("berth:ManageAccountSettings"), "{message}");
    denied(
        alice
            .put_account_setting()
            .name(SettingName::AwsvpcTrunking)
            .value("disabled")
            .principal_arn(ROOT)
            .send()
            .await,
    );
    denied(
        alice
            .put_account_setting_default()
            .name(SettingName::AwsvpcTrunking)
            .value("disabled")
            .send()
            .await,
    );
    denied(
        alice
            .list_account_settings()
            .principal_arn(&admin_arn)
            .send()
            .await,
    );
    // Naming oneself is the same as naming no one.
    alice
        .delete_account_setting()
        .name(SettingName::AwsvpcTrunking)
        .principal_arn(user("alice"))
        .send()
        .await
        .unwrap();

    // An admin acts for another principal.
    admin
        .put_account_setting()
        .name(SettingName::DefaultLogDriverMode)
        .value("blocking")
        .principal_arn(user("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        list_all(&alice, None, false).await,
        [
            ("containerInsights".into(), "disabled".into(), user("alice")),
            (
                "defaultLogDriverMode".into(),
                "blocking".into(),
                user("alice")
            ),
        ]
    );

    // Deleting answers with what was removed; the default is in force again.
    let removed = alice
        .delete_account_setting()
        .name(SettingName::ContainerInsights)
        .send()
        .await
        .unwrap();
    assert_eq!(
        shown(removed.setting().unwrap()),
        ("containerInsights".into(), "disabled".into(), user("alice"))
    );
    let now = alice
        .list_account_settings()
        .name(SettingName::ContainerInsights)
        .effective_settings(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        shown(&now.settings()[0]),
        ("containerInsights".into(), "disabled".into(), ROOT.into()),
        "neither alice nor the account set it: ECS's default"
    );
    admin
        .delete_account_setting()
        .name(SettingName::AwsvpcTrunking)
        .principal_arn(ROOT)
        .send()
        .await
        .unwrap();
    let effective = list_all(&admin, None, true).await;
    assert!(effective.contains(&("awsvpcTrunking".into(), "disabled".into(), ROOT.into())));

    // containerInsights is what new clusters get unless they say otherwise: the creator's own
    // setting, else the account's.
    let insights = |c: &aws_sdk_ecs::types::Cluster| {
        c.settings()
            .iter()
            .map(|s| {
                (
                    s.name().unwrap().as_str().to_owned(),
                    s.value().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let made = admin
        .create_cluster()
        .cluster_name("seen")
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(made.cluster().unwrap()),
        [("containerInsights".to_owned(), "enhanced".to_owned())]
    );
    let made = admin
        .create_cluster()
        .cluster_name("unseen")
        .settings(
            aws_sdk_ecs::types::ClusterSetting::builder()
                .name(aws_sdk_ecs::types::ClusterSettingName::ContainerInsights)
                .value("disabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(made.cluster().unwrap()),
        [("containerInsights".to_owned(), "disabled".to_owned())]
    );
    admin
        .put_account_setting_default()
        .name(SettingName::ContainerInsights)
        .value("enabled")
        .send()
        .await
        .unwrap();
    let prod = alice
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        insights(prod.cluster().unwrap()),
        [("containerInsights".to_owned(), "enabled".to_owned())],
        "alice has none of her own: the account's"
    );

    // A read-only principal lists, and changes nothing.
    let reader = b.client_as(&credential(&b, "reader", "read-only").await);
    assert_eq!(list_all(&reader, None, true).await.len(), 11);
    denied(
        reader
            .put_account_setting()
            .name(SettingName::ContainerInsights)
            .value("enabled")
            .send()
            .await,
    );
}

#[tokio::test]
async fn account_settings_refuse_what_ecs_refuses() {
    let b = Berth::start();
    let admin = b.client();
    let put = |name: &str, value: &str| {
        admin
            .put_account_setting()
            .name(SettingName::from(name))
            .value(value)
            .send()
    };
    let message = expect_error(
        put("containerInsights", "on").await,
        "InvalidParameterException",
    );
    assert!(message.contains("enabled, disabled, enhanced"), "{message}");
    expect_error(
        put("tagResourceAuthorization", "enabled").await,
        "InvalidParameterException",
    );
    expect_error(
        put("fargateTaskRetirementWaitPeriod", "3").await,
        "InvalidParameterException",
    );
    let message = expect_error(
        put("fargateTaskRetirementWaitPeriod", "7").await,
        "InvalidParameterException",
    );
    assert!(
        message.contains("account"),
        "only the root user sets it: {message}"
    );
    expect_error(
        put("guardDutyActivate", "enabled").await,
        "InvalidParameterException",
    );
    let message = expect_error(
        put("noSuchSetting", "enabled").await,
        "InvalidParameterException",
    );
    assert!(message.contains("serviceLongArnFormat"), "{message}");
    expect_error(
        admin
            .delete_account_setting()
            .name(SettingName::GuardDutyActivate)
            .send()
            .await,
        "InvalidParameterException",
    );

    for principal in [
        "alice",
        "arn:aws:iam::000000000000:group/ops",
        "arn:aws:iam::111111111111:user/alice",
    ] {
        expect_error(
            admin
                .put_account_setting()
                .name(SettingName::AwsvpcTrunking)
                .value("enabled")
                .principal_arn(principal)
                .send()
                .await,
            "InvalidParameterException",
        );
    }

    for max in [0, 11] {
        expect_error(
            admin.list_account_settings().max_results(max).send().await,
            "InvalidParameterException",
        );
    }
    expect_error(
        admin.list_account_settings().value("enabled").send().await,
        "InvalidParameterException",
    );
    expect_error(
        admin
            .list_account_settings()
            .next_token("not-a-token")
            .send()
            .await,
        "InvalidParameterException",
    );

    // Without name or value at all (the SDK checks neither): ECS's error shape, not a 500.
    let r = ecs_op(&b.endpoint, "PutAccountSetting", "{}").await;
    r.expect_error("InvalidParameterException");
    let r = ecs_op(&b.endpoint, "PutAccountSetting", r#"{"name": 7}"#).await;
    r.expect_error("SerializationException");
}

#[tokio::test]
async fn operations_berth_does_not_run_say_why() {
    let b = Berth::start();
    let r = ecs_op(&b.endpoint, "ExecuteCommand", r#"{"task": "x"}"#).await;
    let message = r.expect_error("UnsupportedFeatureException");
    assert!(message.contains("Systems Manager"), "{message}");
    let r = ecs_op(&b.endpoint, "UpdateContainerAgent", "{}").await;
    let message = r.expect_error("UnsupportedFeatureException");
    assert!(message.contains("not supported by berth:"), "{message}");
    let err = b
        .client()
        .list_gateways()
        .send()
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("UnsupportedFeatureException"), "{err:?}");
}

// --- task scale-in protection -------------------------------------------------------------------

const CLUSTER: &str = "guard";

/// The service's tasks that are meant to run.
async fn live_tasks(ecs: &Client, service: &str) -> BTreeSet<String> {
    ecs.list_tasks()
        .cluster(CLUSTER)
        .service_name(service)
        .send()
        .await
        .unwrap()
        .task_arns()
        .iter()
        .cloned()
        .collect()
}

async fn running_count(ecs: &Client, service: &str) -> i32 {
    let out = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(service)
        .send()
        .await
        .unwrap();
    out.services()[0].running_count()
}

async fn events(ecs: &Client, service: &str) -> Vec<String> {
    let out = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(service)
        .send()
        .await
        .unwrap();
    out.services()[0]
        .events()
        .iter()
        .map(|e| e.message().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn scale_in_keeps_protected_tasks() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("app")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image("app:1")
                .cpu(128)
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let _agent = AgentProcess::start(
        &b.endpoint,
        CLUSTER,
        &["--runtime", "hollow", "--cpu", "2048", "--memory", "4096"],
    );
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("app")
        .desired_count(4)
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "4 tasks running", || async {
        running_count(&ecs, "web").await == 4
    })
    .await;
    let all: Vec<String> = live_tasks(&ecs, "web").await.into_iter().collect();
    let protected: BTreeSet<String> = all[..2].iter().cloned().collect();

    // Protect two (for an hour); a task that does not exist is a failure, not an error.
    let missing = format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/{CLUSTER}/{:032x}", 7);
    let out = ecs
        .update_task_protection()
        .cluster(CLUSTER)
        .set_tasks(Some(vec![all[0].clone(), all[1].clone(), missing.clone()]))
        .protection_enabled(true)
        .expires_in_minutes(60)
        .send()
        .await
        .unwrap();
    assert_eq!(out.protected_tasks().len(), 2);
    for t in out.protected_tasks() {
        assert!(t.protection_enabled());
        assert!(protected.contains(t.task_arn().unwrap()));
        let expires = t.expiration_date().expect("expirationDate").secs();
        let in_an_hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 3600;
        assert!(
            (expires - in_an_hour).abs() < 60,
            "{expires} vs {in_an_hour}"
        );
    }
    assert_eq!(out.failures().len(), 1);
    assert_eq!(out.failures()[0].arn(), Some(missing.as_str()));
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));

    let got = ecs
        .get_task_protection()
        .cluster(CLUSTER)
        .set_tasks(Some(all.clone()))
        .send()
        .await
        .unwrap();
    let enabled: BTreeSet<String> = got
        .protected_tasks()
        .iter()
        .filter(|t| t.protection_enabled())
        .map(|t| t.task_arn().unwrap().to_owned())
        .collect();
    assert_eq!(enabled, protected);
    assert_eq!(got.protected_tasks().len(), 4);
    assert!(
        got.protected_tasks()
            .iter()
            .filter(|t| !t.protection_enabled())
            .all(|t| t.expiration_date().is_none())
    );
    // With no tasks named: the cluster's protected ones.
    let got = ecs
        .get_task_protection()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(got.protected_tasks().len(), 2);

    // A standalone task cannot be protected.
    let standalone = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition("app")
        .send()
        .await
        .unwrap();
    let standalone = standalone.tasks()[0].task_arn().unwrap().to_owned();
    let out = ecs
        .update_task_protection()
        .cluster(CLUSTER)
        .tasks(&standalone)
        .protection_enabled(true)
        .send()
        .await
        .unwrap();
    assert!(out.protected_tasks().is_empty());
    assert_eq!(out.failures()[0].reason(), Some("TASK_NOT_VALID"));
    assert_eq!(out.failures()[0].arn(), Some(standalone.as_str()));

    // Scale in to one: the protected two stay, and the service says why.
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the unprotected tasks stopped",
        || async {
            live_tasks(&ecs, "web").await == protected && running_count(&ecs, "web").await == 2
        },
    )
    .await;
    assert!(
        events(&ecs, "web")
            .await
            .iter()
            .any(|e| e.contains("protected from scale-in")),
        "{:?}",
        events(&ecs, "web").await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(live_tasks(&ecs, "web").await, protected, "still protected");

    // Lifting one's protection lets scale-in take it.
    let out = ecs
        .update_task_protection()
        .cluster(CLUSTER)
        .tasks(&all[0])
        .protection_enabled(false)
        .send()
        .await
        .unwrap();
    assert!(!out.protected_tasks()[0].protection_enabled());
    assert!(out.protected_tasks()[0].expiration_date().is_none());
    eventually(
        Duration::from_secs(60),
        "scaled in to the protected task",
        || async { live_tasks(&ecs, "web").await == BTreeSet::from([all[1].clone()]) },
    )
    .await;
}

#[tokio::test]
async fn task_protection_refuses_what_ecs_refuses() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    let task = format!("{:032x}", 1);
    let update = |minutes: Option<i32>, tasks: Vec<String>| {
        ecs.update_task_protection()
            .cluster(CLUSTER)
            .set_tasks(Some(tasks))
            .protection_enabled(true)
            .set_expires_in_minutes(minutes)
            .send()
    };
    for minutes in [0, 2881, -5] {
        let message = expect_error(
            update(Some(minutes), vec![task.clone()]).await,
            "InvalidParameterException",
        );
        assert!(message.contains("2880"), "{message}");
    }
    let eleven: Vec<String> = (0..11).map(|i| format!("{i:032x}")).collect();
    expect_error(update(None, eleven).await, "InvalidParameterException");
    expect_error(update(None, Vec::new()).await, "InvalidParameterException");
    // The maximum is accepted; the task does not exist.
    let out = update(Some(2880), vec![task.clone()]).await.unwrap();
    assert_eq!(out.failures()[0].reason(), Some("MISSING"));
    expect_error(
        ecs.update_task_protection()
            .cluster("nowhere")
            .tasks(&task)
            .protection_enabled(true)
            .send()
            .await,
        "ClusterNotFoundException",
    );
    expect_error(
        ecs.get_task_protection().cluster("nowhere").send().await,
        "ClusterNotFoundException",
    );
    let hundred_one: Vec<String> = (0..101).map(|i| format!("{i:032x}")).collect();
    expect_error(
        ecs.get_task_protection()
            .cluster(CLUSTER)
            .set_tasks(Some(hundred_one))
            .send()
            .await,
        "InvalidParameterException",
    );
    let r = ecs_op(
        &b.endpoint,
        "UpdateTaskProtection",
        &format!(r#"{{"cluster": "{CLUSTER}", "tasks": ["{task}"]}}"#),
    )
    .await;
    let message = r.expect_error("InvalidParameterException");
    assert!(message.contains("protectionEnabled"), "{message}");
}

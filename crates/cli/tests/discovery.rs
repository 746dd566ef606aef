//! Service discovery end to end, against a real server and a real (hollow) agent: a namespace
//! and a discovery service made through Cloud Map's API (signed for `servicediscovery`), a
//! 3-replica bridge-mode ECS service registered in it, and the agent's DNS server answering
//! SRV with the three host ports; a stopped task leaves the answers within one TTL, a new
//! revision's tasks replace the old as they turn healthy, and an unhealthy revision's tasks
//! never appear; UpdateService without registries leaves discovery. Errors come in Cloud
//! Map's and ECS's shapes; deletions in use are refused; policies hold.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerDefinition, HealthCheck, PortMapping, ServiceRegistry};
use common::agent::AgentProcess;
use common::{Berth, RawResponse, credential, eventually, raw_as};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use serde_json::{Value, json};

const C: &str = "disco";
/// The discovery service's SRV TTL, in seconds: what "within one TTL" means below.
const TTL: u64 = 5;

/// A Cloud Map call (`Route53AutoNaming_v20170314.<op>`), signed by `who` (the admin when
/// `None`).
async fn cloud_map(
    b: &Berth,
    who: Option<&berth_client::Credentials>,
    op: &str,
    body: Value,
) -> RawResponse {
    let target = format!("Route53AutoNaming_v20170314.{op}");
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let admin = common::admin(&b.endpoint);
    let who = who.unwrap_or(&admin);
    raw_as(
        who,
        &b.endpoint,
        "POST",
        "/",
        &headers,
        body.to_string().as_bytes(),
    )
    .await
}

fn ok(r: &RawResponse) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn error_type(r: &RawResponse) -> String {
    assert_ne!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["__type"].as_str().unwrap_or_default().to_owned()
}

/// A free loopback port for both UDP and TCP (the agent binds both).
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One DNS query over UDP; the answer's code and its SRV (port, target) or A records.
async fn ask(server: SocketAddr, name: &str, kind: RecordType) -> (ResponseCode, Vec<RData>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut query = Message::new();
    query.set_id(rand_id());
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    socket
        .send_to(&query.to_bytes().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a DNS answer within 5 s")
        .unwrap();
    let answer = Message::from_bytes(&buf[..n]).unwrap();
    assert_eq!(answer.id(), query.id());
    let records = answer.answers().iter().map(|r| r.data().clone()).collect();
    (answer.response_code(), records)
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        & 0xffff) as u16
}

/// The (host port, target) of each SRV record for `name`.
async fn srv(server: SocketAddr, name: &str) -> BTreeSet<(u16, String)> {
    let (code, records) = ask(server, name, RecordType::SRV).await;
    assert_eq!(code, ResponseCode::NoError);
    records
        .iter()
        .map(|r| match r {
            RData::SRV(s) => (s.port(), s.target().to_ascii()),
            other => panic!("not SRV: {other:?}"),
        })
        .collect()
}

async fn register(ecs: &Client, family: &str, health: Option<&str>) {
    let mut container = ContainerDefinition::builder()
        .name("web")
        .image("web:1")
        .cpu(1)
        .memory(32)
        .port_mappings(
            PortMapping::builder()
                .container_port(80)
                .host_port(0)
                .build(),
        );
    if let Some(health) = health {
        container = container
            .health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("true")
                    .interval(5)
                    .build()
                    .unwrap(),
            )
            .docker_labels("com.berth.hollow.health", health);
    }
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container.build())
        .send()
        .await
        .unwrap();
}

/// The RUNNING tasks of the service: (task id, host port of container port 80, revision).
async fn running(ecs: &Client) -> Vec<(String, u16, String)> {
    let arns = ecs
        .list_tasks()
        .cluster(C)
        .service_name("web")
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return Vec::new();
    }
    let d = ecs
        .describe_tasks()
        .cluster(C)
        .set_tasks(Some(arns))
        .send()
        .await
        .unwrap();
    d.tasks()
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING") && t.desired_status() == Some("RUNNING"))
        .map(|t| {
            let id = t.task_arn().unwrap().rsplit('/').next().unwrap().to_owned();
            let port = t.containers()[0].network_bindings()[0].host_port().unwrap() as u16;
            let revision = t.task_definition_arn().unwrap().to_owned();
            (id, port, revision)
        })
        .collect()
}

#[tokio::test]
async fn a_bridge_service_resolves_through_the_agents_dns() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let dns: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let dns_flag = dns.to_string();
    let _agent = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--dns-listen", &dns_flag],
    );

    // The namespace and the discovery service, as aws servicediscovery makes them.
    let created = ok(&cloud_map(
        &b,
        None,
        "CreatePrivateDnsNamespace",
        json!({"Name": "Prod.Berth", "Vpc": "vpc-1", "CreatorRequestId": "ns-1"}),
    )
    .await);
    let operation = created["OperationId"].as_str().unwrap().to_owned();
    let op = ok(&cloud_map(&b, None, "GetOperation", json!({"OperationId": operation})).await);
    assert_eq!(op["Operation"]["Status"], "SUCCESS", "{op}");
    assert_eq!(op["Operation"]["Type"], "CREATE_NAMESPACE");
    let namespace = op["Operation"]["Targets"]["NAMESPACE"]
        .as_str()
        .unwrap()
        .to_owned();
    // A retry with the same request id answers with the same namespace; another is a clash.
    let again = ok(&cloud_map(
        &b,
        None,
        "CreatePrivateDnsNamespace",
        json!({"Name": "prod.berth", "Vpc": "vpc-1", "CreatorRequestId": "ns-1"}),
    )
    .await);
    assert_eq!(again["OperationId"], json!(operation));
    let clash = cloud_map(
        &b,
        None,
        "CreatePrivateDnsNamespace",
        json!({"Name": "prod.berth", "Vpc": "vpc-1"}),
    )
    .await;
    assert_eq!(error_type(&clash), "NamespaceAlreadyExists");
    let got = ok(&cloud_map(&b, None, "GetNamespace", json!({"Id": namespace})).await);
    assert_eq!(got["Namespace"]["Name"], "prod.berth");
    assert_eq!(got["Namespace"]["Type"], "DNS_PRIVATE");

    let service = ok(&cloud_map(
        &b,
        None,
        "CreateService",
        json!({
            "Name": "web",
            "NamespaceId": namespace,
            "DnsConfig": {"DnsRecords": [{"Type": "SRV", "TTL": TTL}]},
            "HealthCheckCustomConfig": {"FailureThreshold": 1},
        }),
    )
    .await)["Service"]
        .clone();
    let registry_arn = service["Arn"].as_str().unwrap().to_owned();
    assert!(
        registry_arn.starts_with("arn:aws:servicediscovery:us-east-1:000000000000:service/srv-"),
        "{registry_arn}"
    );

    // A 3-replica bridge-mode service registered in it.
    register(&ecs, "web", None).await;
    let registry = ServiceRegistry::builder()
        .registry_arn(&registry_arn)
        .container_name("web")
        .container_port(80)
        .build();
    let created = ecs
        .create_service()
        .cluster(C)
        .service_name("web")
        .task_definition("web")
        .desired_count(3)
        .service_registries(registry.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.service().unwrap().service_registries()[0].registry_arn(),
        Some(registry_arn.as_str())
    );
    eventually(Duration::from_secs(30), "three tasks RUNNING", || async {
        running(&ecs).await.len() == 3
    })
    .await;
    let tasks = running(&ecs).await;
    let expected: BTreeSet<(u16, String)> = tasks
        .iter()
        .map(|(id, port, _)| (*port, format!("{id}.web.prod.berth.")))
        .collect();
    eventually(
        Duration::from_secs(10),
        "SRV lists the three host ports",
        || async { srv(dns, "web.prod.berth.").await == expected },
    )
    .await;
    // Each target resolves to the host; names are case-insensitive; others are refused.
    let (code, a) = ask(
        dns,
        &format!("{}.WEB.prod.berth.", tasks[0].0),
        RecordType::A,
    )
    .await;
    assert_eq!(code, ResponseCode::NoError);
    assert_eq!(a, [RData::A("127.0.0.1".parse().unwrap())]);
    assert_eq!(
        ask(dns, "api.prod.berth.", RecordType::SRV).await.0,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask(dns, "example.com.", RecordType::A).await.0,
        ResponseCode::Refused
    );

    // The same instances through Cloud Map's DiscoverInstances and berth's /v1/discover.
    let found = ok(&cloud_map(
        &b,
        None,
        "DiscoverInstances",
        json!({"NamespaceName": "prod.berth", "ServiceName": "web"}),
    )
    .await);
    let ports: BTreeSet<String> = found["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["Attributes"]["AWS_INSTANCE_PORT"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let want: BTreeSet<String> = tasks.iter().map(|(_, p, _)| p.to_string()).collect();
    assert_eq!(ports, want, "{found}");
    let native = common::raw(&b.endpoint, "GET", "/v1/discover/prod.berth/web", &[], b"").await;
    assert_eq!(native.json()["instances"].as_array().unwrap().len(), 3);

    // A stopped task leaves the answers within one TTL (the service starts a replacement,
    // which joins them).
    let (gone, gone_port, _) = tasks[0].clone();
    ecs.stop_task().cluster(C).task(&gone).send().await.unwrap();
    eventually(
        Duration::from_secs(TTL),
        "the stopped task leaves the SRV answers within one TTL",
        || async {
            !srv(dns, "web.prod.berth.")
                .await
                .contains(&(gone_port, format!("{gone}.web.prod.berth.")))
        },
    )
    .await;

    // A revision with a health check: its tasks appear as they turn healthy, and the old
    // revision's leave as the deployment stops them.
    register(&ecs, "web", Some("healthy")).await;
    ecs.update_service()
        .cluster(C)
        .service("web")
        .task_definition("web:2")
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "only revision 2's three tasks answer",
        || async {
            let now = running(&ecs).await;
            let all_new = now.len() == 3 && now.iter().all(|(_, _, r)| r.ends_with("web:2"));
            let want: BTreeSet<(u16, String)> = now
                .iter()
                .map(|(id, port, _)| (*port, format!("{id}.web.prod.berth.")))
                .collect();
            all_new && srv(dns, "web.prod.berth.").await == want
        },
    )
    .await;

    // An unhealthy revision's tasks run but never answer.
    register(&ecs, "web", Some("unhealthy")).await;
    ecs.update_service()
        .cluster(C)
        .service("web")
        .task_definition("web:3")
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "a revision 3 task RUNNING",
        || async {
            running(&ecs)
                .await
                .iter()
                .any(|(_, _, r)| r.ends_with("web:3"))
        },
    )
    .await;
    // The service replaces unhealthy tasks, so each lives briefly: watch for a while, and
    // require having seen some while they ran.
    let mut seen = 0;
    let watch_until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < watch_until {
        let unhealthy: Vec<(String, u16, String)> = running(&ecs)
            .await
            .into_iter()
            .filter(|(_, _, r)| r.ends_with("web:3"))
            .collect();
        let answers = srv(dns, "web.prod.berth.").await;
        let all = ok(&cloud_map(
            &b,
            None,
            "DiscoverInstances",
            json!({"NamespaceName": "prod.berth", "ServiceName": "web", "HealthStatus": "ALL"}),
        )
        .await);
        for (id, port, _) in &unhealthy {
            assert!(
                !answers.contains(&(*port, format!("{id}.web.prod.berth."))),
                "unhealthy task {id} answers: {answers:?}"
            );
            if let Some(listed) = all["Instances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["InstanceId"] == json!(id))
            {
                assert_eq!(listed["HealthStatus"], "UNHEALTHY", "{all}");
                seen += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen > 0, "no unhealthy task was seen running");

    // Deleting what is in use is refused.
    let in_use = cloud_map(&b, None, "DeleteService", json!({"Id": service["Id"]})).await;
    assert_eq!(error_type(&in_use), "ResourceInUse");
    let in_use = cloud_map(&b, None, "DeleteNamespace", json!({"Id": namespace})).await;
    assert_eq!(error_type(&in_use), "ResourceInUse");
    // UpdateService with no registries takes the service out of discovery.
    ecs.update_service()
        .cluster(C)
        .service("web")
        .set_service_registries(Some(Vec::new()))
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(TTL), "no SRV answers", || async {
        srv(dns, "web.prod.berth.").await.is_empty()
    })
    .await;
    ok(&cloud_map(&b, None, "DeleteService", json!({"Id": service["Id"]})).await);
    let deleted = ok(&cloud_map(&b, None, "DeleteNamespace", json!({"Id": namespace})).await);
    let op = ok(&cloud_map(
        &b,
        None,
        "GetOperation",
        json!({"OperationId": deleted["OperationId"]}),
    )
    .await);
    assert_eq!(op["Operation"]["Type"], "DELETE_NAMESPACE");
    eventually(
        Duration::from_secs(10),
        "the namespace leaves DNS",
        || async { ask(dns, "web.prod.berth.", RecordType::SRV).await.0 == ResponseCode::Refused },
    )
    .await;
}

#[tokio::test]
async fn bad_input_and_other_principals_get_the_right_errors() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let namespace = {
        let created =
            ok(&cloud_map(&b, None, "CreateHttpNamespace", json!({"Name": "apps"})).await);
        let op = ok(&cloud_map(
            &b,
            None,
            "GetOperation",
            json!({"OperationId": created["OperationId"]}),
        )
        .await);
        op["Operation"]["Targets"]["NAMESPACE"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Cloud Map's validation and not-found errors.
    for (op, body, want) in [
        (
            "CreatePrivateDnsNamespace",
            json!({"Name": "bad name", "Vpc": "v"}),
            "InvalidInput",
        ),
        (
            "CreatePrivateDnsNamespace",
            json!({"Vpc": "v"}),
            "SerializationException",
        ),
        (
            "CreatePublicDnsNamespace",
            json!({"Name": "example.com"}),
            "InvalidInput",
        ),
        (
            "GetNamespace",
            json!({"Id": "ns-doesnotexist"}),
            "NamespaceNotFound",
        ),
        (
            "GetService",
            json!({"Id": "srv-doesnotexist"}),
            "ServiceNotFound",
        ),
        (
            "DeleteNamespace",
            json!({"Id": "../etc"}),
            "NamespaceNotFound",
        ),
        (
            "GetOperation",
            json!({"OperationId": "whatever"}),
            "OperationNotFound",
        ),
        (
            "CreateService",
            json!({"Name": "web", "NamespaceId": namespace, "DnsConfig": {"DnsRecords": [{"Type": "SRV", "TTL": 5}]}}),
            "InvalidInput",
        ),
        (
            "CreateService",
            json!({"Name": "web", "NamespaceId": "ns-nope"}),
            "NamespaceNotFound",
        ),
        (
            "DiscoverInstances",
            json!({"NamespaceName": "apps", "ServiceName": "nope"}),
            "ServiceNotFound",
        ),
        ("RegisterInstance", json!({}), "InvalidInput"),
        ("MadeUp", json!({}), "UnknownOperationException"),
    ] {
        let r = cloud_map(&b, None, op, body.clone()).await;
        assert_eq!(error_type(&r), want, "{op} {body}: {}", r.json());
        assert!(r.json()["Message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let service = ok(&cloud_map(
        &b,
        None,
        "CreateService",
        json!({"Name": "api", "NamespaceId": namespace}),
    )
    .await)["Service"]
        .clone();
    let listed = ok(&cloud_map(
        &b,
        None,
        "ListServices",
        json!({"Filters": [{"Name": "NAMESPACE_ID", "Values": [namespace], "Condition": "EQ"}]}),
    )
    .await);
    assert_eq!(listed["Services"][0]["Id"], service["Id"]);

    // ECS checks the registry: it must exist, and a bridge-mode registration names the
    // container and port.
    register(&ecs, "web", None).await;
    let create = |arn: String, port: Option<i32>| {
        let ecs = ecs.clone();
        async move {
            ecs.create_service()
                .cluster(C)
                .service_name("web")
                .task_definition("web")
                .desired_count(1)
                .service_registries(
                    ServiceRegistry::builder()
                        .registry_arn(arn)
                        .container_name("web")
                        .set_container_port(port)
                        .build(),
                )
                .send()
                .await
        }
    };
    let missing = create(
        "arn:aws:servicediscovery:us-east-1:000000000000:service/srv-nothere".into(),
        Some(80),
    )
    .await
    .unwrap_err();
    assert_eq!(
        missing.into_service_error().meta().code(),
        Some("InvalidParameterException")
    );
    let wrong_port = create(service["Arn"].as_str().unwrap().to_owned(), Some(8080))
        .await
        .unwrap_err();
    assert_eq!(
        wrong_port.into_service_error().meta().code(),
        Some("InvalidParameterException")
    );
    let half = create(service["Arn"].as_str().unwrap().to_owned(), None)
        .await
        .unwrap_err();
    assert_eq!(
        half.into_service_error().meta().code(),
        Some("InvalidParameterException")
    );

    // A read-only key reads instances but makes nothing; a cluster operator manages
    // namespaces.
    let reader = credential(&b, "reader", "read-only").await;
    let denied = cloud_map(
        &b,
        Some(&reader),
        "CreateHttpNamespace",
        json!({"Name": "mine"}),
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(error_type(&denied), "AccessDeniedException");
    ok(&cloud_map(
        &b,
        Some(&reader),
        "DiscoverInstances",
        json!({"NamespaceName": "apps", "ServiceName": "api"}),
    )
    .await);
    let operator = credential(&b, "op", &format!("operator:{C}")).await;
    ok(&cloud_map(
        &b,
        Some(&operator),
        "CreateHttpNamespace",
        json!({"Name": "theirs"}),
    )
    .await);

    // An unsigned Cloud Map call is refused.
    let target = "Route53AutoNaming_v20170314.ListNamespaces";
    let unsigned = common::raw_unsigned(
        &b.endpoint,
        "POST",
        "/",
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ],
        b"{}",
    )
    .await;
    assert_eq!(
        unsigned.status,
        403,
        "{}",
        String::from_utf8_lossy(&unsigned.body)
    );
}

//! The binary starts, serves the ECS API to the official SDK, and stops.

mod common;

#[tokio::test]
async fn server_answers_the_sdk() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    let out = ecs
        .create_cluster()
        .cluster_name("smoke")
        .send()
        .await
        .unwrap();
    let cluster = out.cluster().unwrap();
    assert_eq!(cluster.cluster_name(), Some("smoke"));
    assert_eq!(
        cluster.cluster_arn(),
        Some("arn:aws:ecs:us-east-1:000000000000:cluster/smoke")
    );
}

//! Durability: every acknowledged write survives SIGKILL, with and without snapshots.
//!
//! Writers run concurrently and record what the server acknowledged; the server is killed
//! with SIGKILL while they are still writing; a new process on the same data directory must
//! show every acknowledged write (and may show writes whose acknowledgment was lost in the
//! kill — those are allowed, never the reverse).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerDefinition, DesiredStatus, Resource};

async fn setup(ecs: &Client) -> String {
    ecs.create_cluster()
        .cluster_name("dur")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("job")
        .container_definitions(
            ContainerDefinition::builder()
                .name("job")
                .image("busybox")
                .cpu(1)
                .memory(6)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = ecs
        .register_container_instance()
        .cluster("dur")
        .total_resources(
            Resource::builder()
                .name("CPU")
                .r#type("INTEGER")
                .integer_value(1_000_000)
                .build(),
        )
        .total_resources(
            Resource::builder()
                .name("MEMORY")
                .r#type("INTEGER")
                .integer_value(1_000_000)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_owned()
}

#[derive(Default)]
struct Acked {
    runs: Vec<String>,
    /// Stops sent (acknowledged or not): their tasks may or may not be STOPPED after the kill.
    stops_sent: Vec<String>,
    stops: Vec<String>,
    families: Vec<i32>,
}

/// Writers that keep running tasks, stopping some and registering revisions until killed.
fn spawn_writers(
    ecs: &Client,
    acked: &Arc<Mutex<Acked>>,
    writers: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let ecs = ecs.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    if w == 0 && i % 5 == 0 {
                        let Ok(out) = ecs
                            .register_task_definition()
                            .family("rev")
                            .container_definitions(
                                ContainerDefinition::builder()
                                    .name("c")
                                    .image("busybox")
                                    .memory(6)
                                    .build(),
                            )
                            .send()
                            .await
                        else {
                            return;
                        };
                        let rev = out.task_definition().unwrap().revision();
                        acked.lock().unwrap().families.push(rev);
                    }
                    let Ok(out) = ecs
                        .run_task()
                        .cluster("dur")
                        .task_definition("job")
                        .count(2)
                        .send()
                        .await
                    else {
                        return;
                    };
                    let arns: Vec<String> = out
                        .tasks()
                        .iter()
                        .map(|t| t.task_arn().unwrap().to_owned())
                        .collect();
                    assert_eq!(arns.len(), 2, "the cluster has room for every task");
                    acked.lock().unwrap().runs.extend(arns.iter().cloned());
                    if i % 3 == 0 {
                        acked.lock().unwrap().stops_sent.push(arns[0].clone());
                        let Ok(_) = ecs
                            .stop_task()
                            .cluster("dur")
                            .task(&arns[0])
                            .reason("test")
                            .send()
                            .await
                        else {
                            return;
                        };
                        acked.lock().unwrap().stops.push(arns[0].clone());
                    }
                }
            })
        })
        .collect()
}

async fn kill_and_check(
    mut berth: common::Berth,
    acked: Arc<Mutex<Acked>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    expect_snapshot: bool,
) {
    let before = common::get_json(&berth.endpoint, "/v1/health").await;
    if expect_snapshot {
        assert!(
            before["snapshot_index"].as_u64().unwrap_or(0) > 0,
            "no snapshot was taken: {before}"
        );
        assert!(
            before["purged_index"].as_u64().unwrap_or(0) > 0,
            "no log was purged: {before}"
        );
    }
    berth.kill();
    for h in handles {
        let _ = h.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.runs.len() >= 20,
        "writers made progress before the kill: {}",
        acked.runs.len()
    );

    berth.restart();
    let ecs = berth.client();
    let stops: HashSet<&String> = acked.stops.iter().collect();
    for chunk in acked.runs.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster("dur")
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        assert!(
            out.failures().is_empty(),
            "acknowledged tasks lost after SIGKILL: {:?}",
            out.failures()
        );
        assert_eq!(out.tasks().len(), chunk.len());
        for t in out.tasks() {
            let arn = t.task_arn().unwrap().to_owned();
            if stops.contains(&arn) {
                assert_eq!(
                    t.desired_status(),
                    Some("STOPPED"),
                    "acknowledged stop lost for {arn}"
                );
            }
        }
    }
    if let Some(&last) = acked.families.iter().max() {
        let d = ecs
            .describe_task_definition()
            .task_definition(format!("rev:{last}"))
            .send()
            .await;
        assert!(d.is_ok(), "acknowledged revision rev:{last} lost");
    }
    // The restarted server keeps working and agrees with itself.
    let running = ecs
        .list_tasks()
        .cluster("dur")
        .desired_status(DesiredStatus::Running)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let running: HashSet<String> = running.into_iter().map(Result::unwrap).collect();
    let stops_sent: HashSet<&String> = acked.stops_sent.iter().collect();
    for arn in &acked.runs {
        if !stops_sent.contains(arn) {
            assert!(
                running.contains(arn),
                "{arn} should still be listed as RUNNING"
            );
        }
    }
    let out = ecs
        .run_task()
        .cluster("dur")
        .task_definition("job")
        .send()
        .await
        .unwrap();
    assert_eq!(out.tasks().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let handles = spawn_writers(&ecs, &acked, 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kill_and_check(berth, acked, handles, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_across_snapshots() {
    let berth = common::Berth::start_with(&["--snapshot-every", "25"]);
    let ecs = berth.client();
    setup(&ecs).await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let handles = spawn_writers(&ecs, &acked, 8);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    kill_and_check(berth, acked, handles, true).await;
}

/// A Raft log altered on disk after redb wrote it (a disk fault, a partial copy) is caught
/// when the server starts: it refuses to start, naming the file and what to do, and serves
/// nothing from it. Before, redb trusted such a file: the server could serve what it read or
/// panic on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_altered_on_disk_is_refused_at_start_never_served() {
    use std::os::unix::fs::FileExt;

    let mut berth = common::Berth::start();
    let ecs = berth.client();
    for i in 0..200 {
        ecs.create_cluster()
            .cluster_name(format!("c{i}"))
            .send()
            .await
            .unwrap();
    }
    let listen = berth.addr().to_owned();
    berth.kill();

    // A clean stop and start passes the check.
    let log = berth.data_dir.join("raft-log.redb");
    berth.restart();
    let clusters = berth.client().list_clusters().send().await.unwrap();
    assert!(clusters.cluster_arns().len() >= 100);
    berth.kill();

    // Garbage over the middle half of the file, page-aligned: the committed trees live there.
    let len = std::fs::metadata(&log).unwrap().len();
    let (from, to) = ((len / 4) & !4095, (3 * len / 4) & !4095);
    assert!(to > from, "the log is {len} bytes");
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.write_all_at(&vec![0x5a; (to - from) as usize], from)
        .unwrap();
    drop(file);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", &listen, "--data-dir"])
        .arg(&berth.data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("a server on a corrupt log neither refused to start nor stopped in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(
        stderr.contains(&format!("{} is corrupt", log.display())),
        "{stderr}"
    );
    assert!(stderr.contains("replace the server"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

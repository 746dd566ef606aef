//! Several `berth server` processes forming one Raft group on loopback, through
//! configuration alone (`--node-id`, `--peer`, one cluster secret).

use std::time::{Duration, Instant};

use super::{Berth, get_json};

/// A free loopback port (bound and released: another process could take it in between, which
/// on a test machine does not happen in practice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `n` servers that list each other as the initial voters and share one cluster secret.
pub fn start_cluster(root: &std::path::Path, n: u64) -> Vec<Option<Berth>> {
    start_cluster_with(root, n, &[])
}

/// Like [`start_cluster`], with `extra` flags for every server.
pub fn start_cluster_with(root: &std::path::Path, n: u64, extra: &[&str]) -> Vec<Option<Berth>> {
    start(root, n, extra, false)
}

/// Like [`start_cluster`], each server logging to `root/nodeN.log` with berth's default log
/// filter (see [`Berth::launch_logging`]).
pub fn start_cluster_logging(root: &std::path::Path, n: u64) -> Vec<Option<Berth>> {
    start(root, n, &[], true)
}

fn start(root: &std::path::Path, n: u64, extra: &[&str], logging: bool) -> Vec<Option<Berth>> {
    let secret = root.join("cluster.secret");
    std::fs::write(
        &secret,
        berth_auth::ClusterSecret::from_random(*b"berth cluster test secret bytes!").render(),
    )
    .unwrap();
    // Private, as a server demands of its secret file.
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let addrs: Vec<String> = (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let peers: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect();
    // The servers wait for each other's votes before printing their ready lines, so start
    // them all before waiting on any.
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let dir = root.join(format!("node{}", i + 1));
            let listen = addrs[i as usize].clone();
            let mut args = vec![
                "--node-id".to_owned(),
                (i + 1).to_string(),
                "--cluster-secret-file".to_owned(),
                secret.display().to_string(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            for p in &peers {
                args.push("--peer".into());
                args.push(p.clone());
            }
            let log = logging.then(|| root.join(format!("node{}.log", i + 1)));
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Berth::launch_logging(&dir, &listen, &args, log.as_deref())
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| Some(h.join().unwrap()))
        .collect()
}

/// Starts `berth server --join VIA --join-token TOKEN --node-id ID EXTRA...` on a free
/// loopback port with its state in `dir` (fresh for a new server): it fetches the cluster
/// secret with the server join token, is added as a learner, caught up and promoted to
/// voter, and only then prints its ready line, which this waits for. Kept across
/// [`Berth::restart`] (a voter's `--join` is a no-op).
pub fn join_cluster(
    dir: &std::path::Path,
    id: u64,
    via: &str,
    token: &str,
    extra: &[&str],
) -> Berth {
    let id = id.to_string();
    let mut args = vec!["--node-id", &id, "--join", via, "--join-token", token];
    args.extend_from_slice(extra);
    Berth::launch(dir, "127.0.0.1:0", &args)
}

pub async fn leader_of(nodes: &[Option<Berth>]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for n in nodes.iter().flatten() {
            let h = get_json(&n.endpoint, "/v1/health").await;
            if let Some(l) = h["leader"].as_u64() {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `node` has applied at least `index`.
pub async fn caught_up(node: &Berth, index: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&node.endpoint, "/v1/health").await["index"]
        .as_u64()
        .unwrap_or(0)
        < index
    {
        assert!(
            Instant::now() < deadline,
            "{} did not catch up to {index}",
            node.endpoint
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

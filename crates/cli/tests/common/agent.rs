//! A real `berth agent` process for the integration tests: spawned with piped stdout, ready
//! once it prints its "registered as" line, killed with SIGKILL (no graceful anything) and
//! restarted on the same `--data-dir`, so it re-registers as the same container instance.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long an agent may take to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the agent prints on stdout once it has registered.
const READY: &str = "berth agent registered as ";

/// A `berth agent` child process with its own data directory and cluster.
pub struct AgentProcess {
    child: Option<Child>,
    /// The container instance ARN from the "registered as" line.
    pub instance_arn: String,
    /// The whole "registered as" line (it also names the Docker version).
    pub ready_line: String,
    server: String,
    cluster: String,
    extra: Vec<String>,
    data_dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl AgentProcess {
    /// Starts `berth agent --server SERVER --cluster CLUSTER --listen 127.0.0.1:0 --data-dir
    /// (a fresh temp dir) EXTRA...` and waits until it has registered.
    pub fn start(server: &str, cluster: &str, extra: &[&str]) -> AgentProcess {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("agent");
        let mut agent = AgentProcess {
            child: None,
            instance_arn: String::new(),
            ready_line: String::new(),
            server: server.to_owned(),
            cluster: cluster.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            data_dir,
            _temp: temp,
        };
        agent.launch();
        agent
    }

    /// The agent's `--data-dir` (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The agent's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (it has neither been killed nor exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, and reap the process. Its containers keep running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the agent (if it runs) and starts it again with the same flags and data
    /// directory; waits until it has registered again and updates [`Self::instance_arn`].
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn launch(&mut self) {
        let token = join_token(&self.server, &self.cluster);
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "agent",
                "--server",
                &self.server,
                "--cluster",
                &self.cluster,
                "--token",
                &token,
            ])
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth agent");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.starts_with(READY) {
                    let _ = tx.send(line);
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe. The sender is dropped
            // when stdout closes, which tells a waiting launch that the agent is gone.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(REGISTER_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berth agent (cluster {}, server {}) did not print {READY:?} within {REGISTER_TIMEOUT:?} ({e}); exit status: {status:?}",
                    self.cluster, self.server
                );
            }
        };
        let arn = line[READY.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            arn.starts_with("arn:aws:ecs:") && arn.contains(":container-instance/"),
            "no container instance ARN in the agent's ready line: {line}"
        );
        self.child = Some(child);
        self.instance_arn = arn;
        self.ready_line = line;
    }
}

/// A join token for `cluster` on the server at `endpoint`, made as an admin would: with
/// `berth join-token create`. Made again (for up to 30 s) when that fails, as it may where a
/// loaded machine makes the write miss the server's write bound (a 503): a token made twice
/// only leaves an unused one behind.
pub fn join_token(endpoint: &str, cluster: &str) -> String {
    let credentials = super::credentials_file(endpoint);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .args([
                "join-token",
                "create",
                "--endpoint",
                endpoint,
                "--cluster",
                cluster,
            ])
            .arg("--credentials-file")
            .arg(&credentials);
        if endpoint.starts_with("https://") {
            command
                .arg("--ca-bundle")
                .arg(credentials.with_file_name("ca.pem"));
        }
        let out = command
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .expect("run berth join-token create");
        if out.status.success() {
            let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            return answer["token"].as_str().expect("token").to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "berth join-token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

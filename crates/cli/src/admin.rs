//! The operator's commands that berth's native API serves: credentials, join tokens, task
//! logs and the servers' Raft group. Each is a signed request (the admin credential file berth
//! wrote at bootstrap, or any AWS credentials in the environment) and prints the server's JSON
//! answer; the listings print a table unless `-o json|yaml` asks for the answer itself.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_auth::SecretKey;
use berth_client::{Client, Credentials, Transport, Trust, credentials_file};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::ops::listing;
use crate::ops::output::{Format, Paint, emit};

/// How a command reaches the server and signs, found the way AWS tools find it: the
/// endpoint from `--endpoint-url`, `BERTH_ENDPOINT`, `AWS_ENDPOINT_URL_ECS`,
/// `AWS_ENDPOINT_URL` or the profile's `endpoint_url`; the credential from
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the `AWS_PROFILE` profile of the shared
/// credentials file; the region from `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION` or the
/// profile's `region` in `~/.aws/config`.
#[derive(Args)]
pub struct Connection {
    /// The server's endpoint. Default: AWS_ENDPOINT_URL_ECS, AWS_ENDPOINT_URL, the
    /// profile's endpoint_url in ~/.aws/config, else http://127.0.0.1:8642.
    #[arg(
        long = "endpoint-url",
        visible_alias = "endpoint",
        env = "BERTH_ENDPOINT"
    )]
    endpoint: Option<String>,
    /// An AWS shared credentials file. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY win when
    /// both are set. Default: ./berth-data/admin.credentials when it exists (the admin
    /// credential `berth dev` wrote there), else ~/.aws/credentials.
    #[arg(long, env = "AWS_SHARED_CREDENTIALS_FILE")]
    credentials_file: Option<PathBuf>,
    /// The profile to read from the credentials file.
    #[arg(long, env = "AWS_PROFILE", default_value = "default")]
    profile: String,
    /// The region ARNs are rendered in (default: AWS_DEFAULT_REGION, the profile's region in
    /// ~/.aws/config, else us-east-1).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
    /// CA certificate(s) (PEM) to trust for an https:// endpoint (berth writes
    /// <data-dir>/ca.pem).
    #[arg(long, env = "AWS_CA_BUNDLE")]
    pub(crate) ca_bundle: Option<PathBuf>,
}

/// Where the AWS tools keep a file of theirs: `~/.aws/NAME`.
fn aws_home(name: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws").join(name))
}

/// The value of `key` in `section` of an AWS config-style file's text.
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim());
        } else if current == Some(section)
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

impl Connection {
    /// The credential requests are signed with.
    pub(crate) fn credentials(&self) -> Result<Credentials> {
        if let (Ok(id), Ok(secret)) = (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) && !id.is_empty()
            && !secret.is_empty()
        {
            return Ok(Credentials {
                access_key_id: id,
                secret: SecretKey::new(secret),
            });
        }
        let dev = PathBuf::from("./berth-data/admin.credentials");
        let path = match &self.credentials_file {
            Some(path) => path.clone(),
            None if dev.is_file() => dev,
            None => aws_home("credentials").unwrap_or(dev),
        };
        Ok(credentials_file::read(&path, &self.profile)?)
    }

    /// `key` of the profile in the AWS config file (AWS_CONFIG_FILE or ~/.aws/config).
    fn config_value(&self, key: &str) -> Option<String> {
        let path = std::env::var_os("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| aws_home("config"))?;
        let text = std::fs::read_to_string(path).ok()?;
        let section = match self.profile.as_str() {
            "default" => "default".to_owned(),
            other => format!("profile {other}"),
        };
        ini_value(&text, &section, key)
    }

    /// The server's endpoint, as the flag, BERTH_ENDPOINT or the AWS tools' own settings
    /// name it.
    pub(crate) fn endpoint(&self) -> String {
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        self.endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_ECS"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| self.config_value("endpoint_url"))
            .unwrap_or_else(|| "http://127.0.0.1:8642".into())
    }

    /// The region to sign for (and so the region of the ARNs the server renders).
    pub(crate) fn region(&self) -> String {
        let from_config = || self.config_value("region");
        self.region
            .clone()
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .or_else(from_config)
            .unwrap_or_else(|| "us-east-1".into())
    }

    /// A client of berth's native API (`/v1/...`).
    pub(crate) fn client(&self) -> Result<Client> {
        let trust = match &self.ca_bundle {
            Some(path) => Trust::from_pem(
                &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            )?,
            None => Trust::PlainHttp,
        };
        Ok(Client::new(
            Transport::new(&trust)?,
            &self.endpoint(),
            &self.credentials()?,
            &self.region(),
            "berth",
        ))
    }
}

#[derive(Subcommand)]
pub enum CredentialCmd {
    /// Create a credential; its secret is shown this once.
    Create {
        /// The principal's name (letters, digits and +=,.@_-).
        #[arg(long)]
        name: String,
        /// admin, read-only, framework or operator:CLUSTER.
        #[arg(long, conflicts_with = "policy_file")]
        role: Option<String>,
        /// An IAM-style policy document (JSON) instead of a role.
        #[arg(long)]
        policy_file: Option<PathBuf>,
        /// Write the credential as an AWS shared credentials file here (0600) too.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
    /// List credentials (never their secrets).
    List {
        /// table for people; json or yaml for scripts.
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        output: Format,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a credential: requests signed with it are refused from now on.
    Delete {
        access_key_id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
pub enum JoinTokenCmd {
    /// Create a join token for agents (or, with --server, for servers).
    Create {
        /// Agents may join this cluster only.
        #[arg(long, conflicts_with = "server")]
        cluster: Option<String>,
        /// How long the token stays valid, in seconds (0: until deleted).
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// A token for a new server joining the cluster.
        #[arg(long)]
        server: bool,
        /// Print only the token, for the shell (`berth agent --token "$(berth join-token
        /// create -q)"`); without it, the whole record as JSON.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// List join tokens (never their secrets).
    List {
        /// table for people; json or yaml for scripts.
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        output: Format,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a join token.
    Delete {
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

/// `berth logs`: a task's container output.
#[derive(Args)]
pub struct LogsArgs {
    /// The task's id or ARN.
    task: String,
    /// The container (needed when the task has several).
    #[arg(long)]
    container: Option<String>,
    /// The task's cluster (a task id alone does not say).
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    cluster: String,
    /// Keep printing as the container writes.
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn call(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let answer = client
        .send(
            method,
            path,
            &[("content-type", "application/json")],
            body,
            Duration::from_secs(30),
        )
        .await?;
    let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if answer.status >= 300 {
        // JSON 1.1 errors carry `__type` and `message`; REST-JSON ones (the Scheduler API)
        // the type in a header and `Message`.
        let header = answer
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        let kind = value["__type"].as_str().or(header).unwrap_or("error");
        let message = value["message"]
            .as_str()
            .or_else(|| value["Message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
        bail!("{kind}: {message}");
    }
    Ok(value)
}

fn print(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn credential(cmd: CredentialCmd) -> Result<()> {
    match cmd {
        CredentialCmd::Create {
            name,
            role,
            policy_file,
            output,
            connection,
        } => {
            let mut body = json!({ "name": name });
            if let Some(role) = role {
                body["role"] = role.into();
            }
            if let Some(path) = policy_file {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                body["policy"] = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?;
            }
            let created =
                call(&connection.client()?, "POST", "/v1/credentials", Some(body)).await?;
            if let Some(path) = output {
                let credentials = Credentials {
                    access_key_id: created["accessKeyId"].as_str().unwrap_or_default().into(),
                    secret: SecretKey::new(created["secretAccessKey"].as_str().unwrap_or_default()),
                };
                berth_server::bootstrap::write_private(
                    &path,
                    credentials_file::render("default", &credentials).as_bytes(),
                )
                .with_context(|| format!("writing {}", path.display()))?;
            }
            print(&created)
        }
        CredentialCmd::List { output, connection } => {
            let listed = call(&connection.client()?, "GET", "/v1/credentials", None).await?;
            emit(output, &listed, || {
                listing::credentials(&listed, Paint::detect())
            })
        }
        CredentialCmd::Delete {
            access_key_id,
            connection,
        } => {
            let path = format!(
                "/v1/credentials/{}",
                berth_client::path_segment(&access_key_id)
            );
            print(&call(&connection.client()?, "DELETE", &path, None).await?)
        }
    }
}

/// `berth operator ...`: the control plane itself.
#[derive(Subcommand)]
pub enum OperatorCmd {
    /// The Raft group of the servers.
    #[command(subcommand)]
    Raft(RaftCmd),
}

#[derive(Subcommand)]
pub enum RaftCmd {
    /// The servers of the group: id, address, voter or learner, who leads, and (from the
    /// leader) how far each has replicated.
    ListPeers {
        /// table for people; json or yaml for scripts.
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        output: Format,
        #[command(flatten)]
        connection: Connection,
    },
    /// Take a server out of the group (a dead one, before a replacement joins under a new
    /// id). Refused when the voters left would not have a caught-up quorum, unless --force.
    RemovePeer {
        /// The server's node id.
        id: u64,
        /// Remove it even if the remaining voters cannot form a quorum now.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Hand the leader's office to another voter: the leader holds new writes, lets the
    /// target catch up and tells it to stand at once. Answers when the new leader is known;
    /// on failure the error says who leads. Before removing the leader, or restarting it.
    TransferLeader {
        /// The voter to lead next (default: the one with the most log).
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn operator(cmd: OperatorCmd) -> Result<()> {
    match cmd {
        OperatorCmd::Raft(RaftCmd::ListPeers { output, connection }) => {
            let path = "/v1/operator/raft/peers";
            let peers = call(&connection.client()?, "GET", path, None).await?;
            emit(output, &peers, || listing::peers(&peers, Paint::detect()))
        }
        OperatorCmd::Raft(RaftCmd::RemovePeer {
            id,
            force,
            connection,
        }) => {
            let path = format!("/v1/operator/raft/peers/{id}?force={force}");
            print(&call(&connection.client()?, "DELETE", &path, None).await?)
        }
        OperatorCmd::Raft(RaftCmd::TransferLeader { to, connection }) => {
            let path = "/v1/operator/raft/transfer-leader";
            let body = json!({ "to": to });
            print(&call(&connection.client()?, "POST", path, Some(body)).await?)
        }
    }
}

pub async fn join_token(cmd: JoinTokenCmd) -> Result<()> {
    match cmd {
        JoinTokenCmd::Create {
            cluster,
            ttl,
            server,
            quiet,
            connection,
        } => {
            let mut body = json!({ "ttlSeconds": ttl, "server": server });
            if let Some(cluster) = cluster {
                body["cluster"] = cluster.into();
            }
            let created =
                call(&connection.client()?, "POST", "/v1/join-tokens", Some(body)).await?;
            match created["token"].as_str() {
                Some(token) if quiet => {
                    println!("{token}");
                    Ok(())
                }
                None if quiet => bail!("the server's answer holds no token: {created}"),
                _ => print(&created),
            }
        }
        JoinTokenCmd::List { output, connection } => {
            let listed = call(&connection.client()?, "GET", "/v1/join-tokens", None).await?;
            emit(output, &listed, || {
                listing::join_tokens(&listed, Paint::detect())
            })
        }
        JoinTokenCmd::Delete { id, connection } => {
            let path = format!("/v1/join-tokens/{}", berth_client::path_segment(&id));
            print(&call(&connection.client()?, "DELETE", &path, None).await?)
        }
    }
}

pub async fn logs(args: LogsArgs) -> Result<()> {
    use std::io::Write;
    let client = args.connection.client()?;
    let mut path = format!(
        "/v1/tasks/{}/logs?cluster={}&follow={}",
        berth_client::path_segment(&args.task),
        berth_client::path_segment(&args.cluster),
        args.follow
    );
    if let Some(c) = &args.container {
        path.push_str(&format!("&container={}", berth_client::path_segment(c)));
    }
    let response = client.stream("GET", &path).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut out = std::io::stdout().lock();
    let mut error = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the log stream")?;
        if let Some(data) = frame.data_ref() {
            if status.is_success() {
                out.write_all(data)?;
                out.flush()?;
            } else {
                error.extend_from_slice(data);
            }
        }
    }
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&error));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ini_value;

    #[test]
    fn a_profile_region_is_read_from_its_own_section() {
        let text = "[default]\nregion = eu-west-1\n\n[profile prod]\nregion=us-west-2\n";
        assert_eq!(
            ini_value(text, "default", "region").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            ini_value(text, "profile prod", "region").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(ini_value(text, "profile dev", "region"), None);
    }
}

//! A cluster's first start, and what every start needs from disk: the cluster secret and the
//! admin credential file.
//!
//! ```text
//!  first start of a fresh cluster: the leader proposes Bootstrap{admin credential}
//!     (a Raft command: applied once, refused ever after, so two racing leaders cannot make
//!      two admins)
//!  every start of every server: once the state holds the bootstrap admin, write
//!     <data-dir>/admin.credentials (0600, fsynced) ──► then the API answers
//! ```
//! The file is in the AWS shared credentials format, so
//! `AWS_SHARED_CREDENTIALS_FILE=<data-dir>/admin.credentials aws ecs ...` works at once, as
//! Nomad's ACL bootstrap or a k3s token file does. Until it is written, every request but the
//! Raft RPCs waits ([`App::wait_bootstrapped`]), so nobody sees a server whose first
//! credential they cannot read yet.
//!
//! Both files are as good as root on every host of the cluster, so a server refuses to start
//! when either is open to its group or to others ([`check_private`]), as ssh refuses a private
//! key others can read: the message names the file and `chmod 600` (berth writes both 0600
//! itself; a looser mode means someone changed it, or made the secret file by hand).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_auth::{ClusterSecret, KeyKind, Role, SecretKey, new_access_key_id};
use berth_client::{Credentials, credentials_file};
use berth_model::command::{Bootstrap, CreateCluster};
use berth_model::credential::{Credential, CredentialKind};
use berth_model::{Error, Millis};
use berth_raft::WriteError;

use crate::App;

/// The cluster secret's file name in a data directory (when no file is given).
pub const CLUSTER_SECRET_FILE: &str = "cluster.secret";
/// The admin credential's file name in every server's data directory.
pub const ADMIN_CREDENTIALS_FILE: &str = "admin.credentials";
/// The principal name of the bootstrap admin.
pub const ADMIN_NAME: &str = "admin";

/// Why a server could not finish starting.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Secret {
        path: String,
        #[source]
        source: berth_auth::secret::SecretError,
    },
    #[error(
        "{0} does not exist; every server of a multi-server cluster needs the same cluster \
         secret file (make one with `(umask 077; head -c 32 /dev/urandom | base64 > \
         cluster.secret)`)"
    )]
    NoSecret(String),
    #[error(
        "{path} is accessible by its group or others (mode {mode:03o}): it holds a secret that \
         controls the whole cluster. Make it private with `chmod 600 {path}` (and, if others \
         may have read it, rotate it)"
    )]
    Exposed { path: String, mode: u32 },
    #[error("the bootstrap write failed: {0}")]
    Write(#[from] WriteError),
    #[error("the bootstrap admin credential cannot be opened: {0}")]
    Unseal(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` readable by this user only, durably: the file is fsynced, then
/// renamed over the old one, then the directory is fsynced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Refuses a secret file at `path` that its group or others may read, write or execute (a
/// missing file is fine: berth creates its files 0600).
pub fn check_private(path: &Path) -> Result<(), BootstrapError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Err(BootstrapError::Exposed {
            path: path.display().to_string(),
            mode: meta.permissions().mode() & 0o777,
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Reads the cluster secret at `path` (refused if others may read it, [`check_private`]);
/// creates it first if `create` and it does not exist.
pub fn cluster_secret(path: &Path, create: bool) -> Result<ClusterSecret, BootstrapError> {
    check_private(path)?;
    match std::fs::read_to_string(path) {
        Ok(text) => ClusterSecret::parse(&text).map_err(|source| BootstrapError::Secret {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let secret = ClusterSecret::from_random(rand::random());
            write_private(path, format!("{}\n", secret.render()).as_bytes()).map_err(io(path))?;
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(BootstrapError::NoSecret(path.display().to_string()))
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// What a new credential is: everything but its (random) access key id and secret.
pub struct NewCredential {
    /// What its access key id says it is.
    pub key: KeyKind,
    pub name: String,
    pub kind: CredentialKind,
    pub policy: berth_auth::Policy,
    pub role: Option<String>,
    /// The actor creating it.
    pub created_by: String,
    pub expires_at: Option<Millis>,
}

/// A new credential: its access key id and secret (to hand out once), and the stored value
/// with the secret sealed.
pub fn new_credential(app: &App, spec: NewCredential) -> (Credentials, Credential) {
    let access_key_id = new_access_key_id(spec.key, rand::random());
    let secret = SecretKey::from_random(rand::random());
    let credential = Credential {
        sealed_secret: app.keyring.seal(&access_key_id, &secret),
        access_key_id: access_key_id.clone(),
        name: spec.name,
        kind: spec.kind,
        policy: std::sync::Arc::new(spec.policy),
        role: spec.role,
        created_at: Millis::now(),
        created_by: Some(spec.created_by),
        expires_at: spec.expires_at,
        version: 0,
    };
    (
        Credentials {
            access_key_id,
            secret,
        },
        credential,
    )
}

/// Makes sure the cluster has its bootstrap admin, writes its credential file, and opens the
/// API. Returns the file's path (none once the bootstrap admin has been deleted).
pub async fn bootstrap(app: &App, data_dir: &Path) -> Result<Option<PathBuf>, BootstrapError> {
    let path = data_dir.join(ADMIN_CREDENTIALS_FILE);
    loop {
        let state = app.node.state();
        if let Some(admin) = state.bootstrap_admin() {
            let secret = app
                .keyring
                .secret_of(admin)
                .map_err(|e| BootstrapError::Unseal(e.message))?;
            let text = credentials_file::render(
                "default",
                &Credentials {
                    access_key_id: admin.access_key_id.clone(),
                    secret,
                },
            );
            let current = std::fs::read_to_string(&path).ok();
            if current.as_deref() != Some(text.as_str()) {
                write_private(&path, text.as_bytes()).map_err(io(&path))?;
            }
            app.set_bootstrapped();
            return Ok(Some(path));
        }
        if state.is_bootstrapped() {
            // The bootstrap admin was deleted since: its file must not linger as if it worked.
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::warn!(
                    path = %path.display(),
                    "the bootstrap admin credential was deleted; removed its file"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            app.set_bootstrapped();
            return Ok(None);
        }
        if app.node.is_leader() {
            let (_, credential) = new_credential(
                app,
                NewCredential {
                    key: KeyKind::User,
                    name: ADMIN_NAME.to_owned(),
                    kind: CredentialKind::User,
                    policy: Role::Admin.policy(),
                    role: Some(Role::Admin.to_string()),
                    created_by: "system/bootstrap".into(),
                    expires_at: None,
                },
            );
            match app
                .node
                .write(Bootstrap { admin: credential })
                .await?
                .result
            {
                // Applied, or another leader got there first: either way the state has it.
                Ok(_) | Err(Error::Conflict(_)) => {}
                Err(e) => tracing::warn!(error = %e, "the bootstrap command was refused"),
            }
        } else {
            let index = state.index();
            app.node.wait_beyond(index, Duration::from_secs(1)).await;
        }
    }
}

/// `berth dev` starts with the `default` cluster, so the first command a newcomer types works.
pub async fn ensure_default_cluster(app: &App) -> Result<(), BootstrapError> {
    if app
        .node
        .state()
        .cluster(crate::ecs::DEFAULT_CLUSTER)
        .is_some()
    {
        return Ok(());
    }
    let written = app
        .node
        .write_by(
            "system/dev",
            CreateCluster {
                name: crate::ecs::DEFAULT_CLUSTER.into(),
                settings: Vec::new(),
                configuration: None,
                service_connect_defaults: None,
                tags: Vec::new(),
                capacity_providers: Vec::new(),
                default_strategy: Vec::new(),
            },
        )
        .await?;
    match written.result {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "creating the default cluster was refused");
            Ok(())
        }
    }
}

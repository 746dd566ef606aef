//! The Docker runtime (bollard). TODO(helper): implement.

use super::RuntimeError;

/// A Docker Engine reached through its local socket (or `DOCKER_HOST`).
pub struct DockerRuntime {}

impl DockerRuntime {
    /// Connects and pings the engine; [`RuntimeError::Unavailable`] when there is none.
    pub async fn connect() -> Result<DockerRuntime, RuntimeError> {
        Err(RuntimeError::Unavailable("not implemented".into()))
    }
}

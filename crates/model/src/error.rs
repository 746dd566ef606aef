//! berth's domain errors: what validation and the state machine refuse, and why.
//!
//! Every variant maps to exactly one ECS exception ([`Error::code`]) and its message is what the
//! caller reads, so each says what was wrong and, where it helps, what to do instead. Errors
//! travel inside Raft responses (a command that is refused at apply time is still an ordered,
//! logged decision), hence `Serialize`.

use berth_api::{EcsError, ErrorCode};
use serde::{Deserialize, Serialize};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// A parameter is missing, malformed or out of range.
    #[error("{0}")]
    InvalidParameter(String),
    /// A well-formed request that cannot be carried out in the current state.
    #[error("{0}")]
    Client(String),
    /// The named cluster does not exist.
    #[error(
        "Cluster not found: {0}. Create it with CreateCluster, or name one that ListClusters shows."
    )]
    ClusterNotFound(String),
    /// The named cluster was deleted.
    #[error(
        "Cluster not found: {0} is INACTIVE (it was deleted). Create it again or name an active cluster."
    )]
    ClusterInactive(String),
    /// DeleteCluster while instances are registered.
    #[error(
        "The Cluster cannot be deleted while Container Instances are active or draining. Deregister them first."
    )]
    ClusterContainsInstances,
    /// DeleteCluster while tasks are not yet stopped.
    #[error("The Cluster cannot be deleted while Tasks are active. Stop them first.")]
    ClusterContainsTasks,
    /// DeleteCluster while services are active.
    #[error("The Cluster cannot be deleted while Services are active. Delete them first.")]
    ClusterContainsServices,
    /// More attributes than a resource may carry.
    #[error("{0}")]
    AttributeLimitExceeded(String),
    /// PutAttributes/DeleteAttributes on a target that does not exist.
    #[error("{0}")]
    TargetNotFound(String),
    /// Tagging a resource that does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// A clientToken reused with different parameters.
    #[error("{0}")]
    Conflict(String),
    /// A named service does not exist.
    #[error("Service not found.")]
    ServiceNotFound,
    /// The service was deleted (or is being deleted) and cannot be changed.
    #[error("Service was not ACTIVE.")]
    ServiceNotActive,
    /// A feature berth does not offer (Fargate, capacity providers, ...).
    #[error("{0}")]
    Unsupported(String),
    /// A resource that something still uses (a capacity provider detached from a cluster
    /// while tasks or services use it).
    #[error("{0}")]
    ResourceInUse(String),
    /// More of something than berth allows (a user's access keys).
    #[error("{0}")]
    LimitExceeded(String),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidParameter(message.into())
    }

    pub fn client(message: impl Into<String>) -> Self {
        Error::Client(message.into())
    }

    /// The ECS exception this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidParameter(_) => ErrorCode::InvalidParameterException,
            Error::Client(_) => ErrorCode::ClientException,
            Error::ClusterNotFound(_) | Error::ClusterInactive(_) => {
                ErrorCode::ClusterNotFoundException
            }
            Error::ClusterContainsInstances => {
                ErrorCode::ClusterContainsContainerInstancesException
            }
            Error::ClusterContainsTasks => ErrorCode::ClusterContainsTasksException,
            Error::ClusterContainsServices => ErrorCode::ClusterContainsServicesException,
            Error::AttributeLimitExceeded(_) => ErrorCode::AttributeLimitExceededException,
            Error::TargetNotFound(_) => ErrorCode::TargetNotFoundException,
            Error::ResourceNotFound(_) => ErrorCode::ResourceNotFoundException,
            Error::Conflict(_) => ErrorCode::ConflictException,
            Error::ServiceNotFound => ErrorCode::ServiceNotFoundException,
            Error::ServiceNotActive => ErrorCode::ServiceNotActiveException,
            Error::Unsupported(_) => ErrorCode::UnsupportedFeatureException,
            Error::ResourceInUse(_) => ErrorCode::ResourceInUseException,
            Error::LimitExceeded(_) => ErrorCode::LimitExceededException,
        }
    }
}

impl From<Error> for EcsError {
    fn from(e: Error) -> Self {
        EcsError::new(e.code(), e.to_string())
    }
}

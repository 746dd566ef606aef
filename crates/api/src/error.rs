//! The ECS error shape: HTTP status, `X-Amzn-Errortype` header and `{"__type","message"}` body.
//!
//! boto3 reads `__type` and `message` from the body; the AWS Rust SDK prefers the header and
//! lets a body field named `code` win over `__type`. So berth sends the header and `__type` with
//! the same value and never a `code` field.

use serde::Serialize;

/// The exception names berth answers with. The ECS names come from botocore's model; the AWS
/// JSON protocol names (`SerializationException`, `UnknownOperationException`) are what every
/// AWS JSON 1.1 service answers for a body it cannot read or a target it does not know, and the
/// authentication names (`UnrecognizedClientException`, `InvalidSignatureException`,
/// `IncompleteSignatureException`, `MissingAuthenticationTokenException`) what it answers a
/// request whose signature it does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    AccessDeniedException,
    AttributeLimitExceededException,
    ClientException,
    ClusterContainsContainerInstancesException,
    ClusterContainsServicesException,
    ClusterContainsTasksException,
    ClusterNotFoundException,
    ConflictException,
    IncompleteSignatureException,
    InvalidParameterException,
    InvalidSignatureException,
    LimitExceededException,
    MissingAuthenticationTokenException,
    ResourceInUseException,
    ResourceNotFoundException,
    SerializationException,
    ServerException,
    ServiceDeploymentNotFoundException,
    ServiceNotActiveException,
    ServiceNotFoundException,
    TargetNotFoundException,
    TaskSetNotFoundException,
    UnknownOperationException,
    UnrecognizedClientException,
    UnsupportedFeatureException,
    UpdateInProgressException,
}

impl ErrorCode {
    /// The name as it appears in `__type` and `X-Amzn-Errortype`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDeniedException => "AccessDeniedException",
            Self::AttributeLimitExceededException => "AttributeLimitExceededException",
            Self::ClientException => "ClientException",
            Self::ClusterContainsContainerInstancesException => {
                "ClusterContainsContainerInstancesException"
            }
            Self::ClusterContainsServicesException => "ClusterContainsServicesException",
            Self::ClusterContainsTasksException => "ClusterContainsTasksException",
            Self::ClusterNotFoundException => "ClusterNotFoundException",
            Self::ConflictException => "ConflictException",
            Self::IncompleteSignatureException => "IncompleteSignatureException",
            Self::InvalidParameterException => "InvalidParameterException",
            Self::InvalidSignatureException => "InvalidSignatureException",
            Self::LimitExceededException => "LimitExceededException",
            Self::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            Self::ResourceInUseException => "ResourceInUseException",
            Self::ResourceNotFoundException => "ResourceNotFoundException",
            Self::SerializationException => "SerializationException",
            Self::ServerException => "ServerException",
            Self::ServiceDeploymentNotFoundException => "ServiceDeploymentNotFoundException",
            Self::ServiceNotActiveException => "ServiceNotActiveException",
            Self::ServiceNotFoundException => "ServiceNotFoundException",
            Self::TargetNotFoundException => "TargetNotFoundException",
            Self::TaskSetNotFoundException => "TaskSetNotFoundException",
            Self::UnknownOperationException => "UnknownOperationException",
            Self::UnrecognizedClientException => "UnrecognizedClientException",
            Self::UnsupportedFeatureException => "UnsupportedFeatureException",
            Self::UpdateInProgressException => "UpdateInProgressException",
        }
    }

    /// HTTP status: 500 for a fault on berth's side; 403 for a caller who is not allowed (or
    /// sent no credentials at all); 400 for everything else the caller can fix, bad
    /// signatures included, as AWS JSON services answer them.
    pub fn http_status(self) -> u16 {
        match self {
            Self::ServerException => 500,
            Self::AccessDeniedException | Self::MissingAuthenticationTokenException => 403,
            _ => 400,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ECS error response: an exception name and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EcsError {
    pub code: ErrorCode,
    pub message: String,
    /// A `ServerException` that is temporary (no quorum, no leader): answered 503, which
    /// every AWS SDK retries.
    unavailable: bool,
}

impl EcsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            unavailable: false,
        }
    }

    /// `ServerException` answered 503 Service Unavailable: the cluster cannot take the request
    /// now (no leader, no quorum) and a retry may succeed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            unavailable: true,
            ..Self::server(message)
        }
    }

    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        if self.unavailable {
            503
        } else {
            self.code.http_status()
        }
    }

    /// `InvalidParameterException`, the answer to a parameter that is missing or out of range.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterException, message)
    }

    /// `ClientException`, the answer to a well-formed request that cannot be carried out.
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ClientException, message)
    }

    /// `ServerException`: a fault on berth's side (storage, consensus), never the caller's.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServerException, message)
    }

    /// The JSON body, `{"__type": ..., "message": ...}`.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "__type")]
            kind: &'a str,
            message: &'a str,
        }
        serde_json::to_vec(&Body {
            kind: self.code.as_str(),
            message: &self.message,
        })
        .expect("serializing two strings cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_type_and_message_and_no_code() {
        let err = EcsError::new(ErrorCode::ClusterNotFoundException, "Cluster not found.");
        let v: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(v["__type"], "ClusterNotFoundException");
        assert_eq!(v["message"], "Cluster not found.");
        assert!(v.get("code").is_none());
        assert_eq!(err.code.http_status(), 400);
        assert_eq!(ErrorCode::ServerException.http_status(), 500);
        let no_quorum = EcsError::unavailable("no quorum");
        assert_eq!(no_quorum.code, ErrorCode::ServerException);
        assert_eq!(no_quorum.http_status(), 503);
        assert_eq!(EcsError::server("bug").http_status(), 500);
    }
}

//! ECS wire types and the ECS error shape.
//!
//! berth's front door is the Amazon ECS API (AWS JSON 1.1), so that aws-cli, boto3 and the AWS
//! SDKs work against it unchanged. This crate is the contract with those clients and nothing
//! else: the request/response shapes ([`types`], generated from botocore's model so they cannot
//! drift from what the SDKs send and expect), the error body and header ([`error`]), and the
//! small protocol facts of AWS JSON 1.1 ([`protocol`]). It has no async runtime and no domain
//! logic; turning these shapes into berth's domain happens in `berth-model`.

pub mod agent;
pub mod error;
pub mod protocol;
#[allow(missing_docs)]
pub mod types;

pub use error::{EcsError, ErrorCode};

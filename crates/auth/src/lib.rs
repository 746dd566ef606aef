//! berth's trust decisions, as pure functions: no I/O, no clock, no randomness of its own.
//!
//! ```text
//!  request ──► sigv4::parse_authorization ──► who claims to call (access key id, scope)
//!     │                                             │ the server looks up the key's secret
//!     ▼                                             ▼
//!  sigv4::verify (aws-sigv4 re-signs, constant-time compare) ──► a principal
//!     │
//!     ▼
//!  Policy::authorize(action, resources, condition keys) ──► Allow | Denial (with AWS's words)
//! ```
//! The server's edge (crates/server) is the thin shell: it reads headers and bodies, finds
//! credentials in the replicated state and turns these answers into HTTP responses. Keeping
//! the decisions here means they are tested like the scheduler is: exhaustively, with
//! property tests, and without a server.
//!
//! - [`sigv4`]: AWS Signature Version 4 verification (and signing, for berth's own clients).
//! - [`policy`]: IAM-style identity policies and their evaluation.
//! - [`roles`]: berth's action names, host privileges and the ready-made roles.
//! - [`secret`]: access key ids, secrets, the cluster secret, sealing secrets at rest.
//! - [`token`]: join tokens for agents and servers.
//! - [`session`]: web UI session and CSRF tokens.

mod canonical;
pub mod policy;
pub mod roles;
pub mod secret;
pub mod session;
pub mod sigv4;
pub mod token;

pub use policy::{Decision, Denial, Policy, PolicyError};
pub use roles::{Privilege, Role, action};
pub use secret::{ClusterSecret, KeyKind, SealKey, Sealed, SecretKey, new_access_key_id};
pub use session::{Session, SessionError, SessionKey, session_id, valid_session_id};
pub use sigv4::{Authorization, Payload, SigV4Error, Signer};
pub use token::JoinToken;

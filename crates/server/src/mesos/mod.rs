//! The Mesos v1 scheduler HTTP API: unmodified Mesos frameworks schedule on berth's cluster.
//!
//! ```text
//!  SUBSCRIBE ──► SubscribeFramework (Raft) ──► 200, chunked RecordIO stream: SUBSCRIBED, then
//!                                              OFFERS / RESCIND / UPDATE / HEARTBEAT
//!  ACCEPT, DECLINE, KILL, ACKNOWLEDGE, RECONCILE, REVIVE, SUPPRESS, TEARDOWN ──► 202 at once
//!  leader loop (on state changes, hub wake-ups or due timers; passes at least 15 ms apart):
//!     change log ──► berth_mesos::pass::Scope: the agents, tasks and offers that changed
//!     view + hub ──► berth_mesos::allocator::allocate ──► MakeOffers, OFFERS
//!                ──► berth_mesos::updates::next_update ──► UPDATE (resent until acked)
//!                ──► offer timeouts and rescinds · failover expiry
//! ```
//! Frameworks and offers are state (see `berth_model::mesos`): an offer holds its resources in
//! the accounting every scheduler's commit check reads. What only matters to a live
//! connection is kept in memory, in the [`Hub`]: the event streams, refuse filters,
//! suppression, and which status each task's framework was last sent. Streams belong to the
//! node the framework connected to; this first version serves frameworks on the leader.
//!
//! The decisions (who is offered what, which status is sent when) are pure functions in
//! `berth-mesos`, tested there without a server; this module is the shell around them, one
//! file per concern:
//!
//! - `http`: the endpoint, call parsing, authorization, SUBSCRIBE and its stream.
//! - `calls`: what each call of a subscribed framework does (ACCEPT, DECLINE, KILL...).
//! - `hub`: the streams and soft state of this node.
//! - `offers`: the leader loop.
//! - `view`: the loop's agents as the allocator sees them, refreshed for what changed.
//! - `translate`: between Mesos messages and berth's tasks, task definitions and instances.

mod calls;
mod http;
mod hub;
mod offers;
mod translate;
mod view;

use berth_model::TypedCommand;
use berth_raft::Written;

pub(crate) use http::router;
pub use hub::Hub;
pub use offers::MesosLoop;

use crate::App;

/// A random RFC 4122 version-4 UUID, as a status's `uuid` carries it.
fn uuid_bytes() -> Vec<u8> {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b.to_vec()
}

/// A random UUID in its text form (stream ids).
fn uuid_string() -> String {
    let h: String = uuid_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Writes a command nobody waits on (the loop's, and those of calls answered with 202): its
/// output, or `None` after logging why it was not written or was refused. The loop decides
/// from the state on every pass, so most lost writes are decided again (offers made again or
/// timed out, frameworks found orphaned or past their failover timeout); a lost KILL is the
/// framework's to send again, as it would to a Mesos master.
async fn write_or_warn<C: TypedCommand>(app: &App, command: C) -> Option<C::Output> {
    match app.node.write(command).await {
        Ok(Written {
            result: Ok(output), ..
        }) => Some(output),
        Ok(Written {
            result: Err(refused),
            ..
        }) => {
            tracing::warn!(command = C::NAME, error = %refused, "Mesos: a command was refused");
            None
        }
        Err(e) => {
            tracing::warn!(command = C::NAME, error = %e, "Mesos: a command was not written");
            None
        }
    }
}

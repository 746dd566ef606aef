//! Does what clients saw agree with a correct replicated store? The checker behind berth's
//! fault suite (crates/cli/tests/faults.rs): clients record every operation on a set of
//! registers (one per key) with when it was invoked, when it was answered and how, and after
//! the run the servers' final values are read; [`check`] then decides, without I/O or clocks:
//!
//! ```text
//!  History { ops, settled: (at, finals per server) }
//!      │ per key (linearizability is compositional: a history is linearizable iff the
//!      │ history of every key is)
//!      ├─ direct checks  a read of a value no write carried, of a failed write's value,
//!      │                 of a value before its write was invoked; servers ending on
//!      │                 different values; an acknowledged write a server's final value
//!      │                 cannot follow (a lost write)
//!      └─ search         is there one order of the operations, each placed between its
//!                        invocation and its response, in which every read returns the
//!                        latest write? (Wing & Gong's search with Lowe's memoization of
//!                        (linearized set, register value), as Porcupine does it)
//!      ▼
//!  Report { violations naming the key and the operations }
//! ```
//!
//! Outcomes follow what a client of berth can know: `Ok` (acknowledged: it took effect,
//! within its interval), `Failed` (a 4xx refusal, or a request that never left: it did not
//! take effect) and `Unknown` (a timeout or a 503 "may or may not take effect": it took effect
//! at some point after its invocation, or never). Once the run has settled (load stopped,
//! every server caught up) every unknown write has either taken effect or never will, so the
//! final reads come after all of them.
//!
//! Values are unique per key (each write carries a fresh tag), which is what lets a read name
//! the one write it saw, and lets the search drop unknown writes nobody saw: such a write
//! taking effect or not changes no read.

mod check;
mod history;
mod report;
mod search;

pub use check::{CheckError, Limits, check};
pub use history::{Action, Entry, Final, History, Nanos, Op, Outcome, Settled};
pub use report::{Report, Violation};

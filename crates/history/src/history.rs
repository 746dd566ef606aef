//! What a run records: operations on registers with their intervals and outcomes, and the
//! values every server ends with.

use std::fmt::{self, Debug, Display};

/// Nanoseconds since the run's origin; every client and the settle instant use one clock.
pub type Nanos = u64;

/// What an operation did to its key's register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<V> {
    /// Set the register to this value (unique among the writes of its key).
    Write(V),
    /// Read the register: the value the server answered (`None`: not written yet). Only
    /// meaningful when the outcome is [`Outcome::Ok`].
    Read(Option<V>),
}

/// How an operation ended, as far as its client can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Acknowledged: it took effect at one instant between its invocation and its response.
    Ok,
    /// Refused or never sent: it did not take effect.
    Failed,
    /// Timed out or answered "may or may not take effect": it took effect at some instant
    /// after its invocation (possibly after its client gave up), or never.
    Unknown,
}

/// One operation of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op<K, V> {
    /// The client (a number the caller chooses; reports name it `p<N>`).
    pub process: usize,
    pub key: K,
    pub action: Action<V>,
    /// When the request was sent.
    pub invoke: Nanos,
    /// When the answer arrived, or the client gave up.
    pub response: Nanos,
    pub outcome: Outcome,
}

impl<K, V> Op<K, V> {
    /// A write of `value` to `key`.
    pub fn write(
        process: usize,
        key: K,
        value: V,
        invoke: Nanos,
        response: Nanos,
        outcome: Outcome,
    ) -> Self {
        Op {
            process,
            key,
            action: Action::Write(value),
            invoke,
            response,
            outcome,
        }
    }

    /// An acknowledged read of `key` that returned `observed`.
    pub fn read(
        process: usize,
        key: K,
        observed: Option<V>,
        invoke: Nanos,
        response: Nanos,
    ) -> Self {
        Op {
            process,
            key,
            action: Action::Read(observed),
            invoke,
            response,
            outcome: Outcome::Ok,
        }
    }

    /// A read that got no value (refused, timed out, 503).
    pub fn read_without_answer(
        process: usize,
        key: K,
        invoke: Nanos,
        response: Nanos,
        outcome: Outcome,
    ) -> Self {
        Op {
            process,
            key,
            action: Action::Read(None),
            invoke,
            response,
            outcome,
        }
    }
}

/// The value one server holds for one key once the run has settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final<K, V> {
    /// Which server (reports print it as given).
    pub server: String,
    pub key: K,
    pub value: Option<V>,
}

/// The instant by which every operation has ended and every write that will ever take effect
/// has, and what each server held afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled<K, V> {
    pub at: Nanos,
    pub finals: Vec<Final<K, V>>,
}

/// A run's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History<K, V> {
    pub ops: Vec<Op<K, V>>,
    pub settled: Option<Settled<K, V>>,
}

impl<K, V> Default for History<K, V> {
    fn default() -> Self {
        History {
            ops: Vec::new(),
            settled: None,
        }
    }
}

impl<K, V> History<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, op: Op<K, V>) {
        self.ops.push(op);
    }

    /// Records that the run settled at `at` with the servers holding `finals`.
    pub fn settle(&mut self, at: Nanos, finals: Vec<Final<K, V>>) {
        self.settled = Some(Settled { at, finals });
    }
}

/// Something a report points at: an operation, or a server's final value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<K, V> {
    Op(Op<K, V>),
    Final(Final<K, V>),
}

/// `12.345678s`: an instant in seconds from the origin, to the microsecond.
pub(crate) struct Instant(pub Nanos);

impl Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000 / 1000
        )
    }
}

impl<K: Debug, V: Debug> Display for Op<K, V> {
    /// `p3 write "c3-17" to "k1" [1.200000s, 1.350000s] ok`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{} ", self.process)?;
        match (&self.action, self.outcome) {
            (Action::Write(v), _) => write!(f, "write {v:?} to {:?}", self.key)?,
            (Action::Read(Some(v)), Outcome::Ok) => write!(f, "read {:?} → {v:?}", self.key)?,
            (Action::Read(None), Outcome::Ok) => write!(f, "read {:?} → (none)", self.key)?,
            (Action::Read(_), _) => write!(f, "read {:?}", self.key)?,
        }
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        };
        write!(
            f,
            " [{}, {}] {outcome}",
            Instant(self.invoke),
            Instant(self.response)
        )
    }
}

impl<K: Debug, V: Debug> Display for Final<K, V> {
    /// `server s2 ended with "k1" = "c3-17"`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "server {} ended with {:?} = {v:?}",
                self.server, self.key
            ),
            None => write!(
                f,
                "server {} ended with {:?} never written",
                self.server, self.key
            ),
        }
    }
}

impl<K: Debug, V: Debug> Display for Entry<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Op(op) => Display::fmt(op, f),
            Entry::Final(fin) => Display::fmt(fin, f),
        }
    }
}

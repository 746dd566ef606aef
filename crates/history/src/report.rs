//! What the checker found, in words that name the key and the operations.

use std::fmt::{self, Debug, Display};

use crate::history::{Entry, Final, Op};

/// One way the history contradicts a correct store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation<K, V> {
    /// A read (or a server's final value) shows a value no write of its key carried.
    UnwrittenValue { key: K, read: Entry<K, V> },
    /// A read (or a server's final value) shows the value of a write that failed.
    FailedWriteVisible {
        key: K,
        read: Entry<K, V>,
        write: Op<K, V>,
    },
    /// A read returned a value before the write carrying it was even sent.
    ReadBeforeWrite {
        key: K,
        read: Op<K, V>,
        write: Op<K, V>,
    },
    /// The servers ended with different values for a key.
    FinalsDisagree { key: K, finals: Vec<Final<K, V>> },
    /// A server's final value comes from a write that ended before an acknowledged write
    /// began: that acknowledged write is lost on that server.
    LostWrite {
        key: K,
        lost: Op<K, V>,
        /// How many other acknowledged writes are lost the same way.
        also: usize,
        at: Final<K, V>,
        /// The write the final value came from (none when the server holds no value).
        final_write: Option<Op<K, V>>,
    },
    /// No order of the key's operations explains what was read.
    NotLinearizable {
        key: K,
        /// The operation that answered before any order could place it.
        blocked: Entry<K, V>,
        /// When it is a read: the write whose value it returned.
        returned: Option<Op<K, V>>,
        /// The register's value at that point of the deepest order found, and the write it
        /// came from (`None`: not written).
        state: Option<Op<K, V>>,
        /// How many of the key's operations that order had placed, out of how many.
        linearized: usize,
        total: usize,
        /// The last operations it placed, oldest first.
        tail: Vec<Entry<K, V>>,
        /// Operations whose intervals overlap the blocked one's (at most a few).
        concurrent: Vec<Entry<K, V>>,
    },
}

impl<K, V> Violation<K, V> {
    pub fn key(&self) -> &K {
        match self {
            Violation::UnwrittenValue { key, .. }
            | Violation::FailedWriteVisible { key, .. }
            | Violation::ReadBeforeWrite { key, .. }
            | Violation::FinalsDisagree { key, .. }
            | Violation::LostWrite { key, .. }
            | Violation::NotLinearizable { key, .. } => key,
        }
    }
}

/// The checker's answer for a whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<K, V> {
    /// Keys checked.
    pub keys: usize,
    /// Operations that constrained the search (acknowledged ones, and unknown writes some
    /// read saw), final reads included.
    pub ops: usize,
    /// Configurations the searches explored.
    pub states: u64,
    pub violations: Vec<Violation<K, V>>,
}

impl<K, V> Report<K, V> {
    /// No violation.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl<K: Debug, V: Debug> Display for Violation<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::UnwrittenValue { key, read } => {
                write!(f, "key {key:?}: a value no write carried: {read}")
            }
            Violation::FailedWriteVisible { key, read, write } => write!(
                f,
                "key {key:?}: the value of a failed write is visible: {read}\n    failed write: {write}"
            ),
            Violation::ReadBeforeWrite { key, read, write } => write!(
                f,
                "key {key:?}: a read saw a value before its write was sent: {read}\n    write: {write}"
            ),
            Violation::FinalsDisagree { key, finals } => {
                write!(f, "key {key:?}: the servers ended with different values:")?;
                for fin in finals {
                    write!(f, "\n    {fin}")?;
                }
                Ok(())
            }
            Violation::LostWrite {
                key,
                lost,
                also,
                at,
                final_write,
            } => {
                write!(f, "key {key:?}: acknowledged write lost: {lost}\n    {at}")?;
                match final_write {
                    Some(w) => write!(
                        f,
                        ", written by {w}, which ended before the lost write began"
                    )?,
                    None => write!(f, "")?,
                }
                if *also > 0 {
                    write!(
                        f,
                        "\n    ({also} more acknowledged writes lost the same way)"
                    )?;
                }
                Ok(())
            }
            Violation::NotLinearizable {
                key,
                blocked,
                returned,
                state,
                linearized,
                total,
                tail,
                concurrent,
            } => {
                write!(
                    f,
                    "key {key:?}: not linearizable: no order of the operations explains\n    {blocked}"
                )?;
                if let Some(w) = returned {
                    write!(f, "\n  it returned the value of {w}")?;
                }
                match state {
                    Some(w) => write!(f, "\n  the register held the value of {w}")?,
                    None => write!(f, "\n  the register held no value")?,
                }
                write!(
                    f,
                    "\n  in the deepest order found ({linearized} of {total} operations placed), ending:"
                )?;
                for e in tail {
                    write!(f, "\n    {e}")?;
                }
                if !concurrent.is_empty() {
                    write!(f, "\n  concurrent with it:")?;
                    for e in concurrent {
                        write!(f, "\n    {e}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl<K: Debug, V: Debug> Display for Report<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} keys, {} operations, {} search states: ",
            self.keys, self.ops, self.states
        )?;
        if self.violations.is_empty() {
            return write!(f, "linearizable, no acknowledged write lost");
        }
        write!(f, "{} violations", self.violations.len())?;
        for v in &self.violations {
            write!(f, "\n- {v}")?;
        }
        Ok(())
    }
}

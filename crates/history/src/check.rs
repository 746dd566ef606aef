//! The checker's entry point: validate the history, split it by key, run the direct checks
//! and then the search on each key.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;

use crate::history::{Action, Entry, Final, History, Instant, Nanos, Op, Outcome};
use crate::report::{Report, Violation};
use crate::search::{self, Kind, Operation, Problem, Verdict};

/// How much the checker takes on before it refuses, rather than run for hours or exhaust
/// memory: the search is exponential in the worst case (many writes concurrent with each
/// other), close to linear on the histories real clients produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations (final reads included) of one key.
    pub max_ops_per_key: usize,
    /// Configurations the search of one key may explore (each costs a few dozen bytes).
    pub max_states: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops_per_key: 20_000,
            max_states: 5_000_000,
        }
    }
}

/// A history the checker cannot decide. Each variant's message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// More operations on one key than [`Limits::max_ops_per_key`].
    #[error(
        "key {key}: {count} operations, more than the checker takes for one key ({cap}); spread the load over more keys or shorten the run"
    )]
    TooManyOperations {
        key: String,
        count: usize,
        cap: usize,
    },
    /// The search of one key explored [`Limits::max_states`] configurations without deciding.
    #[error(
        "key {key}: the search explored {states} configurations without deciding (limit {cap}): too many operations are concurrent with each other"
    )]
    SearchExhausted { key: String, states: u64, cap: u64 },
    /// Two writes of one key carry the same value, so a read cannot name the write it saw.
    #[error("key {key}: two writes carry the value {value}; every write needs a value of its own")]
    DuplicateValue { key: String, value: String },
    /// An operation answered before it was sent.
    #[error("{op}: answered before it was sent")]
    ResponseBeforeInvoke { op: String },
    /// An operation was sent, or answered definitely, after the instant the history says
    /// the run had settled.
    #[error("{op}: not over when the run settled at {at}")]
    AfterSettled { op: String, at: String },
    /// Final values without a settle instant cannot be placed.
    #[error("{op}: a final value needs the instant the run settled")]
    Unsettled { op: String },
}

/// Checks `history`: every violation found, or why it cannot be decided.
pub fn check<K, V>(history: &History<K, V>, limits: &Limits) -> Result<Report<K, V>, CheckError>
where
    K: Ord + Clone + Debug,
    V: Eq + Hash + Clone + Debug,
{
    let horizon = history.settled.as_ref().map(|s| s.at);
    for op in &history.ops {
        if op.response < op.invoke {
            return Err(CheckError::ResponseBeforeInvoke { op: op.to_string() });
        }
        if let Some(at) = horizon
            && (op.invoke > at || (op.outcome != Outcome::Unknown && op.response > at))
        {
            return Err(CheckError::AfterSettled {
                op: op.to_string(),
                at: Instant(at).to_string(),
            });
        }
    }
    type PerKey<'h, K, V> = (Vec<&'h Op<K, V>>, Vec<&'h Final<K, V>>);
    let mut keys: BTreeMap<&K, PerKey<'_, K, V>> = BTreeMap::new();
    for op in &history.ops {
        keys.entry(&op.key).or_default().0.push(op);
    }
    for fin in history.settled.iter().flat_map(|s| &s.finals) {
        keys.entry(&fin.key).or_default().1.push(fin);
    }
    let mut report = Report {
        keys: keys.len(),
        ops: 0,
        states: 0,
        violations: Vec::new(),
    };
    for (key, (ops, finals)) in keys {
        check_key(key, &ops, &finals, horizon, limits, &mut report)?;
    }
    Ok(report)
}

fn check_key<K, V>(
    key: &K,
    ops: &[&Op<K, V>],
    finals: &[&Final<K, V>],
    horizon: Option<Nanos>,
    limits: &Limits,
    report: &mut Report<K, V>,
) -> Result<(), CheckError>
where
    K: Ord + Clone + Debug,
    V: Eq + Hash + Clone + Debug,
{
    let count = ops.len() + finals.len();
    if count > limits.max_ops_per_key {
        return Err(CheckError::TooManyOperations {
            key: format!("{key:?}"),
            count,
            cap: limits.max_ops_per_key,
        });
    }
    let mut writes: HashMap<&V, &Op<K, V>> = HashMap::new();
    for op in ops {
        if let Action::Write(v) = &op.action
            && writes.insert(v, op).is_some()
        {
            return Err(CheckError::DuplicateValue {
                key: format!("{key:?}"),
                value: format!("{v:?}"),
            });
        }
    }
    let found = report.violations.len();

    // Direct checks: each read names the one write it saw.
    for op in ops {
        let Action::Read(Some(v)) = &op.action else {
            continue;
        };
        if op.outcome != Outcome::Ok {
            continue;
        }
        match writes.get(v) {
            None => report.violations.push(Violation::UnwrittenValue {
                key: key.clone(),
                read: Entry::Op((*op).clone()),
            }),
            Some(w) if w.outcome == Outcome::Failed => {
                report.violations.push(Violation::FailedWriteVisible {
                    key: key.clone(),
                    read: Entry::Op((*op).clone()),
                    write: (*w).clone(),
                })
            }
            Some(w) if w.invoke > op.response => {
                report.violations.push(Violation::ReadBeforeWrite {
                    key: key.clone(),
                    read: (*op).clone(),
                    write: (*w).clone(),
                })
            }
            Some(_) => {}
        }
    }

    // Durability: the servers agree, and what they hold can be the last write.
    let mut distinct: Vec<&Final<K, V>> = Vec::new();
    for fin in finals {
        if !distinct.iter().any(|d| d.value == fin.value) {
            distinct.push(fin);
        }
    }
    if distinct.len() > 1 {
        report.violations.push(Violation::FinalsDisagree {
            key: key.clone(),
            finals: finals.iter().map(|f| (*f).clone()).collect(),
        });
    }
    for fin in distinct {
        let final_write = match &fin.value {
            None => None,
            Some(v) => match writes.get(v) {
                None => {
                    report.violations.push(Violation::UnwrittenValue {
                        key: key.clone(),
                        read: Entry::Final(fin.clone()),
                    });
                    continue;
                }
                Some(w) if w.outcome == Outcome::Failed => {
                    report.violations.push(Violation::FailedWriteVisible {
                        key: key.clone(),
                        read: Entry::Final(fin.clone()),
                        write: (*w).clone(),
                    });
                    continue;
                }
                Some(w) => Some(*w),
            },
        };
        // The final value's write took effect by its response (by the settle instant if
        // its outcome is unknown); an acknowledged write sent after that came after it.
        let effect_by = match final_write {
            None => None,
            Some(w) if w.outcome == Outcome::Ok => Some(w.response),
            Some(_) => Some(horizon.ok_or_else(|| CheckError::Unsettled {
                op: fin.to_string(),
            })?),
        };
        let mut lost: Vec<&Op<K, V>> = ops
            .iter()
            .copied()
            .filter(|op| matches!(op.action, Action::Write(_)) && op.outcome == Outcome::Ok)
            .filter(|op| effect_by.is_none_or(|t| op.invoke > t))
            .collect();
        lost.sort_by_key(|op| op.response);
        if let Some(first) = lost.first() {
            report.violations.push(Violation::LostWrite {
                key: key.clone(),
                lost: (*first).clone(),
                also: lost.len() - 1,
                at: fin.clone(),
                final_write: final_write.cloned(),
            });
        }
    }
    if report.violations.len() > found {
        // The search would only restate what was found.
        return Ok(());
    }

    // The search. An unknown write nobody saw changes no read whether it took effect or
    // not, so it is left out; one that was seen took effect before the first read that saw
    // it answered (or, seen only by a server at the end, before the run settled).
    let mut ids: HashMap<&V, u32> = HashMap::new();
    let mut write_of: Vec<&Op<K, V>> = Vec::new();
    for op in ops {
        if let Action::Write(v) = &op.action
            && op.outcome != Outcome::Failed
        {
            ids.insert(v, write_of.len() as u32);
            write_of.push(op);
        }
    }
    let mut seen_by: HashMap<u32, Nanos> = HashMap::new();
    let mut saw = |v: &V, at: Nanos| {
        let id = ids[v];
        let t = seen_by.entry(id).or_insert(at);
        *t = (*t).min(at);
    };
    for op in ops {
        if let (Action::Read(Some(v)), Outcome::Ok) = (&op.action, op.outcome) {
            saw(v, op.response);
        }
    }
    for fin in finals {
        if let Some(v) = &fin.value {
            saw(v, horizon.expect("finals are settled"));
        }
    }
    let mut problem = Problem {
        ops: Vec::new(),
        finals: finals
            .iter()
            .map(|f| f.value.as_ref().map(|v| ids[v]))
            .collect(),
    };
    let mut source: Vec<&Op<K, V>> = Vec::new();
    for op in ops {
        let operation = match (&op.action, op.outcome) {
            (Action::Write(v), Outcome::Ok) => Operation {
                invoke: op.invoke,
                response: op.response,
                kind: Kind::Write(ids[v]),
            },
            (Action::Write(v), Outcome::Unknown) => match seen_by.get(&ids[v]) {
                Some(&by) => Operation {
                    invoke: op.invoke,
                    response: by.max(op.invoke),
                    kind: Kind::Write(ids[v]),
                },
                None => continue,
            },
            (Action::Read(seen), Outcome::Ok) => Operation {
                invoke: op.invoke,
                response: op.response,
                kind: Kind::Read(seen.as_ref().map(|v| ids[v])),
            },
            _ => continue,
        };
        problem.ops.push(operation);
        source.push(op);
    }
    let total = problem.ops.len() + problem.finals.len();
    report.ops += total;
    let entry = |i: usize| match source.get(i) {
        Some(op) => Entry::Op((*op).clone()),
        None => Entry::Final(finals[i - source.len()].clone()),
    };
    match search::search(&problem, limits.max_states) {
        Verdict::Linearizable { states } => report.states += states,
        Verdict::Exhausted { states } => {
            return Err(CheckError::SearchExhausted {
                key: format!("{key:?}"),
                states,
                cap: limits.max_states,
            });
        }
        Verdict::Violation { blocked, states } => {
            report.states += states;
            let concurrent = match source.get(blocked.op) {
                Some(b) => {
                    let (from, to) = (problem.ops[blocked.op].invoke, b.response);
                    let mut overlapping: Vec<usize> = (0..source.len())
                        .filter(|&i| i != blocked.op)
                        .filter(|&i| problem.ops[i].invoke <= to && problem.ops[i].response >= from)
                        .collect();
                    overlapping.sort_by_key(|&i| problem.ops[i].invoke);
                    overlapping.truncate(6);
                    overlapping.into_iter().map(entry).collect()
                }
                None => Vec::new(),
            };
            let blocked_entry = entry(blocked.op);
            let returned = match &blocked_entry {
                Entry::Op(Op {
                    action: Action::Read(Some(v)),
                    ..
                })
                | Entry::Final(Final { value: Some(v), .. }) => writes.get(v).map(|w| (*w).clone()),
                _ => None,
            };
            report.violations.push(Violation::NotLinearizable {
                key: key.clone(),
                blocked: blocked_entry,
                returned,
                state: blocked.state.map(|id| write_of[id as usize].clone()),
                linearized: blocked.depth,
                total,
                tail: blocked.tail.iter().map(|&i| entry(i)).collect(),
                concurrent,
            });
        }
    }
    Ok(())
}

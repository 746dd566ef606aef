//! The search for one key: is there an order of its operations, each placed between its
//! invocation and its response, in which every read returns the latest write before it?
//!
//! Wing & Gong's search as Lowe improved it (and Porcupine implements it): walk the
//! invocations and responses in time order; at an invocation, try to linearize that
//! operation now (the register allows it), lift it out of the list and start over from the
//! head; at a response whose operation is not linearized yet, the current prefix cannot be
//! completed, so undo the last choice and try the next candidate. A configuration already
//! explored — the same set of linearized operations with the same register value — is never
//! explored again, which turns the exponential search into one that is close to linear on
//! histories whose operations overlap little.
//!
//! The linearized set is remembered compactly: operations are numbered by invocation, and an
//! operation can only be linearized while the first one not yet linearized is still pending,
//! so the set is "the first `p`, plus a few concurrent with the `p+1`-th".

use std::collections::HashSet;

/// A register value, numbered by its write; `None` before any write.
pub(crate) type Value = Option<u32>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Write(u32),
    Read(Value),
}

/// An operation as the search sees it: its interval and what it does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operation {
    pub invoke: u64,
    pub response: u64,
    pub kind: Kind,
}

/// The operations of one key: `ops` in any order (the search numbers them by invocation),
/// and the servers' final reads, which come after all of them.
pub(crate) struct Problem {
    pub ops: Vec<Operation>,
    pub finals: Vec<Value>,
}

/// Where the search got deepest before it had to give up: `op` (an index into the
/// problem's ops, or `ops.len() + i` for the `i`-th final read) answered while the register
/// held `state`, and no order of what was left allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    pub op: usize,
    pub state: Value,
    /// How many operations were linearized at that point.
    pub depth: usize,
    /// The last operations linearized before it, oldest first.
    pub tail: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable {
        states: u64,
    },
    Violation {
        blocked: Blocked,
        states: u64,
    },
    /// More than the allowed number of configurations were explored.
    Exhausted {
        states: u64,
    },
}

/// How many of the last linearized operations a [`Blocked`] keeps.
const TAIL: usize = 6;

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

struct Event {
    op: usize,
    call: bool,
    /// For a call: the index of its return event.
    matching: usize,
}

/// Which operations are linearized (numbered by invocation), and how many of the first
/// ones are, for the memo key.
struct Linearized {
    bits: Vec<u64>,
    count: usize,
    prefix: usize,
}

impl Linearized {
    fn new(n: usize) -> Self {
        Linearized {
            bits: vec![0; n.div_ceil(64)],
            count: 0,
            prefix: 0,
        }
    }

    fn get(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize) {
        self.bits[i / 64] |= 1 << (i % 64);
        self.count += 1;
        while self.prefix < self.bits.len() * 64 && self.get(self.prefix) {
            self.prefix += 1;
        }
    }

    fn clear(&mut self, i: usize) {
        self.bits[i / 64] &= !(1 << (i % 64));
        self.count -= 1;
        self.prefix = self.prefix.min(i);
    }

    /// `[value, p, extras...]`: equal for equal (set, value) pairs.
    fn key(&self, value: Value) -> Box<[u32]> {
        let extras = self.count - self.prefix;
        let mut key = Vec::with_capacity(2 + extras);
        key.push(value.map_or(0, |v| v + 1));
        key.push(self.prefix as u32);
        let mut word = self.prefix / 64;
        // The bits from `prefix` on.
        let mut mask = !0u64 << (self.prefix % 64);
        while key.len() < 2 + extras {
            let mut bits = self.bits[word] & mask;
            while bits != 0 {
                key.push((word * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
            word += 1;
            mask = !0;
        }
        key.into_boxed_slice()
    }
}

/// Runs the search, exploring at most `max_states` configurations.
pub(crate) fn search(problem: &Problem, max_states: u64) -> Verdict {
    let ordinary = problem.ops.len();
    let total = ordinary + problem.finals.len();
    // Number operations by invocation (the memo key relies on it); finals last.
    let mut order: Vec<usize> = (0..ordinary).collect();
    order.sort_by_key(|&i| (problem.ops[i].invoke, problem.ops[i].response, i));
    let kinds: Vec<Kind> = order
        .iter()
        .map(|&i| problem.ops[i].kind)
        .chain(problem.finals.iter().map(|&v| Kind::Read(v)))
        .collect();
    let original = |n: usize| if n < ordinary { order[n] } else { n };

    // Invocations and responses in time order, an invocation before a response at the same
    // instant (touching intervals are concurrent); the final reads after everything, all
    // concurrent with each other.
    let mut times: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ordinary);
    for (n, &i) in order.iter().enumerate() {
        times.push((problem.ops[i].invoke, false, n));
        times.push((problem.ops[i].response, true, n));
    }
    times.sort();
    let mut sequence: Vec<(usize, bool)> = times.iter().map(|&(_, ret, n)| (n, !ret)).collect();
    sequence.extend((ordinary..total).map(|n| (n, true)));
    sequence.extend((ordinary..total).map(|n| (n, false)));

    // A doubly linked list of events, slot 0 the head.
    let mut events: Vec<Event> = Vec::with_capacity(sequence.len() + 1);
    events.push(Event {
        op: NIL,
        call: false,
        matching: NIL,
    });
    let mut call_of = vec![NIL; total];
    for &(op, call) in &sequence {
        let slot = events.len();
        if call {
            call_of[op] = slot;
        } else {
            events[call_of[op]].matching = slot;
        }
        events.push(Event {
            op,
            call,
            matching: NIL,
        });
    }
    let len = events.len();
    let mut next: Vec<usize> = (1..=len).map(|i| if i == len { NIL } else { i }).collect();
    let mut prev: Vec<usize> = (0..len).map(|i| i.wrapping_sub(1)).collect();
    let remove = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        next[prev[i]] = next[i];
        if next[i] != NIL {
            prev[next[i]] = prev[i];
        }
    };
    let restore = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        next[prev[i]] = i;
        if next[i] != NIL {
            prev[next[i]] = i;
        }
    };

    let mut linearized = Linearized::new(total);
    let mut memo: HashSet<Box<[u32]>> = HashSet::new();
    let mut state: Value = None;
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut best: Option<Blocked> = None;
    let mut states: u64 = 0;
    let mut entry = next[HEAD];
    while entry != NIL {
        let Event { op, call, matching } = events[entry];
        if call {
            let after = match kinds[op] {
                Kind::Write(v) => Some(Some(v)),
                Kind::Read(seen) => (seen == state).then_some(state),
            };
            if let Some(after) = after {
                linearized.set(op);
                if memo.insert(linearized.key(after)) {
                    states += 1;
                    if states > max_states {
                        return Verdict::Exhausted { states };
                    }
                    stack.push((entry, state));
                    state = after;
                    remove(&mut next, &mut prev, entry);
                    remove(&mut next, &mut prev, matching);
                    entry = next[HEAD];
                    continue;
                }
                linearized.clear(op);
            }
            entry = next[entry];
        } else {
            // `op` answered before it could be linearized: the last choice was wrong.
            if best.as_ref().is_none_or(|b| stack.len() > b.depth) {
                let from = stack.len().saturating_sub(TAIL);
                best = Some(Blocked {
                    op: original(op),
                    state,
                    depth: stack.len(),
                    tail: stack[from..]
                        .iter()
                        .map(|&(e, _)| original(events[e].op))
                        .collect(),
                });
            }
            let Some((undo, before)) = stack.pop() else {
                return Verdict::Violation {
                    blocked: best.expect("recorded just above"),
                    states,
                };
            };
            linearized.clear(events[undo].op);
            state = before;
            restore(&mut next, &mut prev, events[undo].matching);
            restore(&mut next, &mut prev, undo);
            entry = next[undo];
        }
    }
    Verdict::Linearizable { states }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(invoke: u64, response: u64, v: u32) -> Operation {
        Operation {
            invoke,
            response,
            kind: Kind::Write(v),
        }
    }

    fn r(invoke: u64, response: u64, v: Value) -> Operation {
        Operation {
            invoke,
            response,
            kind: Kind::Read(v),
        }
    }

    fn run(ops: Vec<Operation>, finals: Vec<Value>) -> Verdict {
        search(&Problem { ops, finals }, 1_000_000)
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert!(matches!(run(vec![], vec![]), Verdict::Linearizable { .. }));
        assert!(matches!(
            run(vec![], vec![None, None]),
            Verdict::Linearizable { .. }
        ));
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in [None, Some(0)] {
            let v = run(vec![w(0, 10, 0), r(5, 6, seen)], vec![Some(0)]);
            assert!(matches!(v, Verdict::Linearizable { .. }), "{seen:?}: {v:?}");
        }
    }

    #[test]
    fn a_stale_read_blocks_at_the_read() {
        let v = run(
            vec![w(0, 1, 0), w(2, 3, 1), r(4, 5, Some(0))],
            vec![Some(1)],
        );
        let Verdict::Violation { blocked, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(blocked.op, 2);
        assert_eq!(blocked.state, Some(1));
        assert_eq!(blocked.tail, [0, 1]);
    }

    #[test]
    fn finals_come_after_everything() {
        // A write acknowledged, then a final value from before it.
        let v = run(vec![w(0, 1, 0), w(2, 3, 1)], vec![Some(0)]);
        assert!(matches!(v, Verdict::Violation { .. }), "{v:?}");
        // Two servers ending differently can never both be right.
        let v = run(vec![w(0, 10, 0), w(0, 10, 1)], vec![Some(0), Some(1)]);
        assert!(matches!(v, Verdict::Violation { .. }), "{v:?}");
    }

    #[test]
    fn the_memo_key_is_prefix_and_extras() {
        let mut l = Linearized::new(130);
        l.set(0);
        l.set(1);
        l.set(70);
        l.set(129);
        assert_eq!(&*l.key(Some(4)), &[5, 2, 70, 129]);
        l.clear(0);
        assert_eq!(&*l.key(None), &[0, 0, 1, 70, 129]);
        l.set(0);
        l.clear(70);
        assert_eq!(&*l.key(None), &[0, 2, 129]);
    }

    #[test]
    fn the_budget_stops_the_search() {
        // Many fully concurrent writes, then a read nobody can explain: every order of the
        // writes gets explored.
        let mut ops: Vec<Operation> = (0..20).map(|v| w(0, 100, v)).collect();
        ops.push(r(200, 201, None));
        assert_eq!(
            search(
                &Problem {
                    ops,
                    finals: vec![]
                },
                1000
            ),
            Verdict::Exhausted { states: 1001 }
        );
    }
}

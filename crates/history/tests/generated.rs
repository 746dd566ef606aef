//! Generated histories: a sequential execution of a register per key, each operation's
//! interval stretched around the instant it took effect so that operations overlap at random.
//! Such a history is linearizable by construction and must be accepted; with a stale read or
//! a lost write added it must not be.

use berth_history::{Final, History, Limits, Op, Outcome, Violation, check};
use proptest::prelude::*;

const KEYS: u32 = 3;

/// One generated step: which key, what kind of operation, how long after the previous step
/// it takes effect, and how far its interval reaches before and after that instant.
#[derive(Debug, Clone)]
struct Step {
    key: u32,
    kind: u32,
    gap: u64,
    before: u64,
    after: u64,
    process: usize,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0..KEYS, 0u32..100, 1u64..20, 0u64..60, 0u64..60, 0usize..5).prop_map(
            |(key, kind, gap, before, after, process)| Step {
                key,
                kind,
                gap,
                before,
                after,
                process,
            },
        ),
        0..80,
    )
}

/// The history of running `steps` one after the other, read at the end by `servers`
/// servers; and the register values it ended with.
fn execute(steps: &[Step], servers: usize) -> History<u32, String> {
    let mut state: Vec<Option<String>> = vec![None; KEYS as usize];
    let mut history = History::new();
    let mut t = 1_000;
    let mut end = t;
    for (i, s) in steps.iter().enumerate() {
        t += s.gap;
        let (invoke, response) = (t - s.before, t + s.after);
        let key = s.key;
        let value = format!("v{i}");
        let op = match s.kind {
            // Acknowledged: took effect at t.
            0..45 => {
                state[key as usize] = Some(value.clone());
                Op::write(s.process, key, value, invoke, response, Outcome::Ok)
            }
            // Unknown, took effect at t, perhaps after the client gave up.
            45..52 => {
                state[key as usize] = Some(value.clone());
                let gave_up = invoke + s.after;
                Op::write(s.process, key, value, invoke, gave_up, Outcome::Unknown)
            }
            // Unknown, never took effect.
            52..57 => Op::write(s.process, key, value, invoke, response, Outcome::Unknown),
            57..60 => Op::write(s.process, key, value, invoke, response, Outcome::Failed),
            60..95 => Op::read(
                s.process,
                key,
                state[key as usize].clone(),
                invoke,
                response,
            ),
            _ => Op::read_without_answer(s.process, key, invoke, response, Outcome::Unknown),
        };
        end = end.max(response).max(t);
        history.push(op);
    }
    let finals = (0..servers)
        .flat_map(|server| {
            let state = &state;
            (0..KEYS).map(move |key| Final {
                server: format!("s{server}"),
                key,
                value: state[key as usize].clone(),
            })
        })
        .collect();
    history.settle(end + 1, finals);
    history
}

/// Two acknowledged writes of one key, the first over before the second began.
fn ordered_pair(h: &History<u32, String>) -> Option<(Op<u32, String>, Op<u32, String>)> {
    let writes: Vec<&Op<u32, String>> = h
        .ops
        .iter()
        .filter(|op| matches!(op.action, berth_history::Action::Write(_)))
        .filter(|op| op.outcome == Outcome::Ok)
        .collect();
    writes.iter().find_map(|first| {
        writes
            .iter()
            .find(|second| second.key == first.key && second.invoke > first.response)
            .map(|second| ((*first).clone(), (*second).clone()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn histories_of_a_sequential_execution_are_accepted(steps in steps(), servers in 1usize..4) {
        let h = execute(&steps, servers);
        let report = check(&h, &Limits::default()).expect("decidable");
        prop_assert!(report.is_ok(), "{}", report);
    }

    #[test]
    fn a_stale_read_at_the_end_is_rejected(steps in steps()) {
        let mut h = execute(&steps, 2);
        let pair = ordered_pair(&h);
        prop_assume!(pair.is_some());
        let (first, _) = pair.unwrap();
        let berth_history::Action::Write(stale) = first.action.clone() else { unreachable!() };
        let settled = h.settled.take().unwrap();
        h.push(Op::read(9, first.key, Some(stale), settled.at, settled.at + 1));
        h.settle(settled.at + 2, settled.finals);
        let report = check(&h, &Limits::default()).expect("decidable");
        prop_assert!(!report.is_ok());
        prop_assert!(report.violations.iter().all(|v| *v.key() == first.key), "{}", report);
    }

    #[test]
    fn a_server_ending_on_an_overwritten_value_is_rejected(steps in steps()) {
        let mut h = execute(&steps, 3);
        let pair = ordered_pair(&h);
        prop_assume!(pair.is_some());
        let (first, _) = pair.unwrap();
        let berth_history::Action::Write(stale) = first.action.clone() else { unreachable!() };
        let settled = h.settled.as_mut().unwrap();
        let fin = settled.finals.iter_mut().find(|f| f.key == first.key).unwrap();
        fin.value = Some(stale);
        let report = check(&h, &Limits::default()).expect("decidable");
        prop_assert!(
            report.violations.iter().any(|v| matches!(v, Violation::LostWrite { key, .. } if *key == first.key)),
            "{}", report
        );
    }
}

/// A small history of anything at all: random intervals and outcomes, reads returning a
/// value some write of their key carries or none, now and then one nobody wrote.
fn small() -> impl Strategy<Value = History<u32, u32>> {
    let op = (
        0u32..2,
        any::<bool>(),
        0u64..12,
        0u64..6,
        0u32..10,
        0usize..8,
    );
    let ops = prop::collection::vec(op, 0..7);
    let finals = prop::collection::vec((0u32..2, 0usize..8), 0..3);
    (ops, finals).prop_map(|(ops, finals)| {
        // Writes carry their index; a read's pick chooses among its key's writes.
        let written = |key: u32, pick: usize| -> Option<u32> {
            let values: Vec<u32> = ops
                .iter()
                .enumerate()
                .filter(|(_, o)| o.0 == key && o.1)
                .map(|(i, _)| i as u32)
                .collect();
            match pick {
                0 => None,
                7 => Some(99),
                n => values.get(n % (values.len() + 1)).copied(),
            }
        };
        let mut h = History::new();
        let mut end = 0;
        for (i, &(key, write, from, len, outcome, pick)) in ops.iter().enumerate() {
            let (invoke, response) = (from, from + len);
            end = end.max(response);
            let outcome = match outcome {
                0..6 => Outcome::Ok,
                6..8 => Outcome::Unknown,
                _ => Outcome::Failed,
            };
            h.push(if write {
                Op::write(i, key, i as u32, invoke, response, outcome)
            } else {
                Op::read(i, key, written(key, pick), invoke, response)
            });
        }
        let finals = finals
            .into_iter()
            .enumerate()
            .map(|(server, (key, pick))| Final {
                server: format!("s{server}"),
                key,
                value: written(key, pick),
            })
            .collect();
        h.settle(end + 1, finals);
        h
    })
}

/// The definition, by exhaustion: some choice of the unknown writes that took effect and
/// some order of the operations that respects real time explains every read, and the final
/// values come after all of it.
fn brute_force(h: &History<u32, u32>) -> bool {
    let horizon = h.settled.as_ref().map_or(u64::MAX, |s| s.at);
    let finals = h
        .settled
        .as_ref()
        .map(|s| s.finals.clone())
        .unwrap_or_default();
    let keys: std::collections::BTreeSet<u32> = h
        .ops
        .iter()
        .map(|o| o.key)
        .chain(finals.iter().map(|f| f.key))
        .collect();
    keys.into_iter().all(|key| {
        let of_key = |o: &&Op<u32, u32>| o.key == key;
        let certain: Vec<&Op<u32, u32>> = h
            .ops
            .iter()
            .filter(of_key)
            .filter(|o| o.outcome == Outcome::Ok)
            .collect();
        let unknown: Vec<&Op<u32, u32>> = h
            .ops
            .iter()
            .filter(of_key)
            .filter(|o| o.outcome == Outcome::Unknown)
            .filter(|o| matches!(o.action, berth_history::Action::Write(_)))
            .collect();
        let ends: Vec<Option<u32>> = finals
            .iter()
            .filter(|f| f.key == key)
            .map(|f| f.value)
            .collect();
        (0..1u32 << unknown.len()).any(|mask| {
            let mut ops: Vec<(u64, u64, &berth_history::Action<u32>)> = certain
                .iter()
                .map(|o| (o.invoke, o.response, &o.action))
                .collect();
            for (i, o) in unknown.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    ops.push((o.invoke, horizon, &o.action));
                }
            }
            let mut used = vec![false; ops.len()];
            orders(&ops, &mut used, None, &ends)
        })
    })
}

fn orders(
    ops: &[(u64, u64, &berth_history::Action<u32>)],
    used: &mut [bool],
    state: Option<u32>,
    ends: &[Option<u32>],
) -> bool {
    if used.iter().all(|u| *u) {
        return ends.iter().all(|e| *e == state);
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // Nothing still to place may have ended before this one began.
        let (invoke, _, action) = ops[i];
        if (0..ops.len()).any(|j| !used[j] && ops[j].1 < invoke) {
            continue;
        }
        let after = match action {
            berth_history::Action::Write(v) => Some(*v),
            berth_history::Action::Read(seen) if *seen == state => state,
            berth_history::Action::Read(_) => continue,
        };
        used[i] = true;
        let found = orders(ops, used, after, ends);
        used[i] = false;
        if found {
            return true;
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn the_checker_agrees_with_exhaustion_on_small_histories(h in small()) {
        let report = check(&h, &Limits::default()).expect("decidable");
        prop_assert_eq!(report.is_ok(), brute_force(&h), "{}\n{:?}", report, h);
    }
}

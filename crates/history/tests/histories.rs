//! Hand-made histories: linearizable ones are accepted; the classic violations are rejected
//! with a report naming the key and the operations.

use berth_history::{
    CheckError, Entry, Final, History, Limits, Op, Outcome, Report, Violation, check,
};

type H = History<&'static str, &'static str>;

/// Milliseconds, as the checker's nanoseconds.
const fn ms(n: u64) -> u64 {
    n * 1_000_000
}

fn write(
    p: usize,
    key: &'static str,
    v: &'static str,
    from: u64,
    to: u64,
) -> Op<&'static str, &'static str> {
    Op::write(p, key, v, ms(from), ms(to), Outcome::Ok)
}

fn unknown(
    p: usize,
    key: &'static str,
    v: &'static str,
    from: u64,
    to: u64,
) -> Op<&'static str, &'static str> {
    Op::write(p, key, v, ms(from), ms(to), Outcome::Unknown)
}

fn failed(
    p: usize,
    key: &'static str,
    v: &'static str,
    from: u64,
    to: u64,
) -> Op<&'static str, &'static str> {
    Op::write(p, key, v, ms(from), ms(to), Outcome::Failed)
}

fn read(
    p: usize,
    key: &'static str,
    v: Option<&'static str>,
    from: u64,
    to: u64,
) -> Op<&'static str, &'static str> {
    Op::read(p, key, v, ms(from), ms(to))
}

fn history(ops: Vec<Op<&'static str, &'static str>>) -> H {
    History { ops, settled: None }
}

/// `ops`, settled at `at` ms with every server in `finals` (server, key, value).
fn settled(
    ops: Vec<Op<&'static str, &'static str>>,
    at: u64,
    finals: &[(&str, &'static str, Option<&'static str>)],
) -> H {
    let mut h = history(ops);
    h.settle(
        ms(at),
        finals
            .iter()
            .map(|&(server, key, value)| Final {
                server: server.to_owned(),
                key,
                value,
            })
            .collect(),
    );
    h
}

#[track_caller]
fn accepted(h: &H) -> Report<&'static str, &'static str> {
    let report = check(h, &Limits::default()).expect("decidable");
    assert!(report.is_ok(), "{report}");
    report
}

#[track_caller]
fn rejected(h: &H) -> (Violation<&'static str, &'static str>, String) {
    let report = check(h, &Limits::default()).expect("decidable");
    assert_eq!(report.violations.len(), 1, "{report}");
    let text = report.to_string();
    (report.violations[0].clone(), text)
}

#[test]
fn sequential_and_overlapping_histories_are_accepted() {
    let r = accepted(&settled(
        vec![
            read(1, "k", None, 0, 1),
            write(1, "k", "a", 2, 3),
            read(2, "k", Some("a"), 4, 5),
            // b and c overlap each other and the reads.
            write(1, "k", "b", 10, 20),
            write(2, "k", "c", 12, 22),
            read(3, "k", Some("c"), 13, 14),
            read(3, "k", Some("b"), 15, 25),
            read(4, "k", Some("b"), 26, 27),
        ],
        30,
        &[("s1", "k", Some("b")), ("s2", "k", Some("b"))],
    ));
    assert_eq!(r.keys, 1);
    assert_eq!(r.ops, 10);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_rejected() {
    let (v, text) = rejected(&history(vec![
        write(1, "k", "a", 0, 10),
        write(2, "k", "b", 20, 30),
        read(3, "k", Some("a"), 40, 50),
    ]));
    let Violation::NotLinearizable {
        key,
        blocked,
        returned,
        state,
        linearized,
        total,
        ..
    } = &v
    else {
        panic!("{text}")
    };
    assert_eq!(*key, "k");
    assert_eq!(*blocked, Entry::Op(read(3, "k", Some("a"), 40, 50)));
    assert_eq!(returned.as_ref(), Some(&write(1, "k", "a", 0, 10)));
    assert_eq!(state.as_ref(), Some(&write(2, "k", "b", 20, 30)));
    assert_eq!((*linearized, *total), (2, 3));
    assert!(text.contains(r#"key "k": not linearizable"#), "{text}");
    assert!(
        text.contains(r#"p3 read "k" → "a" [0.040000s, 0.050000s] ok"#),
        "{text}"
    );
    assert!(
        text.contains(r#"p2 write "b" to "k" [0.020000s, 0.030000s] ok"#),
        "{text}"
    );
}

#[test]
fn a_read_of_a_value_before_its_write_was_sent_is_rejected() {
    let (v, text) = rejected(&history(vec![
        read(1, "k", Some("a"), 0, 10),
        write(2, "k", "a", 20, 30),
    ]));
    assert!(
        matches!(&v, Violation::ReadBeforeWrite { key: "k", read, write }
            if read.process == 1 && write.process == 2),
        "{text}"
    );
    assert!(text.contains("before its write was sent"), "{text}");
}

#[test]
fn two_reads_disagreeing_on_the_order_of_two_writes_are_rejected() {
    // p3 sees a then b; p4 sees b then a. Either order of the writes contradicts one of them.
    let (v, text) = rejected(&history(vec![
        write(1, "k", "a", 0, 100),
        write(2, "k", "b", 0, 100),
        read(3, "k", Some("a"), 10, 20),
        read(3, "k", Some("b"), 30, 40),
        read(4, "k", Some("b"), 10, 20),
        read(4, "k", Some("a"), 30, 40),
    ]));
    assert!(
        matches!(&v, Violation::NotLinearizable { key: "k", .. }),
        "{text}"
    );
    // Without p4's second read the same history is fine.
    accepted(&history(vec![
        write(1, "k", "a", 0, 100),
        write(2, "k", "b", 0, 100),
        read(3, "k", Some("a"), 10, 20),
        read(3, "k", Some("b"), 30, 40),
        read(4, "k", Some("b"), 10, 20),
    ]));
}

#[test]
fn a_value_going_back_in_time_is_rejected() {
    // Once a read saw b, an older value cannot come back without a new write.
    let (v, text) = rejected(&history(vec![
        write(1, "k", "a", 0, 10),
        write(1, "k", "b", 20, 60),
        read(2, "k", Some("b"), 30, 40),
        read(3, "k", Some("a"), 45, 50),
    ]));
    assert!(
        matches!(&v, Violation::NotLinearizable { blocked: Entry::Op(r), .. }
            if r.process == 3),
        "{text}"
    );
}

#[test]
fn an_unknown_write_may_take_effect() {
    // Seen by a read, and the server ends with it; even after its client gave up.
    accepted(&settled(
        vec![
            write(1, "k", "a", 0, 10),
            unknown(2, "k", "b", 20, 30),
            read(3, "k", Some("a"), 40, 50),
            read(3, "k", Some("b"), 60, 70),
        ],
        100,
        &[("s1", "k", Some("b")), ("s2", "k", Some("b"))],
    ));
    // Seen only by the servers at the end.
    accepted(&settled(
        vec![write(1, "k", "a", 0, 10), unknown(2, "k", "b", 20, 30)],
        100,
        &[("s1", "k", Some("b"))],
    ));
}

#[test]
fn an_unknown_write_may_never_take_effect() {
    accepted(&settled(
        vec![
            write(1, "k", "a", 0, 10),
            unknown(2, "k", "b", 20, 30),
            read(3, "k", Some("a"), 40, 50),
        ],
        100,
        &[("s1", "k", Some("a")), ("s2", "k", Some("a"))],
    ));
}

#[test]
fn an_unknown_write_that_took_effect_cannot_be_undone() {
    // A read saw b, so b took effect after a ended; the servers cannot end with a.
    let (v, text) = rejected(&settled(
        vec![
            write(1, "k", "a", 0, 10),
            unknown(2, "k", "b", 20, 30),
            read(3, "k", Some("b"), 40, 50),
        ],
        100,
        &[("s1", "k", Some("a"))],
    ));
    assert!(
        matches!(&v, Violation::NotLinearizable { blocked: Entry::Final(f), .. }
            if f.server == "s1"),
        "{text}"
    );
    assert!(text.contains(r#"server s1 ended with "k" = "a""#), "{text}");
}

#[test]
fn a_failed_write_must_not_be_visible() {
    let (v, text) = rejected(&history(vec![
        failed(1, "k", "a", 0, 10),
        read(2, "k", Some("a"), 20, 30),
    ]));
    assert!(
        matches!(&v, Violation::FailedWriteVisible { key: "k", .. }),
        "{text}"
    );
    // A failed write nobody sees is no problem.
    accepted(&history(vec![
        failed(1, "k", "a", 0, 10),
        read(2, "k", None, 20, 30),
    ]));
}

#[test]
fn a_value_nobody_wrote_is_rejected() {
    let (v, text) = rejected(&history(vec![
        write(1, "k", "a", 0, 10),
        read(2, "k", Some("z"), 20, 30),
    ]));
    assert!(
        matches!(&v, Violation::UnwrittenValue { key: "k", .. }),
        "{text}"
    );
    assert!(text.contains("a value no write carried"), "{text}");
    let (v, _) = rejected(&settled(vec![], 10, &[("s1", "k", Some("z"))]));
    assert!(matches!(
        &v,
        Violation::UnwrittenValue {
            read: Entry::Final(_),
            ..
        }
    ));
}

#[test]
fn an_acknowledged_write_missing_on_a_server_is_lost() {
    let (v, text) = rejected(&settled(
        vec![
            write(1, "k", "a", 0, 10),
            write(1, "k", "b", 20, 30),
            write(2, "k", "c", 40, 50),
        ],
        100,
        &[("s1", "k", Some("a"))],
    ));
    let Violation::LostWrite {
        key,
        lost,
        also,
        at,
        final_write,
    } = &v
    else {
        panic!("{text}")
    };
    assert_eq!(*key, "k");
    assert_eq!(*lost, write(1, "k", "b", 20, 30));
    assert_eq!(*also, 1);
    assert_eq!(at.server, "s1");
    assert_eq!(final_write.as_ref(), Some(&write(1, "k", "a", 0, 10)));
    assert!(text.contains("acknowledged write lost"), "{text}");
    // No value at all after an acknowledged write.
    let (v, _) = rejected(&settled(
        vec![write(1, "k", "a", 0, 10)],
        100,
        &[("s1", "k", None)],
    ));
    assert!(matches!(
        &v,
        Violation::LostWrite {
            final_write: None,
            ..
        }
    ));
}

#[test]
fn servers_ending_differently_disagree() {
    let report = check(
        &settled(
            vec![write(1, "k", "a", 0, 10), write(2, "k", "b", 5, 15)],
            100,
            &[("s1", "k", Some("a")), ("s2", "k", Some("b"))],
        ),
        &Limits::default(),
    )
    .unwrap();
    assert!(
        matches!(&report.violations[0], Violation::FinalsDisagree { key: "k", finals } if finals.len() == 2),
        "{report}"
    );
}

#[test]
fn keys_are_checked_separately() {
    let report = check(
        &history(vec![
            write(1, "good", "a", 0, 10),
            read(2, "good", Some("a"), 20, 30),
            write(1, "bad", "x", 0, 10),
            write(1, "bad", "y", 20, 30),
            read(2, "bad", Some("x"), 40, 50),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(report.keys, 2);
    assert_eq!(report.violations.len(), 1, "{report}");
    assert_eq!(*report.violations[0].key(), "bad");
}

#[test]
fn reads_without_an_answer_and_unseen_unknown_writes_constrain_nothing() {
    let mut h = history(vec![write(1, "k", "a", 0, 10)]);
    h.push(Op::read_without_answer(
        2,
        "k",
        ms(20),
        ms(30),
        Outcome::Unknown,
    ));
    h.push(Op::read_without_answer(
        2,
        "k",
        ms(40),
        ms(50),
        Outcome::Failed,
    ));
    h.push(unknown(3, "k", "b", 60, 70));
    h.push(read(2, "k", Some("a"), 80, 90));
    assert_eq!(accepted(&h).ops, 2);
}

#[test]
fn absurd_inputs_are_refused_with_a_reason() {
    let many: Vec<_> = (0..11)
        .map(|i| read(1, "k", None, i * 10, i * 10 + 1))
        .collect();
    let limits = Limits {
        max_ops_per_key: 10,
        ..Limits::default()
    };
    let err = check(&history(many), &limits).unwrap_err();
    assert_eq!(
        err,
        CheckError::TooManyOperations {
            key: r#""k""#.into(),
            count: 11,
            cap: 10
        }
    );
    assert!(
        err.to_string().contains("more than the checker takes"),
        "{err}"
    );

    // Every order of 20 concurrent writes before an impossible read is too many to explore.
    let mut ops: Vec<_> = (0..20)
        .map(|i| Op::write(1, "k", i.to_string(), 0, 100, Outcome::Ok))
        .collect();
    ops.push(Op::read(2, "k", None, 200, 201));
    let h = History { ops, settled: None };
    let err = check(
        &h,
        &Limits {
            max_states: 10_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, CheckError::SearchExhausted { cap: 10_000, .. }),
        "{err}"
    );

    let err = check(
        &history(vec![write(1, "k", "a", 0, 10), write(2, "k", "a", 20, 30)]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CheckError::DuplicateValue { .. }), "{err}");
    let err = check(
        &history(vec![write(1, "k", "a", 10, 0)]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CheckError::ResponseBeforeInvoke { .. }),
        "{err}"
    );
    let err = check(
        &settled(vec![write(1, "k", "a", 0, 200)], 100, &[]),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CheckError::AfterSettled { .. }), "{err}");
}

#[test]
fn a_long_history_of_sequential_clients_is_decided_quickly() {
    // Five clients, each one operation at a time, 4,000 operations on one key: what a fault
    // run produces, and more.
    let mut ops = Vec::new();
    let mut value = None;
    for i in 0..4000u64 {
        let p = (i % 5) as usize;
        // Every operation overlaps the previous four.
        let (from, to) = (i, i + 5);
        if i % 2 == 0 {
            let v: &'static str = Box::leak(format!("v{i}").into_boxed_str());
            ops.push(Op::write(p, "k", v, from, to, Outcome::Ok));
            value = Some(v);
        } else {
            // Each read sees the write invoked just before it (every operation taking
            // effect at its invocation explains the history).
            ops.push(Op::read(p, "k", value, from, to));
        }
    }
    let started = std::time::Instant::now();
    let report = check(&history(ops), &Limits::default()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

use proptest::prelude::*;

use super::*;

/// A container instance as the query language sees it.
#[derive(Debug, Clone, Default)]
struct Host {
    connected: bool,
    version: Option<String>,
    attributes: Vec<(String, Option<String>)>,
    ec2: Option<String>,
    registered: i64,
    running: u64,
    groups: Vec<String>,
}

impl Target for Host {
    fn agent_connected(&self) -> bool {
        self.connected
    }
    fn agent_version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }
    fn ec2_instance_id(&self) -> Option<&str> {
        self.ec2.as_deref()
    }
    fn registered_at(&self) -> Millis {
        Millis(self.registered)
    }
    fn running_tasks_count(&self) -> u64 {
        self.running
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.groups.iter().any(|g| test(g))
    }
}

fn host() -> Host {
    Host {
        connected: true,
        version: Some("1.14.5".into()),
        attributes: vec![
            ("ecs.instance-type".into(), Some("t2.small".into())),
            ("ecs.availability-zone".into(), Some("us-east-1a".into())),
            ("ecs.os-type".into(), Some("linux".into())),
            ("gpu".into(), None),
            ("cores".into(), Some("16".into())),
        ],
        ec2: Some("i-abcd1234".into()),
        // 2018-06-18T12:00:00Z
        registered: 1_529_323_200_000,
        running: 1,
        groups: vec!["service:production".into(), "family:web".into()],
    }
}

fn holds(expr: &str, h: &Host) -> bool {
    parse(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .eval(h)
}

#[test]
fn every_example_from_the_ecs_documentation_parses_and_evaluates() {
    let h = host();
    let cases = [
        ("attribute:ecs.instance-type == t2.small", true),
        (
            "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]",
            true,
        ),
        ("task:group == service:production", true),
        ("not(task:group == database)", true),
        ("runningTasksCount == 1", true),
        ("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']", true),
        ("attribute:ecs.instance-type =~ g2.*", false),
        ("attribute:ecs.instance-type =~ t2.*", true),
        ("attribute:ecs.instance-type !~ t2.*", false),
        ("attribute:ecs.availability-zone not_in [us-east-1a]", false),
        ("registeredAt < 2018-06-19", true),
        ("registeredAt >= 2018-06-18T22:28:28+00:00", false),
        ("registeredAt > 2018-06-18T11:59:59Z", true),
        ("agentVersion < 1.14.5", false),
        ("agentVersion <= 1.14.5", true),
        ("agentVersion > 1.9.0", true),
        ("agentConnected == true", true),
        (
            "attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone in [us-east-1a, us-east-1b]",
            true,
        ),
        (
            "(attribute:ecs.instance-type == t2.small or attribute:ecs.instance-type == t2.medium) and not (attribute:ecs.availability-zone == us-east-1d)",
            true,
        ),
        ("attribute:gpu exists", true),
        ("attribute:gpu == x", false),
        ("attribute:missing !exists", true),
        ("attribute:missing not_exists && attribute:gpu exists", true),
        ("attribute:cores > 9", true),
        ("attribute:cores greater_than_equal 16", true),
        ("attribute:missing != x", true),
        ("task:group != database", true),
        ("task:group in [database, family:web]", true),
        ("task:group !in [family:web]", false),
        ("task:group =~ 'service:.*'", true),
        ("task:group exists", true),
        ("ec2InstanceId =~ (i-ab|i-zz)[a-z0-9]+", true),
        (
            "!(runningTasksCount > 0) || agentConnected equals false",
            false,
        ),
    ];
    for (expr, expected) in cases {
        assert_eq!(holds(expr, &h), expected, "{expr}");
    }
}

#[test]
fn words_and_symbols_are_the_same_operators() {
    let h = host();
    for (a, b) in [
        ("runningTasksCount == 1", "runningTasksCount equals 1"),
        ("runningTasksCount != 1", "runningTasksCount not_equals 1"),
        (
            "runningTasksCount >= 1",
            "runningTasksCount greater_than_equal 1",
        ),
        ("runningTasksCount < 1", "runningTasksCount less_than 1"),
        ("attribute:x !exists", "attribute:x not_exists"),
        ("task:group !in [a]", "task:group not_in [a]"),
        ("ec2InstanceId =~ i-.*", "ec2InstanceId matches i-.*"),
        ("ec2InstanceId !~ i-.*", "ec2InstanceId not_matches i-.*"),
        (
            "agentConnected == true && runningTasksCount > 0",
            "agentConnected == true AND runningTasksCount > 0",
        ),
    ] {
        assert_eq!(holds(a, &h), holds(b, &h), "{a} vs {b}");
    }
}

#[test]
fn errors_point_at_the_problem_and_say_what_was_expected() {
    let e = parse("attribute:stack = prod").unwrap_err();
    assert_eq!(e.column, 17);
    assert!(e.expected.contains("operator"), "{e}");
    let e = parse("registeredAt < yesterday").unwrap_err();
    assert_eq!(e.column, 16);
    assert!(e.expected.contains("date"), "{e}");
    let e = parse("runningTasksCount > many").unwrap_err();
    assert!(e.expected.contains("whole number"), "{e}");
    let e = parse("colour == red").unwrap_err();
    assert_eq!(e.column, 1);
    assert!(e.expected.contains("subject"), "{e}");
    let e = parse("(agentConnected == true").unwrap_err();
    assert!(e.expected.contains("')'"), "{e}");
    let e = parse("agentConnected == true or").unwrap_err();
    assert_eq!(e.found, "the end of the expression");
    let e = parse("task:group in [a, b").unwrap_err();
    assert!(e.expected.contains("']'"), "{e}");
    let e = parse("attribute:x =~ '(unclosed'").unwrap_err();
    assert!(e.expected.contains("regular expression"), "{e}");
    let e = parse("agentConnected > true").unwrap_err();
    assert!(e.expected.contains("agentConnected"), "{e}");
    assert!(parse("").is_err());
    assert!(parse("   ").is_err());
    assert!(parse(&format!("attribute:x == {}", "y".repeat(2000))).is_err());
    assert!(
        parse(&format!(
            "{}agentConnected == true{}",
            "(".repeat(100),
            ")".repeat(100)
        ))
        .is_err()
    );
}

/// The expression seen against a real server: 76 alternatives of a 200-fold Unicode class,
/// 1,972 characters, 11 MiB of automaton each (6.9 CPU s and ~900 MiB per request).
fn regex_bomb() -> String {
    (0..76)
        .map(|_| "attribute:a =~ \\w{200}")
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|pair| pair.join(" or "))
        .collect::<Vec<_>>()
        .join(" || ")
}

#[test]
fn regexes_that_compile_too_big_are_refused_where_they_stand() {
    let bomb = regex_bomb();
    assert_eq!(bomb.len(), 1972);
    let e = parse(&bomb).unwrap_err();
    assert_eq!(e.column, 16, "{e}");
    assert!(e.expected.contains("at most 1024 KiB together"), "{e}");
    assert!(e.found.starts_with("'\\w{200}'"), "{e}");
    // One regex alone over the budget.
    assert!(parse("ec2InstanceId =~ \\w{20}").is_err());
    // Each fits alone, two do not: the budget is the expression's, and the second is refused.
    let one = "attribute:a =~ \\w{16}";
    let e = parse(&format!("{one} and task:group =~ \\w{{16}}")).unwrap_err();
    assert_eq!(e.column, 41, "{e}");
    assert!(e.found.contains("bytes left"), "{e}");
    let parsed = parse(one).unwrap();
    assert!(parsed.regex_bytes() <= MAX_REGEX_BYTES);
    assert!(parsed.regex_bytes() > MAX_REGEX_BYTES / 2);
    // The same patterns in ASCII, or without the count, are small and fine, many at once.
    let ascii = (0..10)
        .map(|i| format!("attribute:a{i} =~ (?-u:\\w){{200}}"))
        .collect::<Vec<_>>()
        .join(" or ");
    assert!(parse(&ascii).unwrap().regex_bytes() < MAX_REGEX_BYTES / 2);
    assert!(parse("attribute:a =~ \\w+ and attribute:b =~ [a-z0-9-]{1,63}").is_ok());
    // A pattern that is merely wrong still says so.
    let e = parse("attribute:x =~ 'a{2,1}'").unwrap_err();
    assert_eq!(e.expected, "a valid regular expression", "{e}");
}

#[test]
fn ordinary_regexes_take_a_few_kib() {
    for pattern in [
        "g2.*",
        "t2\\.(micro|small|medium|large)",
        "us-east-1[ab]",
        "i-[0-9a-f]+",
        "service:.*",
    ] {
        let e = parse(&format!("attribute:x =~ '{pattern}'")).unwrap();
        assert!(
            e.regex_bytes() < 32 * 1024,
            "{pattern}: {}",
            e.regex_bytes()
        );
    }
}

#[test]
fn dates_parse_in_every_documented_form() {
    use super::parser::parse_date;
    assert_eq!(parse_date("1970-01-01"), Some(Millis(0)));
    assert_eq!(parse_date("2018-06-18"), Some(Millis(1_529_280_000_000)));
    assert_eq!(
        parse_date("2018-06-18T22:28:28"),
        Some(Millis(1_529_360_908_000))
    );
    assert_eq!(
        parse_date("2018-06-18T22:28:28Z"),
        Some(Millis(1_529_360_908_000))
    );
    assert_eq!(
        parse_date("2018-06-18T22:28:28+00:00"),
        Some(Millis(1_529_360_908_000))
    );
    assert_eq!(
        parse_date("2018-06-18T23:28:28+01:00"),
        Some(Millis(1_529_360_908_000))
    );
    assert_eq!(
        parse_date("2018-06-18T22:28:28.5Z"),
        Some(Millis(1_529_360_908_500))
    );
    assert_eq!(parse_date("2020-02-29"), Some(Millis(1_582_934_400_000)));
    for bad in [
        "2019-02-29",
        "2018-13-01",
        "2018-6-18",
        "18-06-18",
        "2018-06-18T25:00:00",
        "2018-06-18T10:00",
        "x",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
}

fn arb_host() -> impl Strategy<Value = Host> {
    (
        any::<bool>(),
        prop::option::of((0u64..3, 0u64..20, 0u64..10)),
        prop::collection::vec(("[a-c]", prop::option::of("[a-c0-9]{1,2}")), 0..4),
        prop::option::of("i-[a-c]{1,2}"),
        0i64..3_000_000_000_000,
        0u64..5,
        prop::collection::vec("[a-c]:[a-c]", 0..3),
    )
        .prop_map(
            |(connected, version, attributes, ec2, registered, running, groups)| Host {
                connected,
                version: version.map(|(a, b, c)| format!("{a}.{b}.{c}")),
                attributes,
                ec2,
                registered,
                running,
                groups,
            },
        )
}

fn arb_condition() -> impl Strategy<Value = String> {
    let value = "[a-c0-9]{1,2}";
    prop_oneof![
        (
            value,
            prop::sample::select(vec![
                "==",
                "!=",
                ">",
                ">=",
                "<",
                "<=",
                "equals",
                "not_equals"
            ])
        )
            .prop_map(|(v, op)| format!("attribute:a {op} {v}")),
        Just("attribute:b exists".to_owned()),
        Just("attribute:c !exists".to_owned()),
        prop::collection::vec(value, 1..3)
            .prop_map(|l| format!("attribute:a in [{}]", l.join(", "))),
        prop::collection::vec("[a-c]:[a-c]", 1..3)
            .prop_map(|l| format!("task:group not_in [{}]", l.join(","))),
        "[a-c]:[a-c]".prop_map(|g| format!("task:group == {g}")),
        (0u64..5, prop::sample::select(vec!["==", "!=", ">", "<="]))
            .prop_map(|(n, op)| format!("runningTasksCount {op} {n}")),
        (0u64..3, 0u64..20).prop_map(|(a, b)| format!("agentVersion >= {a}.{b}")),
        any::<bool>().prop_map(|b| format!("agentConnected == {b}")),
        Just("registeredAt < 2030-01-01T00:00:00Z".to_owned()),
        Just("ec2InstanceId =~ 'i-a.*'".to_owned()),
    ]
}

fn arb_expr() -> impl Strategy<Value = String> {
    arb_condition().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Fuzzing: no input makes the parser panic, however malformed.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = parse(&text);
    }

    /// Fuzzing near the grammar: fragments of valid syntax shuffled together.
    #[test]
    fn grammar_soup_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
        "attribute:x", "task:group", "registeredAt", "==", "!=", "=~", "!~", "in", "[", "]", ",", "(", ")",
        "not", "!", "and", "&&", "or", "||", "exists", "!exists", "'q'", "\"", "2018-06-18", "1.2.3", "*",
    ]), 0..30)) {
        let _ = parse(&parts.join(" "));
        let _ = parse(&parts.concat());
    }

    /// The canonical form parses back to an expression that decides every host the same way.
    #[test]
    fn canonical_text_round_trips(expr in arb_expr(), hosts in prop::collection::vec(arb_host(), 1..6)) {
        let parsed = parse(&expr).unwrap();
        let again = parse(&parsed.to_string()).unwrap_or_else(|e| panic!("{parsed}: {e}"));
        for h in &hosts {
            prop_assert_eq!(parsed.eval(h), again.eval(h));
        }
    }

    /// not, and, or behave as boolean logic over their parts.
    #[test]
    fn combinators_are_boolean(a in arb_condition(), b in arb_condition(), h in arb_host()) {
        let (pa, pb) = (parse(&a).unwrap().eval(&h), parse(&b).unwrap().eval(&h));
        prop_assert_eq!(holds(&format!("({a}) and ({b})"), &h), pa && pb);
        prop_assert_eq!(holds(&format!("({a}) or ({b})"), &h), pa || pb);
        prop_assert_eq!(holds(&format!("not ({a})"), &h), !pa);
        prop_assert_eq!(holds(&format!("!({a}) && !({b})"), &h), !(pa || pb));
    }
}

//! The Raft log's format across versions: entries written before commands were typed decode
//! into the typed commands and encode back to the same bytes.
//!
//! `fixtures/commands-v1.jsonl` holds one `Stamped` of each of the 27 commands and
//! `fixtures/outcomes-v1.jsonl` what applying each answered (a `CommandResult`, as a Raft
//! response carries it), both written by the struct-variant `Command` (see the commit that
//! added them: `git log -- crates/model/tests/fixtures`). They are never regenerated: a
//! change that fails here changes what is already in logs, snapshots or a peer's answers. A
//! new optional field keeps old entries' bytes with
//! `#[serde(default, skip_serializing_if = "Option::is_none")]`.

use std::collections::BTreeSet;

use berth_model::{Command, CommandResult, Stamped};

const COMMANDS: &str = include_str!("fixtures/commands-v1.jsonl");
const OUTCOMES: &str = include_str!("fixtures/outcomes-v1.jsonl");

#[test]
fn v1_commands_decode_and_encode_to_the_same_bytes() {
    let mut kinds = BTreeSet::new();
    for (n, line) in COMMANDS.lines().enumerate() {
        let stamped: Stamped =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}\n{line}", n + 1));
        assert_eq!(
            serde_json::to_string(&stamped).unwrap(),
            line,
            "line {}",
            n + 1
        );
        let name = serde_json::to_value(&stamped.command).unwrap();
        kinds.insert(name.as_object().unwrap().keys().next().unwrap().clone());
    }
    assert_eq!(kinds.len(), 27, "one of every v1 command: {kinds:?}");
}

#[test]
fn v1_outcomes_decode_and_encode_to_the_same_bytes() {
    for (n, line) in OUTCOMES.lines().enumerate() {
        let result: CommandResult =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}\n{line}", n + 1));
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            line,
            "line {}",
            n + 1
        );
    }
}

/// A command read from the log is the same value as the typed command it was written as.
#[test]
fn a_typed_command_is_its_log_variant() {
    let line = COMMANDS
        .lines()
        .find(|l| l.contains(r#""StopTask""#))
        .unwrap();
    let stamped: Stamped = serde_json::from_str(line).unwrap();
    let Command::StopTask(stop) = &stamped.command else {
        panic!("{stamped:?}")
    };
    assert_eq!(Command::from(stop.clone()), stamped.command);
}

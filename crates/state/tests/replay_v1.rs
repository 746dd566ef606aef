//! A log written before commands were typed replays to the same answers: every replica and
//! every restart applies old entries as the version that wrote them did.
//!
//! The fixtures (`crates/model/tests/fixtures`, see `crates/model/tests/wire.rs`) are 27
//! commands applied in order to a fresh state as log entries 1..=27, and the result of each,
//! as the struct-variant `Command` applied them.

use berth_model::{CommandResult, Stamped};
use berth_state::State;

const COMMANDS: &str = include_str!("../../model/tests/fixtures/commands-v1.jsonl");
const OUTCOMES: &str = include_str!("../../model/tests/fixtures/outcomes-v1.jsonl");

#[test]
fn the_v1_log_replays_to_the_v1_answers() {
    let mut state = State::default();
    let lines = COMMANDS.lines().zip(OUTCOMES.lines());
    for (index, (command, outcome)) in (1..).zip(lines) {
        let stamped: Stamped = serde_json::from_str(command).unwrap();
        let expected: CommandResult = serde_json::from_str(outcome).unwrap();
        let result = state.apply(index, &stamped);
        assert_eq!(result, expected, "entry {index}: {command}");
    }
    assert_eq!(state.index(), 27);
}

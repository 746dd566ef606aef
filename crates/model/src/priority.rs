//! Task priorities: which work goes first when there is not room for all of it.
//!
//! ```text
//!  the RunTask's tags ─┐ (StartTask's too)
//!  the service's tags ─┼─► first `berth:priority` found ─► 0..=1000 ─► Task::priority,
//!  the definition's ───┘   else the kind's default:          fixed at launch
//!                          DAEMON 900 · REPLICA 500 · standalone 100
//! ```
//! ECS has no priority field, so it is a tag ([`PRIORITY_TAG`]), which every client can send
//! and the API already stores; the most specific wins. The value is checked wherever the tag
//! is set (`validate::tags`), so a bad one is refused when given, never found at launch.
//!
//! The range is the issue's 0–1000 (Nomad's 1–100 ×10, with room at both ends); the defaults
//! follow Borg's bands: a daemon is infrastructure every host needs (Borg's monitoring band,
//! Nomad's system jobs are placed first too), a replica service is production work (Nomad's
//! default job priority 50, here 500), a standalone task is batch (Borg's batch band sits below
//! production). The gaps leave room to put a batch job above a service or a service below
//! batch with one tag.
//!
//! A task's priority is resolved once, when its template is made (RunTask, StartTask, the
//! service reconciler), and stored on the task: changing a tag later affects the tasks
//! launched afterwards, not those already queued or running. What follows it: the queue's
//! order (higher first, then FIFO), and the order in which the service controller commits its
//! services' placements when they compete on one snapshot.

use serde::{Deserialize, Serialize};

use crate::entity::{Tag, TaskDefinition};
use crate::error::Error;
use crate::service::{SchedulingStrategy, Service};

/// The tag (on a RunTask or StartTask, a service, a task definition) whose value is the
/// priority of the tasks launched from it.
pub const PRIORITY_TAG: &str = "berth:priority";

/// A task's priority: 0 (lowest) to [`Priority::MAX`]; higher goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Priority(u16);

/// A priority above [`Priority::MAX`] (in a stored or sent value that bypassed the tag check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("priority {0} is above {max}", max = Priority::MAX)]
pub struct PriorityOutOfRange(pub u16);

impl TryFrom<u16> for Priority {
    type Error = PriorityOutOfRange;

    fn try_from(value: u16) -> Result<Self, PriorityOutOfRange> {
        Self::new(value).ok_or(PriorityOutOfRange(value))
    }
}

impl From<Priority> for u16 {
    fn from(p: Priority) -> u16 {
        p.0
    }
}

impl Priority {
    pub const MAX: Priority = Priority(1000);
    /// A DAEMON service's tasks.
    pub const DAEMON: Priority = Priority(900);
    /// A REPLICA service's tasks.
    pub const SERVICE: Priority = Priority(500);
    /// RunTask's and StartTask's tasks (and Mesos frameworks').
    pub const STANDALONE: Priority = Priority(100);

    /// `value` if it is within 0..=1000.
    pub fn new(value: u16) -> Option<Self> {
        (value <= Self::MAX.0).then_some(Self(value))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What launched a task, for its default priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Daemon,
    Replica,
    Standalone,
}

impl Kind {
    pub fn default_priority(self) -> Priority {
        match self {
            Kind::Daemon => Priority::DAEMON,
            Kind::Replica => Priority::SERVICE,
            Kind::Standalone => Priority::STANDALONE,
        }
    }
}

/// A [`PRIORITY_TAG`] value: a whole number from 0 to 1000.
pub fn parse(value: &str) -> Result<Priority, Error> {
    value
        .parse::<u16>()
        .ok()
        .and_then(Priority::new)
        .ok_or_else(|| {
            Error::invalid(format!(
                "The value of tag {PRIORITY_TAG} must be a whole number from 0 to {}; got '{value}'",
                Priority::MAX
            ))
        })
}

/// The priority `tags` name, if they carry a readable [`PRIORITY_TAG`]. Stored tags were
/// checked when they were set; one that does not read (set before the check existed) counts
/// as absent.
fn named_in(tags: &[Tag]) -> Option<Priority> {
    tags.iter()
        .find(|t| t.key == PRIORITY_TAG)
        .and_then(|t| parse(&t.value).ok())
}

/// The priority of a task launched with `request` tags, for `service` (its tags) if any, from
/// a definition with `definition` tags: the most specific tag wins, else `kind`'s default.
pub fn effective(
    request: &[Tag],
    service: Option<&[Tag]>,
    definition: &[Tag],
    kind: Kind,
) -> Priority {
    named_in(request)
        .or_else(|| service.and_then(named_in))
        .or_else(|| named_in(definition))
        .unwrap_or_else(|| kind.default_priority())
}

/// The priority of `service`'s tasks of `definition`.
pub fn of_service(service: &Service, definition: &TaskDefinition) -> Priority {
    let kind = match service.scheduling_strategy {
        SchedulingStrategy::Daemon => Kind::Daemon,
        SchedulingStrategy::Replica => Kind::Replica,
    };
    effective(&[], Some(&service.tags), &definition.tags, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(value: &str) -> Vec<Tag> {
        vec![Tag {
            key: PRIORITY_TAG.into(),
            value: value.into(),
        }]
    }

    #[test]
    fn a_priority_is_a_whole_number_up_to_1000() {
        assert_eq!(parse("0").unwrap().get(), 0);
        assert_eq!(parse("1000").unwrap(), Priority::MAX);
        assert_eq!(parse("750").unwrap().get(), 750);
        for bad in [
            "1001",
            "-1",
            "5.5",
            "",
            " 5",
            "high",
            "65536",
            "99999999999",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidParameter(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains(PRIORITY_TAG), "{e}");
        }
    }

    #[test]
    fn a_stored_priority_is_a_number_within_range() {
        assert_eq!(serde_json::to_string(&Priority::DAEMON).unwrap(), "900");
        assert_eq!(
            serde_json::from_str::<Priority>("1000").unwrap(),
            Priority::MAX
        );
        assert!(serde_json::from_str::<Priority>("1001").is_err());
    }

    #[test]
    fn the_kind_decides_without_a_tag_daemon_over_service_over_standalone() {
        let none: &[Tag] = &[];
        let of = |kind| effective(none, None, none, kind);
        assert_eq!(of(Kind::Daemon), Priority::DAEMON);
        assert_eq!(of(Kind::Replica), Priority::SERVICE);
        assert_eq!(of(Kind::Standalone), Priority::STANDALONE);
        assert!(Priority::DAEMON > Priority::SERVICE && Priority::SERVICE > Priority::STANDALONE);
        assert_eq!(
            effective(none, Some(none), none, Kind::Replica),
            Priority::SERVICE
        );
    }

    #[test]
    fn the_most_specific_tag_wins() {
        let none: &[Tag] = &[];
        let p = |v: u16| Priority::new(v).unwrap();
        assert_eq!(effective(none, None, &tag("300"), Kind::Standalone), p(300));
        assert_eq!(
            effective(none, Some(&tag("200")), &tag("300"), Kind::Daemon),
            p(200),
            "the service's over the definition's"
        );
        assert_eq!(
            effective(&tag("0"), Some(&tag("200")), &tag("300"), Kind::Replica),
            p(0),
            "the request's over all"
        );
        // A stored value that does not read is passed over, not fatal.
        assert_eq!(
            effective(none, Some(&tag("urgent")), &tag("300"), Kind::Replica),
            p(300)
        );
        assert_eq!(
            effective(&tag("2000"), None, none, Kind::Standalone),
            Priority::STANDALONE
        );
    }
}

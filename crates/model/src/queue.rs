//! Queued RunTask: a task that finds no room waits for capacity in `PROVISIONING` instead of
//! failing `RESOURCE:*`, when whoever runs it opts in.
//!
//! ```text
//!  RunTask ─► placed now ─► PENDING ─► RUNNING …                       (as without a queue)
//!     └─ no room, opted in ─► PROVISIONING (no instance, pending count) ─┬─ capacity frees:
//!                   queue order: priority, then created, then task id    │  PlaceQueuedTasks
//!                                                                        │  ─► PENDING …
//!                                 StopTask: STOPPED at once ─────────────┤
//!                   wait ends: ExpireQueuedTasks ─► STOPPED, TaskFailedToStart: RESOURCE:*
//! ```
//! Who opts in, first match wins: the RunTask's own tag [`QUEUE_TIMEOUT_TAG`], else the same
//! tag on the capacity provider the task is launched with, else on the cluster. ECS has no
//! field for any of these, and tags are what every client can send; the value is the wait in
//! whole seconds, 1 to [`MAX_QUEUE_TIMEOUT_SECONDS`], checked wherever the tag is set.
//! Without any, RunTask keeps ECS's all-or-nothing answer.
//!
//! A queued task keeps what its placement needs beyond the task itself ([`QueuedPlacement`]),
//! so the queue controller places it later exactly as RunTask would have.

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::entity::Tag;
use crate::error::Error;
use crate::time::Millis;

/// The tag (on a RunTask, a capacity provider or a cluster) whose value is how many seconds
/// a task that cannot be placed may wait for capacity.
pub const QUEUE_TIMEOUT_TAG: &str = "berth:queue-timeout";

/// The longest wait a tag may ask for: 7 days.
pub const MAX_QUEUE_TIMEOUT_SECONDS: u32 = 7 * 24 * 3600;

/// ECS's stop code for a task that never started, a queued one whose wait ended included.
pub const STOP_CODE: &str = "TaskFailedToStart";

/// A [`QUEUE_TIMEOUT_TAG`] value: whole seconds, 1 to [`MAX_QUEUE_TIMEOUT_SECONDS`].
pub fn parse_timeout(value: &str) -> Result<u32, Error> {
    value
        .parse::<u32>()
        .ok()
        .filter(|s| (1..=MAX_QUEUE_TIMEOUT_SECONDS).contains(s))
        .ok_or_else(|| {
            Error::invalid(format!(
                "The value of tag {QUEUE_TIMEOUT_TAG} must be a whole number of seconds from 1 to {MAX_QUEUE_TIMEOUT_SECONDS} (7 days); got '{value}'"
            ))
        })
}

/// The queue timeout `tags` ask for, if they carry the tag.
pub fn timeout_in(tags: &[Tag]) -> Result<Option<u32>, Error> {
    tags.iter()
        .find(|t| t.key == QUEUE_TIMEOUT_TAG)
        .map(|t| parse_timeout(&t.value))
        .transpose()
}

/// The wait in force for a task: the request's tags, else its capacity provider's, else its
/// cluster's. Stored tags were checked when they were set; one that no longer reads (set
/// before the check existed) counts as absent rather than failing the launch.
pub fn effective_timeout(
    request: &[Tag],
    provider: Option<&[Tag]>,
    cluster: &[Tag],
) -> Result<Option<u32>, Error> {
    if let Some(s) = timeout_in(request)? {
        return Ok(Some(s));
    }
    Ok(provider
        .and_then(|p| timeout_in(p).ok().flatten())
        .or_else(|| timeout_in(cluster).ok().flatten()))
}

/// The stopped reason of a queued task whose wait ended, in ECS's words for a task that
/// capacity could not be found for: `TaskFailedToStart: RESOURCE:MEMORY` (the closest
/// instance's reason), or `TaskFailedToStart: EMPTY CAPACITY PROVIDER` when there was no
/// instance to try.
pub fn expired_reason(closest: Option<&str>) -> String {
    format!(
        "{STOP_CODE}: {}",
        closest.unwrap_or("EMPTY CAPACITY PROVIDER")
    )
}

/// What a queued task's placement needs beyond the task itself: the constraints and strategies
/// its RunTask asked for (the task definition's constraints and berth's own included, in
/// ECS's shapes), and when its wait ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedPlacement {
    /// The task is STOPPED (`TaskFailedToStart`) if it is not placed before this.
    pub until: Millis,
    pub constraints: Vec<api::PlacementConstraint>,
    pub strategies: Vec<api::PlacementStrategy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(value: &str) -> Tag {
        Tag {
            key: QUEUE_TIMEOUT_TAG.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_timeout_is_whole_seconds_within_a_week() {
        assert_eq!(parse_timeout("1").unwrap(), 1);
        assert_eq!(parse_timeout("604800").unwrap(), MAX_QUEUE_TIMEOUT_SECONDS);
        for bad in ["0", "604801", "-5", "1.5", "", " 30", "30s", "99999999999"] {
            let e = parse_timeout(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidParameter(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains(QUEUE_TIMEOUT_TAG), "{e}");
        }
    }

    #[test]
    fn the_request_wins_then_the_provider_then_the_cluster() {
        let none: &[Tag] = &[];
        assert_eq!(effective_timeout(none, None, none).unwrap(), None);
        assert_eq!(
            effective_timeout(none, None, &[tag("60")]).unwrap(),
            Some(60)
        );
        assert_eq!(
            effective_timeout(none, Some(&[tag("30")]), &[tag("60")]).unwrap(),
            Some(30)
        );
        assert_eq!(
            effective_timeout(&[tag("5")], Some(&[tag("30")]), &[tag("60")]).unwrap(),
            Some(5)
        );
        // A request's bad value is the caller's error; a stored one is passed over.
        assert!(effective_timeout(&[tag("never")], None, none).is_err());
        assert_eq!(
            effective_timeout(none, Some(&[tag("never")]), &[tag("60")]).unwrap(),
            Some(60)
        );
    }

    #[test]
    fn an_expired_wait_reads_as_ecs_words_it() {
        assert_eq!(
            expired_reason(Some("RESOURCE:MEMORY")),
            "TaskFailedToStart: RESOURCE:MEMORY"
        );
        assert_eq!(
            expired_reason(None),
            "TaskFailedToStart: EMPTY CAPACITY PROVIDER"
        );
    }
}

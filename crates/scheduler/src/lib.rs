//! berth's placement engine: a pure function of a state snapshot, a request and a seed.
//!
//! ```text
//!  (snapshot, PlacementRequest, seed)
//!     └─► for each task:
//!           feasibility, in ECS's order — every rejected instance keeps its reason:
//!             ACTIVE + agent connected → CPU → memory → TCP ports → UDP ports → constraints
//!                                                       (distinctInstance, memberOf)
//!           strategies, chained — each keeps the best of what the previous one kept:
//!             spread(field) → binpack(cpu|memory) → random
//!           choose (a seeded random pick among what is left), assign dynamic host ports
//!     └─► Plan { placements, rejections (closest instance first), verdicts (explain) }
//! ```
//! No I/O, no clock, no global randomness: the same snapshot and seed give the same plan. A
//! plan is a proposal: the state machine re-checks each placement when it commits (resources,
//! ports and distinctInstance, through `berth_state::fits` and the same group index), and the
//! scheduler retries what was rejected on a fresher snapshot. Scale-in ([`choose_to_stop`])
//! runs the same strategies in reverse. The queue of RunTask tasks waiting for capacity is
//! decided here too ([`queue::decide`]), through the same templates and the same engine, and
//! so is preemption ([`preempt::choose`]): which lower-priority tasks to stop when a task of
//! the queue or a service's finds no room.
//!
//! Schedules ([`timetable::decide`]) are decided here too: which due times a schedule takes
//! now, and whether its run starts, is skipped or was missed.
//!
//! Speed: counts of live tasks per group per instance, instances by attribute value and by
//! free capacity are indexes the state machine maintains on apply, so planning never walks the
//! cluster's tasks, and a chain that starts with binpack walks instances from the tightest fit
//! upwards and stops at the first that qualifies. A chain that starts with spread is ranked
//! once per plan into buckets of interned attribute values (`index`), so each further task
//! costs O(log n), not a check and two attribute lookups by name per instance.

pub mod capacity;
mod engine;
mod index;
pub mod preempt;
pub mod query;
pub mod queue;
mod request;
mod scale_in;
pub mod service;
mod template;
pub mod timetable;

pub use engine::{InstanceRejection, Placement, Plan, Verdict, instance_matches, place};
pub use request::{
    BinpackField, Constraint, PlacementRequest, RequestError, SpreadField, Strategy,
    parse_constraint, parse_strategy,
};
pub use scale_in::choose_to_stop;
pub use template::{TaskTemplate, complete_overrides};

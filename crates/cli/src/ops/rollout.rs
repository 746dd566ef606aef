//! Following a service's rollout: what `berth service create|update|scale|delete --wait`
//! decides from each look at the service, kept pure so that every outcome is tested without
//! a server.
//!
//! ```text
//!  DescribeServices every 500 ms ─► Rollout::observe
//!     ├─ new events (oldest first) ─► printed above the spinner
//!     ├─ progress line ─► the bar: the followed deployment's running / desired tasks (or
//!     │                   the tasks left to stop), with the counts per deployment
//!     └─ verdict: Waiting │ Done │ Failed (circuit breaker, deployment replaced)
//! ```

use std::collections::HashSet;

use super::service::{DeploymentView, ServiceView};

/// What a wait ends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// The deployment with this id completes (create, update, scale).
    Deployment,
    /// The service is drained and gone (delete).
    Deleted,
}

/// One look's verdict.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Waiting,
    Done,
    Failed(String),
}

/// What one look at the service showed.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Events not shown before, oldest first.
    pub events: Vec<String>,
    /// The deployments' counts in one line.
    pub progress: String,
    /// How far the wait has come: (done, of), for a progress bar.
    pub done: Option<(u64, u64)>,
    pub verdict: Verdict,
}

/// The state of a wait: the deployment it follows and the events already shown.
pub struct Rollout {
    deployment: String,
    goal: Goal,
    seen: HashSet<String>,
}

impl Rollout {
    /// Follows `deployment` of a service whose events until now are `before` (not shown
    /// again).
    pub fn new(deployment: String, goal: Goal, before: &ServiceView) -> Rollout {
        Rollout {
            deployment,
            goal,
            seen: before.events.iter().map(|e| e.id.clone()).collect(),
        }
    }

    pub fn observe(&mut self, service: &ServiceView) -> Step {
        let mut events: Vec<String> = service
            .events
            .iter()
            .filter(|e| self.seen.insert(e.id.clone()))
            .map(|e| format!("{}  {}", super::output::time(e.at), e.message))
            .collect();
        // DescribeServices lists the newest event first.
        events.reverse();
        Step {
            events,
            progress: progress(service),
            done: self.done(service),
            verdict: self.verdict(service),
        }
    }

    /// The followed deployment's running tasks of its desired count (a deletion has no
    /// count to reach: its line says how many are left).
    fn done(&self, service: &ServiceView) -> Option<(u64, u64)> {
        if self.goal == Goal::Deleted {
            return None;
        }
        let ours = service
            .deployments
            .iter()
            .find(|d| d.id == self.deployment)?;
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        Some((count(ours.running), count(ours.desired)))
    }

    fn verdict(&self, service: &ServiceView) -> Verdict {
        if self.goal == Goal::Deleted {
            let live = service.running + service.pending;
            return if service.status == "INACTIVE" || (service.status == "DRAINING" && live == 0) {
                Verdict::Done
            } else {
                Verdict::Waiting
            };
        }
        let Some(ours) = service.deployments.iter().find(|d| d.id == self.deployment) else {
            return Verdict::Failed(format!(
                "deployment {} is gone: the service was rolled back or updated again",
                self.deployment
            ));
        };
        if ours.rollout_state == "FAILED" {
            return Verdict::Failed(format!(
                "deployment {} failed: {}",
                ours.id,
                ours.rollout_reason.as_deref().unwrap_or("no reason given")
            ));
        }
        if service.status != "ACTIVE" {
            return Verdict::Failed(format!("the service is {}", service.status));
        }
        let settled = ours.status == "PRIMARY"
            && service.deployments.len() == 1
            && ours.rollout_state != "IN_PROGRESS"
            && ours.running == service.desired
            && ours.pending == 0;
        if settled {
            Verdict::Done
        } else {
            Verdict::Waiting
        }
    }
}

/// `PRIMARY ecs-svc/12…: 2/3 running, 1 pending | ACTIVE ecs-svc/98…: 1 running`.
pub fn progress(service: &ServiceView) -> String {
    let line = |d: &DeploymentView| {
        let mut s = format!(
            "{} {} ({}): {}/{} running",
            d.status, d.id, d.task_definition, d.running, d.desired
        );
        if d.pending > 0 {
            s.push_str(&format!(", {} pending", d.pending));
        }
        if d.failed > 0 {
            s.push_str(&format!(", {} failed", d.failed));
        }
        s
    };
    let deployments: Vec<String> = service.deployments.iter().map(line).collect();
    if deployments.is_empty() {
        format!("{} {}: no deployments", service.status, service.name)
    } else {
        deployments.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::service::EventView;
    use crate::ops::service::tests::{deployment, service};

    #[test]
    fn a_rollout_is_done_once_its_deployment_alone_runs_the_desired_count() {
        let mut s = service(vec![deployment("new", "PRIMARY", "IN_PROGRESS", 1, 1)]);
        let mut rollout = Rollout::new("new".into(), Goal::Deployment, &s);
        let step = rollout.observe(&s);
        assert_eq!(step.verdict, Verdict::Waiting);
        assert_eq!(step.progress, "PRIMARY new (web:2): 1/2 running, 1 pending");
        assert_eq!(step.done, Some((1, 2)), "the bar: running of desired");
        assert!(
            step.events.is_empty(),
            "events from before the wait are not shown again"
        );
        s.deployments = vec![deployment("new", "PRIMARY", "COMPLETED", 2, 0)];
        s.events.insert(
            0,
            EventView {
                id: "e3".into(),
                at: Some(0),
                message: "(service web) has reached a steady state.".into(),
            },
        );
        s.events.insert(
            1,
            EventView {
                id: "e2".into(),
                at: Some(0),
                message: "(service web) deployment new has completed.".into(),
            },
        );
        let step = rollout.observe(&s);
        assert_eq!(step.verdict, Verdict::Done);
        assert_eq!(step.events.len(), 2);
        assert!(
            step.events[0].contains("completed"),
            "oldest first: {:?}",
            step.events
        );
        assert!(
            rollout.observe(&s).events.is_empty(),
            "each event is shown once"
        );
    }

    #[test]
    fn a_tripped_circuit_breaker_or_a_rollback_fails_the_wait() {
        let s = service(vec![deployment("new", "PRIMARY", "FAILED", 0, 0)]);
        let mut rollout = Rollout::new("new".into(), Goal::Deployment, &s);
        let Verdict::Failed(why) = rollout.observe(&s).verdict else {
            panic!("a FAILED deployment fails the wait");
        };
        assert!(why.contains("circuit breaker"), "{why}");
        let rolled_back = service(vec![deployment("old", "PRIMARY", "IN_PROGRESS", 1, 0)]);
        assert!(matches!(
            rollout.observe(&rolled_back).verdict,
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn an_old_deployment_still_running_keeps_the_wait_going() {
        let s = service(vec![
            deployment("new", "PRIMARY", "IN_PROGRESS", 2, 0),
            deployment("old", "ACTIVE", "COMPLETED", 1, 0),
        ]);
        let mut rollout = Rollout::new("new".into(), Goal::Deployment, &s);
        assert_eq!(rollout.observe(&s).verdict, Verdict::Waiting);
    }

    #[test]
    fn a_deletion_is_done_once_the_service_is_drained() {
        let mut s = service(vec![deployment("d", "PRIMARY", "COMPLETED", 1, 0)]);
        s.status = "DRAINING".into();
        s.running = 1;
        let mut rollout = Rollout::new("d".into(), Goal::Deleted, &s);
        let step = rollout.observe(&s);
        assert_eq!(step.verdict, Verdict::Waiting);
        assert_eq!(
            step.done, None,
            "a deletion has no count to reach: a spinner"
        );
        s.running = 0;
        assert_eq!(rollout.observe(&s).verdict, Verdict::Done);
    }
}

//! When the leader's Mesos loop runs a pass, and what the pass looks at, as pure decisions.
//!
//! ```text
//!  change log since the last pass ──► Change per entry ──► Scope::add ──► Scope: agents to
//!  REVIVE, closed stream, timer   ───────────────────────► Scope::ask     refresh, tasks whose
//!                                                                          status may be sent,
//!                                                                          offers to rescind
//!  last pass started at, now ──► Pacer::start_at ──► start the pass now, or at the end of
//!                                                    the gap (what arrives meanwhile joins it)
//! ```
//! The loop runs a pass when the state changes rather than on a tick, so that a declined
//! offer's agent is offered again, or an agent's report reaches its framework, within a
//! commit. Two things keep that affordable under a burst (a thousand launches, each commit
//! followed by its agent's report), on two cores shared with the commits themselves:
//!
//! - **Scope.** A pass looks at what the change log says changed: the agents whose free
//!   resources may differ, the framework tasks whose status may be sent, the offers that may
//!   have gone; not every free agent's ports and every framework's tasks. The offers a pass
//!   made itself are no reason for another pass. What the log cannot narrow down (a framework
//!   subscribing or leaving, a cluster changing, a log that no longer reaches back) is a pass
//!   over everything.
//! - **Pacing.** Passes are at least a gap apart: work that arrives after a quiet gap starts a
//!   pass at once (the sparse offer cycle keeps its latency), work that arrives sooner waits
//!   for the end of the gap and is done by one pass with everything else that came by then,
//!   one Raft entry of offers instead of one per commit.
//!
//! Time is passed in (epoch milliseconds), so both are tested without a clock or a server.

use std::collections::BTreeSet;
use std::time::Duration;

/// Spaces the passes of one loop at least `gap` apart.
#[derive(Debug, Clone)]
pub struct Pacer {
    gap: i64,
    /// When the last pass started.
    last: Option<i64>,
}

impl Pacer {
    pub fn new(gap: Duration) -> Self {
        Self {
            gap: i64::try_from(gap.as_millis()).unwrap_or(i64::MAX),
            last: None,
        }
    }

    /// When a pass for work waiting at `now` may start: `now` if no pass started in the last
    /// gap, otherwise the end of that gap.
    pub fn start_at(&self, now: i64) -> i64 {
        self.last
            .map_or(now, |last| now.max(last.saturating_add(self.gap)))
    }

    /// A pass started at `at`.
    pub fn started(&mut self, at: i64) {
        self.last = Some(at);
    }
}

/// One entry of the change log, as far as the Mesos loop is concerned (the server reads the
/// entity and says what it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<A, T, O> {
    /// A task changed (placed, its status, stopped). `framework`: whether a framework launched
    /// it (its status may be due); `agent`: where it holds resources, if anywhere.
    Task {
        id: T,
        framework: bool,
        agent: Option<A>,
    },
    /// An agent's registration, status, connection or resources changed.
    Agent(A),
    /// An offer was made or went away, on `agent` (when known). `own`: the loop's last pass
    /// made it and it is still outstanding, which that pass has already accounted for.
    Offer { id: O, agent: Option<A>, own: bool },
    /// Something that can change what any agent offers or any framework is owed: a framework
    /// subscribed, disconnected or was removed, a cluster changed, or the change log no longer
    /// reaches back to the last pass.
    Everything,
}

/// What the next pass has to look at; empty when nothing calls for a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope<A: Ord, T: Ord, O: Ord> {
    /// Every agent and every framework task, as when the loop starts leading.
    pub everything: bool,
    /// Agents whose free resources, or whether they can be offered, may have changed.
    pub agents: BTreeSet<A>,
    /// Framework tasks whose status may have changed.
    pub tasks: BTreeSet<T>,
    /// Offers made or gone since the last pass (not its own): rescinded if they are gone.
    pub offers: BTreeSet<O>,
    /// A pass is wanted although no entity changed: a REVIVE, a closed stream, a timer.
    pub asked: bool,
}

impl<A: Ord, T: Ord, O: Ord> Default for Scope<A, T, O> {
    fn default() -> Self {
        Self {
            everything: false,
            agents: BTreeSet::new(),
            tasks: BTreeSet::new(),
            offers: BTreeSet::new(),
            asked: false,
        }
    }
}

impl<A: Ord, T: Ord, O: Ord> Scope<A, T, O> {
    /// A pass over everything.
    pub fn everything() -> Self {
        Self {
            everything: true,
            ..Self::default()
        }
    }

    /// Adds what `change` calls for.
    pub fn add(&mut self, change: Change<A, T, O>) {
        match change {
            Change::Task {
                id,
                framework,
                agent,
            } => {
                if framework {
                    self.tasks.insert(id);
                }
                self.agents.extend(agent);
            }
            Change::Agent(a) => {
                self.agents.insert(a);
            }
            Change::Offer { own: true, .. } => {}
            Change::Offer { id, agent, .. } => {
                self.offers.insert(id);
                self.agents.extend(agent);
            }
            Change::Everything => self.everything = true,
        }
    }

    /// Wants a pass although no entity changed.
    pub fn ask(&mut self) {
        self.asked = true;
    }

    /// Nothing calls for a pass.
    pub fn is_empty(&self) -> bool {
        !self.everything
            && !self.asked
            && self.agents.is_empty()
            && self.tasks.is_empty()
            && self.offers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GAP: Duration = Duration::from_millis(15);

    type Scope3 = Scope<u32, u64, u8>;
    type Change3 = Change<u32, u64, u8>;

    #[test]
    fn a_pass_looks_at_what_changed_and_not_at_its_own_offers() {
        let mut s = Scope3::default();
        assert!(s.is_empty());
        // The offer the last pass made: nothing to do.
        s.add(Change::Offer {
            id: 1,
            agent: Some(7),
            own: true,
        });
        assert!(s.is_empty(), "a pass's own offer calls for another pass");
        // A framework task's report: its status, and its agent's free resources.
        s.add(Change::Task {
            id: 40,
            framework: true,
            agent: Some(3),
        });
        // An ECS task on a shared agent: only the agent.
        s.add(Change::Task {
            id: 41,
            framework: false,
            agent: Some(4),
        });
        // A declined offer: rescinded if gone, its agent offerable again.
        s.add(Change::Offer {
            id: 2,
            agent: Some(5),
            own: false,
        });
        s.add(Change::Agent(6));
        assert!(!s.everything && !s.asked);
        assert_eq!(s.tasks, BTreeSet::from([40]));
        assert_eq!(s.agents, BTreeSet::from([3, 4, 5, 6]));
        assert_eq!(s.offers, BTreeSet::from([2]));
        let mut asked = Scope3::default();
        asked.ask();
        assert!(!asked.is_empty(), "a REVIVE or a timer wants a pass");
        let mut all = Scope3::default();
        all.add(Change::Everything);
        assert_eq!(all, Scope3::everything());
        assert!(!all.is_empty());
    }

    /// A framework subscribing (a framework entry in the log) can change what every agent
    /// offers and what every task owes: the pass refreshes every agent and looks at every
    /// framework task, whatever else the log named.
    #[test]
    fn a_subscription_is_a_pass_over_everything() {
        let mut s = Scope3::default();
        s.add(Change::Agent(3));
        s.add(Change::Everything);
        assert!(s.everything && !s.is_empty());
        s.add(Change::Offer {
            id: 1,
            agent: Some(4),
            own: true,
        });
        assert!(
            s.everything,
            "nothing narrows a pass over everything down again"
        );
    }

    /// A REVIVE changes no entity: it wants a pass that names no agent to refresh (the pass
    /// offers every agent the view holds, refreshed or not).
    #[test]
    fn a_revive_wants_a_pass_that_names_no_agent() {
        let mut s = Scope3::default();
        s.ask();
        assert!(!s.is_empty(), "a REVIVE must start a pass");
        assert!(s.asked && !s.everything);
        assert!(s.agents.is_empty() && s.tasks.is_empty() && s.offers.is_empty());
    }

    /// A declined, rescinded or expired offer is gone from the state: its agent has room
    /// again (refreshed), and the offer is looked at (rescinded if this node sent it).
    #[test]
    fn a_declined_offer_names_its_agent_and_itself() {
        let mut s = Scope3::default();
        s.add(Change::Offer {
            id: 2,
            agent: Some(5),
            own: false,
        });
        assert_eq!(s.agents, BTreeSet::from([5]));
        assert_eq!(s.offers, BTreeSet::from([2]));
        assert!(!s.everything && !s.asked);
    }

    fn change() -> impl Strategy<Value = Change3> {
        prop_oneof![
            (0u64..20, any::<bool>(), prop::option::of(0u32..10)).prop_map(
                |(id, framework, agent)| Change::Task {
                    id,
                    framework,
                    agent
                }
            ),
            (0u32..10).prop_map(Change::Agent),
            (0u8..10, prop::option::of(0u32..10), any::<bool>())
                .prop_map(|(id, agent, own)| Change::Offer { id, agent, own }),
            Just(Change::Everything),
        ]
    }

    #[test]
    fn a_lone_change_starts_a_pass_at_once_and_a_burst_waits_for_the_gap() {
        let mut p = Pacer::new(GAP);
        assert_eq!(p.start_at(1_000), 1_000, "the first pass runs at once");
        p.started(1_000);
        assert_eq!(
            p.start_at(1_004),
            1_015,
            "a change 4 ms later waits for the gap"
        );
        assert_eq!(p.start_at(1_015), 1_015);
        assert_eq!(p.start_at(1_400), 1_400, "after a quiet gap, at once");
        p.started(1_400);
        assert_eq!(p.start_at(1_400), 1_415);
    }

    /// A loop as the server runs it: it sleeps until a change (or a pass's start time), and a
    /// pass takes some time during which more changes arrive.
    fn simulate(arrivals: &[i64], durations: &[i64]) -> Vec<(i64, i64)> {
        let mut pacer = Pacer::new(GAP);
        let mut passes = Vec::new();
        let mut served = 0;
        let mut now = 0;
        let mut d = durations.iter().cycle();
        while served < arrivals.len() {
            // Wait for the next change unless some are already waiting.
            now = now.max(arrivals[served]);
            let start = pacer.start_at(now);
            pacer.started(start);
            let end = start + d.next().copied().unwrap_or(0);
            passes.push((start, end));
            // The pass sees every change that arrived before it started.
            while served < arrivals.len() && arrivals[served] <= start {
                served += 1;
            }
            now = end;
        }
        passes
    }

    proptest! {
        /// Whatever the arrivals: passes start at least the gap apart; every change is seen by
        /// a pass that starts within the gap after it (or as soon as the pass running when it
        /// arrived ends, if that is later); and a change that finds the loop idle with no pass
        /// in the last gap starts one at once.
        #[test]
        fn passes_are_a_gap_apart_and_no_change_waits_longer_than_the_gap(
            mut arrivals in prop::collection::vec(0i64..2_000, 1..60),
            durations in prop::collection::vec(0i64..40, 1..8),
        ) {
            arrivals.sort_unstable();
            let passes = simulate(&arrivals, &durations);
            let gap = GAP.as_millis() as i64;
            for w in passes.windows(2) {
                prop_assert!(w[1].0 - w[0].0 >= gap, "passes {:?} closer than the gap", w);
            }
            for &a in &arrivals {
                let (i, &(start, _)) = passes
                    .iter()
                    .enumerate()
                    .find(|(_, (s, _))| *s >= a)
                    .expect("every change is seen by a pass");
                let busy_until = if i > 0 { passes[i - 1].1 } else { a };
                prop_assert!(start <= (a + gap).max(busy_until),
                    "a change at {a} waited until {start}");
                let quiet = i == 0 || (passes[i - 1].0 + gap <= a && passes[i - 1].1 <= a);
                if quiet {
                    prop_assert_eq!(start, a, "a change on an idle loop waited");
                }
            }
        }

        /// Whatever changed, in whatever order: the scope names every agent a change touched,
        /// every framework task that changed and every offer that is not the pass's own, and
        /// nothing else; it is empty exactly when every change was the pass's own offer.
        #[test]
        fn the_scope_is_what_changed_in_any_order(
            changes in prop::collection::vec(change(), 0..30),
            seed in any::<u64>(),
        ) {
            let mut scope = Scope3::default();
            for c in changes.clone() {
                scope.add(c);
            }
            let mut shuffled = changes.clone();
            let n = shuffled.len();
            for i in (1..n).rev() {
                shuffled.swap(i, (seed.wrapping_mul(i as u64 + 1) >> 7) as usize % (i + 1));
            }
            let mut other = Scope3::default();
            for c in shuffled {
                other.add(c);
            }
            prop_assert_eq!(&scope, &other, "the order of the changes mattered");
            let mut agents = BTreeSet::new();
            let mut tasks = BTreeSet::new();
            let mut offers = BTreeSet::new();
            let mut everything = false;
            for c in &changes {
                match c {
                    Change::Task { id, framework, agent } => {
                        if *framework {
                            tasks.insert(*id);
                        }
                        agents.extend(*agent);
                    }
                    Change::Agent(a) => {
                        agents.insert(*a);
                    }
                    Change::Offer { id, agent, own: false } => {
                        offers.insert(*id);
                        agents.extend(*agent);
                    }
                    Change::Offer { own: true, .. } => {}
                    Change::Everything => everything = true,
                }
            }
            prop_assert_eq!(&scope.agents, &agents);
            prop_assert_eq!(&scope.tasks, &tasks);
            prop_assert_eq!(&scope.offers, &offers);
            prop_assert_eq!(scope.everything, everything);
            let only_own = changes.iter().all(|c| {
                matches!(c, Change::Offer { own: true, .. })
                    || matches!(c, Change::Task { framework: false, agent: None, .. })
            });
            prop_assert_eq!(scope.is_empty(), only_own);
        }
    }
}

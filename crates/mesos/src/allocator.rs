//! The master's allocator, as a pure decision: which framework each free agent is offered to.
//!
//! ```text
//!  snapshot (agents: total, free, held by an offer? · frameworks: what they hold, suppressed?)
//!   + refuse filters + now + seed ──► allocate ──► [OfferDecision] ──► the server writes
//!                                                                      MakeOffers, sends OFFERS
//! ```
//! The server's leader loop reads the state, calls [`allocate`] and carries out what it
//! returns; everything that decides lives here, without I/O, a clock or an RNG, so it is unit-
//! and property-tested like the service reconciler. The policy is Mesos's default one:
//!
//! - **Holds.** An agent with an outstanding offer is not offered again: its free resources are
//!   promised to that offer's framework until the offer is accepted, declined or rescinded.
//! - **DRF.** Each free agent goes to the eligible framework with the smallest dominant share of
//!   its pool (the larger of its CPU and memory fractions), ties by id. A framework's share
//!   counts its live tasks, its outstanding offers, and what this pass has just offered it, so
//!   one pass spreads agents across frameworks rather than giving them all to the first.
//! - **Filters.** A framework that declined an agent's resources (or let an offer time out) is
//!   not offered that agent again before its refusal ends ([`Filters`]); REVIVE and a new
//!   subscription clear its filters.
//! - **Suppression.** A suppressed framework is offered nothing until it revives.
//!
//! Time is epoch milliseconds passed in; offer ids come from the seed passed in, so one input
//! always gives one output.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::v1;

/// How long a framework is not offered an agent again after declining it without a filter (or
/// leaving an offer to time out): the proto default of `Filters.refuse_seconds`.
pub const DEFAULT_REFUSE: Duration = Duration::from_secs(5);

/// CPU in berth's units (1,024 per core) and memory in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    pub cpu: i64,
    pub memory: i64,
}

impl Amount {
    pub fn new(cpu: i64, memory: i64) -> Self {
        Self { cpu, memory }
    }

    fn add(&mut self, other: Amount) {
        self.cpu += other.cpu;
        self.memory += other.memory;
    }

    /// The larger of the CPU and memory fractions of `total` this is (0 for an empty total).
    pub fn dominant_share(self, total: Amount) -> f64 {
        let share = |used: i64, of: i64| {
            if of > 0 { used as f64 / of as f64 } else { 0.0 }
        };
        share(self.cpu, total.cpu).max(share(self.memory, total.memory))
    }
}

/// An agent that can take tasks (ACTIVE, its agent connected), in the pool (berth cluster) it
/// belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent<A> {
    pub id: A,
    pub pool: String,
    /// What it registered: its share of the pool's total.
    pub total: Amount,
    /// What no task and no offer holds.
    pub free: Amount,
    /// The free ports an offer of it would carry.
    pub ports: Vec<u16>,
    /// An outstanding offer holds part of it.
    pub offered: bool,
}

/// A framework that could be offered resources: subscribed and connected to this master. Ids
/// are unique among the candidates of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub pool: String,
    /// What it holds in its pool: its live tasks and its outstanding offers.
    pub held: Amount,
    /// It asked for no offers (SUPPRESS, or subscribed with suppressed roles).
    pub suppressed: bool,
}

/// One offer to make: all of `agent`'s free resources, to `framework`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferDecision<A> {
    /// Fresh for every offer: derived from the pass's seed and the offer's position.
    pub id: u128,
    pub framework: String,
    pub agent: A,
    pub resources: Amount,
    pub ports: Vec<u16>,
}

/// Refuse filters: (framework, agent) pairs not to offer before a time (epoch ms). Kept by
/// framework, so that the allocator's look-up for each (agent, framework) pair allocates
/// nothing.
#[derive(Debug, Clone)]
pub struct Filters<A> {
    until: BTreeMap<String, BTreeMap<A, i64>>,
}

impl<A> Default for Filters<A> {
    fn default() -> Self {
        Self {
            until: BTreeMap::new(),
        }
    }
}

impl<A: Ord + Clone> Filters<A> {
    /// `framework` is not offered `agent` before `now + refuse`. A longer refusal already in
    /// place is replaced: the framework's latest answer is the one that counts.
    pub fn refuse(&mut self, framework: &str, agent: A, now: i64, refuse: Duration) {
        let until = now.saturating_add(i64::try_from(refuse.as_millis()).unwrap_or(i64::MAX));
        match self.until.get_mut(framework) {
            Some(agents) => {
                agents.insert(agent, until);
            }
            None => {
                self.until
                    .insert(framework.to_owned(), BTreeMap::from([(agent, until)]));
            }
        }
    }

    /// Whether `framework` refused `agent` until after `now`.
    pub fn refuses(&self, framework: &str, agent: &A, now: i64) -> bool {
        self.until
            .get(framework)
            .and_then(|agents| agents.get(agent))
            .is_some_and(|until| *until > now)
    }

    /// Drops every filter of `framework` (REVIVE, or a new subscription).
    pub fn clear(&mut self, framework: &str) {
        self.until.remove(framework);
    }

    /// Drops the filters that ended by `now`.
    pub fn expire(&mut self, now: i64) {
        for agents in self.until.values_mut() {
            agents.retain(|_, until| *until > now);
        }
        self.until.retain(|_, agents| !agents.is_empty());
    }

    /// When the next filter still in place ends: an agent may become offerable then.
    pub fn next_end(&self, now: i64) -> Option<i64> {
        self.until
            .values()
            .flat_map(BTreeMap::values)
            .copied()
            .filter(|u| *u > now)
            .min()
    }
}

/// How long the framework asked not to be offered resources it declined or left unused: the
/// call's `Filters`, or [`DEFAULT_REFUSE`].
pub fn refusal(filters: Option<&v1::Filters>) -> Duration {
    Duration::from_secs_f64(v1::Filters::effective_refuse_seconds(filters))
}

/// Whether an offer made at `created_at` has timed out by `now`. Without a timeout (Mesos's
/// default: `--offer_timeout` unset) an offer stays until it is answered or rescinded.
pub fn offer_timed_out(created_at: i64, now: i64, timeout: Option<Duration>) -> bool {
    timeout.is_some_and(|t| {
        now.saturating_sub(created_at) >= i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
    })
}

/// The offers to make now.
///
/// Agents are taken in `(pool, id)` order; each agent that no offer holds and that has free
/// CPU and memory goes to the unsuppressed, unfiltered framework of its pool with the smallest
/// dominant share of the pool's total, ties by framework id. What is offered counts towards
/// the receiving framework's share for the rest of the pass.
pub fn allocate<'a, A: Ord + Clone + 'a>(
    agents: impl IntoIterator<Item = &'a Agent<A>>,
    frameworks: &[Candidate],
    filters: &Filters<A>,
    now: i64,
    seed: u64,
) -> Vec<OfferDecision<A>> {
    let mut order: Vec<&Agent<A>> = agents.into_iter().collect();
    let mut totals: HashMap<&str, Amount> = HashMap::new();
    for a in &order {
        totals.entry(a.pool.as_str()).or_default().add(a.total);
    }
    let mut eligible: Vec<&Candidate> = frameworks.iter().filter(|f| !f.suppressed).collect();
    eligible.sort_by(|a, b| a.id.cmp(&b.id));
    let mut held: HashMap<&str, Amount> =
        eligible.iter().map(|f| (f.id.as_str(), f.held)).collect();
    order.sort_by(|a, b| (&a.pool, &a.id).cmp(&(&b.pool, &b.id)));
    let mut decisions = Vec::new();
    for agent in order {
        if agent.offered || agent.free.cpu <= 0 || agent.free.memory <= 0 {
            continue;
        }
        let total = totals[agent.pool.as_str()];
        let chosen = eligible
            .iter()
            .filter(|f| f.pool == agent.pool)
            .filter(|f| !filters.refuses(&f.id, &agent.id, now))
            .min_by(|a, b| {
                held[a.id.as_str()]
                    .dominant_share(total)
                    .total_cmp(&held[b.id.as_str()].dominant_share(total))
                    .then(a.id.cmp(&b.id))
            });
        let Some(framework) = chosen else {
            continue;
        };
        if let Some(h) = held.get_mut(framework.id.as_str()) {
            h.add(agent.free);
        }
        decisions.push(OfferDecision {
            id: offer_id(seed, decisions.len() as u64),
            framework: framework.id.clone(),
            agent: agent.id.clone(),
            resources: agent.free,
            ports: agent.ports.clone(),
        });
    }
    decisions
}

/// The id of the `n`th offer of a pass seeded `seed`: SplitMix64's finalizer, a bijection, so
/// the offers of one pass never share an id.
fn offer_id(seed: u64, n: u64) -> u128 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let high = mix(seed.wrapping_add(n));
    (u128::from(high) << 64) | u128::from(mix(high ^ 0x5555_5555_5555_5555))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn agent(id: u32, cpu: i64, memory: i64) -> Agent<u32> {
        Agent {
            id,
            pool: "default".into(),
            total: Amount::new(cpu, memory),
            free: Amount::new(cpu, memory),
            ports: vec![31000],
            offered: false,
        }
    }

    fn framework(id: &str, cpu: i64, memory: i64) -> Candidate {
        Candidate {
            id: id.into(),
            pool: "default".into(),
            held: Amount::new(cpu, memory),
            suppressed: false,
        }
    }

    fn receivers(d: &[OfferDecision<u32>]) -> Vec<(u32, &str)> {
        d.iter().map(|o| (o.agent, o.framework.as_str())).collect()
    }

    #[test]
    fn each_free_agent_goes_to_the_framework_with_the_smallest_dominant_share() {
        let agents = [
            agent(1, 1024, 1024),
            agent(2, 1024, 1024),
            agent(3, 1024, 1024),
        ];
        // a holds a third of the memory (dominant), b a sixth of the CPU, c nothing.
        let frameworks = [
            framework("a", 0, 1024),
            framework("b", 512, 0),
            framework("c", 0, 0),
        ];
        let d = allocate(&agents, &frameworks, &Filters::default(), 0, 7);
        // c (0) takes agent 1 and reaches 1/3; b (1/6) takes agent 2 and reaches 1/2; a and c
        // tie at 1/3 for agent 3: a by id.
        assert_eq!(receivers(&d), vec![(1, "c"), (2, "b"), (3, "a")]);
        assert_eq!(d[0].resources, Amount::new(1024, 1024));
        assert_eq!(d[0].ports, vec![31000]);
    }

    #[test]
    fn an_agent_an_offer_holds_or_without_room_is_not_offered() {
        let mut held = agent(1, 1024, 1024);
        held.offered = true;
        let mut full = agent(2, 1024, 1024);
        full.free = Amount::new(0, 512);
        let d = allocate(
            &[held, full, agent(3, 1024, 1024)],
            &[framework("a", 0, 0)],
            &Filters::default(),
            0,
            1,
        );
        assert_eq!(receivers(&d), vec![(3, "a")]);
    }

    #[test]
    fn a_suppressed_framework_is_offered_nothing() {
        let mut quiet = framework("a", 0, 0);
        quiet.suppressed = true;
        let agents = [agent(1, 1024, 1024), agent(2, 1024, 1024)];
        let d = allocate(&agents, &[quiet.clone()], &Filters::default(), 0, 1);
        assert!(d.is_empty());
        let d = allocate(
            &agents,
            &[quiet, framework("b", 9, 9)],
            &Filters::default(),
            0,
            1,
        );
        assert_eq!(receivers(&d), vec![(1, "b"), (2, "b")]);
    }

    #[test]
    fn a_refusal_keeps_an_agent_from_its_framework_until_it_ends_or_is_cleared() {
        let agents = [agent(1, 1024, 1024)];
        let frameworks = [framework("a", 0, 0), framework("b", 1024, 1024)];
        let mut filters = Filters::default();
        filters.refuse("a", 1, 1_000, Duration::from_secs(5));
        // Refused by a: b gets it although its share is larger.
        let d = allocate(&agents, &frameworks, &filters, 5_999, 1);
        assert_eq!(receivers(&d), vec![(1, "b")]);
        assert_eq!(filters.next_end(5_999), Some(6_000));
        // At the end of the refusal a is back.
        let d = allocate(&agents, &frameworks, &filters, 6_000, 1);
        assert_eq!(receivers(&d), vec![(1, "a")]);
        filters.expire(6_000);
        assert_eq!(filters.next_end(0), None);
        // Refused by both: nobody; REVIVE clears a's filters.
        filters.refuse("a", 1, 0, Duration::from_secs(3600));
        filters.refuse("b", 1, 0, Duration::from_secs(3600));
        assert!(allocate(&agents, &frameworks, &filters, 1, 1).is_empty());
        filters.clear("a");
        assert_eq!(
            receivers(&allocate(&agents, &frameworks, &filters, 1, 1)),
            vec![(1, "a")]
        );
    }

    #[test]
    fn frameworks_are_offered_only_agents_of_their_pool() {
        let mut other = agent(1, 1024, 1024);
        other.pool = "other".into();
        let d = allocate(
            &[other, agent(2, 4096, 4096)],
            &[framework("a", 0, 0)],
            &Filters::default(),
            0,
            1,
        );
        assert_eq!(receivers(&d), vec![(2, "a")]);
    }

    #[test]
    fn the_refusal_asked_for_or_the_default() {
        assert_eq!(refusal(None), DEFAULT_REFUSE);
        let f = v1::Filters {
            refuse_seconds: Some(0.5),
        };
        assert_eq!(refusal(Some(&f)), Duration::from_millis(500));
    }

    #[test]
    fn offers_time_out_only_when_a_timeout_is_set() {
        assert!(!offer_timed_out(0, i64::MAX, None));
        let ten = Some(Duration::from_secs(10));
        assert!(!offer_timed_out(0, 9_999, ten));
        assert!(offer_timed_out(0, 10_000, ten));
    }

    #[test]
    fn one_input_gives_one_output_and_offer_ids_differ() {
        let agents: Vec<_> = (0..50).map(|i| agent(i, 1024, 1024)).collect();
        let frameworks = [framework("a", 0, 0), framework("b", 0, 0)];
        let one = allocate(&agents, &frameworks, &Filters::default(), 0, 42);
        assert_eq!(
            one,
            allocate(&agents, &frameworks, &Filters::default(), 0, 42)
        );
        let ids: HashSet<u128> = one.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), 50);
    }

    fn agents() -> impl Strategy<Value = Vec<Agent<u32>>> {
        prop::collection::vec(
            (
                0u32..40,
                0..2usize,
                1i64..8192,
                1i64..16384,
                0i64..9000,
                any::<bool>(),
            ),
            0..30,
        )
        .prop_map(|rows| {
            let mut seen = HashSet::new();
            rows.into_iter()
                .filter(|(id, ..)| seen.insert(*id))
                .map(|(id, pool, cpu, memory, used, offered)| Agent {
                    id,
                    pool: ["p0", "p1"][pool].into(),
                    total: Amount::new(cpu, memory),
                    free: Amount::new(cpu - used.min(cpu), memory - used.min(memory)),
                    ports: vec![],
                    offered,
                })
                .collect()
        })
    }

    fn frameworks() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec(
            // Holdings in whole steps, so that equal shares (ties) are common.
            (
                0u8..6,
                0..2usize,
                0i64..4,
                0i64..4,
                prop::bool::weighted(0.2),
            ),
            0..6,
        )
        .prop_map(|rows| {
            let mut seen = HashSet::new();
            rows.into_iter()
                .filter(|(id, ..)| seen.insert(*id))
                .map(|(id, pool, cpu, memory, suppressed)| Candidate {
                    id: format!("fw{id}"),
                    pool: ["p0", "p1"][pool].into(),
                    held: Amount::new(cpu * 1024, memory * 2048),
                    suppressed,
                })
                .collect()
        })
    }

    fn refusals() -> impl Strategy<Value = Vec<(u8, u32, i64)>> {
        prop::collection::vec((0u8..6, 0u32..40, 0i64..20), 0..20)
    }

    proptest! {
        /// Whatever the snapshot: an agent is offered at most once and never while an offer
        /// holds it, never to a suppressed or refusing framework nor across pools, always all
        /// of what it has free; every agent that could be offered is; and each went to the
        /// framework with the smallest dominant share at that point of the pass (DRF).
        #[test]
        fn offers_follow_holds_filters_suppression_and_drf(
            agents in agents(),
            frameworks in frameworks(),
            refusals in refusals(),
            now in 0i64..20,
            seed in any::<u64>(),
        ) {
            let mut filters = Filters::default();
            for (fw, agent, ms) in &refusals {
                filters.refuse(&format!("fw{fw}"), *agent, 0, Duration::from_millis(*ms as u64));
            }
            let decisions = allocate(&agents, &frameworks, &filters, now, seed);
            let by_id: HashMap<u32, &Agent<u32>> = agents.iter().map(|a| (a.id, a)).collect();
            let mut totals: HashMap<&str, Amount> = HashMap::new();
            for a in &agents {
                totals.entry(a.pool.as_str()).or_default().add(a.total);
            }
            let mut held: HashMap<&str, Amount> = HashMap::new();
            for f in frameworks.iter().filter(|f| !f.suppressed) {
                held.insert(f.id.as_str(), f.held);
            }
            let eligible = |a: &Agent<u32>| -> Vec<&str> {
                let mut ids: Vec<&str> = frameworks
                    .iter()
                    .filter(|f| !f.suppressed && f.pool == a.pool)
                    .filter(|f| !filters.refuses(&f.id, &a.id, now))
                    .map(|f| f.id.as_str())
                    .collect();
                ids.sort_unstable();
                ids
            };
            let mut offered = HashSet::new();
            let mut ids = HashSet::new();
            for d in &decisions {
                prop_assert!(offered.insert(d.agent), "agent {} offered twice", d.agent);
                prop_assert!(ids.insert(d.id), "offer id reused");
                let a = by_id[&d.agent];
                prop_assert!(!a.offered, "agent {} is held by an offer", a.id);
                prop_assert_eq!(d.resources, a.free);
                prop_assert!(a.free.cpu > 0 && a.free.memory > 0);
                let candidates = eligible(a);
                prop_assert!(candidates.contains(&d.framework.as_str()),
                    "{} is suppressed, refusing or of another pool", d.framework);
                let total = totals[a.pool.as_str()];
                let mine = held[d.framework.as_str()].dominant_share(total);
                for other in &candidates {
                    let theirs = held[other].dominant_share(total);
                    prop_assert!(mine < theirs || (mine == theirs && d.framework.as_str() <= *other),
                        "DRF: {} ({mine}) chosen over {other} ({theirs})", d.framework);
                }
                held.get_mut(d.framework.as_str()).expect("eligible").add(a.free);
            }
            for a in &agents {
                let could = !a.offered && a.free.cpu > 0 && a.free.memory > 0 && !eligible(a).is_empty();
                prop_assert_eq!(could, offered.contains(&a.id), "agent {} left out", a.id);
            }
        }
    }
}

//! Spread placement without a scan per task (issue 18).
//!
//! A chain that starts with spread ranks the feasible instances by a vector, smallest first:
//! the group's tasks in the instance's bucket of each leading attribute spread, then what is
//! the instance's own (its tasks of the group for spread(instanceId), what would remain free
//! for binpack), then a tie-break drawn from the seed ([`tie`]), then the id. The scan in
//! `engine` narrows stage by stage to the same minimum; scanning every instance for every task,
//! looking two attributes up by string on each, was most of the server's CPU at 5,000 instances.
//! This index keeps the minimum for a whole plan instead:
//!
//! ```text
//!  cells:  the instances grouped by their values of the attribute spreads (interned once per
//!          plan); each cell holds BTreeSet<(own criteria, tie, position)> of its feasible ones
//!  order:  BTreeSet<(the group's counts of the cell's values, its best member, cell)>
//!          its first entry is the pick
//!  placing a task on X changes X's own criteria and feasibility (no other instance's: a plan's
//!  tasks count only where they are placed), and the counts of X's values — so only X and the
//!  cells that share one of X's values move
//! ```
//! With one attribute spread (the ECS console's default: availability zone, then instanceId)
//! that is O(log n) per task, after one feasibility check per instance per plan. The scan stays
//! the reference: `explain` plans with it, and the property tests require both to place alike.

use std::collections::{BTreeSet, HashMap};

use berth_model::InstanceId;
use berth_model::entity::ContainerInstance;

use crate::request::{BinpackField, SpreadField, Strategy};

/// ECS takes at most five strategies; a longer chain (berth does not refuse one) has its
/// criteria past the fifth ignored by no one, so it is left to the scan.
const MAX: usize = 5;

/// A criterion of the instance's own, after the attribute spreads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Own {
    /// spread(instanceId): the group's tasks on the instance, live and planned.
    Group,
    /// binpack: what would remain free of the field after one more task.
    Free(BinpackField),
}

/// How a chain the index can serve ranks: attribute spreads first, then criteria of the
/// instance's own, up to the first random (which the tie-break stands for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape<'r> {
    attributes: Vec<&'r str>,
    own: Vec<Own>,
}

impl<'r> Shape<'r> {
    /// `None` unless the chain starts with spread and no attribute spread follows a criterion
    /// of the instance's own (that would move every instance of a bucket on each placement).
    pub(crate) fn of(strategies: &'r [Strategy]) -> Option<Shape<'r>> {
        if !matches!(strategies.first(), Some(Strategy::Spread(_))) {
            return None;
        }
        let mut shape = Shape {
            attributes: Vec::new(),
            own: Vec::new(),
        };
        for s in strategies {
            match s {
                Strategy::Random => break,
                Strategy::Spread(SpreadField::Attribute(a)) if shape.own.is_empty() => {
                    shape.attributes.push(a);
                }
                Strategy::Spread(SpreadField::Attribute(_)) => return None,
                Strategy::Spread(SpreadField::Instance) => shape.own.push(Own::Group),
                Strategy::Binpack(f) => shape.own.push(Own::Free(*f)),
            }
        }
        (shape.attributes.len() <= MAX && shape.own.len() <= MAX).then_some(shape)
    }
}

/// The seeded tie-break between instances the chain ranks alike: a fixed random order for the
/// plan (splitmix64 of the seed and the id), so each pick among equals is uniform and costs no
/// draw, and the index and the scan agree on it.
pub(crate) fn tie(seed: u64, id: InstanceId) -> u64 {
    let mut z = seed ^ (id.0 as u64) ^ ((id.0 >> 64) as u64).rotate_left(32);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the index asks of the planner about one instance, as the plan stands.
pub(crate) trait Ranker<'a> {
    /// Whether it can take one more task of the request.
    fn feasible(&self, i: &'a ContainerInstance) -> bool;
    /// Its value of `own`.
    fn own(&self, i: &'a ContainerInstance, own: Own) -> i64;
}

/// A feasible instance's place in its cell: its own criteria, the tie-break, its position in
/// the plan's instance list (which is in id order).
type Member = ([i64; MAX], u64, u32);
/// A cell's place in the order: the group's counts of its values, its best member, the cell.
type Ranked = ([u64; MAX], Member, u32);

struct Cell {
    /// The interned value of each attribute spread.
    values: [u32; MAX],
    members: BTreeSet<Member>,
}

/// The plan's ranking of feasible instances (see the module's docs).
pub(crate) struct SpreadIndex<'r> {
    shape: Shape<'r>,
    seed: u64,
    /// Per attribute spread, per interned value: the group's tasks there (live and planned).
    counts: Vec<Vec<u64>>,
    /// Per attribute spread, per interned value: the cells with that value.
    cells_with: Vec<Vec<Vec<u32>>>,
    cells: Vec<Cell>,
    /// Per position in the plan's instance list: its cell, and its member key while feasible.
    place: Vec<(u32, Option<Member>)>,
    order: BTreeSet<Ranked>,
}

impl<'r> SpreadIndex<'r> {
    /// Ranks `instances` (the plan's, in id order); `group` are the instances running live
    /// tasks of the request's group, with how many each (whether or not they are candidates:
    /// spread counts them all).
    pub(crate) fn build<'a>(
        shape: Shape<'r>,
        seed: u64,
        ranker: &impl Ranker<'a>,
        instances: &[&'a ContainerInstance],
        group: impl Iterator<Item = (&'a ContainerInstance, u64)>,
    ) -> SpreadIndex<'r> {
        let levels = shape.attributes.len();
        let mut interned: Vec<HashMap<Option<&'a str>, u32>> = vec![HashMap::new(); levels];
        let mut index = SpreadIndex {
            shape,
            seed,
            counts: vec![Vec::new(); levels],
            cells_with: vec![Vec::new(); levels],
            cells: Vec::new(),
            place: Vec::with_capacity(instances.len()),
            order: BTreeSet::new(),
        };
        let mut values_of = |index: &mut SpreadIndex<'r>, i: &'a ContainerInstance| {
            let mut values = [0u32; MAX];
            for (l, name) in index.shape.attributes.iter().enumerate() {
                let next = interned[l].len() as u32;
                let v = *interned[l].entry(i.attribute(name)).or_insert(next);
                if v == next {
                    index.counts[l].push(0);
                    index.cells_with[l].push(Vec::new());
                }
                values[l] = v;
            }
            values
        };
        for (i, n) in group {
            let values = values_of(&mut index, i);
            for (l, v) in values.iter().enumerate().take(levels) {
                index.counts[l][*v as usize] += n;
            }
        }
        let mut cell_of: HashMap<[u32; MAX], u32> = HashMap::new();
        for (pos, i) in instances.iter().enumerate() {
            let values = values_of(&mut index, i);
            let cell = *cell_of.entry(values).or_insert_with(|| {
                let c = index.cells.len() as u32;
                for (l, v) in values.iter().enumerate().take(levels) {
                    index.cells_with[l][*v as usize].push(c);
                }
                index.cells.push(Cell {
                    values,
                    members: BTreeSet::new(),
                });
                c
            });
            let member = ranker
                .feasible(i)
                .then(|| index.member(ranker, i, pos as u32));
            if let Some(m) = member {
                index.cells[cell as usize].members.insert(m);
            }
            index.place.push((cell, member));
        }
        for c in 0..index.cells.len() as u32 {
            if let Some(r) = index.ranked(c) {
                index.order.insert(r);
            }
        }
        index
    }

    /// The position (in the plan's instance list) of the instance the chain picks for the next
    /// task; `None` when no instance can take one.
    pub(crate) fn best(&self) -> Option<usize> {
        self.order.first().map(|(_, (_, _, pos), _)| *pos as usize)
    }

    /// Records a task placed on the instance at `pos` (already committed to the planner).
    pub(crate) fn placed<'a>(
        &mut self,
        ranker: &impl Ranker<'a>,
        pos: usize,
        i: &'a ContainerInstance,
    ) {
        let (cell, member) = self.place[pos];
        let values = self.cells[cell as usize].values;
        let mut moved: Vec<u32> = vec![cell];
        for (l, v) in values.iter().enumerate().take(self.shape.attributes.len()) {
            moved.extend(&self.cells_with[l][*v as usize]);
        }
        moved.sort_unstable();
        moved.dedup();
        for c in &moved {
            if let Some(r) = self.ranked(*c) {
                self.order.remove(&r);
            }
        }
        if let Some(m) = member {
            self.cells[cell as usize].members.remove(&m);
        }
        for (l, v) in values.iter().enumerate().take(self.shape.attributes.len()) {
            self.counts[l][*v as usize] += 1;
        }
        let member = ranker
            .feasible(i)
            .then(|| self.member(ranker, i, pos as u32));
        if let Some(m) = member {
            self.cells[cell as usize].members.insert(m);
        }
        self.place[pos].1 = member;
        for c in &moved {
            if let Some(r) = self.ranked(*c) {
                self.order.insert(r);
            }
        }
    }

    fn member<'a>(&self, ranker: &impl Ranker<'a>, i: &'a ContainerInstance, pos: u32) -> Member {
        let mut own = [0i64; MAX];
        for (slot, o) in own.iter_mut().zip(&self.shape.own) {
            *slot = ranker.own(i, *o);
        }
        (own, tie(self.seed, i.id), pos)
    }

    /// Where cell `c` stands in the order, while it has a feasible instance.
    fn ranked(&self, c: u32) -> Option<Ranked> {
        let cell = &self.cells[c as usize];
        let best = *cell.members.first()?;
        let mut counts = [0u64; MAX];
        for (l, slot) in counts
            .iter_mut()
            .enumerate()
            .take(self.shape.attributes.len())
        {
            *slot = self.counts[l][cell.values[l] as usize];
        }
        Some((counts, best, c))
    }
}

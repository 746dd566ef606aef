//! Resource arithmetic: what a LAUNCH takes from an offer, and whether it fits.
//!
//! A framework describes what a task needs as a list of [`Resource`]s; an offer describes what
//! an agent has the same way. [`Resources`] sums such a list into the five quantities berth
//! offers (`cpus`, `mem`, `disk`, `gpus`, and `ports` as a [`RangeSet`]), rejecting anything
//! else with a reason, so validating a launch is `task.fit(&remaining)`.
//!
//! Scalars are fixed-point thousandths ([`Quantity`]), as in Mesos itself, which keeps only
//! three decimal digits of a scalar "to reduce the chance of unpredictable floating point
//! behavior": ten tasks of 0.1 cpus fit an offer of 1 cpu exactly, which f64 sums would not
//! guarantee.
//!
//! berth accounts CPU in units of 1/1024 of a CPU and memory in MiB, both integers; see
//! [`cpus_to_cpu_units`] and friends for which way each conversion rounds and why.

use std::fmt;

use crate::v1::{Resource, value};

/// A scalar resource amount, held as thousandths (Mesos's precision).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u64);

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    /// The largest amount whose thousandths an f64 still holds exactly (2^53).
    const MAX_MILLIS: u64 = 1 << 53;

    pub const fn from_millis(millis: u64) -> Quantity {
        Quantity(millis)
    }

    /// A whole amount (`Quantity::from_units(2)` is 2.000).
    pub const fn from_units(units: u64) -> Quantity {
        Quantity(units.saturating_mul(1000))
    }

    /// Rounds `value` to the nearest thousandth, as Mesos does. `None` for negative, NaN,
    /// infinite or absurdly large (more than 2^53 thousandths) values.
    pub fn from_f64(value: f64) -> Option<Quantity> {
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        let millis = (value * 1000.0).round();
        (millis <= Self::MAX_MILLIS as f64).then_some(Quantity(millis as u64))
    }

    pub const fn millis(self) -> u64 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether it is a whole number (GPUs must be).
    pub fn is_whole(self) -> bool {
        self.0.is_multiple_of(1000)
    }

    pub fn saturating_add(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(other.0))
    }

    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_sub(other.0).map(Quantity)
    }
}

impl fmt::Display for Quantity {
    /// Shortest exact decimal: `2`, `0.5`, `0.125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// A set of non-negative integers stored as sorted, disjoint, non-adjacent inclusive ranges:
/// the form of Mesos's `ports` resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// `begin..=end`; empty when `begin > end`.
    pub fn range(begin: u64, end: u64) -> RangeSet {
        let mut set = RangeSet::new();
        set.insert(begin, end);
        set
    }

    /// Adds `begin..=end`, merging with what it overlaps or touches. A no-op when
    /// `begin > end`.
    pub fn insert(&mut self, begin: u64, end: u64) {
        if begin > end {
            return;
        }
        // Ranges ending more than one below `begin` are untouched; so are ranges starting
        // more than one above `end`. Everything in between merges.
        let first = self
            .ranges
            .partition_point(|&(_, e)| e.saturating_add(1) < begin);
        let (mut b, mut e) = (begin, end);
        let mut last = first;
        while last < self.ranges.len() && self.ranges[last].0 <= end.saturating_add(1) {
            b = b.min(self.ranges[last].0);
            e = e.max(self.ranges[last].1);
            last += 1;
        }
        self.ranges.splice(first..last, [(b, e)]);
    }

    /// The sorted, disjoint, non-adjacent ranges, `(begin, end)` inclusive.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many values it holds.
    pub fn count(&self) -> u128 {
        self.ranges
            .iter()
            .map(|&(b, e)| u128::from(e - b) + 1)
            .sum()
    }

    pub fn contains(&self, v: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e < v);
        self.ranges.get(i).is_some_and(|&(b, _)| b <= v)
    }

    pub fn union(&self, other: &RangeSet) -> RangeSet {
        let mut out = self.clone();
        for &(b, e) in &other.ranges {
            out.insert(b, e);
        }
        out
    }

    pub fn intersection(&self, other: &RangeSet) -> RangeSet {
        let (a, c) = (&self.ranges, &other.ranges);
        let (mut i, mut j) = (0, 0);
        let mut ranges = Vec::new();
        while i < a.len() && j < c.len() {
            let lo = a[i].0.max(c[j].0);
            let hi = a[i].1.min(c[j].1);
            if lo <= hi {
                ranges.push((lo, hi));
            }
            if a[i].1 < c[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        // Pieces of non-adjacent ranges are themselves non-adjacent: already normal.
        RangeSet { ranges }
    }

    /// The values of `self` not in `other`.
    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        let o = &other.ranges;
        let mut ranges = Vec::new();
        let mut j = 0;
        for &(b, e) in &self.ranges {
            while j < o.len() && o[j].1 < b {
                j += 1;
            }
            let mut cur = b;
            let mut covered = false;
            let mut k = j;
            while k < o.len() && o[k].0 <= e {
                let (ob, oe) = o[k];
                if ob > cur {
                    ranges.push((cur, ob - 1));
                }
                if oe >= e {
                    covered = true;
                    break;
                }
                cur = cur.max(oe + 1);
                k += 1;
            }
            if !covered {
                ranges.push((cur, e));
            }
        }
        RangeSet { ranges }
    }

    pub fn is_subset(&self, other: &RangeSet) -> bool {
        self.difference(other).is_empty()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        !self.intersection(other).is_empty()
    }

    /// The wire form.
    pub fn to_ranges(&self) -> value::Ranges {
        value::Ranges {
            range: self
                .ranges
                .iter()
                .map(|&(begin, end)| value::Range { begin, end })
                .collect(),
        }
    }

    /// Every value that is a valid port, ascending.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|&(b, e)| {
            let hi = e.min(u64::from(u16::MAX));
            (b..=hi).filter_map(|p| u16::try_from(p).ok())
        })
    }
}

impl FromIterator<(u64, u64)> for RangeSet {
    fn from_iter<I: IntoIterator<Item = (u64, u64)>>(iter: I) -> RangeSet {
        let mut set = RangeSet::new();
        for (b, e) in iter {
            set.insert(b, e);
        }
        set
    }
}

impl FromIterator<u16> for RangeSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> RangeSet {
        iter.into_iter()
            .map(|p| (u64::from(p), u64::from(p)))
            .collect()
    }
}

impl fmt::Display for RangeSet {
    /// `[31000-31005, 31010]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, &(b, e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if b == e {
                write!(f, "{b}")?;
            } else {
                write!(f, "{b}-{e}")?;
            }
        }
        f.write_str("]")
    }
}

/// A resource list berth cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourceError {
    /// berth offers only cpus, mem, disk, ports and gpus, so nothing else can ever fit.
    #[error("resource `{name}` is not one berth offers (cpus, mem, disk, ports, gpus)")]
    Unsupported { name: String },
    /// A known resource with the wrong value type (`ports` as a SCALAR, say).
    #[error("resource `{name}` must be {expected}, not {found}")]
    WrongType {
        name: String,
        expected: value::Type,
        found: value::Type,
    },
    /// The value field its type calls for is absent.
    #[error("{kind} resource `{name}` has no `{}` value", kind.as_str().to_ascii_lowercase())]
    MissingValue { name: String, kind: value::Type },
    /// Negative, NaN, infinite or too large.
    #[error("resource `{name}` has invalid amount {value}")]
    InvalidScalar { name: String, value: f64 },
    /// A range whose begin is past its end.
    #[error("resource `{name}` has invalid range {begin}-{end} (begin after end)")]
    InvalidRange { name: String, begin: u64, end: u64 },
    /// A port above 65535.
    #[error("ports {begin}-{end} are outside 0-65535")]
    PortOutOfRange { begin: u64, end: u64 },
    /// The same port listed twice.
    #[error("ports {ports} are listed more than once")]
    OverlappingPorts { ports: RangeSet },
    /// GPUs are whole devices.
    #[error("gpus must be a whole number, not {gpus}")]
    FractionalGpus { gpus: Quantity },
}

/// The sum of a resource list, in the dimensions berth offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    pub cpus: Quantity,
    /// MiB.
    pub mem: Quantity,
    /// MiB.
    pub disk: Quantity,
    pub gpus: Quantity,
    pub ports: RangeSet,
}

impl Resources {
    /// Sums `resources`, checking each: a known name with its value type (`cpus`, `mem`,
    /// `disk`, `gpus` SCALAR; `ports` RANGES), valid amounts, ports within 0-65535 and listed
    /// once, a whole number of GPUs. Roles and reservations are not looked at: berth offers
    /// only unreserved resources.
    pub fn parse(resources: &[Resource]) -> Result<Resources, ResourceError> {
        let mut sum = Resources::default();
        for r in resources {
            let name = r.name.as_str();
            let expected = match name {
                "cpus" | "mem" | "disk" | "gpus" => value::Type::Scalar,
                "ports" => value::Type::Ranges,
                _ => {
                    return Err(ResourceError::Unsupported {
                        name: name.to_owned(),
                    });
                }
            };
            if r.r#type != expected {
                return Err(ResourceError::WrongType {
                    name: name.to_owned(),
                    expected,
                    found: r.r#type,
                });
            }
            let missing = || ResourceError::MissingValue {
                name: name.to_owned(),
                kind: expected,
            };
            if expected == value::Type::Ranges {
                let ranges = r.ranges.as_ref().ok_or_else(missing)?;
                for range in &ranges.range {
                    let (begin, end) = (range.begin, range.end);
                    if begin > end {
                        return Err(ResourceError::InvalidRange {
                            name: name.to_owned(),
                            begin,
                            end,
                        });
                    }
                    if end > u64::from(u16::MAX) {
                        return Err(ResourceError::PortOutOfRange { begin, end });
                    }
                    let added = RangeSet::range(begin, end);
                    let dup = sum.ports.intersection(&added);
                    if !dup.is_empty() {
                        return Err(ResourceError::OverlappingPorts { ports: dup });
                    }
                    sum.ports.insert(begin, end);
                }
                continue;
            }
            let value = r.scalar.ok_or_else(missing)?.value;
            let q = Quantity::from_f64(value).ok_or_else(|| ResourceError::InvalidScalar {
                name: name.to_owned(),
                value,
            })?;
            let slot = match name {
                "cpus" => &mut sum.cpus,
                "mem" => &mut sum.mem,
                "disk" => &mut sum.disk,
                _ => &mut sum.gpus,
            };
            *slot = slot.saturating_add(q);
        }
        if !sum.gpus.is_whole() {
            return Err(ResourceError::FractionalGpus { gpus: sum.gpus });
        }
        Ok(sum)
    }

    /// The wire form, as an offer lists it: each non-zero scalar, then `ports` if any, all
    /// unreserved (`role: "*"`).
    pub fn to_wire(&self) -> Vec<Resource> {
        let mut out = Vec::new();
        for (name, q) in [
            ("cpus", self.cpus),
            ("mem", self.mem),
            ("disk", self.disk),
            ("gpus", self.gpus),
        ] {
            if !q.is_zero() {
                out.push(Resource::scalar(name, q.as_f64()));
            }
        }
        if !self.ports.is_empty() {
            out.push(Resource::ranges(
                "ports",
                self.ports.ranges().iter().copied(),
            ));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// Both together (scalars added, ports united): pooling several offers of one agent.
    pub fn plus(&self, other: &Resources) -> Resources {
        Resources {
            cpus: self.cpus.saturating_add(other.cpus),
            mem: self.mem.saturating_add(other.mem),
            disk: self.disk.saturating_add(other.disk),
            gpus: self.gpus.saturating_add(other.gpus),
            ports: self.ports.union(&other.ports),
        }
    }

    /// What is left of `self` once `used` is taken (saturating at zero; ports removed).
    pub fn minus(&self, used: &Resources) -> Resources {
        Resources {
            cpus: self.cpus.saturating_sub(used.cpus),
            mem: self.mem.saturating_sub(used.mem),
            disk: self.disk.saturating_sub(used.disk),
            gpus: self.gpus.saturating_sub(used.gpus),
            ports: self.ports.difference(&used.ports),
        }
    }

    /// Whether every quantity is at most what `available` has and every port is in it.
    pub fn fits_within(&self, available: &Resources) -> bool {
        self.fit(available).is_ok()
    }

    /// [`Resources::fits_within`], saying what is short when it does not fit.
    pub fn fit(&self, available: &Resources) -> Result<(), Shortfall> {
        let short = |need: Quantity, have: Quantity| (need > have).then_some((need, have));
        let shortfall = Shortfall {
            cpus: short(self.cpus, available.cpus),
            mem: short(self.mem, available.mem),
            disk: short(self.disk, available.disk),
            gpus: short(self.gpus, available.gpus),
            ports: self.ports.difference(&available.ports),
        };
        if shortfall.is_empty() {
            Ok(())
        } else {
            Err(shortfall)
        }
    }
}

impl fmt::Display for Resources {
    /// `cpus:1.5; mem:128; ports:[31000-31005]`, zero quantities left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (name, q) in [
            ("cpus", self.cpus),
            ("mem", self.mem),
            ("disk", self.disk),
            ("gpus", self.gpus),
        ] {
            if !q.is_zero() {
                parts.push(format!("{name}:{q}"));
            }
        }
        if !self.ports.is_empty() {
            parts.push(format!("ports:{}", self.ports));
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// What a request lacks: `(needed, available)` per short scalar, and the ports not
/// available.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shortfall {
    pub cpus: Option<(Quantity, Quantity)>,
    pub mem: Option<(Quantity, Quantity)>,
    pub disk: Option<(Quantity, Quantity)>,
    pub gpus: Option<(Quantity, Quantity)>,
    pub ports: RangeSet,
}

impl Shortfall {
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none()
            && self.mem.is_none()
            && self.disk.is_none()
            && self.gpus.is_none()
            && self.ports.is_empty()
    }
}

impl fmt::Display for Shortfall {
    /// `cpus: needs 2, 1.5 available; ports [8080] not available`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (name, short) in [
            ("cpus", self.cpus),
            ("mem", self.mem),
            ("disk", self.disk),
            ("gpus", self.gpus),
        ] {
            if let Some((need, have)) = short {
                parts.push(format!("{name}: needs {need}, {have} available"));
            }
        }
        if !self.ports.is_empty() {
            parts.push(format!("ports {} not available", self.ports));
        }
        f.write_str(&parts.join("; "))
    }
}

/// berth's CPU units per CPU (ECS's convention).
pub const CPU_UNITS_PER_CPU: u64 = 1024;

fn clamp_i64(v: u128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// CPU units a task reserves for `cpus`: rounded **up**, so a task never gets less than it
/// asked for (0.1 cpus → 103 units).
pub fn cpus_to_cpu_units(cpus: Quantity) -> i64 {
    let scaled = u128::from(cpus.millis()) * u128::from(CPU_UNITS_PER_CPU);
    clamp_i64(scaled.div_ceil(1000))
}

/// cpus to offer for `units` free CPU units: rounded **down** to a thousandth, so an offer
/// never promises more than is free (1 unit → 0 cpus, 1024 → 1). Accepting the whole offer
/// then always fits: `cpus_to_cpu_units(cpu_units_to_cpus(u)) <= u`. Negative is zero.
pub fn cpu_units_to_cpus(units: i64) -> Quantity {
    let units = u128::try_from(units).unwrap_or(0);
    let millis = units * 1000 / u128::from(CPU_UNITS_PER_CPU);
    Quantity::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// MiB a task reserves for `mem` (Mesos's `mem` is in MiB too): rounded **up** to a whole
/// MiB (128.5 → 129).
pub fn mem_to_mib(mem: Quantity) -> i64 {
    clamp_i64(u128::from(mem.millis()).div_ceil(1000))
}

/// `mem` to offer for `mib` free MiB: exact. Negative is zero.
pub fn mib_to_mem(mib: i64) -> Quantity {
    Quantity::from_units(u64::try_from(mib).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: f64) -> Quantity {
        Quantity::from_f64(v).unwrap()
    }

    #[test]
    fn quantity_rounds_to_thousandths_and_prints_shortest() {
        assert_eq!(q(0.1).millis(), 100);
        assert_eq!(q(0.0005).millis(), 1);
        assert_eq!(q(0.0004).millis(), 0);
        assert_eq!(q(1.0).to_string(), "1");
        assert_eq!(q(0.5).to_string(), "0.5");
        assert_eq!(q(2.125).to_string(), "2.125");
        assert_eq!(q(128.05).to_string(), "128.05");
        assert!(Quantity::from_f64(-0.1).is_none());
        assert!(Quantity::from_f64(f64::NAN).is_none());
        assert!(Quantity::from_f64(f64::INFINITY).is_none());
        assert!(Quantity::from_f64(1e300).is_none());
        // Ten tenths are exactly one, unlike f64.
        let ten = (0..10).fold(Quantity::ZERO, |acc, _| acc.saturating_add(q(0.1)));
        assert_eq!(ten, q(1.0));
    }

    #[test]
    fn range_set_normalises() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(21, 29); // touches both: one range
        assert_eq!(s.ranges(), &[(10, 40)]);
        s.insert(50, 49); // empty: ignored
        s.insert(0, 5);
        s.insert(5, 9);
        assert_eq!(s.ranges(), &[(0, 40)]);
        s.insert(u64::MAX - 1, u64::MAX);
        s.insert(u64::MAX, u64::MAX);
        assert_eq!(s.ranges(), &[(0, 40), (u64::MAX - 1, u64::MAX)]);
        assert_eq!(
            s.to_string(),
            format!("[0-40, {}-{}]", u64::MAX - 1, u64::MAX)
        );
        assert!(s.contains(40) && !s.contains(41) && s.contains(u64::MAX));
        assert_eq!(s.count(), 43);
    }

    #[test]
    fn range_set_algebra() {
        let a: RangeSet = [(31000, 31010), (32000, 32000)].into_iter().collect();
        let b: RangeSet = [(31005, 31020)].into_iter().collect();
        assert_eq!(a.intersection(&b).ranges(), &[(31005, 31010)]);
        assert_eq!(a.difference(&b).ranges(), &[(31000, 31004), (32000, 32000)]);
        assert_eq!(b.difference(&a).ranges(), &[(31011, 31020)]);
        assert_eq!(a.union(&b).ranges(), &[(31000, 31020), (32000, 32000)]);
        assert!(RangeSet::range(31002, 31003).is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(a.overlaps(&b));
        let hole: RangeSet = [(0, 10)].into_iter().collect();
        let punch: RangeSet = [(2, 3), (5, 5), (9, 12)].into_iter().collect();
        assert_eq!(hole.difference(&punch).ranges(), &[(0, 1), (4, 4), (6, 8)]);
        let ports: Vec<u16> = [(65534, 70000)]
            .into_iter()
            .collect::<RangeSet>()
            .ports()
            .collect();
        assert_eq!(ports, vec![65534, 65535]);
        let from_ports: RangeSet = [8080u16, 8081, 9000].into_iter().collect();
        assert_eq!(from_ports.to_string(), "[8080-8081, 9000]");
    }

    #[test]
    fn parse_sums_and_checks() {
        let rs = vec![
            Resource::scalar("cpus", 0.5),
            Resource::scalar("cpus", 0.25),
            Resource::scalar("mem", 128.0),
            Resource::ranges("ports", [(31000, 31001)]),
            Resource::ranges("ports", [(31005, 31005)]),
            Resource::scalar("gpus", 1.0),
        ];
        let sum = Resources::parse(&rs).unwrap();
        assert_eq!(sum.cpus, q(0.75));
        assert_eq!(sum.mem, q(128.0));
        assert_eq!(sum.disk, Quantity::ZERO);
        assert_eq!(sum.gpus, q(1.0));
        assert_eq!(sum.ports.ranges(), &[(31000, 31001), (31005, 31005)]);
        assert_eq!(
            sum.to_string(),
            "cpus:0.75; mem:128; gpus:1; ports:[31000-31001, 31005]"
        );
        assert_eq!(Resources::parse(&sum.to_wire()).unwrap(), sum);

        let err = |rs: Vec<Resource>| Resources::parse(&rs).unwrap_err().to_string();
        assert_eq!(
            err(vec![Resource::scalar("fpgas", 1.0)]),
            "resource `fpgas` is not one berth offers (cpus, mem, disk, ports, gpus)"
        );
        assert_eq!(
            err(vec![Resource::scalar("ports", 1.0)]),
            "resource `ports` must be RANGES, not SCALAR"
        );
        let mut no_value = Resource::scalar("cpus", 1.0);
        no_value.scalar = None;
        assert_eq!(
            err(vec![no_value]),
            "SCALAR resource `cpus` has no `scalar` value"
        );
        assert_eq!(
            err(vec![Resource::scalar("mem", -1.0)]),
            "resource `mem` has invalid amount -1"
        );
        assert_eq!(
            err(vec![Resource::ranges("ports", [(10, 5)])]),
            "resource `ports` has invalid range 10-5 (begin after end)"
        );
        assert_eq!(
            err(vec![Resource::ranges("ports", [(65000, 65536)])]),
            "ports 65000-65536 are outside 0-65535"
        );
        assert_eq!(
            err(vec![Resource::ranges(
                "ports",
                [(8080, 8082), (8082, 8083)]
            )]),
            "ports [8082] are listed more than once"
        );
        assert_eq!(
            err(vec![Resource::scalar("gpus", 0.5)]),
            "gpus must be a whole number, not 0.5"
        );
    }

    #[test]
    fn fit_reports_each_shortfall() {
        let offer = Resources::parse(&[
            Resource::scalar("cpus", 1.5),
            Resource::scalar("mem", 1024.0),
            Resource::ranges("ports", [(31000, 31009)]),
        ])
        .unwrap();
        let small = Resources::parse(&[
            Resource::scalar("cpus", 1.5),
            Resource::ranges("ports", [(31000, 31000)]),
        ])
        .unwrap();
        assert!(small.fits_within(&offer));
        let left = offer.minus(&small);
        assert_eq!(left.cpus, Quantity::ZERO);
        assert_eq!(left.ports.ranges(), &[(31001, 31009)]);
        assert_eq!(left.plus(&small), offer);

        let big = Resources::parse(&[
            Resource::scalar("cpus", 2.0),
            Resource::scalar("mem", 512.0),
            Resource::scalar("gpus", 1.0),
            Resource::ranges("ports", [(31009, 31010), (8080, 8080)]),
        ])
        .unwrap();
        let short = big.fit(&offer).unwrap_err();
        assert_eq!(short.cpus, Some((q(2.0), q(1.5))));
        assert_eq!(short.mem, None);
        assert_eq!(
            short.to_string(),
            "cpus: needs 2, 1.5 available; gpus: needs 1, 0 available; ports [8080, 31010] not available"
        );
    }

    #[test]
    fn unit_conversions_round_in_the_safe_direction() {
        assert_eq!(cpus_to_cpu_units(q(1.0)), 1024);
        assert_eq!(cpus_to_cpu_units(q(0.1)), 103); // 102.4 up
        assert_eq!(cpus_to_cpu_units(q(0.25)), 256);
        assert_eq!(cpu_units_to_cpus(1024), q(1.0));
        assert_eq!(cpu_units_to_cpus(103), q(0.1)); // 0.10058 down
        assert_eq!(cpu_units_to_cpus(1), Quantity::ZERO);
        assert_eq!(cpu_units_to_cpus(-5), Quantity::ZERO);
        assert_eq!(mem_to_mib(q(128.0)), 128);
        assert_eq!(mem_to_mib(q(128.001)), 129);
        assert_eq!(mib_to_mem(256), q(256.0));
        assert_eq!(mib_to_mem(-1), Quantity::ZERO);
        assert_eq!(cpus_to_cpu_units(Quantity::from_millis(u64::MAX)), i64::MAX);
    }
}

//! Properties: RecordIO round-trips whatever the split, range sets agree with a set of
//! integers, resource arithmetic and unit conversions keep their promises.

use std::collections::BTreeSet;

use berth_mesos::recordio::{Decoder, frame};
use berth_mesos::resources::{cpu_units_to_cpus, cpus_to_cpu_units, mem_to_mib, mib_to_mem};
use berth_mesos::{Quantity, RangeSet, Resources};
use proptest::prelude::*;

const DOMAIN: u64 = 80;

fn range_list() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0..DOMAIN, 0..12u64), 0..8)
        .prop_map(|v| v.into_iter().map(|(b, len)| (b, b + len)).collect())
}

fn model(ranges: &[(u64, u64)]) -> BTreeSet<u64> {
    ranges.iter().flat_map(|&(b, e)| b..=e).collect()
}

fn values(set: &RangeSet) -> BTreeSet<u64> {
    model(set.ranges())
}

fn assert_normal(set: &RangeSet) {
    for w in set.ranges().windows(2) {
        assert!(w[0].1 + 1 < w[1].0, "not sorted, disjoint and apart: {set}");
    }
    for &(b, e) in set.ranges() {
        assert!(b <= e);
    }
}

proptest! {
    #[test]
    fn recordio_round_trips_any_split(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
        chunk in 1usize..64,
    ) {
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            got.extend(decoder.feed(piece).unwrap());
        }
        decoder.finish().unwrap();
        prop_assert_eq!(got, payloads);
    }

    #[test]
    fn recordio_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut decoder = Decoder::with_max_record_size(64);
        let _ = decoder.feed(&bytes);
        let _ = decoder.finish();
    }

    #[test]
    fn range_set_matches_a_set_of_integers(a in range_list(), b in range_list(), probe in 0..DOMAIN + 12) {
        let (sa, sb): (RangeSet, RangeSet) = (a.iter().copied().collect(), b.iter().copied().collect());
        let (ma, mb) = (model(&a), model(&b));
        assert_normal(&sa);
        prop_assert_eq!(values(&sa), ma.clone());
        prop_assert_eq!(sa.count(), ma.len() as u128);
        prop_assert_eq!(sa.contains(probe), ma.contains(&probe));

        let union = sa.union(&sb);
        let inter = sa.intersection(&sb);
        let diff = sa.difference(&sb);
        for s in [&union, &inter, &diff] {
            assert_normal(s);
        }
        prop_assert_eq!(values(&union), ma.union(&mb).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(values(&inter), ma.intersection(&mb).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(values(&diff), ma.difference(&mb).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(sa.is_subset(&sb), ma.is_subset(&mb));
        prop_assert_eq!(sa.overlaps(&sb), !ma.is_disjoint(&mb));
        // Taking what fits and giving it back restores the set.
        prop_assert_eq!(union.difference(&sa).union(&sa), union);
    }

    #[test]
    fn resources_minus_then_plus_restores_what_fit(
        have in (0u64..10_000, 0u64..100_000, range_list()),
        want in (0u64..10_000, 0u64..100_000, range_list()),
    ) {
        let make = |(cpus, mem, ports): (u64, u64, Vec<(u64, u64)>)| Resources {
            cpus: Quantity::from_millis(cpus),
            mem: Quantity::from_millis(mem),
            ports: ports.into_iter().collect(),
            ..Resources::default()
        };
        let (have, want) = (make(have), make(want));
        match want.fit(&have) {
            Ok(()) => {
                let left = have.minus(&want);
                prop_assert!(!left.ports.overlaps(&want.ports));
                prop_assert_eq!(left.plus(&want), have.clone());
            }
            Err(short) => {
                prop_assert!(!short.is_empty());
                prop_assert!(!want.fits_within(&have));
                prop_assert_eq!(short.ports.is_empty(), want.ports.is_subset(&have.ports));
            }
        }
        // Whatever parses back from the wire form is the same amount.
        prop_assert_eq!(Resources::parse(&have.to_wire()).unwrap(), have);
    }

    #[test]
    fn cpu_conversions_round_the_safe_way(units in 0i64..10_000_000, millis in 0u64..10_000_000) {
        // An offer never promises more than is free...
        prop_assert!(cpus_to_cpu_units(cpu_units_to_cpus(units)) <= units);
        // ...and a task never reserves less than it asked for.
        let cpus = Quantity::from_millis(millis);
        prop_assert!(cpu_units_to_cpus(cpus_to_cpu_units(cpus)) >= cpus);
        prop_assert!(cpus_to_cpu_units(cpus) as f64 >= cpus.as_f64() * 1024.0);
    }

    #[test]
    fn mem_conversions_round_the_safe_way(mib in 0i64..10_000_000, millis in 0u64..10_000_000_000) {
        prop_assert_eq!(mem_to_mib(mib_to_mem(mib)), mib);
        let mem = Quantity::from_millis(millis);
        prop_assert!(mib_to_mem(mem_to_mib(mem)) >= mem);
    }

    #[test]
    fn quantity_display_parses_back(millis in 0u64..1u64 << 50) {
        let q = Quantity::from_millis(millis);
        let text = q.to_string();
        prop_assert_eq!(Quantity::from_f64(text.parse().unwrap()), Some(q));
        prop_assert_eq!(Quantity::from_f64(q.as_f64()), Some(q));
    }
}

//! How long the state machine takes to apply placements, the serial part of every RunTask:
//! entries of 16 `PlaceTasks` commands (one task each, as concurrent RunTask calls produce),
//! each entry followed by publishing a snapshot and dropping the previous one, as the Raft
//! state machine does. The cluster keeps growing during the measurement, as it does under load.
//!
//! `cargo bench -p berth-state --bench apply -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_model::{Millis, Stamped};
use criterion::{Criterion, criterion_group, criterion_main};

use common::*;

const INSTANCES: u128 = 10;
const PER_ENTRY: usize = 16;

fn apply_entries(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(criterion::Throughput::Elements(PER_ENTRY as u64));
    g.bench_function("place_16_tasks_per_entry_and_publish", |b| {
        b.iter_custom(|entries| {
            let mut w = World::with_cluster("bench");
            for i in 1..=INSTANCES {
                w.ok(instance("bench", i).cpu(1 << 40).memory(1 << 40).build());
            }
            let mut published = w.state.clone();
            let mut index = w.index;
            let mut next_id: u128 = 1 << 64;
            let started = Instant::now();
            for _ in 0..entries {
                index += 1;
                for k in 0..PER_ENTRY {
                    next_id += 1;
                    let command = place(
                        "bench",
                        vec![task("bench", next_id, 1 + (k as u128 % INSTANCES))],
                    );
                    let stamped = Stamped {
                        at: Millis(EPOCH.0 + index as i64),
                        command: command.into(),
                        by: None,
                    };
                    black_box(w.state.apply(index, &stamped)).ok();
                }
                // Publish: readers get a copy that shares every node with the working state
                // (so the next entry's writes copy the paths they touch), and the previous
                // copy is dropped.
                let previous = std::mem::replace(&mut published, w.state.clone());
                drop(black_box(previous));
            }
            let elapsed = started.elapsed();
            drop(published);
            elapsed.max(Duration::from_nanos(1))
        })
    });
    g.finish();
}

criterion_group!(benches, apply_entries);
criterion_main!(benches);

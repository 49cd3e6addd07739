//! [`Sim::shrink`](super::Sim::shrink): the fewest faults that still make a scenario fail.
//!
//! A failing seed under many kinds of faults says little about which of them matter. The
//! shrinker turns the simulation's fault kinds off one at a time (the seeded crashes, the
//! partitions, the network's loss, duplication, reordering, jitter and bandwidth limit, the
//! disk's failing syncs, short writes, torn writes, capacity and latency) and keeps each
//! removal under which the scenario still fails, with the failing seed as it is then.
//!
//! Turning a fault off changes the PRNG's sequence of draws (a draw that is not made), so the
//! same seed does not replay the same run under the smaller configuration; the shrinker tries
//! the failing seed first and then a range of others, and keeps the first that fails. Each
//! removal is a greedy step of delta debugging over the fault kinds: the result is minimal in
//! that no single remaining kind can be turned off (within the seeds tried), not the smallest
//! such set.

use std::time::Duration;

use super::{Sim, SimFailure};
use crate::Io;

/// What [`Sim::shrink`](super::Sim::shrink) found: the simulation with the fewest fault kinds
/// under which the scenario still fails, a failure under it, and the fault kinds it removed.
#[derive(Debug)]
#[non_exhaustive]
pub struct Shrunk {
    /// The simulation with only the faults the failure needs (rerun `sim.with_seed(failure.seed)`
    /// ... or `Sim::try_run` on it with the failure's seed to reproduce).
    pub sim: Sim,
    /// A failure of the scenario under `sim`.
    pub failure: SimFailure,
    /// The fault kinds turned off, in the order they were.
    pub removed: Vec<&'static str>,
}

/// One fault kind: its name, whether `sim` has it, and `sim` without it.
struct Knob {
    name: &'static str,
    on: fn(&Sim) -> bool,
    off: fn(&mut Sim),
}

const KNOBS: &[Knob] = &[
    Knob {
        name: "crashes",
        on: |s| s.net.crashes.is_some(),
        off: |s| s.net.crashes = None,
    },
    Knob {
        name: "partitions",
        on: |s| s.net.partitions.is_some(),
        off: |s| s.net.partitions = None,
    },
    Knob {
        name: "loss",
        on: |s| s.net.loss > 0.0,
        off: |s| s.net.loss = 0.0,
    },
    Knob {
        name: "duplication",
        on: |s| s.net.duplicate > 0.0,
        off: |s| s.net.duplicate = 0.0,
    },
    Knob {
        name: "reordering",
        on: |s| s.net.reorder > 0.0,
        off: |s| s.net.reorder = 0.0,
    },
    Knob {
        name: "jitter",
        on: |s| s.net.latency.0 != s.net.latency.1,
        off: |s| s.net.latency.1 = s.net.latency.0,
    },
    Knob {
        name: "bandwidth",
        on: |s| s.net.bandwidth.is_some(),
        off: |s| s.net.bandwidth = None,
    },
    Knob {
        name: "failing syncs",
        on: |s| s.disk.failing_syncs > 0.0,
        off: |s| s.disk.failing_syncs = 0.0,
    },
    Knob {
        name: "short writes",
        on: |s| s.disk.short_writes > 0.0,
        off: |s| s.disk.short_writes = 0.0,
    },
    Knob {
        name: "torn writes",
        on: |s| s.disk.torn_writes,
        off: |s| s.disk.torn_writes = false,
    },
    Knob {
        name: "disk capacity",
        on: |s| s.disk.capacity.is_some(),
        off: |s| s.disk.capacity = None,
    },
    Knob {
        name: "disk latency",
        on: |s| {
            s.disk
                .latency
                .is_some_and(|(a, b)| a > Duration::ZERO || b > Duration::ZERO)
        },
        off: |s| s.disk.latency = None,
    },
];

/// The first failure of `scenario` under `sim`: with `first` as the seed, then each of
/// `seeds`.
fn fails(
    sim: &Sim,
    first: u64,
    seeds: std::ops::Range<u64>,
    scenario: &(dyn Fn(&Io) + Sync),
) -> Option<SimFailure> {
    if let Err(f) = sim.with_seed(first).try_run(scenario) {
        return Some(f);
    }
    sim.run_seeds(seeds, scenario).err()
}

pub(super) fn shrink(
    sim: &Sim,
    failure: SimFailure,
    seeds: std::ops::Range<u64>,
    scenario: &(dyn Fn(&Io) + Sync),
) -> Shrunk {
    let mut current = sim.with_seed(failure.seed);
    let mut failure = failure;
    let mut removed = Vec::new();
    for knob in KNOBS {
        if !(knob.on)(&current) {
            continue;
        }
        let mut candidate = current.clone();
        (knob.off)(&mut candidate);
        if let Some(f) = fails(&candidate, failure.seed, seeds.clone(), scenario) {
            current = candidate.with_seed(f.seed);
            failure = f;
            removed.push(knob.name);
        }
    }
    Shrunk {
        sim: current,
        failure,
        removed,
    }
}

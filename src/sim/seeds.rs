//! [`Sim::run_seeds`](super::Sim::run_seeds): one scenario under many seeds, on every core.
//!
//! Each thread takes the next seed from a shared counter and runs it as a whole simulation on
//! its own thread (a simulation needs nothing but the thread it runs on). A failure is kept if
//! its seed is the lowest failing one so far; seeds above it are not started any more, so the
//! search stops soon after a failure while the one it reports does not depend on which thread
//! was faster: it is the lowest failing seed of the range.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Sim, SimFailure};
use crate::Io;

/// What [`Sim::run_seeds`](super::Sim::run_seeds) did when every seed passed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SeedsReport {
    /// How many seeds ran (all of the range).
    pub seeds: u64,
    /// Real time the whole search took.
    pub wall: Duration,
    /// Simulated time, summed over the runs.
    pub simulated: Duration,
    /// Scheduling events, summed over the runs.
    pub events: u64,
}

pub(super) fn run(
    template: &Sim,
    seeds: Range<u64>,
    scenario: &(dyn Fn(&Io) + Sync),
) -> Result<SeedsReport, SimFailure> {
    let started = Instant::now();
    let next = AtomicU64::new(seeds.start);
    let lowest_failure: Mutex<Option<SimFailure>> = Mutex::new(None);
    let totals = Mutex::new((Duration::ZERO, 0u64));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(usize::try_from(seeds.end.saturating_sub(seeds.start)).unwrap_or(usize::MAX))
        .max(1);
    let failed_below = |seed: u64| {
        lowest_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|f| f.seed < seed)
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end || failed_below(seed) {
                    return;
                }
                match template.with_seed(seed).try_run(scenario) {
                    Ok(run) => {
                        let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                        t.0 += run.elapsed;
                        t.1 += run.log.len() as u64;
                    }
                    Err(failure) => {
                        let mut lowest = lowest_failure.lock().unwrap_or_else(|p| p.into_inner());
                        if lowest.as_ref().is_none_or(|f| failure.seed < f.seed) {
                            *lowest = Some(failure);
                        }
                    }
                }
            });
        }
    });
    if let Some(failure) = lowest_failure
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        return Err(failure);
    }
    let (simulated, events) = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(SeedsReport {
        seeds: seeds.end.saturating_sub(seeds.start),
        wall: started.elapsed(),
        simulated,
        events,
    })
}

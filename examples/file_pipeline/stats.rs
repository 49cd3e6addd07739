//! Counters the pipeline updates as it goes: what the progress bar and the summary show, and
//! the gauges that make back-pressure observable (files in flight and bytes buffered between
//! stages, with their peaks).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A level that goes up and down, with the highest value it reached.
#[derive(Default, Debug)]
pub struct Gauge {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Gauge {
    /// Adds `n` and updates the peak.
    pub fn add(&self, n: u64) {
        let now = self.now.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Subtracts `n`.
    pub fn sub(&self, n: u64) {
        self.now.fetch_sub(n, Ordering::Relaxed);
    }

    /// The highest level reached.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

/// Everything the pipeline counts. Shared by every stage and read by the progress bar.
#[derive(Default, Debug)]
pub struct Stats {
    /// Regular files (and symlinks) the walk found.
    pub files_found: AtomicU64,
    /// Files whose output is complete (renamed into place).
    pub files_done: AtomicU64,
    /// Entries that are neither files nor directories (FIFOs, sockets, devices), or symlinks
    /// to such: skipped.
    pub skipped: AtomicU64,
    /// Input bytes read.
    pub bytes_in: AtomicU64,
    /// Compressed bytes written.
    pub bytes_out: AtomicU64,
    /// Files opened and not yet finished or dropped.
    pub in_flight: Gauge,
    /// Bytes of file data (read blocks and compressed blocks) held between stages.
    pub buffered: Gauge,
}

impl Stats {
    /// Counts `n` of `counter`.
    pub fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One file in flight: counted in [`Stats::in_flight`] from the moment it is opened until this
/// token is dropped (its output committed, or the file abandoned on an error).
pub struct InFlight(Arc<Stats>);

impl InFlight {
    /// Counts one more file in flight.
    pub fn new(stats: &Arc<Stats>) -> InFlight {
        stats.in_flight.add(1);
        InFlight(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.sub(1);
    }
}

/// A block of file data between stages, counted in [`Stats::buffered`] while it exists.
pub struct Block {
    data: Vec<u8>,
    counted: u64,
    stats: Arc<Stats>,
}

impl Block {
    /// Counts `data` as buffered.
    pub fn new(data: Vec<u8>, stats: &Arc<Stats>) -> Block {
        let counted = data.len() as u64;
        stats.buffered.add(counted);
        Block {
            data,
            counted,
            stats: stats.clone(),
        }
    }

    /// The bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        self.stats.buffered.sub(self.counted);
    }
}

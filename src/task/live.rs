//! Counting live tasks for shutdown without a counter every worker writes.
//!
//! A single counter incremented by every spawn and decremented by every completion is one cache
//! line that every worker writes for every task. Instead each worker thread owns a shard of two
//! monotonic counts, `started` and `finished`, that only it writes (a plain load and store, no
//! read-modify-write); other threads (the caller of `run` on the thread models, elastic threads,
//! custom models' threads) share one more shard through `fetch_add`. A task counts as started on
//! its spawner's shard and as finished on the shard of the thread that ran it.
//!
//! Only shutdown reads them ([`LiveTasks::all_finished`]): it sums every `finished` first, then
//! every `started`, and reports no live task when the sums are equal. Why that is enough:
//!
//! 1. A finish it counted happened after its task's start (the task was handed from spawner to
//!    runner through a queue: release/acquire), and the reader loads `finished` with `Acquire`
//!    before it loads any `started`, so that start is counted too. Equal sums therefore mean
//!    every counted start has its finish counted.
//! 2. A task whose start it missed was spawned by a task that was still running when the
//!    `started` counts were read. Following spawners upwards ends at a task whose start was
//!    counted (the root's children are spawned before shutdown begins, by the thread that
//!    reads), and that task's finish follows its spawn, so it was not counted: the sums differ.
//!
//! Counts wrap; only their difference matters.

use crate::loom::sync::atomic::{fence, AtomicUsize, Ordering};

/// Task counts of one thread (or of every thread without a shard of its own). Cache-line sized,
/// so that workers never write the same line.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// Where a thread counts: a shard it owns (`Owned(i)`: no other thread writes it) or the
/// shared one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShardId {
    Owned(usize),
    Shared,
}

/// The shards of one runtime: one per worker thread, then the shared one.
pub(crate) struct LiveTasks {
    shards: Box<[Shard]>,
}

impl LiveTasks {
    /// Counts for a runtime whose `workers` threads own a shard each.
    pub(crate) fn new(workers: usize) -> LiveTasks {
        LiveTasks {
            shards: (0..=workers).map(|_| Shard::default()).collect(),
        }
    }

    /// Number of owned shards.
    pub(crate) fn workers(&self) -> usize {
        self.shards.len() - 1
    }

    /// Counts a spawn. `Owned(i)` only from the one thread that owns shard `i`.
    #[inline]
    pub(crate) fn started(&self, id: ShardId) {
        self.bump(id, |s| &s.started);
    }

    /// Counts a task that finished running (or was abandoned unrun). `Owned(i)` only from the
    /// one thread that owns shard `i`.
    #[inline]
    pub(crate) fn finished(&self, id: ShardId) {
        self.bump(id, |s| &s.finished);
    }

    #[inline]
    fn bump(&self, id: ShardId, count: impl Fn(&Shard) -> &AtomicUsize) {
        match id {
            ShardId::Owned(i) => {
                let c = count(&self.shards[i]);
                // Release: a reader that sees the new count sees what the task did before.
                c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
            }
            ShardId::Shared => {
                count(&self.shards[self.shards.len() - 1]).fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Whether every task counted as started has finished (see the module docs).
    pub(crate) fn all_finished(&self) -> bool {
        // Pairs with the caller's `SeqCst` store announcing shutdown: counts published before
        // that store by a finisher that then saw no shutdown are seen here.
        fence(Ordering::SeqCst);
        let finished = self.shards.iter().fold(0usize, |n, s| {
            n.wrapping_add(s.finished.load(Ordering::Acquire))
        });
        let started = self.shards.iter().fold(0usize, |n, s| {
            n.wrapping_add(s.started.load(Ordering::Acquire))
        });
        started == finished
    }

    /// Tasks started and not finished, roughly (a racy sum, for a task dump's count).
    pub(crate) fn live_estimate(&self) -> usize {
        let finished = self.shards.iter().fold(0usize, |n, s| {
            n.wrapping_add(s.finished.load(Ordering::Acquire))
        });
        let started = self.shards.iter().fold(0usize, |n, s| {
            n.wrapping_add(s.started.load(Ordering::Acquire))
        });
        started.wrapping_sub(finished).min(isize::MAX as usize)
    }
}

/// Loom models of the counting protocol: `RUSTFLAGS="--cfg loom" cargo test --lib loom_models`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::model::model;
    use crate::loom::sync::atomic::AtomicBool;
    use crate::loom::sync::Arc;
    use ::loom::thread;

    /// The reader (the shutdown) spawned a parent that runs on worker 0; the parent spawns a
    /// child, which worker 1 runs, and finishes. However the three interleave, the reader never
    /// reports "all finished" while the parent or the child is still live — the case a naive
    /// per-shard sum gets wrong (it can count the parent's finish and miss the child's start).
    /// Checked to fail when `all_finished` reads the `started` counts first.
    #[test]
    fn all_finished_is_never_seen_while_a_task_lives() {
        model(|| {
            let live = Arc::new(LiveTasks::new(2));
            let child_queued = Arc::new(AtomicBool::new(false));
            let child_done = Arc::new(AtomicBool::new(false));
            let parent_done = Arc::new(AtomicBool::new(false));
            // The reader spawns the parent from a thread without a shard of its own.
            live.started(ShardId::Shared);
            let w0 = {
                let (live, queued, done) =
                    (live.clone(), child_queued.clone(), parent_done.clone());
                thread::spawn(move || {
                    live.started(ShardId::Owned(0)); // the parent spawns the child
                    queued.store(true, Ordering::Release);
                    done.store(true, Ordering::SeqCst);
                    live.finished(ShardId::Owned(0)); // the parent finishes
                })
            };
            let w1 = {
                let (live, queued, done) = (live.clone(), child_queued.clone(), child_done.clone());
                thread::spawn(move || {
                    while !queued.load(Ordering::Acquire) {
                        thread::yield_now();
                    }
                    done.store(true, Ordering::SeqCst);
                    live.finished(ShardId::Owned(1)); // the child finishes
                })
            };
            // The reader looks once while the workers run, and once after.
            let reader = {
                let live = live.clone();
                thread::spawn(move || {
                    if live.all_finished() {
                        assert!(
                            parent_done.load(Ordering::SeqCst) && child_done.load(Ordering::SeqCst),
                            "reported all finished while a task was live"
                        );
                    }
                })
            };
            reader.join().unwrap();
            w0.join().unwrap();
            w1.join().unwrap();
            assert!(live.all_finished());
        });
    }
}

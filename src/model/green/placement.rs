//! Where fresh tasks start: keeping the workers' loads even.
//!
//! A started fiber never leaves its worker (see [`super::fiber`]), so where a task starts is
//! where it runs for life. Left to timing, tasks started in a burst — connections accepted
//! together — land on whichever worker happens to look first: measured with an HTTP server
//! under `wrk -c64`, the 64 connections split 64:0, 59:5 or 32:32 from one run to the next, and
//! throughput swung by 1.5× with the split. So placement follows the workers' loads, counted as
//! live fibers (a long-lived task is one more fiber for as long as it lives):
//!
//! - **Owner side.** A worker running more than [`SLACK`] fibers beyond the least loaded other
//!   worker does not start its own fresh tasks: it wakes that worker and leaves them on its
//!   deque for it to steal, for as long as it takes one every [`OFFER_WAIT`]. When it does not
//!   (it is busy, blocked in a call outside zsync, or its thread gets no CPU soon, so the tasks
//!   would wait there anyway), the offer expires and the owner starts its tasks itself until
//!   its deque has been emptied: an offer delays a burst by `OFFER_WAIT` at most.
//! - **Thief side.** A worker steals a fresh task only from a worker at least as loaded as
//!   itself (within `SLACK`), unless that worker's loop has not turned for [`STUCK_AFTER`]
//!   (it runs one long computation or is blocked outside zsync): every task then still starts
//!   somewhere, whatever the loads.
//!
//! Tasks a joiner runs inline never come here; a task spawned and joined at once stays on its
//! spawner's fiber. The live count is a proxy: a thousand idle keep-alive connections weigh as
//! much as a thousand busy ones. It costs one relaxed store per fiber start and finish.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

/// What a worker publishes of its load, written only by that worker (relaxed: a placement
/// decision on a stale figure is merely a little less even). Alone on its cache line (128
/// bytes: adjacent-line prefetch pairs lines), away from what wakers touch.
#[derive(Default)]
#[repr(align(128))]
pub(super) struct Load {
    /// Started, unfinished fibers.
    pub(super) live: AtomicUsize,
    /// Loop turns so far: a count that stands still means a stuck worker.
    pub(super) turns: AtomicU64,
}

/// Fibers a worker may run beyond another before it hands fresh tasks to it (and before that
/// worker stops stealing from it).
pub(super) const SLACK: usize = 1;

/// How long an offer stands without a steal before the owner starts its tasks itself: a few
/// kernel wake-ups of a sleeping worker (~40 µs each on this VM), short enough that a burst
/// nobody takes is not held up noticeably.
pub(super) const OFFER_WAIT: Duration = Duration::from_millis(1);

/// How long a worker's loop may stand still before the others steal its tasks whatever the
/// loads.
pub(super) const STUCK_AFTER: Duration = Duration::from_millis(1);

/// Where a worker stands in handing its fresh tasks to a less loaded one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// Nothing offered.
    None,
    /// Fresh tasks have been left since this instant for a worker whose load was then the
    /// second field; a steal since (its load grew) renews the offer.
    Standing(Instant, usize),
    /// The offer expired: the owner starts its queued tasks itself until its deque is empty.
    Expired,
}

/// What the owner of a non-empty deque should do with its fresh tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OwnTasks {
    /// Start one.
    Start,
    /// Leave them for another worker to steal.
    Leave,
    /// Leave them and wake worker `.0` (a new offer) to take them.
    Offer(usize),
}

/// One worker's placement state.
pub(super) struct Placement {
    offer: Cell<Offer>,
    /// Per other worker: the loop-turn count last seen and since when it has not moved.
    seen: RefCell<Vec<Option<(u64, Instant)>>>,
}

impl Placement {
    pub(super) fn new(workers: usize) -> Placement {
        Placement {
            offer: Cell::new(Offer::None),
            seen: RefCell::new(vec![None; workers]),
        }
    }

    /// Whether this worker's fresh tasks are offered to another worker right now.
    pub(super) fn offering(&self) -> bool {
        matches!(self.offer.get(), Offer::Standing(..))
    }

    /// The owner's deque is empty: the next burst starts afresh.
    pub(super) fn deque_empty(&self) {
        self.offer.set(Offer::None);
    }

    /// The owner's decision for its non-empty deque. `mine` is its live fibers; `lightest` is
    /// the least loaded other worker and its load, if there is another worker.
    pub(super) fn own_tasks(
        &self,
        mine: usize,
        lightest: Option<(usize, usize)>,
        now: impl FnOnce() -> Instant,
    ) -> OwnTasks {
        let Some((worker, load)) = lightest else {
            return OwnTasks::Start;
        };
        match self.offer.get() {
            Offer::Expired => OwnTasks::Start,
            _ if mine <= load + SLACK => OwnTasks::Start,
            Offer::None => {
                self.offer.set(Offer::Standing(now(), load));
                OwnTasks::Offer(worker)
            }
            Offer::Standing(_, then) if load > then => {
                // It is taking them: the offer stands on.
                self.offer.set(Offer::Standing(now(), load));
                OwnTasks::Leave
            }
            Offer::Standing(since, _) => {
                if now().saturating_duration_since(since) < OFFER_WAIT {
                    OwnTasks::Leave
                } else {
                    self.offer.set(Offer::Expired);
                    OwnTasks::Start
                }
            }
        }
    }

    /// Whether to steal from worker `victim`, which has fresh tasks queued, carries `theirs`
    /// live fibers and has turned its loop `turns` times; `mine` is this worker's load.
    pub(super) fn may_steal(
        &self,
        victim: usize,
        mine: usize,
        theirs: usize,
        turns: u64,
        now: impl FnOnce() -> Instant,
    ) -> bool {
        if mine <= theirs + SLACK {
            return true;
        }
        let mut seen = self.seen.borrow_mut();
        match seen[victim] {
            Some((t, since)) if t == turns => now().saturating_duration_since(since) >= STUCK_AFTER,
            _ => {
                seen[victim] = Some((turns, now()));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_or_balanced_worker_starts_its_own_tasks() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        assert_eq!(p.own_tasks(5, None, || t0), OwnTasks::Start);
        assert_eq!(p.own_tasks(3, Some((1, 2)), || t0), OwnTasks::Start);
    }

    #[test]
    fn an_offer_stands_while_the_other_worker_takes_tasks_then_expires() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_micros(n * 1000);
        assert_eq!(p.own_tasks(4, Some((1, 0)), || t0), OwnTasks::Offer(1));
        assert_eq!(p.own_tasks(4, Some((1, 0)), || ms(0)), OwnTasks::Leave);
        // A steal renews the offer: 0.9 ms later still standing, then 0.9 ms more.
        assert_eq!(
            p.own_tasks(4, Some((1, 1)), || ms(0) + OFFER_WAIT / 2),
            OwnTasks::Leave
        );
        assert_eq!(p.own_tasks(4, Some((1, 1)), || ms(1)), OwnTasks::Leave);
        // No steal for a whole wait: this worker starts them, for the rest of the burst.
        assert_eq!(p.own_tasks(4, Some((1, 1)), || ms(3)), OwnTasks::Start);
        assert_eq!(p.own_tasks(9, Some((1, 1)), || ms(3)), OwnTasks::Start);
        p.deque_empty();
        assert_eq!(p.own_tasks(9, Some((1, 1)), || ms(4)), OwnTasks::Offer(1));
    }

    #[test]
    fn an_offer_ends_when_the_loads_even_out() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        assert_eq!(p.own_tasks(4, Some((1, 0)), || t0), OwnTasks::Offer(1));
        assert_eq!(p.own_tasks(4, Some((1, 3)), || t0), OwnTasks::Start);
    }

    #[test]
    fn a_heavier_thief_steals_only_from_a_stuck_worker() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        // Lighter or within the slack: steal.
        assert!(p.may_steal(1, 3, 2, 7, || t0));
        // Heavier: not while the victim's loop turns…
        assert!(!p.may_steal(1, 5, 1, 7, || t0));
        assert!(!p.may_steal(1, 5, 1, 8, || t0 + STUCK_AFTER));
        // …but once it has stood still for `STUCK_AFTER`.
        assert!(!p.may_steal(1, 5, 1, 8, || t0 + STUCK_AFTER + STUCK_AFTER / 2));
        assert!(p.may_steal(1, 5, 1, 8, || t0 + STUCK_AFTER * 2));
    }
}

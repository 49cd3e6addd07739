//! Where fresh tasks start: keeping the workers' loads even.
//!
//! A started fiber never leaves its worker (see [`super::fiber`]), so where a task starts is
//! where it runs for life. Left to timing, tasks started in a burst — connections accepted
//! together — land on whichever worker happens to look first: an HTTP server's connections split
//! anywhere from all-on-one to even from one run to the next, and its throughput swung with the
//! split (figures in docs/ARCHITECTURE.md, "Measurements behind the tuning"). So placement follows the workers' loads, counted as
//! live fibers (a long-lived task is one more fiber for as long as it lives):
//!
//! - **Owner side.** A worker running more than [`SLACK`] fibers beyond the least loaded other
//!   worker does not start its own fresh tasks: it wakes that worker and leaves them on its
//!   deque for it to steal. The offer stands for as long as that worker keeps taking them, and
//!   for as long as its loop has not turned: a worker whose thread waits for a CPU does not
//!   turn its loop, and it takes the tasks once it runs. The offer *expires* — the owner then
//!   starts its tasks itself until its deque has been emptied — when that worker turned its
//!   loop twice without taking one (it is busy with other work). While that worker is
//!   [stuck](#stuck-workers), the owner starts its tasks itself but the offer stands: a worker
//!   held up only briefly gets the rest of the burst once its loop turns again.
//! - **Thief side.** A worker steals a fresh task only from a worker at least as loaded as
//!   itself (within `SLACK`), unless that worker is stuck: every task then still starts
//!   somewhere, whatever the loads.
//!
//! # Stuck workers
//!
//! A worker is stuck when its loop does not turn although its thread could run it: the thread
//! is blocked in the kernel outside the worker's reactor (a blocking call that is not zsync's)
//! or it computes (one fiber runs a long computation without yielding). A worker whose thread
//! merely waits for a CPU on a loaded machine is *not* stuck: it will look at the queues as soon
//! as it runs, and treating it as stuck would place a whole burst on whichever worker happened
//! to have a CPU (the offer used to expire after a fixed time without a steal, and with CPU hogs
//! on the cores bursts landed almost all on one worker; see docs/ARCHITECTURE.md, "Measurements behind the tuning"). So the decision rests on what the
//! thread does, not on how long it took:
//!
//! 1. a look that finds the other worker's published loop-turn count changed since the last
//!    look records it and the time (the count *stands still* from then on);
//! 2. a look at least [`LOOK_AGAIN`] later that finds the count unchanged examines the thread
//!    (its state in `/proc/self/task/<tid>/stat` and its CPU clock; at most once per
//!    `LOOK_AGAIN`): blocked outside its reactor → stuck; runnable → its CPU time is noted, and
//!    a later examination that finds it grown by [`STUCK_CPU`] (CPU time the thread used
//!    without turning its loop once, which waiting for a CPU does not accumulate) → stuck;
//!    asleep in its own reactor → idle, not stuck (a wake-up or its own timeout turns its loop);
//! 3. where the thread cannot be examined (no `/proc`, or the thread has gone), only a
//!    standstill of [`STALL_LIMIT`] counts as stuck;
//! 4. a worker that has not begun its loop (a turn count of 0: its thread is starting, building
//!    its ring) is never stuck.
//!
//! The verdict holds until the count moves. Wall-clock time only spaces the looks: load can
//! delay a decision, never cause one.
//!
//! Tasks a joiner runs inline never come here; a task spawned and joined at once stays on its
//! spawner's fiber. The live count is a proxy: a thousand idle keep-alive connections weigh as
//! much as a thousand busy ones. It costs one relaxed store per fiber start and finish, and a
//! release store of the turn count per loop turn.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

/// What a worker publishes of its load, written only by that worker (`live` relaxed: a
/// placement decision on a stale figure is merely a little less even; `turns` with release
/// ordering, so that a reader who sees a turn count also sees the loads published before it).
/// Alone on its cache line (128 bytes: adjacent-line prefetch pairs lines), away from what
/// wakers touch.
#[derive(Default)]
#[repr(align(128))]
pub(super) struct Load {
    /// Started, unfinished fibers.
    pub(super) live: AtomicUsize,
    /// Loop turns so far: a count that stands still means a worker that waits for a CPU, is
    /// blocked, or computes (see [stuck workers](self#stuck-workers)).
    pub(super) turns: AtomicU64,
    /// The kernel's id of the worker's thread (`gettid`), set once when the worker is built on
    /// its thread; 0 before. Where a standing-still worker's thread is examined.
    pub(super) tid: AtomicI32,
}

/// Fibers a worker may run beyond another before it hands fresh tasks to it (and before that
/// worker stops stealing from it).
pub(super) const SLACK: usize = 1;

/// How long a loop-turn count must stand still before the worker's thread is examined, and how
/// often a worker that leaves queued tasks alone looks again. It paces the looks only; what is
/// decided rests on what the thread does (see [stuck workers](self#stuck-workers)).
pub(super) const LOOK_AGAIN: Duration = Duration::from_millis(1);

/// CPU time a worker's thread may use without turning its loop before it counts as stuck (one
/// fiber computing without yielding). CPU time, not elapsed time: a thread waiting for a CPU
/// does not accumulate it.
pub(super) const STUCK_CPU: Duration = Duration::from_millis(1);

/// Where a worker's thread cannot be examined: how long its loop must stand still before it
/// counts as stuck. Long, so that a thread that merely waits for a CPU on a loaded machine is
/// rarely taken for a stuck one.
pub(super) const STALL_LIMIT: Duration = Duration::from_millis(100);

/// What examining the thread of a worker whose loop stands still finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Activity {
    /// Asleep in its own reactor: idle; a wake-up or its timeout turns its loop.
    Idle,
    /// Blocked in the kernel outside its reactor (a blocking call that is not zsync's).
    Blocked,
    /// Running or waiting for a CPU; its thread's CPU time so far.
    Runnable(Duration),
    /// Not known: no `/proc`, or the thread has gone.
    Unknown,
}

/// Examines the thread `tid` of a worker whose loop stands still; `in_reactor` is whether that
/// worker has announced a sleep in its reactor.
pub(super) fn examine(tid: i32, in_reactor: bool) -> Activity {
    if tid == 0 {
        return Activity::Unknown;
    }
    match crate::stall::threads::state(tid) {
        Some(b'R') => cpu_time(tid).map_or(Activity::Unknown, Activity::Runnable),
        Some(_) if in_reactor => Activity::Idle,
        // Sleeping, in uninterruptible sleep (disk, page fault), stopped, traced, paging.
        Some(b'S' | b'D' | b'T' | b't' | b'W') => Activity::Blocked,
        _ => Activity::Unknown,
    }
}

/// The CPU time used so far by thread `tid` of this process.
fn cpu_time(tid: i32) -> Option<Duration> {
    // The kernel's clock id for a thread's CPU time (`MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`,
    // what glibc's `pthread_getcpuclockid` returns); refused for a thread of another process.
    let clock: libc::clockid_t = (!tid << 3) | 6;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` it is given, which lives on this frame;
    // an unknown or stale clock id is an error (EINVAL), not undefined behaviour.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    ))
}

/// Another worker as a placement decision sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Other {
    /// Its index.
    pub(super) index: usize,
    /// Its live fibers ([`Load::live`]).
    pub(super) live: usize,
    /// Its loop turns ([`Load::turns`]), read before `live`.
    pub(super) turns: u64,
}

/// Where a worker stands in handing its fresh tasks to a less loaded one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// Nothing offered.
    None,
    /// Fresh tasks are left for worker `to`, whose loop-turn count and load were `turns` and
    /// `live` when the offer was made or last renewed (by a steal: its load grew).
    Standing { to: usize, turns: u64, live: usize },
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

/// What this worker has seen of another worker's loop since its turn count last moved.
#[derive(Clone, Copy, Debug)]
struct Watch {
    /// The turn count.
    turns: u64,
    /// When this worker first saw that count.
    since: Instant,
    /// When the thread was last examined during this standstill.
    examined: Option<Instant>,
    /// The thread's CPU time at the first examination that found it runnable.
    cpu: Option<Duration>,
    /// The verdict, once the worker has been found stuck (until its count moves).
    stuck: bool,
}

/// One worker's placement state.
pub(super) struct Placement {
    offer: Cell<Offer>,
    /// Per other worker, what this worker has seen of its loop.
    watch: RefCell<Vec<Option<Watch>>>,
}

impl Placement {
    pub(super) fn new(workers: usize) -> Placement {
        Placement {
            offer: Cell::new(Offer::None),
            watch: RefCell::new(vec![None; workers]),
        }
    }

    /// Whether this worker's fresh tasks are offered to another worker right now.
    pub(super) fn offering(&self) -> bool {
        matches!(self.offer.get(), Offer::Standing { .. })
    }

    /// The owner's deque is empty: the next burst starts afresh.
    pub(super) fn deque_empty(&self) {
        self.offer.set(Offer::None);
    }

    /// The owner's decision for its non-empty deque. `mine` is its live fibers; `lightest` is
    /// the least loaded other worker, if there is another worker. `now` reads the clock and
    /// `examine` examines a worker's thread, both only when needed.
    pub(super) fn own_tasks(
        &self,
        mine: usize,
        lightest: Option<Other>,
        now: impl FnOnce() -> Instant,
        examine: impl FnOnce(usize) -> Activity,
    ) -> OwnTasks {
        let Some(target) = lightest else {
            return OwnTasks::Start;
        };
        match self.offer.get() {
            Offer::Expired => OwnTasks::Start,
            _ if mine <= target.live + SLACK => {
                // Even: a later imbalance makes a fresh offer (measured from then, not from
                // this one's turn count).
                self.offer.set(Offer::None);
                OwnTasks::Start
            }
            Offer::Standing { to, turns, live } if to == target.index => {
                if target.live > live {
                    // It is taking them: the offer stands on.
                    self.stand(target);
                    OwnTasks::Leave
                } else if target.turns >= turns + 2 {
                    // It went through a whole loop turn without taking one: busy with other
                    // work, for the rest of this burst.
                    self.offer.set(Offer::Expired);
                    OwnTasks::Start
                } else if self.stuck(target, now, examine) {
                    // Its loop does not turn although its thread could run it: this task
                    // starts here, and so does every next one while the verdict holds; the
                    // offer stands, so a worker that was only held up briefly (a page fault or
                    // a kernel lock on a loaded machine look the same for a moment) gets the
                    // rest of the burst once its loop turns again.
                    OwnTasks::Start
                } else {
                    // Not looked yet: asleep and woken, or waiting for a CPU.
                    OwnTasks::Leave
                }
            }
            _ => {
                self.stand(target);
                OwnTasks::Offer(target.index)
            }
        }
    }

    /// Makes (or renews) the offer to `target`.
    fn stand(&self, target: Other) {
        self.offer.set(Offer::Standing {
            to: target.index,
            turns: target.turns,
            live: target.live,
        });
    }

    /// Whether to steal from `victim`, which has fresh tasks queued; `mine` is this worker's
    /// load. `now` reads the clock and `examine` examines the victim's thread, both only when
    /// needed.
    pub(super) fn may_steal(
        &self,
        mine: usize,
        victim: Other,
        now: impl FnOnce() -> Instant,
        examine: impl FnOnce(usize) -> Activity,
    ) -> bool {
        mine <= victim.live + SLACK || self.stuck(victim, now, examine)
    }

    /// Whether `other` is stuck (see [stuck workers](self#stuck-workers)), as far as this look
    /// and the earlier ones tell.
    fn stuck(
        &self,
        other: Other,
        now: impl FnOnce() -> Instant,
        examine: impl FnOnce(usize) -> Activity,
    ) -> bool {
        if other.turns == 0 {
            // It has not begun its loop: a worker still starting up (its thread, its ring),
            // which looks at the queues as soon as it runs.
            return false;
        }
        let mut watch = self.watch.borrow_mut();
        let slot = &mut watch[other.index];
        let w = match slot {
            Some(w) if w.turns == other.turns => w,
            _ => {
                *slot = Some(Watch {
                    turns: other.turns,
                    since: now(),
                    examined: None,
                    cpu: None,
                    stuck: false,
                });
                return false;
            }
        };
        if w.stuck {
            return true;
        }
        let now = now();
        let stood = now.saturating_duration_since(w.since);
        let recently = |t: Instant| now.saturating_duration_since(t) < LOOK_AGAIN;
        if stood < LOOK_AGAIN || w.examined.is_some_and(recently) {
            return false;
        }
        w.examined = Some(now);
        w.stuck = match examine(other.index) {
            Activity::Blocked => true,
            Activity::Runnable(cpu) => match w.cpu {
                Some(first) => cpu.saturating_sub(first) >= STUCK_CPU,
                None => {
                    w.cpu = Some(cpu);
                    false
                }
            },
            Activity::Idle => false,
            Activity::Unknown => stood >= STALL_LIMIT,
        };
        w.stuck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worker 1 with `live` fibers and `turns` loop turns.
    fn w1(live: usize, turns: u64) -> Other {
        Other {
            index: 1,
            live,
            turns,
        }
    }

    /// An examination that must not happen.
    fn unexamined(_: usize) -> Activity {
        panic!("examined a worker whose loop turns")
    }

    /// `t0` plus `ms` milliseconds.
    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_lone_or_balanced_worker_starts_its_own_tasks() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        assert_eq!(p.own_tasks(5, None, || t0, unexamined), OwnTasks::Start);
        assert_eq!(
            p.own_tasks(3, Some(w1(2, 0)), || t0, unexamined),
            OwnTasks::Start
        );
    }

    /// The bug a loaded machine showed: the offer expired after 1 ms without a steal, while the
    /// other worker only waited for a CPU, and the owner started the whole burst.
    #[test]
    fn an_offer_to_a_worker_that_waits_for_a_cpu_stands_however_long() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        let waiting = |_| Activity::Runnable(Duration::from_millis(7));
        assert_eq!(
            p.own_tasks(4, Some(w1(0, 3)), || t0, waiting),
            OwnTasks::Offer(1)
        );
        for ms in [0, 1, 2, 5, 50, 1000, 60_000] {
            assert_eq!(
                p.own_tasks(4, Some(w1(0, 3)), || at(t0, ms), waiting),
                OwnTasks::Leave,
                "{ms} ms"
            );
        }
        // Once it runs it takes them (its load grows), and the offer stands on.
        assert_eq!(
            p.own_tasks(4, Some(w1(1, 4)), || at(t0, 60_001), waiting),
            OwnTasks::Leave
        );
        assert_eq!(
            p.own_tasks(4, Some(w1(2, 5)), || at(t0, 60_001), waiting),
            OwnTasks::Leave
        );
        assert_eq!(
            p.own_tasks(4, Some(w1(3, 5)), || at(t0, 60_001), waiting),
            OwnTasks::Start
        );
    }

    #[test]
    fn an_offer_expires_when_the_other_worker_turns_its_loop_without_taking_one() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        assert_eq!(
            p.own_tasks(4, Some(w1(0, 10)), || t0, unexamined),
            OwnTasks::Offer(1)
        );
        // One turn: it may be in the turn that looks.
        assert_eq!(
            p.own_tasks(4, Some(w1(0, 11)), || t0, unexamined),
            OwnTasks::Leave
        );
        // A second one without a steal: busy elsewhere; this worker starts them, for the
        // rest of the burst, however the loads then look.
        assert_eq!(
            p.own_tasks(4, Some(w1(0, 12)), || t0, unexamined),
            OwnTasks::Start
        );
        assert_eq!(
            p.own_tasks(9, Some(w1(0, 12)), || t0, unexamined),
            OwnTasks::Start
        );
        p.deque_empty();
        assert_eq!(
            p.own_tasks(9, Some(w1(0, 12)), || t0, unexamined),
            OwnTasks::Offer(1)
        );
    }

    #[test]
    fn the_owner_starts_its_tasks_while_the_other_worker_is_stuck_and_offers_again_after() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        let blocked = |_| Activity::Blocked;
        let own = |mine, w: Other, ms, examine: fn(usize) -> Activity| {
            p.own_tasks(mine, Some(w), || at(t0, ms), examine)
        };
        assert_eq!(own(4, w1(0, 10), 0, blocked), OwnTasks::Offer(1));
        // The first look records the standstill; the thread is examined a `LOOK_AGAIN` later.
        assert_eq!(own(4, w1(0, 10), 0, unexamined), OwnTasks::Leave);
        assert_eq!(own(4, w1(0, 10), 1, blocked), OwnTasks::Start);
        // The verdict holds while its loop stands still: no new examination.
        assert_eq!(own(5, w1(0, 10), 1, unexamined), OwnTasks::Start);
        // It turns again (it was only held up): the offer still stands, and it takes tasks.
        assert_eq!(own(6, w1(0, 11), 2, unexamined), OwnTasks::Leave);
        assert_eq!(own(6, w1(1, 11), 2, unexamined), OwnTasks::Leave);
    }

    /// What a loaded run showed once (64:0): a worker still starting up, its thread blocked
    /// in the kernel for a moment, must not be taken for stuck.
    #[test]
    fn a_worker_that_has_not_begun_its_loop_is_never_stuck() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        let blocked = |_| Activity::Blocked;
        assert_eq!(
            p.own_tasks(4, Some(w1(0, 0)), || t0, blocked),
            OwnTasks::Offer(1)
        );
        for ms in [0, 1, 2, 50, 500] {
            let later = || at(t0, ms);
            assert_eq!(
                p.own_tasks(4, Some(w1(0, 0)), later, blocked),
                OwnTasks::Leave
            );
            assert!(!p.may_steal(5, w1(1, 0), later, blocked));
        }
    }

    #[test]
    fn an_offer_ends_when_the_loads_even_out() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        assert_eq!(
            p.own_tasks(4, Some(w1(0, 0)), || t0, unexamined),
            OwnTasks::Offer(1)
        );
        assert_eq!(
            p.own_tasks(4, Some(w1(3, 1)), || t0, unexamined),
            OwnTasks::Start
        );
    }

    #[test]
    fn a_new_imbalance_after_the_loads_evened_out_makes_a_fresh_offer() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        assert_eq!(
            p.own_tasks(4, Some(w1(0, 10)), || t0, unexamined),
            OwnTasks::Offer(1)
        );
        assert_eq!(
            p.own_tasks(4, Some(w1(3, 11)), || t0, unexamined),
            OwnTasks::Start
        );
        // Much later this worker is ahead again: a new offer, not an expired old one.
        assert_eq!(
            p.own_tasks(9, Some(w1(3, 90)), || t0, unexamined),
            OwnTasks::Offer(1)
        );
    }

    #[test]
    fn a_heavier_thief_never_steals_from_a_worker_that_waits_for_a_cpu() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        // Lighter or within the slack: steal.
        assert!(p.may_steal(3, w1(2, 7), || t0, unexamined));
        // Heavier: not from a worker whose thread waits for a CPU, however long; its CPU time
        // does not grow.
        let waiting = |_| Activity::Runnable(Duration::from_secs(3));
        for ms in [0, 1, 2, 3, 100, 10_000] {
            assert!(!p.may_steal(5, w1(1, 7), || at(t0, ms), waiting), "{ms} ms");
        }
        // Nor from one asleep in its reactor.
        assert!(!p.may_steal(5, w1(1, 7), || at(t0, 20_000), |_| Activity::Idle));
    }

    #[test]
    fn a_heavier_thief_steals_from_a_worker_blocked_outside_its_reactor() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        assert!(!p.may_steal(5, w1(1, 7), || t0, unexamined));
        // Not examined before the count has stood still for `LOOK_AGAIN`.
        assert!(!p.may_steal(5, w1(1, 7), || t0 + LOOK_AGAIN / 2, unexamined));
        assert!(p.may_steal(5, w1(1, 7), || t0 + LOOK_AGAIN, |_| Activity::Blocked));
        // The verdict holds (no new examination) until its loop turns.
        assert!(p.may_steal(5, w1(1, 7), || t0 + LOOK_AGAIN, unexamined));
        assert!(!p.may_steal(5, w1(1, 8), || at(t0, 5), unexamined));
    }

    #[test]
    fn a_heavier_thief_steals_from_a_worker_that_computes_without_turning_its_loop() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        let cpu = |ms: u64| move |_| Activity::Runnable(Duration::from_millis(100 + ms));
        assert!(!p.may_steal(5, w1(1, 7), || t0, unexamined));
        // First examination: CPU time noted.
        assert!(!p.may_steal(5, w1(1, 7), || at(t0, 1), cpu(0)));
        // Examined at most once per `LOOK_AGAIN`.
        assert!(!p.may_steal(5, w1(1, 7), || at(t0, 1), unexamined));
        // Less than `STUCK_CPU` used since: not yet (it got little of the CPU meanwhile).
        assert!(!p.may_steal(5, w1(1, 7), || at(t0, 2), cpu(0)));
        assert!(p.may_steal(5, w1(1, 7), || at(t0, 9), cpu(1)));
    }

    #[test]
    fn without_proc_only_a_long_standstill_counts_as_stuck() {
        let p = Placement::new(2);
        let t0 = Instant::now();
        let unknown = |_| Activity::Unknown;
        assert!(!p.may_steal(5, w1(1, 7), || t0, unknown));
        assert!(!p.may_steal(5, w1(1, 7), || at(t0, 50), unknown));
        assert!(p.may_steal(5, w1(1, 7), || t0 + STALL_LIMIT, unknown));
    }

    /// The examination reads real threads: this one runs (its CPU time grows while it
    /// computes), and a thread parked in a channel receive is blocked.
    #[test]
    fn examine_tells_a_computing_thread_from_a_blocked_one() {
        let me = rustix::thread::gettid().as_raw_nonzero().get();
        let before = match examine(me, false) {
            Activity::Runnable(cpu) => cpu,
            other => panic!("this thread examined as {other:?}"),
        };
        let start = cpu_time(me).unwrap();
        while cpu_time(me).unwrap() - start < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        match examine(me, false) {
            Activity::Runnable(cpu) => assert!(cpu >= before + Duration::from_millis(2)),
            other => panic!("this thread examined as {other:?}"),
        }

        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || {
            tid_tx
                .send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            go_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        // It blocks in `recv` soon after sending (no timing assumed: wait until it does).
        let deadline = Instant::now() + Duration::from_secs(30);
        while examine(tid, false) != Activity::Blocked {
            assert!(Instant::now() < deadline, "the parked thread never blocked");
            std::thread::yield_now();
        }
        assert_eq!(examine(tid, true), Activity::Idle);
        go_tx.send(()).unwrap();
        parked.join().unwrap();
        // Gone: not known. A joined thread may still be listed in `/proc` for a moment (the
        // join returns when the kernel clears its tid, before the task is unlisted; longer on a
        // loaded machine): wait for that, boundedly.
        let deadline = Instant::now() + Duration::from_secs(10);
        while examine(tid, false) != Activity::Unknown {
            assert!(
                Instant::now() < deadline,
                "a joined thread is still examined"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(examine(0, false), Activity::Unknown);
    }
}

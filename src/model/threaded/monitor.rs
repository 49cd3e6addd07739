//! The monitor: rescues a Threaded pool whose every worker is blocked while spawned tasks wait.
//!
//! [`Io::spawn`](crate::Io::spawn) promises no concurrency (Zig's `io.async`): a spawned task may
//! wait in the queue until a worker is free. A program that spawns N tasks that wait for an
//! (N+1)th, or a task per connection that blocks in a handshake, can block every worker on a
//! task that waits for a queued one, and would hang without a word. The monitor turns that into
//! progress and a one-time diagnostic, the way Go's `sysmon` retakes a processor from a thread
//! blocked in a system call:
//!
//! 1. Every *runner* (a pool worker, or a rescue worker started in step 3) publishes how many
//!    tasks it has started and the spawn site of the current one (two relaxed stores per task,
//!    on a cache line of its own), and its thread announces every blocking wait
//!    ([`WaitWatch`]: a relaxed store each way around `park`, the `POLLING` state `ppoll`
//!    already has).
//! 2. The monitor thread (started by the pool's first spawn) samples every runner each
//!    [`PERIOD`] while any worker is out of its idle sleep. The pool is *stuck* when tasks are
//!    queued and every runner was blocked in a wait at two samples in a row and started no task
//!    in between (a worker that serves one long connection counts as stuck: it is not free for
//!    the queue, however many reads it completes).
//! 3. Then the monitor takes the queued tasks out (up to [`SURVEY`]), drops the entries whose
//!    closure task its joiner already ran inline (never a future task's: a woken future task
//!    counts as started, and its entry is the poll that wake asked for), puts the others back
//!    on the injector, prints the
//!    diagnostic once per run (the waiting and the blocked tasks' spawn sites, and a pointer to
//!    `io.concurrent`), and starts one rescue worker on an elastic thread of its own pool
//!    (`zsync-rescue`, at most `max_concurrent_threads` at once, idle ones reused and then
//!    retired like `concurrent`'s). A rescue worker runs queued tasks as a worker does until it
//!    finds none, then returns its thread. If it blocks too, the pool is stuck again two samples
//!    later and another one starts.
//! 4. When every worker sleeps for lack of work the monitor parks, and the first worker to wake
//!    unparks it ([`MonitorThread`], shared with Green's monitor): a worker decrements the
//!    sleepers' `idle` and then unparks it.
//!
//! Timing decides only *when* a stuck pool gets a rescue worker, never whether a task runs or
//! runs twice: rescue workers take tasks from the same queues as the workers, and a task runs at
//! most once (its cell's claim). The monitor and every rescue thread are joined by
//! [`Pool::shutdown`](super::Pool::shutdown).

use std::cell::Cell;
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::checkdead::{self, Verdict, RECHECK_MAX, RECHECK_MIN};
use super::Shared;
use crate::model::elastic::{Elastic, Job};
use crate::park::WaitWatch;
use crate::stall::monitor_thread::{MonitorThread, Woke};
use crate::task::Runnable;

/// How often the monitor samples the runners while the pool is busy. A pool is rescued after
/// one to two periods stuck.
pub(super) const PERIOD: Duration = Duration::from_millis(10);

/// At most this many queued tasks are taken out to be looked at per rescue.
const SURVEY: usize = 1024;

/// At most this many distinct spawn sites are listed per line of the diagnostic.
const LISTED: usize = 8;

/// What one runner publishes for the monitor. On a cache line of its own: its worker writes it
/// for every task.
#[repr(align(128))]
pub(super) struct Runner {
    /// Tasks started. Written by the runner only (relaxed), read by the monitor.
    started: AtomicUsize,
    /// The spawn site of the task started last (null before the first). Written by the runner,
    /// read by the monitor's report.
    task: AtomicPtr<Location<'static>>,
    /// The waits of the runner's thread, set when the runner starts on it.
    waits: OnceLock<WaitWatch>,
    /// Odd while the worker sleeps for lack of work; every change adds one. For the deadlock
    /// check (`checkdead.rs`). Written by the worker only, on its idle path.
    sleep: AtomicU64,
}

impl Runner {
    fn new() -> Runner {
        Runner {
            started: AtomicUsize::new(0),
            task: AtomicPtr::new(std::ptr::null_mut()),
            waits: OnceLock::new(),
            sleep: AtomicU64::new(0),
        }
    }

    /// The waits of the runner's thread, once bound.
    pub(super) fn waits(&self) -> Option<&WaitWatch> {
        self.waits.get()
    }

    /// The sleep word (`SeqCst`).
    pub(super) fn sleep_word(&self) -> u64 {
        self.sleep.load(Ordering::SeqCst)
    }

    /// Called by the worker before it looks for work a last time and sleeps (`asleep`), and
    /// as soon as the sleep ends: bumps the sleep word (the idle path only).
    #[inline]
    pub(super) fn set_asleep(&self, asleep: bool) {
        let word = self.sleep.load(Ordering::Relaxed);
        if (word & 1 == 1) != asleep {
            self.sleep.store(word.wrapping_add(1), Ordering::SeqCst);
        }
    }

    /// Binds the runner to the calling thread: its waits are this thread's.
    pub(super) fn bind(&self) {
        let _ = self.waits.set(WaitWatch::this_thread());
    }

    /// Records that the runner starts `task`.
    #[inline]
    pub(super) fn starting(&self, task: &Runnable) {
        let started = self.started.load(Ordering::Relaxed).wrapping_add(1);
        self.started.store(started, Ordering::Relaxed);
        let site: *const Location<'static> = task.location();
        self.task.store(site.cast_mut(), Ordering::Relaxed);
    }

    /// The spawn site of the task the runner started last.
    fn task(&self) -> Option<&'static Location<'static>> {
        let site = self.task.load(Ordering::Relaxed);
        // SAFETY: `task` holds null or a pointer made from a `&'static Location` in `starting`;
        // nothing writes through it.
        unsafe { site.as_ref() }
    }
}

/// One runner as the monitor saw it at one sample.
struct Sample {
    runner: Arc<Runner>,
    started: usize,
    waiting: bool,
}

impl Sample {
    fn of(runner: &Arc<Runner>) -> Sample {
        Sample {
            runner: runner.clone(),
            started: runner.started.load(Ordering::Relaxed),
            waiting: runner.waits.get().is_some_and(WaitWatch::is_waiting),
        }
    }
}

/// Whether every runner in `now` was waiting at both samples and started no task in between.
/// Both lists are in registration order (workers, then rescue workers as they came), which a
/// removal keeps, so one pass over `before` finds each runner.
fn stuck(before: &[Sample], now: &[Sample]) -> bool {
    let mut before = before.iter();
    !now.is_empty()
        && now.iter().all(|s| {
            s.waiting
                && before
                    .by_ref()
                    .find(|b| Arc::ptr_eq(&b.runner, &s.runner))
                    .is_some_and(|b| b.waiting && b.started == s.started)
        })
}

/// The pool's monitor: its runners, its thread and its rescue workers.
pub(super) struct Monitor {
    /// One per pool worker, by index.
    workers: Vec<Arc<Runner>>,
    /// The rescue workers running, in the order they started.
    rescuers: Mutex<Vec<Arc<Runner>>>,
    /// Threads for rescue workers.
    rescue: Elastic<Rescue>,
    /// Whether the diagnostic was printed.
    reported: AtomicBool,
    /// Whether to print it (the threshold is not `None`), whether to check for deadlocks,
    /// and where reports go.
    stall: crate::stall::StallConfig,
    thread: MonitorThread,
    /// The run's root thread's waits and the run, set by `Pool::start` on the root's thread
    /// when the deadlock check is on.
    root: OnceLock<(WaitWatch, Weak<crate::io::IoInner>)>,
}

impl Monitor {
    pub(super) fn new(
        workers: usize,
        max_rescuers: usize,
        keep_alive: Duration,
        stall: crate::stall::StallConfig,
    ) -> Monitor {
        Monitor {
            workers: (0..workers).map(|_| Arc::new(Runner::new())).collect(),
            rescuers: Mutex::new(Vec::new()),
            rescue: Elastic::new(max_rescuers, keep_alive).with_thread_name("zsync-rescue"),
            reported: AtomicBool::new(false),
            stall,
            thread: MonitorThread::new(),
            root: OnceLock::new(),
        }
    }

    /// Registers the calling thread as the run's root and `io` as the run, for the deadlock
    /// check, if it is on.
    pub(super) fn set_root(&self, io: &crate::Io) {
        if self.stall.deadlock {
            let _ = self
                .root
                .set((WaitWatch::this_thread(), Arc::downgrade(&io.inner)));
        }
    }

    /// The root thread's waits, once registered.
    pub(super) fn root(&self) -> Option<&WaitWatch> {
        self.root.get().map(|(w, _)| w)
    }

    /// The pool's workers' runners.
    pub(super) fn workers(&self) -> &[Arc<Runner>] {
        &self.workers
    }

    /// The number of rescue threads if every one is idle (see `Elastic::idle_threads`).
    pub(super) fn rescue_idle_threads(&self) -> Option<usize> {
        self.rescue.idle_threads()
    }

    /// Worker `index`'s runner.
    pub(super) fn worker(&self, index: usize) -> &Runner {
        &self.workers[index]
    }

    fn rescuers(&self) -> MutexGuard<'_, Vec<Arc<Runner>>> {
        self.rescuers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by a worker that has just left its idle sleep: unparks the monitor if it parked.
    #[inline]
    pub(super) fn worker_awake(&self) {
        self.thread.worker_awake();
    }

    /// Stops the monitor thread and every rescue thread, and joins them. Once every task has
    /// finished: a rescue worker then finds the queues empty.
    pub(super) fn shutdown(&self) {
        self.thread.shutdown();
        self.rescue.shutdown();
    }

    fn samples(&self) -> Vec<Sample> {
        let rescuers = self.rescuers();
        self.workers
            .iter()
            .chain(rescuers.iter())
            .map(Sample::of)
            .collect()
    }
}

/// Starts the monitor thread of `shared`'s pool unless it runs already (called on every spawn:
/// one relaxed load once it runs).
#[inline]
pub(super) fn ensure_started(shared: &Arc<Shared>) {
    if !shared.monitor.thread.is_started() {
        start(shared);
    }
}

#[cold]
fn start(shared: &Arc<Shared>) {
    let watched = shared.clone();
    shared.monitor.thread.start("zsync-monitor", move || {
        crate::contain::abort_on_unwind("the Threaded pool's monitor", || watch(watched))
    });
}

/// The monitor thread.
fn watch(shared: Arc<Shared>) {
    let monitor = &shared.monitor;
    let workers = monitor.workers.len();
    let mut before: Vec<Sample> = Vec::new();
    let mut deadlock = Rechecks::new(monitor.stall.deadlock);
    // How long the monitor parks while every worker sleeps, when it checks for deadlocks:
    // doubling up to `RECHECK_MAX`, reset while a worker is awake.
    let idle = Cell::new(RECHECK_MIN);
    let all_idle = || shared.sleepers.all_idle(workers);
    let idle_pause = || {
        monitor.stall.deadlock.then(|| {
            let pause = idle.get();
            idle.set((pause * 2).min(RECHECK_MAX));
            pause
        })
    };
    let step = |woke| {
        if woke == Woke::Unparked {
            before.clear();
        } else {
            idle.set(RECHECK_MIN);
            let now = monitor.samples();
            if stuck(&before, &now) && shared.has_queued() {
                rescue(&shared, &now);
            }
            before = now;
        }
        deadlock.check(&shared);
    };
    monitor.thread.run(PERIOD, all_idle, idle_pause, step);
}

/// When the monitor checks for a deadlock (see `checkdead.rs`): at every step, except after a
/// check that could not decide (then after a pause doubling up to [`RECHECK_MAX`]).
struct Rechecks {
    /// Whether the check is on.
    on: bool,
    /// No check before this.
    not_before: Option<Instant>,
    /// The pause after the next undecided check.
    pause: Duration,
}

impl Rechecks {
    fn new(on: bool) -> Rechecks {
        Rechecks {
            on,
            not_before: None,
            pause: RECHECK_MIN,
        }
    }

    fn check(&mut self, shared: &Shared) {
        if !self.on || self.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        match shared.check_dead() {
            Verdict::Alive => {
                self.not_before = None;
                self.pause = RECHECK_MIN;
            }
            Verdict::Undecided => {
                self.not_before = Some(Instant::now() + self.pause);
                self.pause = (self.pause * 2).min(RECHECK_MAX);
            }
            Verdict::Dead => {
                let monitor = &shared.monitor;
                let io = monitor.root.get().and_then(|(_, io)| io.upgrade());
                if let Some(inner) = io {
                    checkdead::deadlocked(&crate::Io { inner }, &monitor.stall.out);
                }
                // The canceled tasks need a moment to wake: do not look again at once.
                self.not_before = Some(Instant::now() + self.pause);
            }
        }
    }
}

/// Starts a rescue worker if tasks that nobody started wait in the queues; prints the
/// diagnostic the first time.
fn rescue(shared: &Arc<Shared>, blocked: &[Sample]) {
    let mut waiting = Vec::new();
    while waiting.len() < SURVEY {
        match shared.steal_any() {
            // An entry whose task its joiner ran inline is dropped, as a worker would skip it;
            // a woken future task's entry is a poll to run, and is kept (`is_stale`).
            Some(task) if task.is_stale() => {}
            Some(task) => waiting.push(task),
            None => break,
        }
    }
    if waiting.is_empty() {
        return;
    }
    let monitor = &shared.monitor;
    let message = (monitor.stall.threshold.is_some()
        && !monitor.reported.swap(true, Ordering::Relaxed))
    .then(|| report(monitor.workers.len(), blocked, &waiting));
    for task in waiting {
        shared.injector.push(task);
        // A worker may have gone idle while the task was out of the queues.
        shared.sleepers.notify_one();
    }
    if let Some(message) = message {
        monitor.stall.out.write(&message);
    }
    // Refused when `max_concurrent_threads` rescue workers run already (or at shutdown): the
    // next stuck sample tries again.
    let _ = monitor.rescue.submit(Rescue(shared.clone()));
}

/// The diagnostic: what waits (each task named: id, name, spawn site), what blocks, what to do.
#[cold]
fn report(workers: usize, blocked: &[Sample], waiting: &[Runnable]) -> String {
    let extra = blocked.len() - workers;
    let mut msg = format!(
        "zsync: every thread of the Threaded pool ({workers} workers{}) has been blocked for \
         over {} ms while {}{} spawned task{} waited to start.\n",
        match extra {
            0 => String::new(),
            n => format!(", {n} extra"),
        },
        PERIOD.as_millis(),
        waiting.len(),
        if waiting.len() >= SURVEY { "+" } else { "" },
        if waiting.len() == 1 { "" } else { "s" },
    );
    let blocked: Vec<_> = blocked.iter().filter_map(|s| s.runner.task()).collect();
    list(&mut msg, "blocked in", &blocked);
    let sites: Vec<_> = waiting.iter().map(Runnable::location).collect();
    list(&mut msg, "waiting", &sites);
    for task in waiting.iter().take(LISTED) {
        let _ = writeln!(msg, "    {}", crate::stall::describe::queued(task));
    }
    if waiting.len() > LISTED {
        let _ = writeln!(msg, "    … and {} more", waiting.len() - LISTED);
    }
    msg.push_str(
        "  zsync starts extra threads to run the waiting tasks while this lasts. `spawn` does \
         not promise concurrency: start a task that other tasks wait for (a producer, a \
         connection's handler) with `io.concurrent`, which gives it a thread of its own, or use \
         more workers (`Builder::worker_threads`). Printed once per run.\n",
    );
    msg
}

/// Appends `  label: site (xN), site, … and N more` to `msg`.
fn list(msg: &mut String, label: &str, sites: &[&'static Location<'static>]) {
    let mut counted: Vec<(&Location<'static>, usize)> = Vec::new();
    for site in sites {
        match counted.iter_mut().find(|(s, _)| s == site) {
            Some((_, n)) => *n += 1,
            None => counted.push((site, 1)),
        }
    }
    let _ = write!(msg, "  {label}: ");
    for (i, (site, n)) in counted.iter().take(LISTED).enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = match n {
            1 => write!(msg, "{sep}{site}"),
            n => write!(msg, "{sep}{site} (x{n})"),
        };
    }
    if counted.len() > LISTED {
        let _ = write!(msg, " and {} more", counted.len() - LISTED);
    }
    msg.push('\n');
}

/// A rescue worker: runs queued tasks like a pool worker until it finds none.
pub(super) struct Rescue(Arc<Shared>);

impl Job for Rescue {
    fn run(self) {
        let shared = self.0;
        let runner = Arc::new(Runner::new());
        runner.bind();
        let monitor = &shared.monitor;
        monitor.rescuers().push(runner.clone());
        // Unlisted also if a task's disposal unwinds out of `run`: a runner that stays listed
        // without running would keep the pool from ever looking stuck again.
        let _listed = Listed(monitor, &runner);
        while let Some(task) = shared.steal_any() {
            runner.starting(&task);
            task.run();
        }
    }
}

/// Removes a rescue worker's runner from the monitor's list on drop.
struct Listed<'a>(&'a Monitor, &'a Arc<Runner>);

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.0.rescuers().retain(|r| !Arc::ptr_eq(r, self.1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(runner: &Arc<Runner>, started: usize, waiting: bool) -> Sample {
        Sample {
            runner: runner.clone(),
            started,
            waiting,
        }
    }

    #[test]
    fn stuck_needs_every_runner_waiting_twice_without_starting_a_task() {
        let (a, b) = (Arc::new(Runner::new()), Arc::new(Runner::new()));
        let before = [sample(&a, 3, true), sample(&b, 7, true)];
        assert!(stuck(&before, &[sample(&a, 3, true), sample(&b, 7, true)]));
        // One started a task in between, or runs now, or was running before.
        assert!(!stuck(&before, &[sample(&a, 4, true), sample(&b, 7, true)]));
        assert!(!stuck(
            &before,
            &[sample(&a, 3, true), sample(&b, 7, false)]
        ));
        let running_before = [sample(&a, 3, true), sample(&b, 7, false)];
        assert!(!stuck(
            &running_before,
            &[sample(&a, 3, true), sample(&b, 7, true)]
        ));
        // A runner that was not there before (a fresh rescue worker) is not stuck yet.
        let c = Arc::new(Runner::new());
        assert!(!stuck(
            &before,
            &[
                sample(&a, 3, true),
                sample(&b, 7, true),
                sample(&c, 0, true)
            ]
        ));
        // A rescue worker that left does not count.
        let with_c = [
            sample(&a, 3, true),
            sample(&c, 1, true),
            sample(&b, 7, true),
        ];
        assert!(stuck(&with_c, &[sample(&a, 3, true), sample(&b, 7, true)]));
        assert!(!stuck(&[], &[]));
    }

    #[test]
    fn the_report_counts_sites() {
        let here = Location::caller();
        let mut msg = String::new();
        list(&mut msg, "waiting", &[here, here]);
        assert_eq!(msg, format!("  waiting: {here} (x2)\n"));
    }
}

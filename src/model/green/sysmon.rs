//! The Green monitor (Go's `sysmon`): warns when a worker is blocked by a call that is not
//! zsync's, and when fresh tasks wait to start while every worker is blocked.
//!
//! A fiber that calls `std::thread::sleep`, a blocking socket of another crate or a C library
//! holds its worker's thread: every other fiber of that worker waits, and nothing says why. The
//! monitor makes that visible, the way the Threaded pool's monitor (`model/threaded/monitor.rs`)
//! does for its queue and Go's `sysmon` retakes a processor from a thread stuck in a system call:
//!
//! 1. Each worker publishes a progress word ([`crate::stall::progress`]: one relaxed store each
//!    time a task's name becomes current, so at every resume), besides the loop-turn count and
//!    the `sleeping` flag it already publishes.
//! 2. The monitor thread (`zsync-sysmon`, started by `run` unless the threshold is off) samples
//!    them every quarter of the threshold. A worker whose word and turn count have not changed
//!    for the threshold, and which has not announced a sleep, has been held by one task all
//!    along. Its thread is then examined (`/proc/self/task/<tid>/stat`, as placement does): it
//!    is reported if it is blocked in the kernel (a foreign blocking call) or has used at least
//!    half the threshold of CPU meanwhile (a long computation). A thread that merely waits for
//!    a CPU on a loaded machine is not reported.
//! 3. One warning per incident: the next one for that worker needs it to move on first.
//! 4. When every worker is held that way and fresh tasks wait in the queues, the monitor takes
//!    them out for a moment (announcing the survey first, see `checkdead.rs`), puts them back on
//!    the global queue, and prints one warning naming them.
//! 5. When every worker sleeps in its reactor the monitor parks
//!    ([`MonitorThread`](crate::stall::monitor_thread::MonitorThread), shared with the Threaded
//!    pool's monitor): a worker clears its `sleeping` flag and then unparks it. An idle runtime
//!    costs nothing.
//!
//! The warning names the task (id, name, spawn site) and lists its stack when the worker's
//! thread is blocked in the kernel: both are copied from outside, without a signal, by
//! [`stall::remote`](crate::stall::remote) (see there, and docs/ARCHITECTURE.md, "Stalls and
//! deadlocks", for why no signal).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;

use super::placement::{self, Activity};
use super::Shared;
use crate::stall::monitor_thread::{MonitorThread, Woke};
use crate::stall::progress::{self, Progress};
use crate::stall::{self, describe, Diagnostics};
use crate::task::Runnable;

/// At most this many queued tasks are taken out to be named per survey.
const SURVEY: usize = 1024;

/// At most this many queued tasks are listed in a warning.
const LISTED: usize = 16;

/// The monitor of one Green runtime.
pub(super) struct Sysmon {
    /// `None`: disabled, no thread.
    threshold: Option<Duration>,
    out: Diagnostics,
    /// One per worker, by index.
    progress: Box<[Progress]>,
    /// Words the warnings for a simulation (see [`for_simulation`](Sysmon::for_simulation)).
    simulation: bool,
    /// Set while the monitor has tasks out of the queues (see `checkdead.rs`).
    surveying: AtomicBool,
    /// Set while the runtime writes a deadlock report (its task dump symbolizes stacks, which
    /// holds worker 0 for a while): that is not a task's doing.
    reporting: AtomicBool,
    thread: MonitorThread,
}

impl Sysmon {
    pub(super) fn new(workers: usize, threshold: Option<Duration>, out: Diagnostics) -> Sysmon {
        Sysmon {
            threshold,
            out,
            simulation: false,
            progress: (0..workers).map(|_| Progress::default()).collect(),
            surveying: AtomicBool::new(false),
            reporting: AtomicBool::new(false),
            thread: MonitorThread::new(),
        }
    }

    /// Words its warnings for a simulation's one worker (see `worker/sim_loop.rs`).
    pub(super) fn for_simulation(mut self) -> Sysmon {
        self.simulation = true;
        self
    }

    /// Worker `index`'s progress word, if the monitor is on.
    pub(super) fn progress(&self, index: usize) -> Option<&Progress> {
        self.threshold.map(|_| &self.progress[index])
    }

    /// Whether the monitor thread exists (it counts among the runtime's own threads).
    pub(super) fn has_thread(&self) -> bool {
        self.thread.has_thread()
    }

    /// Whether the monitor has tasks out of the queues now.
    pub(super) fn surveying(&self) -> bool {
        self.surveying.load(Ordering::SeqCst)
    }

    /// Runs `f`, during which no worker is reported as held (the runtime's own reports).
    pub(super) fn quiet_while<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        self.reporting.store(true, Ordering::SeqCst);
        let _done = Done(&self.reporting);
        f()
    }

    /// Called by a worker whose reactor sleep has just ended: unparks the monitor if it parked.
    #[inline]
    pub(super) fn worker_awake(&self) {
        self.thread.worker_awake();
    }

    /// Stops and joins the monitor thread.
    pub(super) fn shutdown(&self) {
        self.thread.shutdown();
    }
}

/// Starts `shared`'s monitor thread, unless it is disabled. Without a thread (the OS refused
/// one) the runtime runs unwatched.
pub(super) fn start(shared: &Arc<Shared>) {
    let Some(threshold) = shared.sysmon.threshold else {
        return;
    };
    let watched = shared.clone();
    shared.sysmon.thread.start("zsync-sysmon", move || {
        crate::contain::abort_on_unwind("the Green monitor", || watch(&watched, threshold))
    });
}

/// One worker as the monitor last saw it change.
struct Seen {
    word: u64,
    turns: u64,
    /// When the monitor first saw these values.
    since: Instant,
    /// The thread's CPU time then, once examined.
    cpu: Option<Duration>,
    /// Whether this incident was reported.
    reported: bool,
}

/// The monitor thread.
fn watch(shared: &Shared, threshold: Duration) {
    let monitor = &shared.sysmon;
    let period = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250));
    let workers = shared.remotes.len();
    let now = Instant::now();
    let mut seen: Vec<Seen> = (0..workers)
        .map(|_| Seen {
            word: 0,
            turns: 0,
            since: now,
            cpu: None,
            reported: false,
        })
        .collect();
    let mut starved_reported = false;
    let all_sleep = || {
        shared
            .remotes
            .iter()
            .all(|r| r.sleeping.load(Ordering::SeqCst))
    };
    monitor.thread.run(
        period,
        all_sleep,
        || None,
        |woke| {
            let now = Instant::now();
            // After a park, or while the runtime reports: everything seen before is stale.
            if woke == Woke::Unparked || monitor.reporting.load(Ordering::SeqCst) {
                for s in &mut seen {
                    s.since = now;
                    s.cpu = None;
                }
                return;
            }
            let mut held = 0;
            for (i, s) in seen.iter_mut().enumerate() {
                let remote = &shared.remotes[i];
                let word = monitor.progress[i].read();
                let turns = remote.load.turns.load(Ordering::Acquire);
                let sleeping = remote.sleeping.load(Ordering::Relaxed);
                if sleeping || word != s.word || turns != s.turns {
                    *s = Seen {
                        word,
                        turns,
                        since: now,
                        cpu: None,
                        reported: false,
                    };
                    continue;
                }
                let held_for = now.saturating_duration_since(s.since);
                if held_for < threshold {
                    continue;
                }
                let activity = placement::examine(remote.load.tid.load(Ordering::Relaxed), false);
                let stuck = match activity {
                    Activity::Blocked => Some("blocked in the kernel"),
                    Activity::Runnable(cpu) => match s.cpu {
                        None => {
                            // The first look: measure CPU time from here.
                            s.cpu = Some(cpu);
                            None
                        }
                        Some(before) if cpu.saturating_sub(before) >= threshold / 2 => {
                            Some("computing")
                        }
                        Some(_) => None, // waiting for a CPU: not the task's doing
                    },
                    Activity::Idle | Activity::Unknown => None,
                };
                if let Some(doing) = stuck {
                    held += 1;
                    if !s.reported {
                        s.reported = true;
                        // Blocked in the kernel: what it runs and its stack can be read from
                        // here (see `stall::remote`), if the word did not move meanwhile.
                        let seen = matches!(activity, Activity::Blocked)
                            .then(|| {
                                let tid = remote.load.tid.load(Ordering::Relaxed);
                                let progress = &monitor.progress[i];
                                stall::remote::look(tid, progress.name_addr(), || {
                                    progress.read() == word
                                })
                            })
                            .flatten();
                        let task = describe::blocked(progress::site(word), seen.as_ref());
                        let blocked = Blocked {
                            worker: i,
                            task: &task,
                            held_for,
                            doing,
                            simulation: monitor.simulation,
                        };
                        report_blocked(&monitor.out, &blocked, seen.as_ref());
                    }
                }
            }
            if held == workers {
                if !starved_reported && survey(shared, threshold) {
                    starved_reported = true;
                }
            } else {
                starved_reported = false;
            }
        },
    );
}

/// What a blocked-worker warning says.
struct Blocked<'a> {
    worker: usize,
    task: &'a str,
    held_for: Duration,
    doing: &'a str,
    /// The worker is a simulation's only one: the whole simulation waits, and `io.blocking`
    /// is refused there.
    simulation: bool,
}

/// Prints the blocked-worker warning.
#[cold]
fn report_blocked(out: &Diagnostics, b: &Blocked<'_>, seen: Option<&stall::remote::Blocked>) {
    let call = "a call that is not zsync's (std::thread::sleep, a blocking socket or file of \
                another crate, a C library, a long computation)";
    let mut msg = if b.simulation {
        format!(
            "zsync: the simulation has been held for {} ms by {} ({}): {call} blocks its one \
             thread, and every other task of the simulation waits meanwhile, in real time.\n  \
             A simulation cannot run such a call for real (`io.blocking` is refused there): \
             use zsync's own sleeps, channels and locks, which park only the task. Printed \
             once per incident.\n",
            b.held_for.as_millis(),
            b.task,
            b.doing,
        )
    } else {
        format!(
            "zsync: Green worker {} has been held for {} ms by {} ({}): {call} blocks the \
             worker's thread, and every other task on this worker waits meanwhile.\n  Run such \
             a call with `io.blocking(|| …)`, which moves it to a helper thread, or use zsync's \
             own I/O and sleeps, which park only the task. Printed once per incident.\n",
            b.worker,
            b.held_for.as_millis(),
            b.task,
            b.doing,
        )
    };
    if let Some(seen) = seen.filter(|s| !s.frames.is_empty()) {
        msg.push_str(
            "  Its stack (scanned from the stuck thread's stack: a stale frame may show too):\n",
        );
        for frame in &seen.frames {
            let _ = writeln!(msg, "    {frame}");
        }
    }
    out.write(&msg);
}

/// Names the fresh tasks waiting in the queues while every worker is held, and prints the
/// starved-queue warning. Returns whether it found any.
fn survey(shared: &Shared, threshold: Duration) -> bool {
    let monitor = &shared.sysmon;
    if shared.injector.is_empty() && shared.stealers.iter().all(|s| s.is_empty()) {
        return false;
    }
    // Announce the survey, then make sure no worker is quiet (the deadlock check reads the
    // flag after the quiet bits: one of the two sees the other).
    monitor.surveying.store(true, Ordering::SeqCst);
    if shared
        .remotes
        .iter()
        .any(|r| r.quiet.load(Ordering::SeqCst) & super::checkdead::QUIET != 0)
    {
        monitor.surveying.store(false, Ordering::SeqCst);
        return false;
    }
    let mut waiting: Vec<Runnable> = Vec::new();
    let mut take = |steal: &dyn Fn() -> Steal<Runnable>| loop {
        if waiting.len() >= SURVEY {
            return;
        }
        match steal() {
            Steal::Success(t) => waiting.push(t),
            Steal::Empty => return,
            Steal::Retry => {}
        }
    };
    take(&|| shared.injector.steal());
    for s in &shared.stealers {
        take(&|| s.steal());
    }
    // Stale entries (tasks their joiners ran inline) are listed by nobody but put back like
    // the others: a worker skips them.
    let mut msg = String::new();
    let fresh: Vec<&Runnable> = waiting.iter().filter(|t| !t.is_started()).collect();
    if !fresh.is_empty() {
        let _ = writeln!(
            msg,
            "zsync: every Green worker ({}) has been held for over {} ms by a call that is not \
             zsync's while {}{} task{} waited to start:",
            shared.remotes.len(),
            threshold.as_millis(),
            fresh.len(),
            if waiting.len() >= SURVEY { "+" } else { "" },
            if fresh.len() == 1 { "" } else { "s" },
        );
        for t in fresh.iter().take(LISTED) {
            let _ = writeln!(msg, "    {}", describe::queued(t));
        }
        if fresh.len() > LISTED {
            let _ = writeln!(msg, "    … and {} more", fresh.len() - LISTED);
        }
        msg.push_str(
            "  They start when a worker is free. Move the blocking calls into `io.blocking(|| …)`, \
             or use more workers (`Builder::worker_threads`). Printed once per incident.\n",
        );
    }
    let found = !fresh.is_empty();
    for t in waiting {
        shared.injector.push(t);
    }
    monitor.surveying.store(false, Ordering::SeqCst);
    shared.wake_one_idle(None);
    if found {
        monitor.out.write(&msg);
    }
    found
}

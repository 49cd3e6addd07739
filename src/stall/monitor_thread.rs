//! The one monitor thread abstraction both pools' monitors use (Green's `sysmon`, the Threaded
//! pool's `monitor`): start once, sample every period while the workers are busy, park while
//! they all sleep, and stop and join on shutdown.
//!
//! Parking without lost wake-ups: when every worker sleeps, the monitor stores `parked` and then
//! looks at the workers again; a worker that wakes clears its sleeping mark and then reads
//! `parked` ([`MonitorThread::worker_awake`]; all `SeqCst`), so one of them sees the other. The
//! monitor holds its lock from that store to its wait and the waking worker clears `parked`
//! under the lock, so the wake-up cannot fall between. An idle runtime's monitor costs nothing.
//!
//! It parks only after the workers were all found asleep at [`PARK_AFTER`] looks in a row, as
//! Go's sysmon only stops after a while of idleness: a server's workers sleep for a moment
//! between bursts many times a second, and unparking the monitor after each of those sleeps
//! (a lock, a futex wake and a context switch on the waking worker's path, ~13 µs of CPU per
//! idle sleep in a 1 ns sleep loop) cost more than the periodic looks it saves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Consecutive looks finding every worker asleep before the monitor parks (see the module
/// docs): a few periods of idleness.
const PARK_AFTER: u32 = 8;

struct State {
    /// Set by `shutdown`: the thread exits and none is started any more.
    closed: bool,
    thread: Option<JoinHandle<()>>,
}

/// Why [`MonitorThread::run`]'s step is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// A period passed while some worker was awake: sample.
    Period,
    /// The monitor was parked while every worker slept: what it saw before is stale.
    Unparked,
}

/// A monitor thread's lifecycle and its park.
pub(crate) struct MonitorThread {
    /// Whether `start` was called (the thread exists, or the OS refused one). Set under the
    /// lock.
    started: AtomicBool,
    /// Whether the thread exists (set once it does, cleared by `shutdown`).
    running: AtomicBool,
    /// Set by the monitor before it parks (`SeqCst`, under the lock); cleared under the lock by
    /// the worker that unparks it.
    parked: AtomicBool,
    state: Mutex<State>,
    cv: Condvar,
}

impl MonitorThread {
    pub(crate) fn new() -> MonitorThread {
        MonitorThread {
            started: AtomicBool::new(false),
            running: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            state: Mutex::new(State {
                closed: false,
                thread: None,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether [`start`](Self::start) was called (relaxed: a hint for a caller that starts the
    /// thread lazily).
    #[inline]
    pub(crate) fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Whether the thread exists (it counts among the runtime's own threads).
    pub(crate) fn has_thread(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Starts the thread named `name` running `body`, unless one was started or `shutdown` was
    /// called. Without a thread (the OS refused one) the runtime runs unwatched.
    #[cold]
    pub(crate) fn start(&self, name: &str, body: impl FnOnce() + Send + 'static) {
        let mut state = self.lock();
        if state.closed || self.started.load(Ordering::Relaxed) {
            return;
        }
        state.thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .ok();
        if state.thread.is_some() {
            self.running.store(true, Ordering::SeqCst);
        }
        self.started.store(true, Ordering::Relaxed);
    }

    /// Called by a worker that has just left its sleep: unparks the monitor if it parked.
    #[inline]
    pub(crate) fn worker_awake(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.unpark();
        }
    }

    #[cold]
    fn unpark(&self) {
        let _state = self.lock();
        self.parked.store(false, Ordering::SeqCst);
        self.cv.notify_one();
    }

    /// The monitor's loop, run on its thread until `shutdown`: every `period(idle_before)`
    /// (`None`: park until a worker wakes) while `all_asleep` says some worker is awake, calls
    /// `step(Woke::Period)`; when every worker sleeps, parks, and calls `step(Woke::Unparked)`
    /// once unparked. `step` runs without the lock.
    ///
    /// `idle_pause` is asked before each park: `Some(d)` parks for at most `d` (a monitor that
    /// must look again now and then even while the workers sleep), `None` until a worker wakes.
    pub(crate) fn run(
        &self,
        period: Duration,
        all_asleep: impl Fn() -> bool,
        mut idle_pause: impl FnMut() -> Option<Duration>,
        mut step: impl FnMut(Woke),
    ) {
        let mut state = self.lock();
        let mut asleep_looks = 0u32;
        while !state.closed {
            let mut woke = Woke::Period;
            asleep_looks = if all_asleep() { asleep_looks + 1 } else { 0 };
            if asleep_looks >= PARK_AFTER {
                asleep_looks = 0;
                self.parked.store(true, Ordering::SeqCst);
                if all_asleep() {
                    let pause = idle_pause();
                    while self.parked.load(Ordering::SeqCst) && !state.closed {
                        state = match pause {
                            None => self.cv.wait(state).unwrap_or_else(|p| p.into_inner()),
                            Some(pause) => {
                                let (state, _) = self
                                    .cv
                                    .wait_timeout(state, pause)
                                    .unwrap_or_else(|p| p.into_inner());
                                self.parked.store(false, Ordering::SeqCst);
                                state
                            }
                        };
                    }
                    woke = Woke::Unparked;
                }
                self.parked.store(false, Ordering::SeqCst);
            }
            if woke == Woke::Period {
                state = self
                    .cv
                    .wait_timeout(state, period)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            if state.closed {
                break;
            }
            drop(state);
            step(woke);
            state = self.lock();
        }
    }

    /// Stops and joins the thread.
    pub(crate) fn shutdown(&self) {
        let thread = {
            let mut state = self.lock();
            state.closed = true;
            self.cv.notify_all();
            state.thread.take()
        };
        if let Some(thread) = thread {
            // A monitor calls no user code and catches nothing: it does not panic.
            let _ = thread.join();
        }
        self.running.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn parks_while_asleep_and_samples_while_awake() {
        let monitor = Arc::new(MonitorThread::new());
        let asleep = Arc::new(AtomicBool::new(true));
        let steps = Arc::new(AtomicUsize::new(0));
        let (m, a, s) = (monitor.clone(), asleep.clone(), steps.clone());
        monitor.start("zsync-test-monitor", move || {
            m.run(
                Duration::from_millis(1),
                || a.load(Ordering::SeqCst),
                || None,
                |_| {
                    s.fetch_add(1, Ordering::SeqCst);
                },
            )
        });
        assert!(monitor.has_thread() && monitor.is_started());
        asleep.store(false, Ordering::SeqCst);
        monitor.worker_awake();
        // Watchdog only: steps come every millisecond while awake.
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while steps.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(steps.load(Ordering::SeqCst) >= 3);
        monitor.shutdown();
        assert!(!monitor.has_thread());
    }
}

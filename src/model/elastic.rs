//! Elastic threads: each task gets a thread of its own, reused when idle. The Threaded model runs
//! its `concurrent` tasks here; every model runs [`Io::blocking`](crate::Io::blocking) calls here.
//! The Threaded monitor starts its rescue workers on a pool of its own (any [`Job`]).
//!
//! A task is queued only when an idle thread is waiting for it (`idle > queued`), so every
//! accepted task starts without waiting for another task to finish: that is the guarantee
//! `concurrent` makes. Otherwise a new thread is started, up to `max`; beyond it the task is
//! refused and `concurrent` reports `ConcurrencyUnavailable`. Idle threads exit after
//! `keep_alive`; `shutdown` joins them all.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::task::Runnable;

/// The task was not accepted; it has not run and never will.
#[derive(Debug)]
pub(crate) struct Refused;

/// Work an elastic thread runs: a task, or anything else a model needs a thread of its own for.
pub(crate) trait Job: Send + 'static {
    /// Runs the job to its end on the calling thread.
    fn run(self);
}

impl Job for Runnable {
    fn run(self) {
        Runnable::run(self);
    }
}

struct State<J> {
    queued: VecDeque<J>,
    idle: usize,
    threads: usize,
    open: bool,
    handles: Vec<JoinHandle<()>>,
}

struct Shared<J> {
    state: Mutex<State<J>>,
    cv: Condvar,
    keep_alive: Duration,
}

pub(crate) struct Elastic<J = Runnable> {
    shared: Arc<Shared<J>>,
    max: usize,
    /// The name of its threads.
    name: &'static str,
}

impl<J: Job> Elastic<J> {
    pub(crate) fn new(max: usize, keep_alive: Duration) -> Elastic<J> {
        Elastic {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queued: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    open: true,
                    handles: Vec::new(),
                }),
                cv: Condvar::new(),
                keep_alive,
            }),
            max,
            name: "zsync-concurrent",
        }
    }

    /// Names the threads this pool starts `name` (default `zsync-concurrent`).
    pub(crate) fn with_thread_name(mut self, name: &'static str) -> Elastic<J> {
        self.name = name;
        self
    }

    pub(crate) fn submit(&self, task: J) -> Result<(), Refused> {
        let mut state = self.shared.lock();
        if !state.open {
            return Err(Refused);
        }
        if state.idle > state.queued.len() {
            state.queued.push_back(task);
            self.shared.cv.notify_one();
            return Ok(());
        }
        if state.threads >= self.max {
            return Err(Refused);
        }
        // Reap threads that exited (keep-alive ran out): join, not just drop, so none lingers.
        let (exited, running): (Vec<_>, Vec<_>) = std::mem::take(&mut state.handles)
            .into_iter()
            .partition(|h| h.is_finished());
        state.handles = running;
        for h in exited {
            let _ = h.join();
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || {
                // Tasks contain their own panics; one that reaches the loop aborts.
                crate::contain::abort_on_unwind("an elastic thread's loop", || {
                    thread_main(shared, task)
                })
            });
        match spawned {
            Ok(handle) => {
                state.threads += 1;
                state.handles.push(handle);
                Ok(())
            }
            // The `Runnable` was dropped unrun; the caller takes the closure back out of the
            // task's cell (`TaskCell::take_back`).
            Err(_) => Err(Refused),
        }
    }

    /// The number of this pool's threads if every one of them is idle (waiting for a task, none
    /// queued), `None` while one runs a task or one is queued. An idle thread counted here
    /// exists (it is inside its wait); one that leaves the pool stops being counted before it
    /// exits. For the deadlock check (`model/green/checkdead.rs`).
    pub(crate) fn idle_threads(&self) -> Option<usize> {
        let state = self.shared.lock();
        (state.queued.is_empty() && state.threads == state.idle).then_some(state.idle)
    }

    pub(crate) fn shutdown(&self) {
        let handles = {
            let mut state = self.shared.lock();
            state.open = false;
            self.shared.cv.notify_all();
            std::mem::take(&mut state.handles)
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

impl<J> Shared<J> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn thread_main<J: Job>(shared: Arc<Shared<J>>, first: J) {
    first.run();
    let mut state = shared.lock();
    loop {
        if let Some(task) = state.queued.pop_front() {
            drop(state);
            task.run();
            state = shared.lock();
            continue;
        }
        if !state.open {
            break;
        }
        state.idle += 1;
        let (guard, timeout) = shared
            .cv
            .wait_timeout(state, shared.keep_alive)
            .unwrap_or_else(|p| p.into_inner());
        state = guard;
        state.idle -= 1;
        if timeout.timed_out() && state.queued.is_empty() {
            break;
        }
    }
    state.threads -= 1;
}

//! The driver thread of the thread models (Blocking, Threaded, custom) and of the process-wide
//! driver: started on first use, it sleeps in the driver's `epoll_wait` until the next timer,
//! handles events and fires timers. An eventfd in the same epoll instance wakes it for an
//! earlier timer or to stop; `run` stops and joins it at shutdown, so no thread outlives its
//! runtime.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags};

use super::Driver;

/// The epoll data of the wake-up eventfd (no source key is ever this: a key's index is a slab
/// index, far below `u32::MAX`).
const WAKE_KEY: u64 = u64::MAX;

enum State {
    NotStarted,
    Running(JoinHandle<()>),
    Stopped,
}

pub(crate) struct DriverThread {
    /// Written to end the thread's `epoll_wait`.
    eventfd: OwnedFd,
    /// Whether the thread was started (the fast path of `ensure_started`).
    started: AtomicBool,
    /// Read by the thread at each turn.
    stop: Arc<AtomicBool>,
    state: Mutex<State>,
}

impl DriverThread {
    pub(super) fn new() -> io::Result<DriverThread> {
        Ok(DriverThread {
            eventfd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
            started: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(State::NotStarted),
        })
    }

    /// Adds the eventfd to the driver's epoll instance (level-triggered).
    pub(super) fn watch(&self, epfd: &OwnedFd) -> io::Result<()> {
        epoll::add(
            epfd,
            self.eventfd.as_fd(),
            EventData::new_u64(WAKE_KEY),
            EventFlags::IN,
        )?;
        Ok(())
    }

    /// Starts the thread turning `driver` unless it runs already (or has stopped: then the
    /// runtime has ended and the caller gets an error).
    pub(super) fn ensure_started(&self, driver: &Arc<Driver>) -> io::Result<()> {
        if self.started.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*state {
            State::Running(_) => return Ok(()),
            State::Stopped => return Err(super::shut_down()),
            State::NotStarted => {}
        }
        let turned = driver.clone();
        let stop = self.stop.clone();
        let handle = std::thread::Builder::new()
            .name("zsync-driver".into())
            .spawn(move || {
                crate::contain::abort_on_unwind("the async driver's thread", || {
                    turn_until_stopped(&turned, &stop)
                })
            })?;
        *state = State::Running(handle);
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Ends the thread's current or next `epoll_wait`.
    pub(super) fn wake(&self) {
        let _ = rustix::io::write(&self.eventfd, &1u64.to_ne_bytes());
    }

    /// Stops the thread and joins it.
    pub(super) fn stop(&self) {
        let state = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *state, State::Stopped)
        };
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
        if let State::Running(handle) = state {
            let _ = handle.join();
        }
    }

    fn drain_wake(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.eventfd, &mut buf);
    }
}

/// The thread's loop: fire due timers, sleep in `epoll_wait` until the next one (or an event,
/// or a wake-up), handle the events; until told to stop.
fn turn_until_stopped(driver: &Arc<Driver>, stop: &AtomicBool) {
    let super::Notify::Thread(thread) = &driver.notify else {
        return;
    };
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let timeout = driver
            .fire_timers(now)
            .map(|at| at.saturating_duration_since(now));
        driver.wait_events(timeout, &mut |data| {
            if data == WAKE_KEY {
                thread.drain_wake();
                true
            } else {
                false
            }
        });
    }
}

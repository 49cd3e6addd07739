//! The async driver: readiness of descriptors and timers for *futures*.
//!
//! Colorblind code waits by parking its task ([`crate::park`]); a future instead returns
//! `Pending` and expects its waker to be called. This module is what calls it: one [`Driver`]
//! per runtime (created on first use), plus a process-wide one for futures polled outside any
//! zsync runtime (under another executor). A driver owns
//!
//! - an **epoll instance** in which every descriptor used asynchronously is registered *once*,
//!   edge-triggered, for both directions ([`source`]: Tokio's `ScheduledIo` design). Each
//!   registration is a [`Source`]: readiness bits with a tick, and the wakers of the tasks
//!   waiting for each direction. An event sets bits and wakes; an operation that meets
//!   `WouldBlock` clears the bit it consumed, unless an event came in between (the tick moved):
//!   no wake-up is lost between a try and the next wait;
//! - **timers** for futures ([`Sleep`](crate::time::Sleep) and everything built on it): the
//!   timing wheel of the Green workers (`model/green/timers.rs`) behind a mutex. A dropped
//!   `Sleep` removes its entry at once, so memory follows the live timers.
//!
//! Who turns it ([`Notify`]):
//!
//! - **Green**: the workers themselves. Each worker watches the driver's epoll descriptor from
//!   its own reactor (in its epoll, or a `POLL_ADD` on its ring), drains it without blocking
//!   when it is readable, fires due timers on each loop turn, and bounds its sleep by the next
//!   timer ([`crate::model::green`]'s `async_driver.rs`). A timer armed earlier than every
//!   other wakes one sleeping worker. No extra thread.
//! - **Blocking, Threaded, custom models, and the process-wide fallback**: one driver thread,
//!   started on first use, sleeping in `epoll_wait` until the next timer; an eventfd in the
//!   same epoll wakes it for an earlier timer or to stop. `run` joins it at shutdown
//!   ([`DriverCell::retire`]); the fallback's thread lives as long as the process.
//!
//! Foreign code runs here only contained: wakers are called and dropped outside every lock of
//! the driver, and a panicking waker is caught (see [`wake_contained`]).

mod registry;
pub(crate) mod sleep;
pub(crate) mod source;
#[cfg(test)]
mod tests;
mod thread;
pub(crate) mod timeout;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};

use crate::model::green::timers::{TimerId, Timers};
pub(crate) use registry::Registry;
pub(crate) use source::{Registered, Source};

/// `next_timer` when no timer is armed.
const NO_TIMER: u64 = u64::MAX;

/// Events taken from the epoll instance per `epoll_wait`.
const EVENTS: usize = 64;

/// How a driver is turned, and how it is told that there is something new to do (an earlier
/// timer, a shutdown).
pub(crate) enum Notify {
    /// A driver thread of its own (see [`thread`]).
    Thread(thread::DriverThread),
    /// Turned by somebody else's loop (Green's workers); the hook wakes one of them.
    Hook(Box<dyn Fn() + Send + Sync>),
}

/// One runtime's async driver. See the module docs.
pub(crate) struct Driver {
    epfd: OwnedFd,
    /// The registered descriptors (see [`registry`]).
    registry: Registry,
    timers: Mutex<Timers>,
    /// Tick 0 of `next_timer`.
    origin: Instant,
    /// When the timers next have work, in nanoseconds since `origin`, or [`NO_TIMER`]. Written
    /// under the `timers` lock, read without it by whoever turns the driver (a stale value
    /// costs one early look, never a missed timer: it is written before the notification).
    next_timer: AtomicU64,
    notify: Notify,
    /// Set once by [`close`](Self::close): no new waits are accepted.
    closed: AtomicBool,
}

impl Driver {
    /// A driver turned by its own thread (started on first use).
    pub(crate) fn threaded() -> io::Result<Arc<Driver>> {
        let thread = thread::DriverThread::new()?;
        let driver = Arc::new(Driver::new(Notify::Thread(thread))?);
        if let Notify::Thread(t) = &driver.notify {
            t.watch(&driver.epfd)?;
        }
        Ok(driver)
    }

    /// A driver turned by another loop, which `hook` wakes (Green's workers).
    pub(crate) fn hooked(hook: Box<dyn Fn() + Send + Sync>) -> io::Result<Arc<Driver>> {
        Ok(Arc::new(Driver::new(Notify::Hook(hook))?))
    }

    fn new(notify: Notify) -> io::Result<Driver> {
        Ok(Driver {
            epfd: epoll::create(CreateFlags::CLOEXEC)?,
            registry: Registry::default(),
            timers: Mutex::new(Timers::default()),
            origin: Instant::now(),
            next_timer: AtomicU64::new(NO_TIMER),
            notify,
            closed: AtomicBool::new(false),
        })
    }

    /// The process-wide driver, for futures polled outside any zsync runtime (and for the
    /// values of a runtime that has ended). Its thread starts on first use and lives as long
    /// as the process.
    pub(crate) fn fallback() -> &'static Arc<Driver> {
        static FALLBACK: OnceLock<Arc<Driver>> = OnceLock::new();
        FALLBACK.get_or_init(|| {
            Driver::threaded()
                .unwrap_or_else(|e| panic!("zsync: cannot create the async driver: {e}"))
        })
    }

    /// The driver of the runtime of the running task, else the process-wide one.
    pub(crate) fn current() -> Arc<Driver> {
        match crate::Io::current().map(|io| io.driver()) {
            Some(Ok(d)) => d,
            _ => Driver::fallback().clone(),
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Makes sure somebody turns this driver (starts its thread on first use).
    fn ensure_driven(self: &Arc<Self>) -> io::Result<()> {
        match &self.notify {
            Notify::Thread(t) => t.ensure_started(self),
            Notify::Hook(_) => Ok(()),
        }
    }

    /// Tells whoever turns the driver to look again (an earlier timer, a shutdown).
    fn poke(&self) {
        match &self.notify {
            Notify::Thread(t) => t.wake(),
            Notify::Hook(hook) => hook(),
        }
    }

    /// The epoll descriptor, for a Green worker's reactor to watch.
    pub(crate) fn epoll_fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }

    // ---- descriptors ------------------------------------------------------------------------

    /// Registers `fd` for both directions, edge-triggered. The descriptor must stay open until
    /// [`deregister`](Self::deregister) (a [`Registered`] guarantees it).
    pub(crate) fn register(self: &Arc<Self>, fd: BorrowedFd<'_>) -> io::Result<Arc<Source>> {
        if self.is_closed() {
            return Err(shut_down());
        }
        self.ensure_driven()?;
        let (key, source) = self.registry.insert(self.clone(), fd);
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        if let Err(e) = epoll::add(&self.epfd, fd, EventData::new_u64(key), flags) {
            self.registry.remove(key);
            return Err(e.into());
        }
        Ok(source)
    }

    /// Removes `source`'s descriptor from the epoll instance and forgets it; an event still in
    /// flight for it finds its key gone. Called before the descriptor is closed.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>, source: &Source) {
        let _ = epoll::delete(&self.epfd, fd);
        if let Some(gone) = self.registry.remove(source.key()) {
            // Nobody can wait on it any more (its owner is being dropped); whatever it still
            // holds is dropped here, outside the registry's lock.
            drop(gone);
        }
    }

    /// How many descriptors are registered (for tests and leak checks).
    pub(crate) fn registered(&self) -> usize {
        self.registry.len()
    }

    /// Takes every pending event without blocking and wakes the waiters. Returns how many
    /// events it handled.
    pub(crate) fn drain(&self) -> usize {
        let mut total = 0;
        loop {
            let n = self.wait_events(Some(Duration::ZERO), &mut |_| false);
            total += n;
            if n < EVENTS {
                return total;
            }
        }
    }

    /// One `epoll_wait` of up to `timeout`; `foreign(data)` tells whether an event belongs to
    /// the caller (the driver thread's eventfd) rather than to a source. Wakes the waiters of
    /// the ready sources. Returns the number of events.
    fn wait_events(
        &self,
        timeout: Option<Duration>,
        foreign: &mut dyn FnMut(u64) -> bool,
    ) -> usize {
        let empty = Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        };
        let mut events = [empty; EVENTS];
        let timeout = timeout.map(|d| {
            rustix::time::Timespec::try_from(d).unwrap_or(rustix::time::Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            })
        });
        let n = match epoll::wait(&self.epfd, &mut events[..], timeout.as_ref()) {
            Ok(n) => n,
            Err(_) => return 0, // EINTR; nothing else can fail on a valid instance
        };
        let mut wake = Vec::new();
        let mut mine = Vec::with_capacity(n);
        for event in &events[..n] {
            let data = event.data.u64();
            if !foreign(data) {
                mine.push((data, source::Ready::from_epoll(event.flags)));
            }
        }
        self.registry.dispatch(&mine, &mut wake);
        wake_contained(wake);
        n
    }

    // ---- timers -----------------------------------------------------------------------------

    /// Arms (or re-arms: `old` is removed first) a timer waking `waker` once `deadline` has
    /// passed. `None` if the driver is closed. The previous timer's waker is dropped after the
    /// lock is released.
    pub(crate) fn arm_timer(
        self: &Arc<Self>,
        old: Option<TimerId>,
        deadline: Instant,
        waker: Waker,
    ) -> Option<TimerId> {
        if self.is_closed() || self.ensure_driven().is_err() {
            return None;
        }
        let (id, earlier, old_waker) = {
            let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
            let old_waker = old.and_then(|id| timers.remove(id));
            let id = timers.insert(deadline, waker);
            let next = self.nanos(timers.next_deadline());
            let before = self.next_timer.swap(next, Ordering::SeqCst);
            (id, next < before, old_waker)
        };
        drop_contained(old_waker);
        if earlier {
            self.poke();
        }
        if self.is_closed() {
            // Closed meanwhile: nobody will fire it.
            self.cancel_timer(id);
            return None;
        }
        Some(id)
    }

    /// Disarms a timer (a no-op if it fired already).
    pub(crate) fn cancel_timer(&self, id: TimerId) {
        let waker = {
            let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
            let waker = timers.remove(id);
            if waker.is_some() && timers.is_empty() {
                self.next_timer.store(NO_TIMER, Ordering::SeqCst);
            }
            waker
        };
        drop_contained(waker);
    }

    /// When the timers next have work, if any.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        match self.next_timer.load(Ordering::SeqCst) {
            NO_TIMER => None,
            n => Some(self.origin + Duration::from_nanos(n)),
        }
    }

    /// Fires the timers due at `now` (skipped if another thread is firing them right now:
    /// it covers `now` too, or looks again). Returns the next deadline.
    pub(crate) fn fire_timers(&self, now: Instant) -> Option<Instant> {
        let next = self.next_timer.load(Ordering::SeqCst);
        if next == NO_TIMER || self.origin + Duration::from_nanos(next) > now {
            return self.next_timer();
        }
        let mut due = Vec::new();
        {
            let Ok(mut timers) = self.timers.try_lock() else {
                return self.next_timer();
            };
            timers.expire(now, &mut due);
            self.next_timer
                .store(self.nanos(timers.next_deadline()), Ordering::SeqCst);
        }
        wake_contained(due);
        self.next_timer()
    }

    /// `at` in nanoseconds since `origin` ([`NO_TIMER`] for none).
    fn nanos(&self, at: Option<Instant>) -> u64 {
        match at {
            None => NO_TIMER,
            Some(at) => u64::try_from(at.saturating_duration_since(self.origin).as_nanos())
                .unwrap_or(NO_TIMER - 1)
                .min(NO_TIMER - 1),
        }
    }

    /// How many timers are armed (for tests: a dropped `Sleep` leaves none behind).
    pub(crate) fn armed_timers(&self) -> usize {
        self.timers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    // ---- shutdown ---------------------------------------------------------------------------

    /// Stops the driver for good: no new registration or timer is accepted, every waiter is
    /// woken (a source then reports that its runtime has shut down, a `Sleep` moves to the
    /// process-wide driver), and the driver thread, if any, is joined.
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Notify::Thread(t) = &self.notify {
            t.stop();
        }
        let mut wake = Vec::new();
        self.registry.close_all(&mut wake);
        {
            let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
            timers.expire(
                Instant::now() + Duration::from_secs(u32::MAX.into()),
                &mut wake,
            );
            self.next_timer.store(NO_TIMER, Ordering::SeqCst);
        }
        wake_contained(wake);
    }
}

/// The error of a wait on a driver whose runtime has ended.
pub(crate) fn shut_down() -> io::Error {
    io::Error::other("the zsync runtime this descriptor belongs to has shut down")
}

/// Wakes every waker, each inside panic containment (a waker is foreign code; one that panics
/// loses its own wake-up only). For the driver's loops, which must never unwind.
pub(crate) fn wake_contained(wakers: Vec<Waker>) {
    for w in wakers {
        if let Err(payload) = crate::contain::catch(move || w.wake()) {
            crate::contain::drop_payload(payload);
        }
    }
}

/// Drops a waker inside panic containment (its drop is foreign code).
fn drop_contained(waker: Option<Waker>) {
    if let Some(w) = waker {
        if let Err(payload) = crate::contain::catch(move || drop(w)) {
            crate::contain::drop_payload(payload);
        }
    }
}

/// Where a runtime keeps its driver: made on first use, retired by `run` at shutdown.
#[derive(Default)]
pub(crate) struct DriverCell {
    /// `Some(driver)` once made; `None` once the runtime has ended without ever making one.
    slot: OnceLock<Option<Arc<Driver>>>,
    /// Serialises making the driver (which can fail, so `get_or_init` will not do).
    making: Mutex<()>,
}

impl DriverCell {
    /// The driver, made with `make` on first use. After [`retire`](Self::retire), the
    /// process-wide driver.
    pub(crate) fn get_or_make(
        &self,
        make: impl FnOnce() -> io::Result<Arc<Driver>>,
    ) -> io::Result<Arc<Driver>> {
        if let Some(slot) = self.slot.get() {
            return Ok(live_or_fallback(slot));
        }
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = self.slot.get() {
            return Ok(live_or_fallback(slot));
        }
        let driver = make()?;
        let _ = self.slot.set(Some(driver.clone()));
        Ok(driver)
    }

    /// The driver if one was made (for tests and the Green workers).
    pub(crate) fn get(&self) -> Option<&Arc<Driver>> {
        self.slot.get().and_then(Option::as_ref)
    }

    /// Closes the driver (joining its thread) or, if none was made, makes sure none will be:
    /// called by `run` once every task has finished.
    pub(crate) fn retire(&self) {
        let slot = {
            let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
            self.slot.get_or_init(|| None)
        };
        if let Some(driver) = slot {
            driver.close();
        }
    }
}

fn live_or_fallback(slot: &Option<Arc<Driver>>) -> Arc<Driver> {
    match slot {
        Some(d) if !d.is_closed() => d.clone(),
        _ => Driver::fallback().clone(),
    }
}

impl crate::Io {
    /// What this runtime's async driver holds: (registered descriptors, armed timers); zeros
    /// if it has made none. For tests and leak checks: a dropped socket or `Sleep` leaves
    /// nothing behind.
    ///
    /// ```
    /// zsync::run(zsync::Model::Blocking, |io| assert_eq!(io.async_driver_counts(), (0, 0)));
    /// ```
    #[doc(hidden)]
    pub fn async_driver_counts(&self) -> (usize, usize) {
        match self.inner.state.driver.get() {
            Some(d) => (d.registered(), d.armed_timers()),
            None => (0, 0),
        }
    }

    /// This runtime's async driver, made on first use (the process-wide one once the runtime
    /// has ended).
    pub(crate) fn driver(&self) -> io::Result<Arc<Driver>> {
        self.inner
            .state
            .driver
            .get_or_make(|| match &self.inner.model {
                crate::model::ModelImpl::Green(green) => green.make_driver(),
                crate::model::ModelImpl::Blocking
                | crate::model::ModelImpl::Threaded(_)
                | crate::model::ModelImpl::Custom(_) => Driver::threaded(),
            })
    }
}

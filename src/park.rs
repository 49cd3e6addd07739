//! How a task waits: the one place that tells a Green fiber from an OS thread ([`with_waiter`]).
//!
//! On Green, a wait parks the *fiber*: it switches back to its worker's event loop, which resumes
//! it when its waker is woken, its timer fires, or its descriptor is ready (the ring or epoll;
//! see [`crate::model::green`]). The rest of this page is about the thread models (Blocking,
//! Threaded, custom models on OS threads), where a waiting task blocks its OS thread in one of
//! two ways:
//!
//! - **Pure waits** (join, sleep, channels, locks) park with `std::thread::park_timeout`,
//!   a futex on Linux. Any waker unparks the thread; `park` has token semantics, so an unpark that
//!   lands before the park is not lost.
//! - **Descriptor waits** (a socket not yet readable or writable) `ppoll` two descriptors: the
//!   socket and the thread's eventfd. A waker writes the eventfd when the thread is polling.
//!
//! Both kinds show in the thread's parker state (`PARKED`, a store each way, or `POLLING`),
//! which a [`WaitWatch`] reads from another thread: that is how the Threaded pool's monitor
//! tells a worker blocked in a wait from one that runs. The state word also carries an epoch,
//! bumped by every store of the owning thread, and a `FOREVER` bit on a park without deadline:
//! the Threaded deadlock check (`model/threaded/checkdead.rs`) proves with them that a thread
//! stayed in one park without deadline between two readings.
//!
//! The race between "the canceler sets the flag and wakes" and "the waiter checks the flag and
//! blocks" is closed Dekker-style with `SeqCst`:
//!
//! ```text
//!   waiter                              waker (e.g. CancelNode::cancel)
//!   state = POLLING          (SeqCst)   flag = CANCELED           (SeqCst)
//!   if flag is set: return              if state == POLLING: write(eventfd)
//!   ppoll(socket, eventfd)              thread.unpark()
//! ```
//!
//! At least one side sees the other's store: either the waiter sees the flag and never blocks, or
//! the waker sees `POLLING` and the eventfd write makes `ppoll` return. A wake that arrives after
//! the wait ended leaves the eventfd readable or the park token set; the next wait then returns
//! once spuriously, and every caller loops on its own condition.
//!
//! Regular-file I/O cannot be interrupted this way (nor with signals: the kernel sleeps
//! uninterruptibly on disk); such operations check for cancellation before they start.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};

use crate::context;
use crate::diag::wait_point;
use crate::model::green;

/// The thread is not inside `ppoll`.
const IDLE: u32 = 0;
/// The thread is inside (or about to enter) `ppoll` and must be woken through its eventfd.
const POLLING: u32 = 1;
/// The thread is inside `park`. Wakers ignore it (unparking suffices); it is there for a
/// [`WaitWatch`].
const PARKED: u32 = 2;
/// The thread probes for a deadlock (Blocking model, see `crate::stall::single`): a waker that
/// sees it sets `woke`.
const CHECKING: u32 = 3;
/// The bits of a state word that hold the kind (`IDLE` … `CHECKING`).
const KIND: u32 = 3;
/// With `PARKED`: the park has no deadline (see [`WaitWatch::word`]).
const FOREVER: u32 = 4;
/// The lowest bit of the epoch: every store of the owning thread adds one.
const EPOCH: u32 = 8;

/// A thread's parker state: its kind in the low bits, an epoch above (see the module docs).
struct ParkState(AtomicU32);

impl ParkState {
    /// The kind of the current state.
    #[inline]
    fn kind(&self, order: Ordering) -> u32 {
        self.0.load(order) & KIND
    }

    /// Stores `kind` (with `FOREVER` if given) and a new epoch. Only the owning thread
    /// stores, so a load and a store keep the epoch's sequence.
    #[inline]
    fn set(&self, kind: u32, order: Ordering) {
        let epoch = (self.0.load(Ordering::Relaxed) & !(EPOCH - 1)).wrapping_add(EPOCH);
        self.0.store(epoch | kind, order);
    }
}

/// One per OS thread that runs zsync tasks; reached through a `Waker`.
pub(crate) struct ThreadParker {
    thread: Thread,
    /// `IDLE`, `POLLING`, `PARKED` or `CHECKING`, with an epoch. Written by the owning thread,
    /// read by wakers (which act on `POLLING` and `CHECKING` only) and by a [`WaitWatch`].
    state: ParkState,
    /// The kernel's id of the owning thread (for a [`WaitWatch`]).
    tid: i32,
    /// Created on the first descriptor wait, closed when the last waker drops.
    eventfd: OnceLock<OwnedFd>,
    /// Set by a waker that found the state `CHECKING` (see `crate::stall::single`).
    woke: AtomicBool,
}

impl ThreadParker {
    fn eventfd(&self) -> io::Result<BorrowedFd<'_>> {
        if let Some(fd) = self.eventfd.get() {
            return Ok(fd.as_fd());
        }
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(self.eventfd.get_or_init(|| fd).as_fd())
    }

    fn drain_eventfd(&self) {
        if let Some(fd) = self.eventfd.get() {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(fd, &mut buf);
        }
    }
}

impl Wake for ThreadParker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.thread.unpark();
        match self.state.kind(Ordering::SeqCst) {
            POLLING => {
                if let Some(fd) = self.eventfd.get() {
                    // An eventfd write only fails if the counter would overflow, which means
                    // the thread has plenty of wake-ups pending already.
                    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
                }
            }
            CHECKING => self.woke.store(true, Ordering::SeqCst),
            _ => {}
        }
    }
}

thread_local! {
    static PARKER: Arc<ThreadParker> = Arc::new(ThreadParker {
        thread: thread::current(),
        state: ParkState(AtomicU32::new(IDLE)),
        tid: rustix::thread::gettid().as_raw_nonzero().get(),
        eventfd: OnceLock::new(),
        woke: AtomicBool::new(false),
    });
}

thread_local! {
    /// This thread's waker, built once (see [`with_waiter`]).
    static THREAD_WAKER: Waker = PARKER.with(|p| Waker::from(p.clone()));
}

/// How the running task waits, found once per blocking call ([`with_waiter`]): the one place
/// that tells a Green fiber from an OS thread.
#[derive(Clone, Copy)]
pub(crate) enum Waiter<'a> {
    /// A Green fiber, with its waker: a park switches to its worker's loop.
    Fiber(&'a Waker),
    /// An OS thread (Blocking, Threaded, custom models, code outside any runtime), with its
    /// waker: a park blocks the thread.
    Thread(&'a Waker),
}

/// Runs `f` with the running task's [`Waiter`], its waker borrowed, not cloned. `f` may block
/// (park) while it holds the borrow.
#[inline]
pub(crate) fn with_waiter<R>(f: impl FnOnce(Waiter<'_>) -> R) -> R {
    let fiber_waker = green::fiber::current_waker_ptr();
    if !fiber_waker.is_null() {
        // SAFETY: the waker lives in the running fiber's `Current`, on that fiber's own stack,
        // for the fiber's whole life; `f` runs on this same fiber, so it cannot outlive it.
        return f(Waiter::Fiber(unsafe { &*fiber_waker }));
    }
    THREAD_WAKER.with(|w| f(Waiter::Thread(w)))
}

impl Waiter<'_> {
    /// The task's waker: waking it ends a [`park`](Self::park) or a descriptor wait.
    #[inline]
    pub(crate) fn waker(&self) -> &Waker {
        match *self {
            Waiter::Fiber(w) | Waiter::Thread(w) => w,
        }
    }

    /// Whether the task is a fiber, whose park is a cheap context switch (spinning first only
    /// pays off for a thread).
    #[inline]
    pub(crate) fn is_fiber(&self) -> bool {
        match self {
            Waiter::Fiber(_) => true,
            Waiter::Thread(_) => false,
        }
    }

    /// Parks the task until woken or until `deadline`. May return spuriously.
    pub(crate) fn park(&self, deadline: Option<Instant>) {
        match self {
            Waiter::Fiber(_) => green::park_until(deadline),
            Waiter::Thread(_) => park_this_thread(deadline),
        }
    }

    /// Blocks until `fd` may be ready for `interest` (see [`wait_fd`]).
    fn wait_fd(
        &self,
        fd: BorrowedFd<'_>,
        interest: Interest,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        match self {
            Waiter::Fiber(_) => green::wait_fd(fd, interest, deadline),
            Waiter::Thread(_) => poll_this_thread(fd, interest, deadline),
        }
    }
}

/// A waker for the running task: its fiber's on Green, else one that wakes the calling thread
/// wherever it waits (park or poll).
pub(crate) fn current_waker() -> Waker {
    with_waiter(|w| w.waker().clone())
}

/// Runs `f` with the running task's waker borrowed, not cloned: the fiber's own on Green, this
/// thread's elsewhere. `f` may block (park) while it holds the borrow.
pub(crate) fn with_current_waker<R>(f: impl FnOnce(&Waker) -> R) -> R {
    with_waiter(|w| f(w.waker()))
}

/// Parks the running task until woken or until `deadline`: its fiber on Green, else the calling
/// thread. May return spuriously.
pub(crate) fn park(deadline: Option<Instant>) {
    with_waiter(|w| w.park(deadline))
}

/// Parks the calling thread, announced to a [`WaitWatch`], until unparked or `deadline`. Not
/// inlined: a thread's park costs a futex call, and the callers' fast paths keep small frames.
#[inline(never)]
fn park_this_thread(deadline: Option<Instant>) {
    let diag = crate::diag::hooks::thread_parking();
    park_this_thread_untraced(deadline);
    crate::diag::hooks::thread_unparked(diag);
}

/// [`park_this_thread`] without the diagnostics hooks.
fn park_this_thread_untraced(deadline: Option<Instant>) {
    // Announce the wait for a `WaitWatch`: one relaxed store each way. (`try_with`: a thread
    // local's destructor may still wait here, after `PARKER` is gone.)
    wait_point::begin();
    let announced = PARKER.try_with(|p| {
        if deadline.is_none() && check_deadlock(p) {
            return;
        }
        match deadline {
            // `SeqCst`, before a futex wait: the Threaded deadlock check reads it (see
            // `model/threaded/checkdead.rs`).
            None => p.state.set(PARKED | FOREVER, Ordering::SeqCst),
            Some(_) => p.state.set(PARKED, Ordering::Relaxed),
        }
        park_thread(deadline);
        p.state.set(IDLE, Ordering::Release);
    });
    if wait_point::end() {
        // A task dump asked for this task's stack: answer, then return as from a spurious
        // wake-up (the caller re-checks its condition; see `diag/thread_trace.rs`).
        crate::diag::thread_trace::answer();
    }
    if announced.is_err() {
        park_thread(deadline);
    }
}

/// The Blocking model's deadlock check around a park without deadline (see
/// `crate::stall::single` for the two steps and why they prove a deadlock). Returns whether
/// the caller must return instead of parking: after a probe (a spurious wake-up), or after a
/// deadlock was reported (the run's tasks are canceled).
fn check_deadlock(p: &ThreadParker) -> bool {
    let verdict = p.state.kind(Ordering::SeqCst) == CHECKING;
    if !verdict && !crate::stall::single::alone_in_a_checked_run() {
        return false;
    }
    if verdict {
        let dead = !p.woke.load(Ordering::SeqCst) && crate::stall::single::alone_in_a_checked_run();
        p.state.set(IDLE, Ordering::SeqCst);
        if dead {
            crate::stall::single::deadlocked();
            return true;
        }
        return false;
    }
    // The probe.
    p.woke.store(false, Ordering::SeqCst);
    p.state.set(CHECKING, Ordering::SeqCst);
    thread::park_timeout(std::time::Duration::ZERO);
    true
}

/// Parks the calling thread until unparked or until `deadline`. May return spuriously.
fn park_thread(deadline: Option<Instant>) {
    match deadline {
        None => thread::park(),
        Some(d) => {
            let now = Instant::now();
            if d > now {
                thread::park_timeout(d - now);
            }
        }
    }
}

/// A view of one thread's waits from another thread: the Threaded pool's monitor asks whether a
/// worker is blocked in a wait (in [`park`] or in [`wait_fd`]'s `ppoll`) rather than running.
pub(crate) struct WaitWatch(Arc<ThreadParker>);

impl WaitWatch {
    /// The calling thread's waits.
    pub(crate) fn this_thread() -> WaitWatch {
        WaitWatch(PARKER.with(|p| p.clone()))
    }

    /// Whether the thread is blocked in (or entering, or just leaving) a wait of this module: a
    /// hint, it may leave the wait at once.
    pub(crate) fn is_waiting(&self) -> bool {
        self.0.state.kind(Ordering::Relaxed) != IDLE
    }

    /// The thread's state word now (`SeqCst`): two equal readings mean the thread stored
    /// nothing in between (every store bumps the epoch).
    pub(crate) fn word(&self) -> u32 {
        self.0.state.0.load(Ordering::SeqCst)
    }

    /// Whether `word` says the thread is in a park without deadline (a zsync coordination
    /// wait: channel, lock, join, notify … with no timeout).
    pub(crate) fn parked_forever(word: u32) -> bool {
        word & (KIND | FOREVER) == PARKED | FOREVER
    }

    /// The kernel's id of the thread.
    pub(crate) fn tid(&self) -> i32 {
        self.0.tid
    }
}

thread_local! {
    /// The latest clock reading this thread published (a Green worker's timer check, once per
    /// loop turn), so that a task woken by its timer need not read the clock again.
    static CLOCK: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Publishes a reading of the monotonic clock taken on this thread, for [`deadline_passed`].
#[inline]
pub(crate) fn note_clock(now: Instant) {
    CLOCK.with(|c| c.set(Some(now)));
}

/// Forgets this thread's published reading: the clock changes from real to a simulation's
/// virtual one, or back, and a reading of the other clock says nothing about this one.
pub(crate) fn forget_clock() {
    CLOCK.with(|c| c.set(None));
}

/// Whether the monotonic clock has reached `deadline`. Looks at this thread's last published
/// reading first: a reading is never ahead of the clock, so a deadline it reached has passed.
/// Only otherwise is the clock read. A timer fires when the worker's reading reaches its
/// deadline, so a task its timer woke answers without a clock read.
#[inline]
pub(crate) fn deadline_passed(deadline: Instant) -> bool {
    CLOCK.with(|c| c.get()).is_some_and(|now| now >= deadline) || crate::clock::now() >= deadline
}

/// Which readiness a descriptor wait is for: the direction of
/// [`try_io`](crate::net::TcpStream::try_io) and of the readiness waits behind every
/// operation.
///
/// ```
/// use zsync::net::Interest;
/// assert_ne!(Interest::Read, Interest::Write);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Readable: data (or a connection, or the peer's hang-up) to take.
    Read,
    /// Writable: room in the send buffer (or a connect that completed).
    Write,
}

/// Blocks until `fd` may be ready for `interest`, the running task is canceled, `deadline` passes,
/// or a waker fires. Returns `Err(Canceled)` or `Err(TimedOut)` for the two conditions the caller
/// must stop on; `Ok(())` means "try the operation again" (readiness can be spurious).
pub(crate) fn wait_fd(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<()> {
    with_waiter(|w| w.wait_fd(fd, interest, deadline))
}

/// [`wait_fd`] on an OS thread: `ppoll` on `fd` and the thread's eventfd.
fn poll_this_thread(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<()> {
    let diag = crate::diag::hooks::thread_parking();
    let result = poll_this_thread_untraced(fd, interest, deadline);
    crate::diag::hooks::thread_unparked(diag);
    result
}

/// [`poll_this_thread`] without the diagnostics hooks.
fn poll_this_thread_untraced(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<()> {
    PARKER.with(|p| {
        let evfd = p.eventfd()?;
        p.state.set(POLLING, Ordering::SeqCst);
        let result = (|| {
            context::check()?;
            let deadline = context::effective_deadline(deadline);
            let timeout = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return Err(crate::error::timed_out());
                    }
                    Some(rustix::time::Timespec::try_from(d - now).unwrap_or(
                        rustix::time::Timespec {
                            tv_sec: i64::MAX,
                            tv_nsec: 0,
                        },
                    ))
                }
                None => None,
            };
            let events = match interest {
                Interest::Read => PollFlags::IN,
                Interest::Write => PollFlags::OUT,
            };
            let mut fds = [
                PollFd::from_borrowed_fd(fd, events),
                PollFd::from_borrowed_fd(evfd, PollFlags::IN),
            ];
            wait_point::begin();
            let polled = poll(&mut fds, timeout.as_ref());
            if wait_point::end() {
                crate::diag::thread_trace::answer(); // then as a spurious wake-up (see above)
            }
            match polled {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            if !fds[1].revents().is_empty() {
                p.drain_eventfd();
            }
            Ok(())
        })();
        p.state.set(IDLE, Ordering::SeqCst);
        result
    })
}

/// Runs a non-blocking `attempt` until it stops reporting `WouldBlock`, waiting for readiness of
/// `fd` in between. Each round is a cancellation point. This is the whole I/O path of the thread
/// models: the syscall is tried first, so ready data costs exactly one syscall.
pub(crate) fn retry_on_fd<T>(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    green::fiber::consume_budget();
    context::check()?;
    loop {
        match attempt() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_fd(fd, interest, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => context::check()?,
            other => return other,
        }
    }
}

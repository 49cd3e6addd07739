//! A descriptor registered with the async driver: its readiness and the tasks waiting on it.
//!
//! Registered once, edge-triggered, for both directions (Tokio's `ScheduledIo`, async-io's
//! `Source`): the kernel reports a *change*, so the driver remembers what it reported in
//! readiness bits until an operation shows that it has been used up. The protocol:
//!
//! 1. An event from epoll sets the ready bits and bumps the `tick` of each direction it
//!    readies, in the same word, then wakes the waiters of those directions.
//! 2. A waiter (`poll_ready`) returns at once if its bit is set; otherwise it stores its waker
//!    under the source's lock and *then* loads the bits again. The driver sets the bits before
//!    taking that lock, so either the driver finds the waker or the waiter sees the bits.
//! 3. An operation (`try_io`) reads the word, runs the syscall, and on `WouldBlock` clears its
//!    bit only if its direction's tick has not moved: an event that readied that direction
//!    between the syscall and the clear keeps the bit set, so the next `poll_ready` returns at
//!    once instead of waiting for an edge that has already passed. (Tokio keeps one tick for
//!    both directions, so an event for the other direction, such as the first writable edge of
//!    a new registration, also keeps the bit and costs one more try.)
//!
//! A new source starts *ready* in both directions: the first operation is tried at once (one
//! syscall when data is there already) and a `WouldBlock` then clears the bit. An error or
//! hang-up makes both directions ready, so the operation reports it.
//!
//! Waiters: each direction has one slot for the `poll_*_ready` API (the last poller's waker,
//! as with Tokio's and async-io's poll methods) and any number of keyed waiters for the
//! `_async` methods' futures, each removed when its future is dropped. An event wakes them all.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use rustix::event::epoll::EventFlags;
use slab::Slab;

use super::Driver;
use crate::park::Interest;

/// Readiness bits (the low byte of `readiness`); above them, a 28-bit tick per direction.
const READABLE: u64 = 1;
const WRITABLE: u64 = 2;
/// The driver has shut down: every wait fails.
const SHUTDOWN: u64 = 4;
/// The peer has shut its side down (or the socket failed): the read direction stays ready for
/// good, because no further edge will come. Never cleared: a short read that drains the data
/// before a hang-up must not leave the end of the stream unreported (Tokio keeps its
/// `READ_CLOSED` the same way).
const READ_CLOSED: u64 = 8;
/// The connection hung up or failed: the write direction stays ready for good.
const WRITE_CLOSED: u64 = 16;
/// Where each direction's tick starts in the word, and its width.
const READ_TICK: u32 = 8;
const WRITE_TICK: u32 = 36;
const TICK_MASK: u64 = (1 << 28) - 1;

/// The tick of the direction whose tick starts at bit `shift`.
fn tick(word: u64, shift: u32) -> u64 {
    (word >> shift) & TICK_MASK
}

/// `word` with that tick advanced by one (wrapping within its bits).
fn bump(word: u64, shift: u32) -> u64 {
    let next = (tick(word, shift) + 1) & TICK_MASK;
    (word & !(TICK_MASK << shift)) | next << shift
}

/// What one epoll event said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready(u64);

impl Ready {
    /// Readiness from epoll's flags: an error or hang-up readies both directions.
    pub(crate) fn from_epoll(flags: EventFlags) -> Ready {
        let failed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
        let mut bits = 0;
        if failed || flags.intersects(EventFlags::IN | EventFlags::RDHUP | EventFlags::PRI) {
            bits |= READABLE;
        }
        if failed || flags.contains(EventFlags::RDHUP) {
            bits |= READ_CLOSED;
        }
        if failed || flags.contains(EventFlags::OUT) {
            bits |= WRITABLE;
        }
        if failed {
            bits |= WRITE_CLOSED;
        }
        Ready(bits)
    }
}

/// Whether a transfer of `n` of up to `len` bytes was short, which uses the readiness up (see
/// [`Source::try_transfer`]); the end of a stream (`0`) is not.
fn short(len: usize) -> impl Fn(&usize) -> bool {
    move |&n| n > 0 && n < len
}

/// The ready bit and the tick's position of a direction.
fn bit(interest: Interest) -> (u64, u32) {
    match interest {
        Interest::Read => (READABLE, READ_TICK),
        Interest::Write => (WRITABLE, WRITE_TICK),
    }
}

/// The waiters of one direction.
#[derive(Default)]
struct Direction {
    /// The `poll_*_ready` slot: the last poller's waker.
    poll: Option<Waker>,
    /// Keyed waiters (the `_async` futures); `None` once woken, until the waiter leaves.
    keyed: Slab<Option<Waker>>,
}

impl Direction {
    fn take_all(&mut self, out: &mut Vec<Waker>) {
        out.extend(self.poll.take());
        out.extend(self.keyed.iter_mut().filter_map(|(_, w)| w.take()));
    }
}

#[derive(Default)]
struct Waiters {
    read: Direction,
    write: Direction,
}

impl Waiters {
    fn direction(&mut self, interest: Interest) -> &mut Direction {
        match interest {
            Interest::Read => &mut self.read,
            Interest::Write => &mut self.write,
        }
    }
}

/// Which waiter a [`Source::poll_ready`] call is: the shared `poll_*_ready` slot, or a keyed
/// waiter (the key is assigned on its first pending poll; pass it to
/// [`Source::leave`] when the wait is dropped).
pub(crate) enum Waiter<'a> {
    /// The one `poll_*_ready` slot of the direction.
    Poll,
    /// A keyed waiter of its own.
    Keyed(&'a mut Option<usize>),
}

/// One registered descriptor. See the module docs.
pub(crate) struct Source {
    /// Its key in the driver's registry (also the epoll event's data).
    key: u64,
    /// The descriptor, for the `EPOLL_CTL_DEL` when its owner drops (see [`Registered`]).
    fd: RawFd,
    driver: Weak<Driver>,
    /// Ready bits (low byte) and tick (the rest). See the module docs.
    readiness: AtomicU64,
    waiters: Mutex<Waiters>,
}

impl Source {
    pub(super) fn new(key: u64, fd: RawFd, driver: Weak<Driver>) -> Source {
        Source {
            key,
            fd,
            driver,
            readiness: AtomicU64::new(READABLE | WRITABLE),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub(super) fn key(&self) -> u64 {
        self.key
    }

    /// Records an event and collects the wakers it concerns (step 1 of the module docs).
    pub(super) fn set_ready(&self, ready: Ready, wake: &mut Vec<Waker>) {
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let mut next = cur | ready.0;
                if ready.0 & READABLE != 0 {
                    next = bump(next, READ_TICK);
                }
                if ready.0 & WRITABLE != 0 {
                    next = bump(next, WRITE_TICK);
                }
                Some(next)
            });
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if ready.0 & READABLE != 0 {
            waiters.read.take_all(wake);
        }
        if ready.0 & WRITABLE != 0 {
            waiters.write.take_all(wake);
        }
    }

    /// The driver has shut down: every present and future wait fails.
    pub(super) fn shut_down(&self, wake: &mut Vec<Waker>) {
        self.readiness.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.read.take_all(wake);
        waiters.write.take_all(wake);
    }

    /// Whether the descriptor may be ready for `interest`: `Ready(Ok)` if so (or if it failed:
    /// the operation reports it), `Ready(Err)` if the driver has shut down, else `Pending`
    /// with `cx`'s waker registered as `waiter` (step 2 of the module docs).
    pub(crate) fn poll_ready(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
        waiter: Waiter<'_>,
    ) -> Poll<io::Result<()>> {
        let (bit, _) = bit(interest);
        if let Some(ready) = self.check(bit) {
            return Poll::Ready(ready);
        }
        // Cloned (and the previous one dropped) outside the lock: a waker is foreign code.
        let waker = cx.waker().clone();
        let old = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            let direction = waiters.direction(interest);
            match waiter {
                Waiter::Poll => direction.poll.replace(waker),
                Waiter::Keyed(key) => match key {
                    Some(k) => match direction.keyed.get_mut(*k) {
                        Some(slot) => slot.replace(waker),
                        None => {
                            *key = Some(direction.keyed.insert(Some(waker)));
                            None
                        }
                    },
                    None => {
                        *key = Some(direction.keyed.insert(Some(waker)));
                        None
                    }
                },
            }
        };
        drop(old);
        match self.check(bit) {
            Some(ready) => Poll::Ready(ready),
            None => Poll::Pending,
        }
    }

    fn check(&self, bit: u64) -> Option<io::Result<()>> {
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & SHUTDOWN != 0 {
            Some(Err(super::shut_down()))
        } else if cur & bit != 0 {
            Some(Ok(()))
        } else {
            None
        }
    }

    /// Withdraws the keyed waiter `key` (its wait was dropped or completed).
    pub(crate) fn leave(&self, interest: Interest, key: usize) {
        let waker = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            waiters.direction(interest).keyed.try_remove(key)
        };
        drop(waker);
    }

    /// Runs the non-blocking operation `f`; if it reports `WouldBlock`, clears the readiness
    /// it used up unless an event came meanwhile (step 3 of the module docs).
    pub(crate) fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        self.try_io_draining(interest, f, |_| false)
    }

    /// [`try_io`](Self::try_io) for a stream transfer of up to `len` bytes: one that moved
    /// some but fewer bytes has emptied the receive buffer or filled the send buffer, so it
    /// clears the readiness too, as `WouldBlock` would, and the next transfer waits for the
    /// next edge instead of making a syscall that would only return `WouldBlock` (Tokio's
    /// `PollEvented` does the same). The end of a stream (`0` read) keeps it: that lasts.
    pub(crate) fn try_transfer(
        &self,
        interest: Interest,
        len: usize,
        f: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.try_io_draining(interest, f, short(len))
    }

    /// Runs `f`; clears the readiness it used up (unless an event came meanwhile) on
    /// `WouldBlock`, or on a success that `drained` says used it up.
    fn try_io_draining<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
        drained: impl FnOnce(&R) -> bool,
    ) -> io::Result<R> {
        let seen = self.readiness.load(Ordering::Acquire);
        let result = f();
        let used_up = match &result {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(value) => drained(value),
        };
        if used_up {
            self.clear(interest, seen);
        }
        result
    }

    /// Clears `interest`'s bit if its tick is still that of `seen` and the direction has not
    /// closed (see [`READ_CLOSED`]).
    fn clear(&self, interest: Interest, seen: u64) {
        let (bit, shift) = bit(interest);
        let closed = match interest {
            Interest::Read => READ_CLOSED,
            Interest::Write => WRITE_CLOSED,
        };
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (tick(cur, shift) == tick(seen, shift) && cur & bit != 0 && cur & closed == 0)
                    .then_some(cur & !bit)
            });
    }

    /// Polls `f` to completion: waits for readiness, tries, and on `WouldBlock` waits again.
    pub(crate) fn poll_io<R>(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
        waiter: Waiter<'_>,
        f: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_draining(interest, cx, waiter, f, |_| false)
    }

    /// [`poll_io`](Self::poll_io) for a stream transfer of up to `len` bytes (see
    /// [`try_transfer`](Self::try_transfer)).
    pub(crate) fn poll_transfer(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
        waiter: Waiter<'_>,
        len: usize,
        f: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_draining(interest, cx, waiter, f, short(len))
    }

    fn poll_draining<R>(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
        mut waiter: Waiter<'_>,
        mut f: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        loop {
            let w = match &mut waiter {
                Waiter::Poll => Waiter::Poll,
                Waiter::Keyed(k) => Waiter::Keyed(k),
            };
            match self.poll_ready(interest, cx, w) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match self.try_io_draining(interest, &mut f, &drained) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    /// Waits (as a future) until `f` succeeds or fails with something else than `WouldBlock`;
    /// the waiter is keyed, so any number of tasks may wait on one descriptor.
    pub(crate) async fn io<R>(
        &self,
        interest: Interest,
        f: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_draining(interest, f, |_| false).await
    }

    /// [`io`](Self::io) for a stream transfer of up to `len` bytes (see
    /// [`try_transfer`](Self::try_transfer)).
    pub(crate) async fn transfer(
        &self,
        interest: Interest,
        len: usize,
        f: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.io_draining(interest, f, short(len)).await
    }

    async fn io_draining<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        struct Leave<'a>(&'a Source, Interest, Option<usize>);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                if let Some(key) = self.2 {
                    self.0.leave(self.1, key);
                }
            }
        }
        let mut guard = Leave(self, interest, None);
        std::future::poll_fn(|cx| {
            let key = &mut guard.2;
            self.poll_draining(interest, cx, Waiter::Keyed(key), &mut f, &drained)
        })
        .await
    }
}

/// The lazily made registration of a descriptor, owned next to it: the driver registration is
/// made on first async use and removed (`EPOLL_CTL_DEL`) when this is dropped.
///
/// Invariant the owner keeps: this field is declared *before* the descriptor, so it drops
/// while the descriptor is still open (a struct's fields drop in declaration order), and it
/// is only ever asked about that one descriptor.
#[derive(Default)]
pub(crate) struct Registered {
    /// The source, or the errno of a registration that failed (kept: it would fail again).
    slot: OnceLock<Result<Arc<Source>, i32>>,
}

impl Registered {
    /// An empty registration.
    pub(crate) const fn new() -> Registered {
        Registered {
            slot: OnceLock::new(),
        }
    }

    /// The descriptor's source, registering `fd` with `io`'s driver on first use.
    pub(crate) fn source(&self, io: &crate::Io, fd: BorrowedFd<'_>) -> io::Result<&Source> {
        let slot = self.slot.get_or_init(|| {
            let registered = io.driver().and_then(|driver| driver.register(fd));
            registered.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
        });
        match slot {
            Ok(source) => Ok(source),
            Err(errno) => Err(io::Error::from_raw_os_error(*errno)),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let Some(Ok(source)) = self.slot.get() else {
            return;
        };
        if let Some(driver) = source.driver.upgrade() {
            // SAFETY: the owner declares this field before its descriptor (see the type's
            // docs), so the descriptor is still open while this runs; it is borrowed for the
            // one `epoll_ctl` call.
            let fd = unsafe { BorrowedFd::borrow_raw(source.fd) };
            driver.deregister(fd, source);
        }
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.slot.get() {
            None => "Registered(no)",
            Some(Ok(_)) => "Registered(yes)",
            Some(Err(_)) => "Registered(failed)",
        })
    }
}

/// The raw descriptor of `fd` (for [`Source::new`]).
pub(super) fn raw(fd: BorrowedFd<'_>) -> RawFd {
    fd.as_raw_fd()
}

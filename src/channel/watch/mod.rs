//! A watch channel: one value, many receivers that see its latest version (Tokio's
//! `tokio::sync::watch`).
//!
//! The [`Sender`] replaces or modifies the value; each [`Receiver`] can [`borrow`](Receiver::borrow)
//! it at any time and wait for the next change with [`changed`](Receiver::changed) (or for a
//! value satisfying a predicate with [`wait_for`](Receiver::wait_for)). Intermediate values a
//! receiver did not look at are not queued: a receiver sees *the latest* value, which makes this
//! the channel for configuration, state and shutdown flags. Once every sender is gone the
//! channel is closed: `changed` reports [`RecvError::Closed`] (after any change not yet seen).
//!
//! ```
//! use zsync::channel::watch;
//!
//! zsync::run(zsync::Model::Threaded, |io| {
//!     let (tx, mut rx) = watch::channel("starting");
//!     let worker = io.spawn(move |_| {
//!         // Waits for a value the predicate accepts; the current one is looked at first.
//!         let state = *rx.wait_for(|s| *s == "running").unwrap();
//!         state
//!     });
//!     tx.send("running").unwrap();
//!     assert_eq!(worker.join().unwrap(), "running");
//! });
//! ```
//!
//! # Waiting
//!
//! `changed` and `wait_for` are cancellation points, honour the task's deadline
//! ([`Io::timeout_until`](crate::Io::timeout_until)) and their own (`*_timeout`, `*_until`), and
//! park the fiber on Green. [`Receiver::changed_event`] and [`Sender::closed_event`] are the
//! [`Event`] forms, for `select!` and [`Io::wait`](crate::Io::wait). A receiver
//! waits in a `WaitList` (the crate's wait queue); a send bumps a version number and wakes them
//! all. A canceled or timed-out wait leaves the receiver's "seen" version as it was, so the
//! change it missed is reported by its next `changed`.
//!
//! # Borrows
//!
//! A [`Ref`] holds a read lock on the value: a send waits until it is dropped. Keep borrows
//! short, and clone what you need to keep. Unlike a std lock, a task that finds the lock taken
//! parks its fiber, not its worker thread, so a borrow held across a wait on Green stalls only
//! the tasks that want to write, never the worker (a task that holds a `Ref` and then sends on
//! the same channel still deadlocks, as it would with any lock). No value is ever cloned or
//! dropped with a lock of the channel held: the old value a send replaces is dropped after the
//! lock is released.

mod lock;

use std::fmt;
use std::io;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use self::lock::{ReadGuard, ValueLock};
use super::{RecvError, SendError};
use crate::wait::{block_until, WaitList, Waiter};
use crate::Event;

/// Bit 0 of [`Shared::state`]: every sender is gone.
const CLOSED: u64 = 1;
/// What a send adds to [`Shared::state`]: the version lives in the bits above [`CLOSED`].
const VERSION_STEP: u64 = 2;

struct Shared<T> {
    value: ValueLock<T>,
    /// `version * VERSION_STEP | CLOSED`. The version is bumped with the value's write lock
    /// held, so a reader holding the read lock sees the version of the value it reads.
    state: AtomicU64,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    /// Receivers waiting for a change (or for the close).
    changed: WaitList,
    /// Senders waiting in [`Sender::closed`] for the last receiver to go.
    no_receivers: WaitList,
}

impl<T> Shared<T> {
    fn version(&self) -> u64 {
        self.state.load(Ordering::SeqCst) & !CLOSED
    }

    fn is_closed(&self) -> bool {
        self.state.load(Ordering::SeqCst) & CLOSED != 0
    }
}

/// Creates a watch channel holding `init`. The receiver starts having *seen* `init`: its first
/// [`changed`](Receiver::changed) waits for a send.
///
/// ```
/// let (tx, rx) = zsync::channel::watch::channel(1);
/// assert_eq!(*rx.borrow(), 1);
/// tx.send(2).unwrap();
/// assert_eq!(*rx.borrow(), 2);
/// ```
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: ValueLock::new(init),
        state: AtomicU64::new(0),
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
        changed: WaitList::new(),
        no_receivers: WaitList::new(),
    });
    let seen = 0;
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared, seen },
    )
}

/// The sending half of a [`watch`](self) channel. Clone it for more senders; the channel closes
/// when the last one drops.
#[must_use = "dropping the last sender closes the channel"]
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half of a [`watch`](self) channel. Clone it (or
/// [`subscribe`](Sender::subscribe)) for more receivers; a clone has seen what the original has.
#[must_use = "a receiver does nothing unless borrowed or waited on"]
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver last marked seen.
    seen: u64,
}

/// A borrow of a watch channel's value: holds its read lock (senders wait) until dropped.
#[must_use = "a borrow holds the channel's read lock until dropped"]
pub struct Ref<'a, T> {
    guard: ReadGuard<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// Whether the value had changed since the receiver last marked it seen when this borrow
    /// was taken (always false for [`Sender::borrow`]).
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T> Sender<T> {
    /// Replaces the value and notifies every receiver. Fails, giving the value back in
    /// [`SendError::Closed`] and storing nothing, when no receiver is left (as Tokio's);
    /// [`send_replace`](Sender::send_replace) stores it anyway. Never blocks except for a
    /// [`Ref`] held elsewhere. The old value is dropped after the lock is released.
    ///
    /// ```
    /// use zsync::channel::{watch, SendError};
    /// let (tx, rx) = watch::channel(0);
    /// tx.send(1).unwrap();
    /// drop(rx);
    /// assert_eq!(tx.send(2), Err(SendError::Closed(2)));
    /// assert_eq!(*tx.borrow(), 1);
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.receivers.load(Ordering::SeqCst) == 0 {
            return Err(SendError::Closed(value));
        }
        drop(self.send_replace(value));
        Ok(())
    }

    /// Replaces the value, notifies every receiver, and returns the old value; works with no
    /// receiver too (a later [`subscribe`](Sender::subscribe) sees it).
    ///
    /// ```
    /// let (tx, _rx) = zsync::channel::watch::channel(String::from("old"));
    /// assert_eq!(tx.send_replace("new".into()), "old");
    /// ```
    pub fn send_replace(&self, value: T) -> T {
        let old = {
            let mut guard = self.shared.value.write();
            let old = std::mem::replace(&mut *guard, value);
            self.shared.state.fetch_add(VERSION_STEP, Ordering::SeqCst);
            old
        };
        self.shared.changed.notify_all();
        old
    }

    /// Modifies the value in place and notifies every receiver, with or without receivers.
    ///
    /// `modify` runs under the value's write lock: receivers' borrows wait for it, so keep it
    /// short and do not wait in it. If it panics, the panic goes on to the caller, the
    /// receivers are not notified, and the value keeps what the closure did to it.
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::watch::channel(vec![1]);
    /// tx.send_modify(|v| v.push(2));
    /// assert_eq!(*rx.borrow(), [1, 2]);
    /// ```
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|v| {
            modify(v);
            true
        });
    }

    /// Like [`send_modify`](Sender::send_modify), but notifies the receivers only if `modify`
    /// returns true (it says whether it changed anything). Returns what `modify` returned.
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::watch::channel(5);
    /// assert!(!tx.send_if_modified(|v| { let changed = *v != 5; *v = 5; changed }));
    /// assert!(!rx.has_changed().unwrap());
    /// ```
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        {
            let mut guard = self.shared.value.write();
            // A panic drops the guard (releasing the lock) without bumping the version.
            if !modify(&mut guard) {
                return false;
            }
            self.shared.state.fetch_add(VERSION_STEP, Ordering::SeqCst);
        }
        self.shared.changed.notify_all();
        true
    }

    /// Borrows the current value (holding the read lock until the [`Ref`] drops).
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.value.read(),
            has_changed: false,
        }
    }

    /// A new receiver that has seen the current value. Reopens a channel whose receivers were
    /// all dropped: [`send`](Sender::send) works again.
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::watch::channel(0);
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// let rx = tx.subscribe();
    /// tx.send(1).unwrap();
    /// assert!(rx.has_changed().unwrap());
    /// ```
    pub fn subscribe(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, Ordering::SeqCst);
        Receiver {
            seen: self.shared.version(),
            shared: self.shared.clone(),
        }
    }

    /// How many receivers exist now.
    pub fn receiver_count(&self) -> usize {
        self.shared.receivers.load(Ordering::SeqCst)
    }

    /// Whether every receiver is gone (a [`send`](Sender::send) would fail).
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
    }

    /// Waits until every receiver is gone. Cancellation point; honours the task's deadline.
    ///
    /// ```
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let (tx, rx) = zsync::channel::watch::channel(());
    ///     let t = io.spawn(move |_| drop(rx));
    ///     tx.closed().unwrap();
    ///     t.join().unwrap();
    /// });
    /// ```
    pub fn closed(&self) -> io::Result<()> {
        let mut ev = self.closed_event();
        block_until(None, |w| ev.poll_event(w))
    }

    /// Like [`closed`](Sender::closed), giving up with `TimedOut` after `timeout`.
    pub fn closed_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.closed_until(deadline_after(timeout))
    }

    /// Like [`closed`](Sender::closed), giving up with `TimedOut` at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (tx, _rx) = zsync::channel::watch::channel(0);
    /// let err = tx.closed_until(Instant::now() + Duration::from_millis(5)).unwrap_err();
    /// assert!(zsync::is_timed_out(&err));
    /// ```
    pub fn closed_until(&self, deadline: Instant) -> io::Result<()> {
        let mut ev = self.closed_event();
        block_until(Some(deadline), |w| ev.poll_event(w))
    }

    /// [`closed`](Sender::closed) as an [`Event`], for `select!` and
    /// [`Io::wait`](crate::Io::wait).
    pub fn closed_event(&self) -> ClosedEvent<'_, T> {
        ClosedEvent {
            shared: &self.shared,
            waiter: self.shared.no_receivers.waiter(),
        }
    }

    /// Whether `other` sends on the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

fn deadline_after(timeout: Duration) -> Instant {
    // A timeout too far to represent is as good as a century.
    let now = crate::clock::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

impl<T> Receiver<T> {
    /// Borrows the current value without marking it seen. [`Ref::has_changed`] tells whether
    /// it is a version this receiver has not seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        let guard = self.shared.value.read();
        // Under the read lock the version is that of the value read.
        let has_changed = self.shared.version() != self.seen;
        Ref { guard, has_changed }
    }

    /// Borrows the current value and marks it seen: the next [`changed`](Receiver::changed)
    /// waits for a newer one.
    ///
    /// ```
    /// let (tx, mut rx) = zsync::channel::watch::channel(1);
    /// tx.send(2).unwrap();
    /// let v = rx.borrow_and_update();
    /// assert!(v.has_changed());
    /// assert_eq!(*v, 2);
    /// drop(v);
    /// assert!(!rx.has_changed().unwrap());
    /// ```
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.value.read();
        let version = self.shared.version();
        let has_changed = version != self.seen;
        self.seen = version;
        Ref { guard, has_changed }
    }

    /// Whether the value changed since this receiver last marked it seen. Never blocks.
    /// `Err(Closed)` once every sender is gone (even if there is an unseen change: `changed`
    /// reports that one).
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        let state = self.shared.state.load(Ordering::SeqCst);
        if state & CLOSED != 0 {
            return Err(RecvError::Closed);
        }
        Ok(state & !CLOSED != self.seen)
    }

    /// Marks the current value seen without borrowing it.
    pub fn mark_unchanged(&mut self) {
        self.seen = self.shared.version();
    }

    /// Waits for a version of the value this receiver has not seen, and marks it seen (borrow
    /// it with [`borrow`](Receiver::borrow)). Returns at once if there is one already.
    /// Cancellation point.
    ///
    /// Errors: `Closed` once every sender is gone and the latest value has been seen;
    /// `Canceled`, `TimedOut` (the task's deadline) with nothing marked seen.
    ///
    /// ```
    /// use zsync::channel::{watch, RecvError};
    /// let (tx, mut rx) = watch::channel(0);
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.changed(), Ok(()));   // the change made before the close
    /// assert_eq!(*rx.borrow(), 1);
    /// assert_eq!(rx.changed(), Err(RecvError::Closed));
    /// ```
    #[track_caller]
    pub fn changed(&mut self) -> Result<(), RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::None,
        );
        self.changed_with(None)
    }

    /// Like [`changed`](Receiver::changed), giving up with `TimedOut` after `timeout`.
    pub fn changed_timeout(&mut self, timeout: Duration) -> Result<(), RecvError> {
        self.changed_with(Some(deadline_after(timeout)))
    }

    /// Like [`changed`](Receiver::changed), giving up with `TimedOut` at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use zsync::channel::{watch, RecvError};
    /// let (_tx, mut rx) = watch::channel(0);
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert_eq!(rx.changed_until(deadline), Err(RecvError::TimedOut));
    /// ```
    pub fn changed_until(&mut self, deadline: Instant) -> Result<(), RecvError> {
        self.changed_with(Some(deadline))
    }

    fn changed_with(&mut self, deadline: Option<Instant>) -> Result<(), RecvError> {
        let mut ev = self.changed_event();
        match block_until(deadline, |w| ev.poll_event(w)) {
            Ok(r) => r,
            Err(e) => Err(RecvError::from_wait(&e)),
        }
    }

    /// [`changed`](Receiver::changed) as an [`Event`], for `select!` and
    /// [`Io::wait`](crate::Io::wait). It marks the new version seen only when it completes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::select::sleep;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let (tx, mut rx) = zsync::channel::watch::channel(0);
    ///     tx.send(7).unwrap();
    ///     let got = zsync::select!(io;
    ///         r = rx.changed_event() => r.is_ok(),
    ///         _ = sleep(Duration::from_secs(5)) => false,
    ///     ).unwrap();
    ///     assert!(got);
    /// });
    /// ```
    pub fn changed_event(&mut self) -> ChangedEvent<'_, T> {
        ChangedEvent {
            shared: &self.shared,
            seen: &mut self.seen,
            waiter: self.shared.changed.waiter(),
        }
    }

    /// Waits until the value satisfies `pred` and returns a borrow of that value (marked seen).
    /// The current value is tested first, then each new version; `pred` runs under the read
    /// lock (a panic in it releases the lock and goes on to the caller). Cancellation point.
    ///
    /// Errors: `Closed` if every sender is gone and the latest value fails `pred`; `Canceled`,
    /// `TimedOut` (the task's deadline).
    #[track_caller]
    pub fn wait_for(&mut self, pred: impl FnMut(&T) -> bool) -> Result<Ref<'_, T>, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::None,
        );
        self.wait_for_with(None, pred)
    }

    /// Like [`wait_for`](Receiver::wait_for), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn wait_for_timeout(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&T) -> bool,
    ) -> Result<Ref<'_, T>, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::None,
        );
        self.wait_for_with(Some(deadline_after(timeout)), pred)
    }

    /// Like [`wait_for`](Receiver::wait_for), giving up with `TimedOut` at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use zsync::channel::{watch, RecvError};
    /// let (tx, mut rx) = watch::channel(1);
    /// let soon = Instant::now() + Duration::from_millis(5);
    /// assert_eq!(rx.wait_for_until(soon, |v| *v > 1).unwrap_err(), RecvError::TimedOut);
    /// tx.send(3).unwrap();
    /// assert_eq!(*rx.wait_for_until(soon, |v| *v > 1).unwrap(), 3); // no wait needed
    /// ```
    #[track_caller]
    pub fn wait_for_until(
        &mut self,
        deadline: Instant,
        pred: impl FnMut(&T) -> bool,
    ) -> Result<Ref<'_, T>, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::None,
        );
        self.wait_for_with(Some(deadline), pred)
    }

    fn wait_for_with(
        &mut self,
        deadline: Option<Instant>,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Result<Ref<'_, T>, RecvError> {
        let shared: &Shared<T> = &self.shared;
        let mut closed = false;
        loop {
            let guard = shared.value.read();
            let version = shared.version();
            let has_changed = version != self.seen;
            self.seen = version;
            // After the close only a version not tested yet is worth testing.
            if (!closed || has_changed) && pred(&guard) {
                return Ok(Ref { guard, has_changed });
            }
            drop(guard);
            if closed {
                return Err(RecvError::Closed);
            }
            let mut waiter = shared.changed.waiter();
            let seen = &mut self.seen;
            match block_until(deadline, |w| poll_changed(shared, seen, &mut waiter, w)) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => closed = true,
                Err(e) => return Err(RecvError::from_wait(&e)),
            }
        }
    }

    /// Whether `other` receives from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// One poll of a wait for a version newer than `seen`: registers `waiter` before the re-check
/// (see `WaitList`), marks the new version seen when it completes.
fn poll_changed<T>(
    shared: &Shared<T>,
    seen: &mut u64,
    waiter: &mut Waiter<'_>,
    waker: &Waker,
) -> Poll<Result<(), RecvError>> {
    let check = |seen: &mut u64| {
        let state = shared.state.load(Ordering::SeqCst);
        if state & !CLOSED != *seen {
            *seen = state & !CLOSED;
            Some(Ok(()))
        } else if state & CLOSED != 0 {
            Some(Err(RecvError::Closed))
        } else {
            None
        }
    };
    if let Some(r) = check(seen) {
        waiter.used();
        return Poll::Ready(r);
    }
    waiter.register(waker);
    match check(seen) {
        Some(r) => {
            waiter.used();
            Poll::Ready(r)
        }
        None => Poll::Pending,
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.senders.fetch_add(1, Ordering::SeqCst);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.state.fetch_or(CLOSED, Ordering::SeqCst);
            self.shared.changed.notify_all();
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, Ordering::SeqCst);
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.shared.receivers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.no_receivers.notify_all();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Sender")
            .field("version", &(self.shared.version() / VERSION_STEP))
            .field("receivers", &self.receiver_count())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Receiver")
            .field("seen", &(self.seen / VERSION_STEP))
            .field("version", &(self.shared.version() / VERSION_STEP))
            .field("closed", &self.shared.is_closed())
            .finish_non_exhaustive()
    }
}

/// A pending [`Receiver::changed`]: completes with `Ok` when the value has a version the
/// receiver has not seen (marking it seen), or `Err(Closed)` once every sender is gone.
/// Dropping it unfinished leaves the receiver as it was.
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// let (tx, mut rx) = zsync::channel::watch::channel(0);
/// tx.send(1).unwrap();
/// futures::executor::block_on(rx.changed_event()).unwrap();
/// assert_eq!(*rx.borrow_and_update(), 1);
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct ChangedEvent<'a, T> {
    shared: &'a Shared<T>,
    seen: &'a mut u64,
    waiter: Waiter<'a>,
}

impl<T> Event for ChangedEvent<'_, T> {
    type Output = Result<(), RecvError>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<Result<(), RecvError>> {
        poll_changed(self.shared, self.seen, &mut self.waiter, waker)
    }
}

crate::event::event_future!([T] ChangedEvent<'_, T>, [T] ClosedEvent<'_, T>);

impl<T> fmt::Debug for ChangedEvent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangedEvent").finish_non_exhaustive()
    }
}

/// A pending [`Sender::closed`]: completes when no receiver is left.
///
/// Also a [`Future`](std::future::Future), for async code:
///
/// ```
/// let (tx, rx) = zsync::channel::watch::channel(0);
/// let dropper = std::thread::spawn(move || drop(rx));
/// futures::executor::block_on(tx.closed_event());
/// assert!(tx.is_closed());
/// dropper.join().unwrap();
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct ClosedEvent<'a, T> {
    shared: &'a Shared<T>,
    waiter: Waiter<'a>,
}

impl<T> Event for ClosedEvent<'_, T> {
    type Output = ();

    fn poll_event(&mut self, waker: &Waker) -> Poll<()> {
        let none_left = || self.shared.receivers.load(Ordering::SeqCst) == 0;
        if none_left() {
            self.waiter.used();
            return Poll::Ready(());
        }
        self.waiter.register(waker);
        if none_left() {
            self.waiter.used();
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for ClosedEvent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClosedEvent").finish_non_exhaustive()
    }
}

//! Channels: message passing between tasks, on every execution model.
//!
//! - [`bounded`] / [`unbounded`]: multi-producer multi-consumer FIFO channels. `bounded(0)` is a
//!   rendezvous channel: a [`send`](Sender::send) completes only when a receiver takes the value.
//! - [`oneshot`]: one value, once.
//! - [`Queue`]: Zig's `std.Io.Queue`, a fixed-capacity buffer moving many elements per call
//!   ("put at least `min`", "get at least `min`").
//! - [`watch`]: one value, many receivers that see its latest version (Tokio's `watch`).
//! - [`broadcast`]: every receiver sees every value, from a bounded ring; a receiver that falls
//!   behind is told how many it missed (Tokio's `broadcast`).
//!
//! Like every zsync operation, the blocking calls are plain functions: a task on the Threaded
//! model parks its thread, a Green fiber parks only the fiber, and on the Blocking model the
//! single thread waits inline (so a `recv` there completes only if the message is already sent,
//! the channel is closed, or a deadline passes). Every blocking call is a **cancellation point**
//! and honours deadlines — the call's own (`*_timeout`, `*_until`) and the task's
//! ([`Io::timeout_until`](crate::Io::timeout_until)). Errors keep the cases apart
//! ([`SendError`], [`RecvError`]), a failed send gives its value back, and each error converts
//! into `std::io::Error` for `?`.
//!
//! ```
//! use zsync::channel;
//!
//! let total = zsync::run(zsync::Model::Threaded, |io| {
//!     let (tx, rx) = channel::bounded(4);
//!     let producer = io.spawn(move |_| {
//!         for i in 1..=100u64 {
//!             tx.send(i).unwrap();
//!         }
//!         // `tx` drops here: the channel closes once the receiver has drained it.
//!     });
//!     let total: u64 = rx.iter().sum();
//!     producer.join().unwrap();
//!     total
//! });
//! assert_eq!(total, 5050);
//! ```
//!
//! # Design
//!
//! One `Mutex` guards the buffer (`VecDeque<T>`), the closed flag and two wait queues: the
//! waiting receivers (waiting for a message) and the waiting senders (waiting for space). Every
//! wait is written once as an [`Event`] ([`RecvEvent`], [`SendEvent`]) and the blocking calls
//! are `block_until(deadline, |w| event.poll_event(w))`: one code path for `recv`,
//! `recv_timeout`, [`Io::wait`](crate::Io::wait) and `select`.
//!
//! A poll takes the state lock once: it takes a message (or pushes one) if it can, and then
//! notifies the other side's oldest waiter, if any; otherwise it registers its waker in its own
//! side's queue. All of that happens under the one lock, so no wake-up can be lost (a waiter
//! registered before the change is in the queue and notified; one that comes later sees the
//! change), and the notified waker is woken *after* the lock is released. One lock per
//! operation, and no allocation once the queues have grown to the number of simultaneous
//! waiters.
//!
//! # Lossless cancellation
//!
//! A notification is a turn, not a message: the woken receiver re-polls and takes what it finds.
//! So a receiver canceled (or timed out, or losing a `select`) while it waits
//!
//! 1. never takes a message: only a poll that returns `Ready` pops, and `block_until` reports
//!    `Canceled` *instead of* polling again — the message stays in the buffer;
//! 2. does not swallow the wake-up meant for that message: dropping its waiter with an unused
//!    notification hands the notification to the next waiting receiver (the wait-queue rule).
//!
//! Senders waiting for space are symmetric: a canceled `send` pushed nothing and returns its value
//! in [`SendError::Canceled`], and a space-turn it received goes on to the next sender. On a
//! rendezvous channel a waiting sender's value sits in the buffer as an *offer*; canceling takes
//! it back under the lock — unless a receiver already took it, in which case the send did
//! happen and returns `Ok`.

pub mod broadcast;
mod core;
mod error;
mod oneshot;
mod queue;
pub mod watch;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::core::{Chan, UNBOUNDED};
pub use self::core::{RecvEvent, SendEvent};
pub use error::{QueueError, QueueErrorKind, RecvError, SendError, TryRecvError, TrySendError};
pub use oneshot::{oneshot, OneshotReceiver, OneshotSender};
pub use queue::Queue;

use crate::wait::block_until;
use crate::Event;

/// Creates a channel buffering up to `cap` messages; `send` blocks while it is full.
///
/// `bounded(0)` is a rendezvous channel: each `send` waits until a receiver has taken its value,
/// and [`try_send`](Sender::try_send) succeeds only when a receiver is waiting at that moment.
///
/// ```
/// zsync::run(zsync::Model::Threaded, |io| {
///     let (tx, rx) = zsync::channel::bounded(1);
///     tx.send(1).unwrap();
///     assert!(tx.try_send(2).is_err()); // full
///     assert_eq!(rx.recv(), Ok(1));
/// });
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    // usize::MAX marks "unbounded" internally; a buffer that large is unbounded anyway.
    pair(Chan::new(cap))
}

/// Creates a channel without a limit: `send` never blocks (it fails only when closed).
///
/// ```
/// let (tx, rx) = zsync::channel::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap();
/// }
/// assert_eq!(rx.len(), 1000);
/// assert_eq!(rx.capacity(), None);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    pair(Chan::new(UNBOUNDED))
}

fn pair<T>(chan: Chan<T>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(chan);
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half of a channel. Clone it for more producers; the channel closes when the last
/// `Sender` drops (receivers then drain what is left) or on [`close`](Sender::close).
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a channel. Clone it for more consumers (each message goes to exactly
/// one); when the last `Receiver` drops, the channel closes and buffered messages are dropped.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

macro_rules! common_methods {
    () => {
        /// Closes the channel: sends fail with `Closed` from now on, receivers drain what is
        /// buffered and then get `Closed`, and every waiting task wakes. Returns whether this call
        /// closed it (false if it was closed already).
        pub fn close(&self) -> bool {
            self.chan.close()
        }

        /// Whether the channel is closed.
        pub fn is_closed(&self) -> bool {
            self.chan.is_closed()
        }

        /// Number of buffered messages (rendezvous: values offered by waiting senders).
        pub fn len(&self) -> usize {
            self.chan.len()
        }

        /// Whether no message is buffered.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// The buffer size: `Some(cap)` for [`bounded`] (0 for rendezvous), `None` for
        /// [`unbounded`].
        pub fn capacity(&self) -> Option<usize> {
            (self.chan.cap != UNBOUNDED).then_some(self.chan.cap)
        }
    };
}

/// Runs a send event to completion (or failure) with `deadline`.
fn send_with<T>(mut ev: SendEvent<'_, T>, deadline: Option<Instant>) -> Result<(), SendError<T>> {
    match block_until(deadline, |w| ev.poll_event(w)) {
        Ok(r) => r,
        Err(e) => match ev.into_value() {
            Some(v) if crate::is_canceled(&e) => Err(SendError::Canceled(v)),
            Some(v) => Err(SendError::TimedOut(v)),
            // Rendezvous: a receiver took the offer before we stopped; the send happened.
            None => Ok(()),
        },
    }
}

fn recv_with<T>(mut ev: RecvEvent<'_, T>, deadline: Option<Instant>) -> Result<T, RecvError> {
    match block_until(deadline, |w| ev.poll_event(w)) {
        Ok(r) => r,
        Err(e) => Err(RecvError::from_wait(&e)),
    }
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full (rendezvous: until a receiver takes it).
    /// Cancellation point.
    ///
    /// Errors give the value back: `Closed` if the channel is closed or every receiver is gone,
    /// `Canceled` if the task was canceled while waiting, `TimedOut` if the task's deadline passed.
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::unbounded();
    /// tx.send("hi").unwrap();
    /// drop(rx);
    /// assert_eq!(tx.send("bye").unwrap_err().into_inner(), "bye");
    /// ```
    #[track_caller]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(&*self.chan),
        );
        send_with(self.send_event(value), None)
    }

    /// Like [`send`](Sender::send), giving up with [`SendError::TimedOut`] after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = zsync::channel::bounded(1);
    /// tx.send(1).unwrap();
    /// let err = tx.send_timeout(2, Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timed_out());
    /// assert_eq!(err.into_inner(), 2);
    /// ```
    #[track_caller]
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(&*self.chan),
        );
        self.send_until(value, crate::clock::now() + timeout)
    }

    /// Like [`send`](Sender::send), giving up with [`SendError::TimedOut`] at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (tx, _rx) = zsync::channel::bounded(1);
    /// tx.send(1).unwrap();
    /// let err = tx.send_until(2, Instant::now() + Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timed_out());
    /// ```
    #[track_caller]
    pub fn send_until(&self, value: T, deadline: Instant) -> Result<(), SendError<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(&*self.chan),
        );
        send_with(self.send_event(value), Some(deadline))
    }

    /// Sends `value` if that is possible without waiting. Never blocks, not a cancellation point.
    ///
    /// ```
    /// use zsync::channel::{bounded, TrySendError};
    /// let (tx, rx) = bounded(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// rx.close();
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(value)
    }

    /// The send as an [`Event`]: for [`Io::wait`](crate::Io::wait) and `select`. It owns `value`
    /// until it completes; [`SendEvent::into_value`] takes it back.
    ///
    /// ```
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let (tx, rx) = zsync::channel::bounded(1);
    ///     io.wait(tx.send_event(5)).unwrap().unwrap();
    ///     let full = tx.send_event(6);
    ///     assert_eq!(full.into_value(), Some(6)); // never completed
    ///     assert_eq!(rx.try_recv(), Ok(5));
    /// });
    /// ```
    pub fn send_event(&self, value: T) -> SendEvent<'_, T> {
        SendEvent::new(&self.chan, value)
    }

    /// Whether `other` sends on the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    common_methods!();
}

impl<T> Receiver<T> {
    /// Receives the oldest message, waiting while the channel is empty. Cancellation point.
    ///
    /// After the channel closed, the remaining messages are still received, then `Closed`.
    /// `Canceled` and `TimedOut` mean no message was taken.
    ///
    /// ```
    /// use zsync::channel::{unbounded, RecvError};
    /// let (tx, rx) = unbounded();
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert_eq!(rx.recv(), Err(RecvError::Closed));
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(&*self.chan),
        );
        recv_with(self.recv_event(), None)
    }

    /// Like [`recv`](Receiver::recv), giving up with [`RecvError::TimedOut`] after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::channel::{bounded, RecvError};
    /// let (_tx, rx) = bounded::<u8>(1);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Err(RecvError::TimedOut));
    /// ```
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(&*self.chan),
        );
        self.recv_until(crate::clock::now() + timeout)
    }

    /// Like [`recv`](Receiver::recv), giving up with [`RecvError::TimedOut`] at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use zsync::channel::{bounded, RecvError};
    /// let (_tx, rx) = bounded::<u8>(1);
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert_eq!(rx.recv_until(deadline), Err(RecvError::TimedOut));
    /// ```
    #[track_caller]
    pub fn recv_until(&self, deadline: Instant) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(&*self.chan),
        );
        recv_with(self.recv_event(), Some(deadline))
    }

    /// Receives a message if one is buffered. Never blocks, not a cancellation point.
    ///
    /// ```
    /// use zsync::channel::{bounded, TryRecvError};
    /// let (tx, rx) = bounded(2);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(7).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(7));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// The receive as an [`Event`]: for [`Io::wait`](crate::Io::wait) and `select`. It takes a
    /// message only when it completes; dropping it unfinished leaves the channel untouched.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let (tx, rx) = zsync::channel::unbounded();
    ///     tx.send('x').unwrap();
    ///     assert_eq!(io.wait(rx.recv_event()).unwrap(), Ok('x'));
    ///     let deadline = Instant::now() + Duration::from_millis(5);
    ///     assert!(io.wait_until(rx.recv_event(), deadline).is_err()); // TimedOut
    /// });
    /// ```
    pub fn recv_event(&self) -> RecvEvent<'_, T> {
        RecvEvent::new(&self.chan)
    }

    /// A blocking iterator: yields messages until the channel is closed and drained, or the task
    /// is canceled (or its deadline passes).
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::unbounded();
    /// for i in 0..3 {
    ///     tx.send(i).unwrap();
    /// }
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator over the messages buffered now.
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().sum::<i32>(), 3);
    /// assert!(rx.is_empty());
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Whether `other` receives from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    common_methods!();
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.close();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.chan.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.disconnect_receivers();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Blocking iterator over a [`Receiver`]; see [`Receiver::iter`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over a [`Receiver`]; see [`Receiver::try_iter`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`]; see [`Receiver::iter`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests;

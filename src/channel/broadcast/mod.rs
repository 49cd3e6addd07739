//! A broadcast channel: every receiver sees every value sent after it subscribed (Tokio's
//! `tokio::sync::broadcast`).
//!
//! The channel keeps the last `capacity` values in a ring. [`Sender::send`] never blocks: when
//! the ring is full it overwrites the oldest value, and a receiver that had not taken that one
//! yet has *lagged*: its next receive reports [`RecvError::Lagged(n)`](RecvError::Lagged) with
//! the number of values it missed, and it carries on from the oldest value still kept. Once
//! every sender is gone the channel is closed: receivers take what is left, then get
//! [`RecvError::Closed`]. Values must be `Clone`: each receiver gets its own copy.
//!
//! ```
//! use zsync::channel::broadcast;
//!
//! zsync::run(zsync::Model::Threaded, |io| {
//!     let (tx, mut rx1) = broadcast::channel(16);
//!     let mut rx2 = tx.subscribe();
//!     let t1 = io.spawn(move |_| (rx1.recv(), rx1.recv()));
//!     let t2 = io.spawn(move |_| (rx2.recv(), rx2.recv()));
//!     tx.send(10).unwrap();
//!     tx.send(20).unwrap();
//!     assert_eq!(t1.join().unwrap(), (Ok(10), Ok(20)));
//!     assert_eq!(t2.join().unwrap(), (Ok(10), Ok(20)));
//! });
//! ```
//!
//! # Waiting
//!
//! [`Receiver::recv`] is a cancellation point, honours the task's deadline
//! ([`Io::timeout_until`](crate::Io::timeout_until)) and its own (`recv_timeout`,
//! `recv_until`), and parks the fiber on Green. [`Receiver::recv_event`] is its
//! [`Event`] form for `select!`. A canceled or timed-out receive takes nothing:
//! the value it waited for is received by its next `recv`.
//!
//! # Design
//!
//! One mutex guards the ring (see `ring.rs`), the handle counts and the waiting receivers (a
//! `WaitQueue`, as in the MPMC channel's core); a send stores the value and wakes every waiting
//! receiver. Values are kept as `Arc<T>`: a receiver clones the `Arc` under the lock and the
//! value after releasing it, so `T::clone` (user code) never runs under the channel's lock, and
//! a panic in it loses that value *for that receiver only* (it has moved past it; the channel
//! and the other receivers are unaffected). A value is dropped once every receiver that was
//! subscribed when it was sent has taken it (or left, or lagged past it), and always with the
//! lock released. Tokio instead locks each slot for reading while it clones, so that a send
//! overwriting it waits; one lock per channel is simpler, and the clone outside it costs one
//! allocation per send.

mod error;
mod ring;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

pub use self::error::{RecvError, TryRecvError};
use self::ring::{Ring, Take};
use super::SendError;
use crate::wait::{block_until, WaitSlot};
use crate::Event;

struct Shared<T> {
    ring: Mutex<Ring<T>>,
}

impl<T> Shared<T> {
    /// Locks the state. No user code runs under the lock (values are cloned and dropped outside
    /// it, wakers woken after it), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Ring<T>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a broadcast channel keeping the last `capacity` values.
///
/// # Panics
///
/// If `capacity` is 0.
///
/// ```
/// use zsync::channel::broadcast::{self, RecvError};
/// let (tx, mut rx) = broadcast::channel(2);
/// for i in 0..5 {
///     tx.send(i).unwrap();
/// }
/// assert_eq!(rx.recv(), Err(RecvError::Lagged(3))); // 0, 1, 2 were overwritten
/// assert_eq!(rx.recv(), Ok(3));
/// assert_eq!(rx.recv(), Ok(4));
/// ```
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "a broadcast channel needs a capacity of at least 1"
    );
    let shared = Arc::new(Shared {
        ring: Mutex::new(Ring::new(capacity)),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared, next: 0 },
    )
}

/// The sending half of a [`broadcast`](self) channel. Clone it for more senders; the channel
/// closes when the last one drops.
#[must_use = "dropping the last sender closes the channel"]
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A receiving half of a [`broadcast`](self) channel: it receives every value sent after it was
/// created. Make more with [`Sender::subscribe`] or [`Receiver::resubscribe`].
#[must_use = "a receiver does nothing unless received from"]
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The position of the next value this receiver takes.
    next: u64,
}

impl<T> Sender<T> {
    /// Sends `value` to every current receiver and returns how many there are. Never blocks:
    /// a full ring overwrites its oldest value (receivers that had not taken it lag). Fails,
    /// giving the value back, only if no receiver exists.
    ///
    /// ```
    /// use zsync::channel::{broadcast, SendError};
    /// let (tx, rx) = broadcast::channel(4);
    /// assert_eq!(tx.send("a"), Ok(1));
    /// drop(rx);
    /// assert_eq!(tx.send("b"), Err(SendError::Closed("b")));
    /// ```
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let value = Arc::new(value);
        let mut ring = self.shared.lock();
        if ring.receivers == 0 {
            drop(ring);
            let value = Arc::into_inner(value).expect("not shared yet");
            return Err(SendError::Closed(value));
        }
        let receivers = ring.receivers;
        let overwritten = ring.push(value);
        let wake = ring.waiting.notify_all();
        drop(ring);
        drop(overwritten); // `T::drop` with the lock released
        wake.wake();
        Ok(receivers)
    }

    /// A new receiver, which receives the values sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let next = self.shared.lock().join();
        Receiver {
            shared: self.shared.clone(),
            next,
        }
    }

    /// How many receivers exist now.
    pub fn receiver_count(&self) -> usize {
        self.shared.lock().receivers
    }

    /// Whether `other` sends on the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T: Clone> Receiver<T> {
    /// Receives the next value, waiting while there is none. Cancellation point.
    ///
    /// Errors: `Lagged(n)` if `n` values were overwritten before this receiver took them (the
    /// next call returns the oldest value kept); `Closed` once every sender is gone and every
    /// value has been received; `Canceled` and `TimedOut` with nothing taken.
    ///
    /// A panic in `T::clone` goes on to the caller; this receiver has then moved past that
    /// value, and the channel and the other receivers are unaffected.
    ///
    /// ```
    /// use zsync::channel::broadcast::{self, RecvError};
    /// let (tx, mut rx) = broadcast::channel(4);
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert_eq!(rx.recv(), Err(RecvError::Closed));
    /// ```
    #[track_caller]
    pub fn recv(&mut self) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::None,
        );
        self.recv_with(None)
    }

    /// Like [`recv`](Receiver::recv), giving up with `TimedOut` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        match crate::clock::now().checked_add(timeout) {
            Some(deadline) => self.recv_with(Some(deadline)),
            None => self.recv_with(None),
        }
    }

    /// Like [`recv`](Receiver::recv), giving up with `TimedOut` at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use zsync::channel::broadcast::{self, RecvError};
    /// let (_tx, mut rx) = broadcast::channel::<u8>(4);
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert_eq!(rx.recv_until(deadline), Err(RecvError::TimedOut));
    /// ```
    pub fn recv_until(&mut self, deadline: Instant) -> Result<T, RecvError> {
        self.recv_with(Some(deadline))
    }

    fn recv_with(&mut self, deadline: Option<Instant>) -> Result<T, RecvError> {
        let mut ev = self.recv_event();
        match block_until(deadline, |w| ev.poll_event(w)) {
            Ok(r) => r,
            Err(e) => Err(RecvError::from_wait(&e)),
        }
    }

    /// Receives the next value if there is one. Never blocks, not a cancellation point.
    ///
    /// ```
    /// use zsync::channel::broadcast::{self, TryRecvError};
    /// let (tx, mut rx) = broadcast::channel(4);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send('x').unwrap();
    /// assert_eq!(rx.try_recv(), Ok('x'));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut ring = self.shared.lock();
        match ring.take(&mut self.next) {
            Take::Value(v) => {
                drop(ring);
                Ok(unwrap_or_clone(v))
            }
            Take::Lagged(n) => Err(TryRecvError::Lagged(n)),
            Take::Empty if ring.is_closed() => Err(TryRecvError::Closed),
            Take::Empty => Err(TryRecvError::Empty),
        }
    }

    /// The receive as an [`Event`], for `select!` and [`Io::wait`](crate::Io::wait). It takes
    /// a value only when it completes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::select::sleep;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let (tx, mut rx) = zsync::channel::broadcast::channel(4);
    ///     tx.send(5).unwrap();
    ///     let got = zsync::select!(io;
    ///         v = rx.recv_event() => v.ok(),
    ///         _ = sleep(Duration::from_secs(5)) => None,
    ///     ).unwrap();
    ///     assert_eq!(got, Some(5));
    /// });
    /// ```
    pub fn recv_event(&mut self) -> RecvEvent<'_, T> {
        RecvEvent {
            rx: self,
            slot: WaitSlot::default(),
        }
    }
}

impl<T> Receiver<T> {
    /// A new receiver that receives the values sent from now on (not those this one has yet
    /// to take).
    pub fn resubscribe(&self) -> Receiver<T> {
        let next = self.shared.lock().join();
        Receiver {
            shared: self.shared.clone(),
            next,
        }
    }

    /// How many values this receiver has yet to take (at most the capacity).
    pub fn len(&self) -> usize {
        self.shared.lock().pending(self.next) as usize
    }

    /// Whether this receiver has taken every value sent so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every sender is gone (values may still be left to receive).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().is_closed()
    }

    /// Whether `other` receives from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// The value itself if nobody else holds it, else a clone (user code: run with no lock held).
fn unwrap_or_clone<T: Clone>(v: Arc<T>) -> T {
    Arc::try_unwrap(v).unwrap_or_else(|shared| T::clone(&shared))
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut ring = self.shared.lock();
        ring.senders -= 1;
        if ring.senders == 0 {
            let wake = ring.waiting.notify_all();
            drop(ring);
            wake.wake();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let done = self.shared.lock().leave(self.next);
        drop(done); // `T::drop` with the lock released
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.shared.lock();
        f.debug_struct("broadcast::Sender")
            .field("sent", &ring.tail)
            .field("receivers", &ring.receivers)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.shared.lock();
        f.debug_struct("broadcast::Receiver")
            .field("pending", &ring.pending(self.next))
            .field("closed", &ring.is_closed())
            .finish_non_exhaustive()
    }
}

/// A pending [`Receiver::recv`]: completes with the receiver's next value, `Lagged`, or
/// `Closed`. Dropping it unfinished leaves the receiver where it was.
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// let (tx, mut rx) = zsync::channel::broadcast::channel(8);
/// tx.send(1).unwrap();
/// assert_eq!(futures::executor::block_on(rx.recv_event()), Ok(1));
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct RecvEvent<'a, T> {
    rx: &'a mut Receiver<T>,
    slot: WaitSlot,
}

impl<T: Clone> Event for RecvEvent<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<Result<T, RecvError>> {
        let rx = &mut *self.rx;
        let mut ring = rx.shared.lock();
        let out = match ring.take(&mut rx.next) {
            Take::Value(v) => Ok(v),
            Take::Lagged(n) => Err(RecvError::Lagged(n)),
            Take::Empty if ring.is_closed() => Err(RecvError::Closed),
            Take::Empty => {
                // Under the lock: a send after we unlock finds us in `waiting`.
                self.slot.register(&mut ring.waiting, waker);
                return Poll::Pending;
            }
        };
        // Every waiter is woken by a send: there is no turn to keep or pass on.
        self.slot.used(&mut ring.waiting);
        drop(ring);
        Poll::Ready(out.map(unwrap_or_clone))
    }
}

crate::event::event_future!([T: Clone] RecvEvent<'_, T>);

impl<T> Drop for RecvEvent<'_, T> {
    fn drop(&mut self) {
        if self.slot.is_registered() {
            // A send wakes every waiter, so a notification left unused is nobody else's.
            self.slot.used(&mut self.rx.shared.lock().waiting);
        }
    }
}

impl<T> fmt::Debug for RecvEvent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvEvent").finish_non_exhaustive()
    }
}

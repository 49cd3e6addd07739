//! One value, once: a [`bounded(1)`](super::bounded) channel with one sender that sends at most
//! once, so sending never blocks.

use std::fmt;
use std::time::{Duration, Instant};

use super::{Receiver, RecvError, RecvEvent, Sender, TryRecvError};

/// Creates a oneshot channel: [`OneshotSender::send`] never blocks; [`OneshotReceiver::recv`]
/// waits for the value, or reports [`RecvError::Closed`] if the sender was dropped without
/// sending.
///
/// ```
/// let v = zsync::run(zsync::Model::Threaded, |io| {
///     let (tx, rx) = zsync::channel::oneshot();
///     let t = io.spawn(move |_| tx.send(42).unwrap());
///     let v = rx.recv().unwrap();
///     t.join().unwrap();
///     v
/// });
/// assert_eq!(v, 42);
/// ```
pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let (tx, rx) = super::bounded(1);
    (OneshotSender { tx }, OneshotReceiver { rx })
}

/// Sends the one value of a [`oneshot`] channel. Dropping it unsent closes the channel.
pub struct OneshotSender<T> {
    tx: Sender<T>,
}

impl<T> OneshotSender<T> {
    /// Sends the value. Never blocks; fails (giving the value back) only when the receiver is
    /// gone or closed the channel.
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::oneshot();
    /// drop(rx);
    /// assert_eq!(tx.send(1), Err(1));
    /// ```
    pub fn send(self, value: T) -> Result<(), T> {
        // The only sender sends once into a buffer of one: `Full` cannot happen.
        self.tx.try_send(value).map_err(|e| e.into_inner())
    }

    /// Whether the receiver is gone (or closed the channel): a send would fail.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Receives the one value of a [`oneshot`] channel.
pub struct OneshotReceiver<T> {
    rx: Receiver<T>,
}

impl<T> OneshotReceiver<T> {
    /// Waits for the value. Cancellation point. `Closed` if the sender was dropped without
    /// sending (or the value was received already).
    ///
    /// ```
    /// use zsync::channel::{oneshot, RecvError};
    /// let (tx, rx) = oneshot::<u8>();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Err(RecvError::Closed));
    /// ```
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(&*self.rx.chan),
        );
        self.rx.recv()
    }

    /// Like [`recv`](OneshotReceiver::recv), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(&*self.rx.chan),
        );
        self.rx.recv_timeout(timeout)
    }

    /// Like [`recv`](OneshotReceiver::recv), giving up with `TimedOut` at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use zsync::channel::{oneshot, RecvError};
    /// let (_tx, rx) = oneshot::<u8>();
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert_eq!(rx.recv_until(deadline), Err(RecvError::TimedOut));
    /// ```
    #[track_caller]
    pub fn recv_until(&self, deadline: Instant) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(&*self.rx.chan),
        );
        self.rx.recv_until(deadline)
    }

    /// The value if it was sent already. Never blocks.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    /// The receive as an [`Event`](crate::Event), for [`Io::wait`](crate::Io::wait) and
    /// `select`.
    pub fn recv_event(&self) -> RecvEvent<'_, T> {
        self.rx.recv_event()
    }

    /// Closes the channel: a later [`OneshotSender::send`] fails. A value sent already can still
    /// be received.
    pub fn close(&self) {
        self.rx.close();
    }
}

impl<T> fmt::Debug for OneshotSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotSender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for OneshotReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotReceiver").finish_non_exhaustive()
    }
}

//! Errors of channel operations. Each converts into `std::io::Error`, so `?` works in the
//! `io::Result` functions colorblind code is written in: `Canceled` becomes
//! [`zsync::canceled()`](crate::canceled), `TimedOut` becomes [`zsync::timed_out()`](crate::timed_out),
//! and `Closed` an error carrying a [`Closed`](crate::Closed) payload, recognised by
//! [`zsync::is_closed`](crate::is_closed). Every error type here has `is_closed()`.

use std::fmt;
use std::io;

use crate::Closed;

/// Why a blocking send failed. Every variant gives the value back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendError<T> {
    /// The channel is closed (closed explicitly, or every receiver is gone).
    Closed(T),
    /// The sending task was canceled while it waited. The value was not sent.
    Canceled(T),
    /// The deadline passed first (the send's own or the task's). The value was not sent.
    TimedOut(T),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(v) | SendError::Canceled(v) | SendError::TimedOut(v) => v,
        }
    }

    /// Whether the channel was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed(_))
    }

    /// Whether the sending task was canceled.
    pub fn is_canceled(&self) -> bool {
        matches!(self, SendError::Canceled(_))
    }

    /// Whether the deadline passed.
    pub fn is_timed_out(&self) -> bool {
        matches!(self, SendError::TimedOut(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Canceled(_) => f.write_str("Canceled(..)"),
            SendError::TimedOut(_) => f.write_str("TimedOut(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("sending on a closed channel"),
            SendError::Canceled(_) => f.write_str("send canceled: the task was asked to stop"),
            SendError::TimedOut(_) => f.write_str("send timed out"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// `Closed` becomes kind [`BrokenPipe`](io::ErrorKind::BrokenPipe); the value is dropped.
impl<T> From<SendError<T>> for io::Error {
    fn from(e: SendError<T>) -> io::Error {
        match e {
            SendError::Closed(_) => Closed::error(io::ErrorKind::BrokenPipe, "channel"),
            SendError::Canceled(_) => crate::canceled(),
            SendError::TimedOut(_) => crate::timed_out(),
        }
    }
}

/// Why a blocking receive failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RecvError {
    /// The channel is closed and every message has been received.
    Closed,
    /// The receiving task was canceled while it waited. No message was taken.
    Canceled,
    /// The deadline passed first. No message was taken.
    TimedOut,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("receiving on a closed and empty channel"),
            RecvError::Canceled => f.write_str("receive canceled: the task was asked to stop"),
            RecvError::TimedOut => f.write_str("receive timed out"),
        }
    }
}

impl std::error::Error for RecvError {}

/// `Closed` becomes kind [`UnexpectedEof`](io::ErrorKind::UnexpectedEof).
impl From<RecvError> for io::Error {
    fn from(e: RecvError) -> io::Error {
        match e {
            RecvError::Closed => Closed::error(io::ErrorKind::UnexpectedEof, "channel"),
            RecvError::Canceled => crate::canceled(),
            RecvError::TimedOut => crate::timed_out(),
        }
    }
}

impl RecvError {
    /// Whether the channel is closed and drained.
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::bounded::<u8>(1);
    /// drop(tx);
    /// assert!(rx.recv().unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, RecvError::Closed)
    }

    /// Whether the receiving task was canceled.
    ///
    /// ```
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let (_tx, rx) = zsync::channel::bounded::<u8>(1);
    ///     io.cancel_current();
    ///     assert!(rx.recv().unwrap_err().is_canceled());
    /// });
    /// ```
    pub fn is_canceled(&self) -> bool {
        matches!(self, RecvError::Canceled)
    }

    /// Whether the deadline passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (_tx, rx) = zsync::channel::bounded::<u8>(1);
    /// assert!(rx.recv_timeout(Duration::from_millis(1)).unwrap_err().is_timed_out());
    /// ```
    pub fn is_timed_out(&self) -> bool {
        matches!(self, RecvError::TimedOut)
    }

    /// Maps the error of a wait (Canceled or TimedOut) to a `RecvError`.
    pub(crate) fn from_wait(e: &io::Error) -> RecvError {
        if crate::is_canceled(e) {
            RecvError::Canceled
        } else {
            RecvError::TimedOut
        }
    }
}

/// Why [`try_send`](super::Sender::try_send) failed. Both variants give the value back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// No space now (on a rendezvous channel: no receiver is waiting now).
    Full(T),
    /// The channel is closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }

    /// Whether the channel was closed (rather than full).
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::bounded(1);
    /// drop(rx);
    /// assert!(tx.try_send(1).unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }

    /// Whether the channel had no room (rather than being closed).
    ///
    /// ```
    /// let (tx, _rx) = zsync::channel::bounded(1);
    /// tx.send(1).unwrap();
    /// assert!(tx.try_send(2).unwrap_err().is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// `Full` becomes [`WouldBlock`](io::ErrorKind::WouldBlock), `Closed` [`BrokenPipe`](io::ErrorKind::BrokenPipe).
impl<T> From<TrySendError<T>> for io::Error {
    fn from(e: TrySendError<T>) -> io::Error {
        match e {
            TrySendError::Full(_) => io::ErrorKind::WouldBlock.into(),
            TrySendError::Closed(_) => Closed::error(io::ErrorKind::BrokenPipe, "channel"),
        }
    }
}

/// Why [`try_recv`](super::Receiver::try_recv) failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// No message now.
    Empty,
    /// The channel is closed and every message has been received.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Closed => f.write_str("receiving on a closed and empty channel"),
        }
    }
}

impl std::error::Error for TryRecvError {}

impl TryRecvError {
    /// Whether the channel is closed and drained (rather than empty for now).
    ///
    /// ```
    /// let (tx, rx) = zsync::channel::bounded::<u8>(1);
    /// assert!(!rx.try_recv().unwrap_err().is_closed());
    /// drop(tx);
    /// assert!(rx.try_recv().unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TryRecvError::Closed)
    }

    /// Whether the channel is empty for now (and still open).
    ///
    /// ```
    /// let (_tx, rx) = zsync::channel::bounded::<u8>(1);
    /// assert!(rx.try_recv().unwrap_err().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

/// `Empty` becomes [`WouldBlock`](io::ErrorKind::WouldBlock), `Closed`
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof).
impl From<TryRecvError> for io::Error {
    fn from(e: TryRecvError) -> io::Error {
        match e {
            TryRecvError::Empty => io::ErrorKind::WouldBlock.into(),
            TryRecvError::Closed => Closed::error(io::ErrorKind::UnexpectedEof, "channel"),
        }
    }
}

/// Why a [`Queue`](super::Queue) transfer stopped short of its minimum.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum QueueErrorKind {
    /// The queue is closed (for `get`: closed and drained).
    Closed,
    /// The task was canceled while it waited.
    Canceled,
    /// The deadline passed first.
    TimedOut,
}

/// A [`Queue`](super::Queue) `put` or `get` that stopped before its minimum. The elements moved
/// before it stopped stay moved: `count` says how many.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct QueueError {
    /// Why it stopped.
    pub kind: QueueErrorKind,
    /// How many elements were transferred before it stopped.
    pub count: usize,
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            QueueErrorKind::Closed => "the queue is closed",
            QueueErrorKind::Canceled => "the task was canceled",
            QueueErrorKind::TimedOut => "the deadline passed",
        };
        write!(
            f,
            "queue transfer stopped after {} elements: {why}",
            self.count
        )
    }
}

impl std::error::Error for QueueError {}

impl QueueError {
    /// Whether the queue was closed (for `get`: closed and drained).
    ///
    /// ```
    /// let q = zsync::channel::Queue::<u8>::new(4);
    /// q.close();
    /// assert!(q.put(&[1], 1).unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.kind == QueueErrorKind::Closed
    }

    /// Whether the task was canceled while it waited.
    ///
    /// ```
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let q = zsync::channel::Queue::<u8>::new(1);
    ///     io.cancel_current();
    ///     assert!(q.get(&mut [0], 1).unwrap_err().is_canceled());
    /// });
    /// ```
    pub fn is_canceled(&self) -> bool {
        self.kind == QueueErrorKind::Canceled
    }

    /// Whether the deadline passed first.
    ///
    /// ```
    /// use std::time::Duration;
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let q = zsync::channel::Queue::<u8>::new(1);
    ///     let r = io.timeout(Duration::from_millis(1), |_| q.get(&mut [0], 1));
    ///     assert!(r.unwrap_err().is_timed_out());
    /// });
    /// ```
    pub fn is_timed_out(&self) -> bool {
        self.kind == QueueErrorKind::TimedOut
    }
}

/// Like [`RecvError`]'s conversion; the count is dropped.
impl From<QueueError> for io::Error {
    fn from(e: QueueError) -> io::Error {
        match e.kind {
            QueueErrorKind::Closed => Closed::error(io::ErrorKind::BrokenPipe, "queue"),
            QueueErrorKind::Canceled => crate::canceled(),
            QueueErrorKind::TimedOut => crate::timed_out(),
        }
    }
}

/// An `io::Error` of `kind` for a closed channel, recognised by [`crate::is_closed`].
pub(crate) fn closed(kind: io::ErrorKind) -> io::Error {
    Closed::error(kind, "channel")
}

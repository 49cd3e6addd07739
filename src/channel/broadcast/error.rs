//! Errors of broadcast receives. Sends fail only with [`SendError::Closed`](super::super::SendError)
//! (no receiver left), the channel module's own type.

use std::fmt;
use std::io;

/// Why a blocking broadcast receive failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RecvError {
    /// Every sender is gone and this receiver has taken every value sent before.
    Closed,
    /// The receiver fell behind: this many values were overwritten before it took them. It has
    /// skipped ahead to the oldest value kept; the next receive returns that one.
    Lagged(u64),
    /// The receiving task was canceled while it waited. No value was taken.
    Canceled,
    /// The deadline passed first (the receive's own or the task's). No value was taken.
    TimedOut,
}

impl RecvError {
    /// Whether the channel is closed (and drained for this receiver).
    pub fn is_closed(&self) -> bool {
        matches!(self, RecvError::Closed)
    }

    /// How many values were missed, if the receiver lagged.
    pub fn lagged(&self) -> Option<u64> {
        match self {
            RecvError::Lagged(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether the receiving task was canceled.
    pub fn is_canceled(&self) -> bool {
        matches!(self, RecvError::Canceled)
    }

    /// Whether the deadline passed.
    pub fn is_timed_out(&self) -> bool {
        matches!(self, RecvError::TimedOut)
    }

    pub(super) fn from_wait(e: &io::Error) -> RecvError {
        if crate::is_canceled(e) {
            RecvError::Canceled
        } else {
            RecvError::TimedOut
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("receiving on a closed and drained broadcast channel"),
            RecvError::Lagged(n) => write!(f, "broadcast receiver lagged behind by {n} values"),
            RecvError::Canceled => f.write_str("receive canceled: the task was asked to stop"),
            RecvError::TimedOut => f.write_str("receive timed out"),
        }
    }
}

impl std::error::Error for RecvError {}

/// `Closed` becomes kind [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) (recognised by
/// [`zsync::is_closed`](crate::is_closed)), `Lagged` kind `Other` carrying this error.
impl From<RecvError> for io::Error {
    fn from(e: RecvError) -> io::Error {
        match e {
            RecvError::Closed => super::super::error::closed(io::ErrorKind::UnexpectedEof),
            RecvError::Lagged(_) => io::Error::other(e),
            RecvError::Canceled => crate::canceled(),
            RecvError::TimedOut => crate::timed_out(),
        }
    }
}

/// Why [`try_recv`](super::Receiver::try_recv) failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// No value has been sent since the receiver's last one.
    Empty,
    /// Every sender is gone and this receiver has taken every value sent before.
    Closed,
    /// The receiver fell behind by this many values; see [`RecvError::Lagged`].
    Lagged(u64),
}

impl TryRecvError {
    /// Whether the channel is closed (and drained for this receiver).
    pub fn is_closed(&self) -> bool {
        matches!(self, TryRecvError::Closed)
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no new value on the broadcast channel"),
            TryRecvError::Closed => {
                f.write_str("receiving on a closed and drained broadcast channel")
            }
            TryRecvError::Lagged(n) => write!(f, "broadcast receiver lagged behind by {n} values"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// `Empty` becomes [`WouldBlock`](io::ErrorKind::WouldBlock), the others as [`RecvError`]'s.
impl From<TryRecvError> for io::Error {
    fn from(e: TryRecvError) -> io::Error {
        match e {
            TryRecvError::Empty => io::ErrorKind::WouldBlock.into(),
            TryRecvError::Closed => RecvError::Closed.into(),
            TryRecvError::Lagged(n) => RecvError::Lagged(n).into(),
        }
    }
}

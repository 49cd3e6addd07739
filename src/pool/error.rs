//! [`PoolError`]: why [`Pool::get`](super::Pool::get) gave no connection.

use std::fmt;
use std::io;

/// Why [`Pool::get`](super::Pool::get) (or building a pool) gave no connection.
///
/// ```
/// use zsync::pool::PoolError;
/// let e: PoolError<std::io::Error> = PoolError::Timeout;
/// assert!(zsync::is_timed_out(&e.into_io()));
/// ```
#[derive(Debug)]
pub enum PoolError<E> {
    /// No slot became free before the acquire timeout (or the task's deadline).
    Timeout,
    /// The task was canceled while waiting for a slot.
    Canceled,
    /// The pool was [closed](super::Pool::close).
    Closed,
    /// The [`Manager`](super::Manager) failed to connect. The slot it had reserved was freed.
    Backend(E),
}

impl<E> PoolError<E> {
    /// Maps an error from the crate's waits (`TimedOut`, `Canceled`, closed) to a pool error.
    pub(crate) fn from_wait(e: io::Error) -> PoolError<E> {
        if crate::is_canceled(&e) {
            PoolError::Canceled
        } else if crate::is_timed_out(&e) {
            PoolError::Timeout
        } else {
            PoolError::Closed
        }
    }

    /// Whether this is [`Timeout`](PoolError::Timeout).
    ///
    /// ```
    /// assert!(zsync::pool::PoolError::<()>::Timeout.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout)
    }

    /// Whether this is [`Canceled`](PoolError::Canceled).
    ///
    /// ```
    /// assert!(zsync::pool::PoolError::<()>::Canceled.is_canceled());
    /// ```
    pub fn is_canceled(&self) -> bool {
        matches!(self, PoolError::Canceled)
    }

    /// The backend error, if this is one.
    ///
    /// ```
    /// assert_eq!(zsync::pool::PoolError::Backend(7).backend(), Some(7));
    /// ```
    pub fn backend(self) -> Option<E> {
        match self {
            PoolError::Backend(e) => Some(e),
            _ => None,
        }
    }

    /// As an `io::Error`: `Timeout` is `TimedOut` ([`zsync::is_timed_out`](crate::is_timed_out)),
    /// `Canceled` is zsync's Canceled ([`zsync::is_canceled`](crate::is_canceled)), `Closed` is
    /// zsync's closed error ([`zsync::is_closed`](crate::is_closed)), `Backend(e)` is `e.into()`.
    ///
    /// ```
    /// use zsync::pool::PoolError;
    /// assert!(zsync::is_canceled(&PoolError::<std::io::Error>::Canceled.into_io()));
    /// ```
    pub fn into_io(self) -> io::Error
    where
        E: Into<io::Error>,
    {
        match self {
            PoolError::Timeout => crate::timed_out(),
            PoolError::Canceled => crate::canceled(),
            PoolError::Closed => crate::Closed::error(io::ErrorKind::Other, "pool"),
            PoolError::Backend(e) => e.into(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout => f.write_str("timed out waiting for a pooled connection"),
            PoolError::Canceled => f.write_str("canceled while waiting for a pooled connection"),
            PoolError::Closed => f.write_str("pool closed"),
            PoolError::Backend(e) => write!(f, "pool could not connect: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PoolError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Backend(e) => Some(e),
            _ => None,
        }
    }
}

//! [`Manager`]: how a [`Pool`](super::Pool) makes, checks and judges its connections.

use crate::Io;

/// Makes and checks the connections of a [`Pool`](super::Pool).
///
/// The shape follows r2d2's `ManageConnection` (connect / is_valid / has_broken) and deadpool's
/// `Manager` (create / recycle), with one difference: the methods are plain `fn`s taking the
/// task's [`Io`], so one manager serves every model. A `connect` that does network I/O through
/// `io` parks the fiber on Green and the thread on Threaded, and is canceled with its task.
///
/// The pool never calls these methods under its own lock, and never while a waiter is blocked
/// on them: a slot is reserved, the lock released, and the method run by the task that asked.
///
/// ```
/// use zsync::pool::Manager;
///
/// /// "Connections" that are just numbers, for the examples.
/// struct Counter(std::sync::atomic::AtomicU32);
///
/// impl Manager for Counter {
///     type Conn = u32;
///     type Error = std::io::Error;
///     fn connect(&self, _io: &zsync::Io) -> std::io::Result<u32> {
///         Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The connection type.
    type Conn: Send + 'static;
    /// The error `connect` and `check` report; surfaced as
    /// [`PoolError::Backend`](super::PoolError::Backend).
    type Error: Send + 'static;

    /// Opens a new connection. Runs on the task that asked for one, outside the pool's lock.
    /// May block through `io` (a cancellation point if it does).
    fn connect(&self, io: &Io) -> Result<Self::Conn, Self::Error>;

    /// Checks an idle connection before it is handed out (when
    /// [`check_on_checkout`](super::Builder::check_on_checkout) is on, the default). An error
    /// discards the connection and the pool tries the next idle one or connects anew. The
    /// default accepts every connection.
    fn check(&self, io: &Io, conn: &mut Self::Conn) -> Result<(), Self::Error> {
        let _ = (io, conn);
        Ok(())
    }

    /// A quick, non-blocking test run when a connection comes back: `true` discards it instead
    /// of returning it to the idle set (r2d2's `has_broken`). It runs in the guard's `Drop`, so
    /// it must not block. The default keeps every connection.
    fn has_broken(&self, conn: &mut Self::Conn) -> bool {
        let _ = conn;
        false
    }
}

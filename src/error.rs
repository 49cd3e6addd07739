//! The errors zsync adds to `std::io::Error`.
//!
//! Every blocking operation in zsync returns `std::io::Result`, so user code keeps using `?` and the
//! std helpers. Two conditions are zsync's own:
//!
//! - **Canceled**: the calling task was asked to stop. It is an `io::Error` of kind
//!   [`ErrorKind::Other`](std::io::ErrorKind::Other) carrying a [`Canceled`] payload, and deliberately
//!   *not* [`ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted): std's `read_exact`,
//!   `write_all`, `read_to_end` and `io::copy` silently retry `Interrupted`, which would swallow the
//!   cancellation. Test for it with [`is_canceled`].
//! - **Closed**: a channel, [`Queue`](crate::channel::Queue) or
//!   [`Semaphore`](crate::sync::Semaphore) was closed. Each of their error types has an
//!   `is_closed()` method; once converted into an `io::Error` (for `?`), it carries a [`Closed`]
//!   payload: test for it with [`is_closed`].
//! - **Concurrency unavailable**: [`Io::concurrent`](crate::Io::concurrent) was asked for a task that
//!   must make progress at the same time as its caller, and the model cannot provide one (the
//!   Blocking model never can). Zig calls this `error.ConcurrencyUnavailable`.
//! - **Deadlock**: a run whose every task was asleep with nothing left that could wake one
//!   ([`Deadlock`], from [`Builder::try_run`](crate::Builder::try_run)).

use std::fmt;
use std::io;

/// The payload of the `io::Error` returned by a blocking operation of a canceled task.
///
/// Zig: `error.Canceled`. Build one with [`canceled`], recognise one with [`is_canceled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Canceled;

impl fmt::Display for Canceled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation canceled: the task was asked to stop")
    }
}

impl std::error::Error for Canceled {}

impl From<Canceled> for io::Error {
    fn from(c: Canceled) -> io::Error {
        io::Error::other(c)
    }
}

/// Returns the error a canceled blocking operation reports.
///
/// ```
/// let e = zsync::canceled();
/// assert!(zsync::is_canceled(&e));
/// assert_ne!(e.kind(), std::io::ErrorKind::Interrupted);
/// ```
pub fn canceled() -> io::Error {
    Canceled.into()
}

/// Tells whether `err` reports that the calling task was canceled.
///
/// Looks through one level of wrapping, so an `io::Error` whose payload is itself an
/// `io::Error` carrying [`Canceled`] is recognised too.
pub fn is_canceled(err: &io::Error) -> bool {
    match err.get_ref() {
        Some(inner) if inner.is::<Canceled>() => true,
        Some(inner) => inner
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.get_ref().is_some_and(|i| i.is::<Canceled>())),
        None => false,
    }
}

/// The payload of the `io::Error` a closed channel, [`Queue`](crate::channel::Queue) or
/// [`Semaphore`](crate::sync::Semaphore) reports once converted into an `io::Error`; recognise it
/// with [`is_closed`]. Its message names what was closed.
///
/// ```
/// let (tx, rx) = zsync::channel::bounded::<u8>(1);
/// drop(rx);
/// let err = std::io::Error::from(tx.send(1).unwrap_err());
/// let closed = err.get_ref().unwrap().downcast_ref::<zsync::Closed>().unwrap();
/// assert_eq!(closed.to_string(), "channel closed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// What was closed: "channel", "queue", "semaphore".
    what: &'static str,
}

impl Closed {
    /// The payload for a closed `what` ("channel", "queue", "semaphore").
    pub(crate) const fn new(what: &'static str) -> Closed {
        Closed { what }
    }

    /// The `io::Error` of kind `kind` reporting that `what` is closed.
    pub(crate) fn error(kind: io::ErrorKind, what: &'static str) -> io::Error {
        io::Error::new(kind, Closed::new(what))
    }
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} closed", self.what)
    }
}

impl std::error::Error for Closed {}

/// Tells whether `err` reports a closed channel, [`Queue`](crate::channel::Queue) or
/// [`Semaphore`](crate::sync::Semaphore): an error converted from their error types (by `?`)
/// whose `is_closed()` was true. Looks through one level of wrapping, like [`is_canceled`].
///
/// ```
/// use zsync::channel::bounded;
/// fn forward(rx: &zsync::channel::Receiver<u8>) -> std::io::Result<u8> {
///     Ok(rx.recv()?) // a closed channel becomes an io::Error here
/// }
/// let (tx, rx) = bounded::<u8>(1);
/// drop(tx);
/// let err = forward(&rx).unwrap_err();
/// assert!(zsync::is_closed(&err));
/// assert!(!zsync::is_closed(&zsync::canceled()));
/// ```
pub fn is_closed(err: &io::Error) -> bool {
    match err.get_ref() {
        Some(inner) if inner.is::<Closed>() => true,
        Some(inner) => inner
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.get_ref().is_some_and(|i| i.is::<Closed>())),
        None => false,
    }
}

/// Why a run failed when every task of it was asleep with nothing left that could wake one: a
/// deadlock, Go's "all goroutines are asleep - deadlock!".
///
/// [`Builder::try_run`](crate::Builder::try_run) returns it as the payload of an `io::Error` (of
/// kind [`ErrorKind::Other`](io::ErrorKind::Other)); recognise it with [`is_deadlock`].
/// [`run`](crate::run) and [`Builder::run`](crate::Builder::run) panic with its message. Before
/// failing, the runtime prints "all tasks are asleep: deadlock" and what it knows of the tasks
/// to its diagnostics writer (stderr unless
/// [`Builder::diagnostics`](crate::Builder::diagnostics) says otherwise), then cancels every task
/// so that the run can end. Which runs are checked, and why a report is never a guess, is in
/// [`Builder::deadlock_detection`](crate::Builder::deadlock_detection).
///
/// ```
/// let err = std::io::Error::other(zsync::Deadlock);
/// assert!(zsync::is_deadlock(&err));
/// assert_eq!(err.to_string(), "all tasks are asleep: deadlock");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadlock;

impl fmt::Display for Deadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("all tasks are asleep: deadlock")
    }
}

impl std::error::Error for Deadlock {}

impl From<Deadlock> for io::Error {
    fn from(d: Deadlock) -> io::Error {
        io::Error::other(d)
    }
}

/// Tells whether `err` reports a [`Deadlock`]: a run whose every task was asleep for good.
///
/// ```
/// assert!(zsync::is_deadlock(&zsync::Deadlock.into()));
/// assert!(!zsync::is_deadlock(&zsync::canceled()));
/// ```
pub fn is_deadlock(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<Deadlock>())
}

/// Returned by [`Io::concurrent`](crate::Io::concurrent) when the model cannot run the task
/// concurrently with its caller, with the closure it was given (`F`), unrun, so that the caller
/// can run it another way.
///
/// Zig: `error.ConcurrencyUnavailable`. The Blocking model always returns it; the Threaded model
/// returns it only when its limit of threads for concurrent tasks is reached; a
/// [`CustomModel`](crate::CustomModel) returns it (made with [`new`](Self::new)) when it refuses.
///
/// Why one generic type rather than a wrapper around it: the error users match on keeps its
/// name, and `ConcurrencyUnavailable` with no parameter (`F = ()`) is still the plain error of
/// the past, what a [`CustomModel`](crate::CustomModel) returns and what a function may declare.
/// With the closure inside it still converts into `io::Error` with `?` (the closure is dropped),
/// prints "concurrency unavailable: …", and `unwrap` works (its `Debug` needs no `F: Debug`).
/// It is `Sync` whatever `F` is: the closure can only be reached by value or through `&mut`.
///
/// ```
/// use zsync::{ConcurrencyUnavailable, Model};
/// zsync::run(Model::Blocking, |io| {
///     // Zig: `io.concurrent(f) catch io.async(f)`.
///     let task = match io.concurrent(|_| 6 * 7) {
///         Ok(task) => task,
///         Err(refused) => {
///             assert!(refused.to_string().contains("concurrency unavailable"));
///             io.spawn(refused.into_inner())
///         }
///     };
///     assert_eq!(task.join().unwrap(), 42);
///     // Into io::Error with `?`, closure dropped:
///     let err: std::io::Error = io.concurrent(|_| ()).unwrap_err().into();
///     assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
/// });
/// ```
pub struct ConcurrencyUnavailable<F = ()> {
    /// Which model refused, for the message.
    model: &'static str,
    /// The refused closure (`()` for the plain error).
    closure: F,
}

impl ConcurrencyUnavailable {
    /// The plain error, for a [`CustomModel`](crate::CustomModel) named `model` that refuses a
    /// task: zsync puts the closure back in before the caller sees it.
    pub fn new(model: &'static str) -> ConcurrencyUnavailable {
        ConcurrencyUnavailable { model, closure: () }
    }

    /// The error with the refused closure in it.
    pub(crate) fn with_closure<F>(self, closure: F) -> ConcurrencyUnavailable<F> {
        ConcurrencyUnavailable {
            model: self.model,
            closure,
        }
    }
}

impl<F> ConcurrencyUnavailable<F> {
    /// The name of the model that refused.
    pub fn model_name(&self) -> &'static str {
        self.model
    }

    /// The refused closure, unrun: run it another way (`io.spawn(e.into_inner())`, inline).
    pub fn into_inner(self) -> F {
        self.closure
    }

    /// The plain error and the refused closure, apart.
    pub fn into_parts(self) -> (ConcurrencyUnavailable, F) {
        (ConcurrencyUnavailable::new(self.model), self.closure)
    }

    /// The same error with the closure replaced by `f(closure)`.
    pub fn map<G>(self, f: impl FnOnce(F) -> G) -> ConcurrencyUnavailable<G> {
        ConcurrencyUnavailable {
            model: self.model,
            closure: f(self.closure),
        }
    }
}

impl<F> fmt::Debug for ConcurrencyUnavailable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyUnavailable")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for ConcurrencyUnavailable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "concurrency unavailable: the {} model cannot run this task concurrently with its caller",
            self.model
        )
    }
}

impl<F> std::error::Error for ConcurrencyUnavailable<F> {}

// SAFETY: no `&self` method reaches the closure (only `into_inner`/`into_parts`/`map`, which take
// it by value), so sharing a `&ConcurrencyUnavailable<F>` between threads shares only the model
// name: the `Exclusive` argument. Lets the error go into `Box<dyn Error + Send + Sync>` (and
// `io::Error`) whatever the closure captures.
unsafe impl<F> Sync for ConcurrencyUnavailable<F> {}

impl Clone for ConcurrencyUnavailable {
    fn clone(&self) -> Self {
        *self
    }
}

impl Copy for ConcurrencyUnavailable {}

impl PartialEq for ConcurrencyUnavailable {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
    }
}

impl Eq for ConcurrencyUnavailable {}

impl<F> From<ConcurrencyUnavailable<F>> for io::Error {
    fn from(e: ConcurrencyUnavailable<F>) -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, e.into_parts().0)
    }
}

/// The payload of the `io::Error` (kind [`TimedOut`](io::ErrorKind::TimedOut)) that an operation
/// with a deadline reports when the deadline passes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed before the operation completed")
    }
}

impl std::error::Error for Elapsed {}

/// Returns the `TimedOut` error an operation reports when its deadline passes.
pub fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, Elapsed)
}

/// Tells whether `err` reports that a deadline set by [`Io::timeout`](crate::Io::timeout),
/// [`Io::timeout_until`](crate::Io::timeout_until) or an operation's own timeout passed. (A
/// socket's read or write timeout is the exception: it expires with `WouldBlock`, as std's
/// does; see [`TcpStream::set_read_timeout`](crate::net::TcpStream::set_read_timeout).)
pub fn is_timed_out(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::TimedOut && err.get_ref().is_some_and(|e| e.is::<Elapsed>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canceled_is_recognised_and_not_interrupted() {
        let e = canceled();
        assert!(is_canceled(&e));
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert!(!is_canceled(&io::Error::from(io::ErrorKind::Interrupted)));
        assert!(!is_canceled(&io::Error::other("x")));
        let wrapped = io::Error::other(canceled());
        assert!(is_canceled(&wrapped));
    }

    #[test]
    fn closed_is_recognised_through_one_wrapping() {
        let e = Closed::error(io::ErrorKind::BrokenPipe, "channel");
        assert!(is_closed(&e));
        assert_eq!(e.to_string(), "channel closed");
        assert!(is_closed(&io::Error::other(e)));
        assert!(!is_closed(&canceled()));
        assert!(!is_closed(&io::Error::from(io::ErrorKind::BrokenPipe)));
    }

    #[test]
    fn concurrency_unavailable_message_names_model() {
        let e = io::Error::from(ConcurrencyUnavailable::new("Blocking"));
        assert!(e.to_string().contains("Blocking"));
    }
}

//! [`Timeout`]: a future bounded by a deadline, on the async driver's timers.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::Sleep;

/// A future that runs an inner future until a deadline: [`zsync::time::timeout`](crate::time::timeout),
/// [`timeout_until`](crate::time::timeout_until).
///
/// Completes with `Ok(output)` if the inner future completes first, else with zsync's
/// `TimedOut` error ([`zsync::is_timed_out`](crate::is_timed_out) tells it apart) once the
/// deadline has passed; the inner future is then dropped with the `Timeout`. The inner future
/// is polled first, so one that is ready at the deadline still wins.
///
/// ```
/// use std::time::Duration;
/// use zsync::time::{sleep, timeout};
///
/// zsync::run(zsync::Model::Green, |io| {
///     let late = timeout(Duration::from_millis(1), sleep(Duration::from_secs(60)));
///     let e = io.block_on(late).unwrap().unwrap_err();
///     assert!(zsync::is_timed_out(&e));
///     let in_time = timeout(Duration::from_secs(60), async { 7 });
///     assert_eq!(io.block_on(in_time).unwrap().unwrap(), 7);
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F> Timeout<F> {
    /// The instant at which the timeout expires.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let at = Instant::now() + Duration::from_secs(1);
    /// let t = zsync::time::timeout_until(at, std::future::ready(1));
    /// assert_eq!(t.deadline(), at);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    /// The inner future.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = zsync::time::timeout(Duration::from_secs(1), std::future::ready(7));
    /// let _inner: &std::future::Ready<i32> = t.get_ref();
    /// ```
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// Gives the inner future back, unpolled further.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = zsync::time::timeout(Duration::from_secs(1), std::future::ready(7));
    /// let _inner: std::future::Ready<i32> = t.into_inner();
    /// ```
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = io::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of a pinned `Timeout`
        // (`into_inner` takes the `Timeout` by value, which requires it unpinned or `Unpin`),
        // `Timeout` has no `Drop` impl, and it is `Unpin` only when `F` is (auto trait; `Sleep`
        // is `Unpin`). `sleep` is not pinned structurally: it is `Unpin` and only reached
        // through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `future` stays where it is for as long as the `Timeout` is pinned.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(v) = future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(crate::error::timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.sleep.deadline())
            .finish_non_exhaustive()
    }
}

/// Runs `future` for at most `duration`: `Ok(output)`, or the `TimedOut` error. See
/// [`Timeout`].
///
/// ```
/// use std::time::Duration;
/// let t = zsync::time::timeout(Duration::from_secs(1), std::future::ready(7));
/// assert!(t.deadline() > std::time::Instant::now());
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    timeout_until(crate::time::later(crate::clock::now(), duration), future)
}

/// Runs `future` until `deadline` at most: `Ok(output)`, or the `TimedOut` error. See
/// [`Timeout`].
///
/// ```
/// use std::time::Instant;
/// let t = zsync::time::timeout_until(Instant::now(), std::future::ready(7));
/// assert!(t.deadline() <= Instant::now());
/// ```
pub fn timeout_until<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: Sleep::until(deadline),
    }
}

//! [`Sleep`]: a future that completes at a deadline, on the async driver's timers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::Driver;
use crate::model::green::timers::TimerId;

/// A future that completes once its deadline has passed: [`zsync::time::sleep`](crate::time::sleep),
/// [`sleep_until`](crate::time::sleep_until).
///
/// It arms a timer of the async driver on its first pending poll: the driver of the zsync
/// runtime it is polled in, or the process-wide one when polled under another executor. A
/// dropped `Sleep` disarms its timer at once. It never completes before its deadline and
/// completes at most about a timer tick (~65 µs) after it, plus scheduling delay.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let start = Instant::now();
///     let sleep = zsync::time::sleep(Duration::from_millis(5));
///     assert!(sleep.deadline() - start >= Duration::from_millis(5));
///     // Colorblind code waits for a future with `Io::block_on`; async code `.await`s it.
///     io.block_on(sleep).unwrap();
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    timer: Timer,
}

/// A `Sleep`'s registration: the driver it is armed with, the timer, and the waker it was
/// armed with (to skip re-arming when polled again by the same task).
#[derive(Default)]
struct Timer {
    driver: Option<Arc<Driver>>,
    id: Option<TimerId>,
    waker: Option<Waker>,
}

impl Timer {
    /// Arms (or re-arms) the timer for `deadline`, waking `waker`.
    fn arm(&mut self, deadline: Instant, waker: &Waker) {
        let waker = waker.clone();
        for _ in 0..2 {
            let driver = self.driver.get_or_insert_with(Driver::current);
            match driver.arm_timer(self.id.take(), deadline, waker.clone()) {
                Some(id) => {
                    self.id = Some(id);
                    self.waker = Some(waker);
                    return;
                }
                // Its runtime ended: the process-wide driver takes over.
                None => self.driver = Some(Driver::fallback().clone()),
            }
        }
        unreachable!("the process-wide async driver never closes");
    }

    fn disarm(&mut self) {
        if let (Some(driver), Some(id)) = (&self.driver, self.id.take()) {
            driver.cancel_timer(id);
        }
        self.waker = None;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl Sleep {
    /// A sleep until `deadline` (nothing is armed until it is polled).
    pub(crate) fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            timer: Timer::default(),
        }
    }

    /// The instant at which the sleep completes.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let at = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(zsync::time::sleep_until(at).deadline(), at);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(zsync::time::sleep(Duration::ZERO).is_elapsed());
    /// assert!(!zsync::time::sleep(Duration::from_secs(60)).is_elapsed());
    /// ```
    pub fn is_elapsed(&self) -> bool {
        crate::park::deadline_passed(self.deadline)
    }

    /// Moves the deadline to `deadline` (earlier or later), also when the sleep has completed
    /// already: it then completes again at the new deadline. A task waiting on it is woken at
    /// the new deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let mut sleep = zsync::time::sleep(Duration::from_secs(60));
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// sleep.reset(soon);
    /// assert_eq!(sleep.deadline(), soon);
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(waker) = self.timer.waker.clone() {
            self.timer.arm(deadline, &waker);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if crate::park::deadline_passed(this.deadline) {
            this.timer.disarm();
            return Poll::Ready(());
        }
        let armed = this.timer.id.is_some()
            && this
                .timer
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
        if !armed {
            this.timer.arm(this.deadline, cx.waker());
        }
        Poll::Pending
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("armed", &self.timer.id.is_some())
            .finish()
    }
}

/// A future that completes after `duration`, measured from now. See [`Sleep`].
///
/// ```
/// use std::time::Duration;
/// let sleep = zsync::time::sleep(Duration::from_millis(10));
/// assert!(!sleep.is_elapsed());
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::until(crate::time::later(crate::clock::now(), duration))
}

/// A future that completes once `deadline` has passed. See [`Sleep`].
///
/// ```
/// use std::time::Instant;
/// let sleep = zsync::time::sleep_until(Instant::now());
/// assert!(sleep.is_elapsed());
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::until(deadline)
}

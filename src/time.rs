//! Time: [`Interval`], a periodic tick (Tokio's `tokio::time::Interval`), and the timer futures
//! [`sleep`], [`sleep_until`], [`timeout`] and [`timeout_until`] for async code.
//!
//! The futures run on the async driver's timers: the driver of the zsync runtime they are
//! polled in, or a process-wide one under another executor. Colorblind code waits for them
//! with `Io::block_on`; it sleeps itself with [`Io::sleep`](crate::Io::sleep).
//!
//! One-off waits are [`Io::sleep`](crate::Io::sleep) / [`Io::sleep_until`](crate::Io::sleep_until)
//! and, as events, [`select::sleep`](crate::select::sleep). An interval ticks on a fixed
//! schedule: `start`, `start + period`, `start + 2 × period`, … — a task that takes a little
//! longer between two ticks does not shift the ones after, unlike a loop of sleeps. What happens
//! when the task falls behind by more than that is its [`MissedTickBehavior`].
//!
//! ```
//! use std::time::Duration;
//!
//! zsync::run(zsync::Model::Threaded, |io| {
//!     let mut interval = io.interval(Duration::from_millis(10));
//!     let first = interval.tick().unwrap(); // the first tick completes at once
//!     let second = interval.tick().unwrap(); // 10 ms later
//!     assert_eq!(second - first, Duration::from_millis(10));
//! });
//! ```

use std::fmt;
use std::io;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::{Event, Io};

pub use crate::driver::sleep::{sleep, sleep_until, Sleep};
pub use crate::driver::timeout::{timeout, timeout_until, Timeout};

/// How late a tick may be handled and still count as on time: later than this, the tick was
/// *missed* and the interval's [`MissedTickBehavior`] decides when the next one is. Tokio's
/// figure: a timer wakes a little late anyway, and without the slack `Delay` and `Skip` would
/// move the schedule for every late wake-up.
const MISSED_AFTER: Duration = Duration::from_millis(5);

/// What an [`Interval`] does when ticks were missed: when [`tick`](Interval::tick) is called
/// more than a few milliseconds after a tick's scheduled instant (the task was busy, blocked,
/// or the machine loaded). The late tick itself always completes at once; the behaviour decides
/// when the *next* one is. Tokio's semantics, with the same default.
///
/// With a period of 10 ms, ticks scheduled at 0, 10, 20, … ms, and the tick at 10 ms handled at
/// 35 ms:
///
/// | behaviour | next ticks (scheduled instants) |
/// |---|---|
/// | `Burst` | 20, 30 (both at once, catching up), 40, 50, … |
/// | `Delay` | 45, 55, 65, … (a period after the late tick) |
/// | `Skip` | 40, 50, 60, … (the next instant of the original schedule) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks as fast as they are asked for, until the schedule is caught up:
    /// the number of ticks over time stays right. The default.
    #[default]
    Burst,
    /// Start the schedule again from now: the next tick is one period after the late one was
    /// handled, and every gap between ticks is at least a period.
    Delay,
    /// Drop the missed ticks: the next tick is the first instant of the original schedule
    /// after now.
    Skip,
}

impl MissedTickBehavior {
    /// The instant of the next tick after the one scheduled at `scheduled` was handled at `now`
    /// (late).
    fn next_after(self, scheduled: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => later(scheduled, period),
            MissedTickBehavior::Delay => later(now, period),
            MissedTickBehavior::Skip => {
                let behind = (now - scheduled).as_nanos() % period.as_nanos();
                // `behind < period`, so it fits the `Duration` the period is.
                later(now, period) - Duration::from_nanos(behind as u64)
            }
        }
    }
}

/// `t + d`, or `t` plus about a century if that is not representable.
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(100 * 365 * 86_400))
}

/// A periodic tick: [`tick`](Interval::tick) waits for the next instant of a fixed schedule and
/// returns it. Make one with [`Io::interval`] or [`Io::interval_at`].
///
/// `tick` is a cancellation point, honours the task's deadline
/// ([`Io::timeout_until`](crate::Io::timeout_until)), and parks the fiber on Green; a tick that
/// did not complete (canceled, timed out, or a [`TickEvent`] that lost a `select`) is not
/// consumed: the next `tick` still returns it.
///
/// ```
/// use std::time::{Duration, Instant};
/// use zsync::time::MissedTickBehavior;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let start = Instant::now();
///     let period = Duration::from_millis(5);
///     let mut interval = io.interval_at(start, period);
///     interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
///     assert_eq!(interval.tick().unwrap(), start);
///     io.sleep(Duration::from_millis(30)).unwrap(); // miss a few
///     let late = interval.tick().unwrap(); // the late one, at once
///     assert!(late < start + Duration::from_millis(30));
///     let next = interval.tick().unwrap();
///     // Skip: back on the original schedule, after the missed ticks.
///     let on_schedule = |t: Instant| (t - start).as_nanos().is_multiple_of(period.as_nanos());
///     assert!(on_schedule(late) && on_schedule(next));
///     assert!(next >= start + Duration::from_millis(30));
/// });
/// ```
#[must_use = "an interval does nothing unless ticked"]
pub struct Interval {
    io: Io,
    /// The scheduled instant of the next tick.
    next: Instant,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// An interval whose first tick completes at once and the next ones every `period` after.
    /// Same as [`Io::interval`].
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    pub fn new(io: &Io, period: Duration) -> Interval {
        Interval::new_at(io, crate::clock::now(), period)
    }

    /// An interval whose first tick is at `start` and the next ones every `period` after. Same
    /// as [`Io::interval_at`].
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    pub fn new_at(io: &Io, start: Instant, period: Duration) -> Interval {
        assert!(!period.is_zero(), "an interval's period must be non-zero");
        Interval {
            io: io.clone(),
            next: start,
            period,
            missed: MissedTickBehavior::default(),
        }
    }

    /// Waits for the next tick and returns its *scheduled* instant (a late tick returns when it
    /// was due, not when it completed). Cancellation point; `TimedOut` at the task's deadline.
    /// Neither consumes the tick. The wait is [`Io::sleep_until`] and the clock read
    /// [`Io::now`], so a custom model provides both.
    #[track_caller]
    pub fn tick(&mut self) -> io::Result<Instant> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Sleep,
            crate::diag::wait_point::Object::None,
        );
        self.io.sleep_until(self.next)?;
        let now = self.io.now();
        Ok(self.advance(now))
    }

    /// Like [`tick`](Interval::tick), giving up with `TimedOut` at `deadline` (the tick is not
    /// consumed).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let mut interval = io.interval(Duration::from_secs(60));
    ///     interval.tick().unwrap();
    ///     let soon = Instant::now() + Duration::from_millis(5);
    ///     assert!(zsync::is_timed_out(&interval.tick_until(soon).unwrap_err()));
    /// });
    /// ```
    #[track_caller]
    pub fn tick_until(&mut self, deadline: Instant) -> io::Result<Instant> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Sleep,
            crate::diag::wait_point::Object::None,
        );
        let io = self.io.clone();
        io.timeout_until(deadline, |_| self.tick())
    }

    /// Like [`tick`](Interval::tick), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn tick_timeout(&mut self, timeout: Duration) -> io::Result<Instant> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Sleep,
            crate::diag::wait_point::Object::None,
        );
        self.tick_until(later(crate::clock::now(), timeout))
    }

    /// Consumes the tick scheduled at `self.next`, handled at `now`; returns its instant.
    fn advance(&mut self, now: Instant) -> Instant {
        let scheduled = self.next;
        self.next = if now > later(scheduled, MISSED_AFTER) {
            self.missed.next_after(scheduled, now, self.period)
        } else {
            later(scheduled, self.period)
        };
        scheduled
    }

    /// The next tick as an [`Event`], for `select!` and [`Io::wait`](crate::Io::wait). It
    /// consumes the tick only when it completes.
    ///
    /// ```
    /// use std::time::Duration;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let (tx, rx) = zsync::channel::unbounded::<u32>();
    ///     let mut heartbeat = io.interval(Duration::from_millis(5));
    ///     let mut beats = 0;
    ///     while beats < 3 {
    ///         zsync::select!(io;
    ///             _ = heartbeat.tick_event() => beats += 1,
    ///             msg = rx.recv_event() => drop(msg),
    ///         ).unwrap();
    ///     }
    ///     drop(tx);
    /// });
    /// ```
    pub fn tick_event(&mut self) -> TickEvent<'_> {
        TickEvent {
            interval: self,
            sleep: None,
        }
    }

    /// Restarts the schedule from now: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.next = later(crate::clock::now(), self.period);
    }

    /// Restarts the schedule from now with a tick at once.
    pub fn reset_immediately(&mut self) {
        self.next = crate::clock::now();
    }

    /// Restarts the schedule at `at`: the next tick is at `at`, then every period after.
    pub fn reset_at(&mut self, at: Instant) {
        self.next = at;
    }

    /// The period between two ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The scheduled instant of the next tick.
    pub fn next_tick(&self) -> Instant {
        self.next
    }

    /// What the interval does when ticks are missed.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what the interval does when ticks are missed (from the next tick on).
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.next)
            .field("missed_tick_behavior", &self.missed)
            .finish_non_exhaustive()
    }
}

/// The next tick of an [`Interval`] as an [`Event`]; see [`Interval::tick_event`]. Its output is
/// the tick's scheduled instant.
#[must_use = "an event does nothing until waited for"]
pub struct TickEvent<'a> {
    interval: &'a mut Interval,
    /// The timer of the tick's instant, once polled as a future.
    sleep: Option<Sleep>,
}

/// The tick as a future (through the async driver's timers): completes with the tick's
/// scheduled instant once it has passed, consuming the tick; dropped before, it consumes
/// nothing.
///
/// ```
/// use std::time::Duration;
/// zsync::run(zsync::Model::Threaded, |io| {
///     let mut interval = io.interval(Duration::from_millis(2));
///     let first = io.block_on(interval.tick_event()).unwrap();
///     let second = io.block_on(interval.tick_event()).unwrap();
///     assert_eq!(second - first, Duration::from_millis(2));
/// });
/// ```
impl std::future::Future for TickEvent<'_> {
    type Output = Instant;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Instant> {
        let this = &mut *self;
        let next = this.interval.next;
        if !crate::park::deadline_passed(next) {
            let sleep = this.sleep.get_or_insert_with(|| sleep_until(next));
            if sleep.deadline() != next {
                sleep.reset(next);
            }
            if std::pin::Pin::new(sleep).poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        this.sleep = None;
        Poll::Ready(this.interval.advance(crate::clock::now()))
    }
}

impl Event for TickEvent<'_> {
    type Output = Instant;

    fn poll_event(&mut self, _waker: &Waker) -> Poll<Instant> {
        // A timer, like `select::sleep`: no registration, the wait re-polls at `wake_at`.
        if !crate::park::deadline_passed(self.interval.next) {
            return Poll::Pending;
        }
        Poll::Ready(self.interval.advance(crate::clock::now()))
    }

    fn wake_at(&self) -> Option<Instant> {
        Some(self.interval.next)
    }
}

impl fmt::Debug for TickEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickEvent")
            .field("scheduled", &self.interval.next)
            .finish()
    }
}

//! Waiting for the first of several things: `select!`, `race`, `all`, `timeout`.
//!
//! - [`select!`](crate::select!) waits for the first of several [`Event`]s — a channel receive or
//!   send, a task's completion, a sleep, the task's own cancellation — completes exactly that one,
//!   and leaves the others untouched (see the contract in [`Event`]). Arms are polled in a random
//!   order weighted so that each ready arm is equally likely to win: no arm starves.
//! - [`Io::race`] runs closures as tasks and returns the first result, canceling the rest.
//! - [`Io::all`] and [`Io::try_all`] run closures as tasks and return every result (the latter
//!   canceling the rest on the first error).
//! - [`Io::timeout`] runs a closure with a deadline: every blocking operation inside it stops at
//!   the deadline with a `TimedOut` error (see [`is_timed_out`](crate::is_timed_out)).

use std::cell::Cell;
use std::io;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::task::Task;
use crate::{context, Event, Group, Io};

/// Which of two events completed; the output of a two-armed select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<L, R> {
    /// The first event completed.
    Left(L),
    /// The second event completed.
    Right(R),
}

/// Waits for the first of two events; `left_weight`/`right_weight` are the numbers of arms on
/// each side, so that a chain of `OrEvent`s picks uniformly among ready arms. Built by `select!`.
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "an event does nothing until waited for"]
pub struct OrEvent<A, B> {
    left: A,
    right: B,
    left_weight: u32,
    right_weight: u32,
}

impl<A: Event, B: Event> OrEvent<A, B> {
    #[doc(hidden)]
    pub fn new(left: A, right: B, left_weight: u32, right_weight: u32) -> Self {
        OrEvent {
            left,
            right,
            left_weight,
            right_weight,
        }
    }
}

/// A cheap per-thread pseudo-random number (xorshift), for the polling order of `select`.
fn random_below(n: u32) -> u32 {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0x2545_F491_4F6C_DD1D) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        ((x >> 32) as u32) % n.max(1)
    })
}

impl<A: Event, B: Event> Event for OrEvent<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<Self::Output> {
        let left_first = random_below(self.left_weight + self.right_weight) < self.left_weight;
        if left_first {
            if let Poll::Ready(v) = self.left.poll_event(waker) {
                return Poll::Ready(Either::Left(v));
            }
            self.right.poll_event(waker).map(Either::Right)
        } else {
            if let Poll::Ready(v) = self.right.poll_event(waker) {
                return Poll::Ready(Either::Right(v));
            }
            self.left.poll_event(waker).map(Either::Left)
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        crate::context::earlier(self.left.wake_at(), self.right.wake_at())
    }

    fn observes_cancel(&self) -> bool {
        self.left.observes_cancel() || self.right.observes_cancel()
    }
}

/// Waits for the first of several events, completes it, and runs its arm.
///
/// ```text
/// select!(io;
///     pattern = event => expression,
///     ...
/// )
/// ```
///
/// Evaluates to `io::Result<R>` where `R` is the arms' common type: `Err(Canceled)` if the task
/// is canceled first (unless an arm waits for [`cancel_requested()`]), `Err(TimedOut)` if its deadline
/// passes. Exactly one event completes; the others are dropped untouched (a message not received
/// stays in its channel). Among arms ready at once, each is equally likely to be chosen.
///
/// ```
/// use std::time::Duration;
/// use zsync::select::{sleep, Either};
/// zsync::run(zsync::Model::Threaded, |io| {
///     let slow = io.spawn(|io| { io.sleep(Duration::from_secs(5))?; Ok::<_, std::io::Error>(1) });
///     let mut slow = slow;
///     let winner = zsync::select!(io;
///         v = slow.join_event() => format!("task finished: {v:?}"),
///         _ = sleep(Duration::from_millis(10)) => "timer fired first".to_string(),
///     ).unwrap();
///     assert_eq!(winner, "timer fired first");
///     // `slow` was left untouched: it is still running, and dropping it cancels it.
///     assert!(!slow.is_finished());
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($io:expr; $($pat:pat = $event:expr => $body:expr),+ $(,)?) => {{
        let __io: &$crate::Io = &$io;
        match $crate::select::__wait_select(__io, $crate::__select_chain!($($event),+)) {
            ::std::result::Result::Ok(__out) => {
                ::std::result::Result::Ok($crate::__select_match!(__out; $($pat => $body),+))
            }
            ::std::result::Result::Err(__e) => ::std::result::Result::Err(__e),
        }
    }};
}

/// What [`select!`] waits with: [`Io::wait`] noted as a `select` at the macro's call site.
#[doc(hidden)]
#[track_caller]
pub fn __wait_select<E: crate::Event>(io: &Io, event: E) -> io::Result<E::Output> {
    let _wait = crate::diag::wait_point::note(
        crate::diag::wait_point::WaitOp::Select,
        crate::diag::wait_point::Object::None,
    );
    io.wait(event)
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_chain {
    ($event:expr) => { $event };
    ($event:expr, $($rest:expr),+) => {
        $crate::select::OrEvent::new(
            $event,
            $crate::__select_chain!($($rest),+),
            1,
            $crate::__select_count!($($rest),+),
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_count {
    ($event:expr) => { 1u32 };
    ($event:expr, $($rest:expr),+) => { 1u32 + $crate::__select_count!($($rest),+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_match {
    ($out:expr; $pat:pat => $body:expr) => {{
        let $pat = $out;
        $body
    }};
    ($out:expr; $pat:pat => $body:expr, $($rest_pat:pat => $rest_body:expr),+) => {
        match $out {
            $crate::select::Either::Left($pat) => $body,
            $crate::select::Either::Right(__rest) => $crate::__select_match!(__rest; $($rest_pat => $rest_body),+),
        }
    };
}

/// An event that completes when the monotonic clock reaches a deadline.
///
/// Also a [`Future`](std::future::Future) (through the async driver's timers, as
/// [`zsync::time::Sleep`](crate::time::Sleep)), so async code can `.await` it:
///
/// ```
/// use std::time::{Duration, Instant};
/// zsync::run(zsync::Model::Threaded, |io| {
///     let event = zsync::select::sleep(Duration::from_millis(2));
///     let deadline = Instant::now();
///     io.block_on(event).unwrap();
///     assert!(Instant::now() >= deadline);
/// });
/// ```
#[derive(Debug)]
#[must_use = "an event does nothing until waited for"]
pub struct SleepEvent {
    /// The deadline, and its timer once polled as a future.
    sleep: crate::time::Sleep,
}

/// A copy has the same deadline and no timer of its own until polled.
impl Clone for SleepEvent {
    fn clone(&self) -> Self {
        sleep_until(self.sleep.deadline())
    }
}

/// An event that completes after `duration` (measured from now).
pub fn sleep(duration: Duration) -> SleepEvent {
    sleep_until(crate::time::later(crate::clock::now(), duration))
}

/// An event that completes at `deadline`.
pub fn sleep_until(deadline: Instant) -> SleepEvent {
    SleepEvent {
        sleep: crate::time::sleep_until(deadline),
    }
}

impl std::future::Future for SleepEvent {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        std::pin::Pin::new(&mut self.sleep).poll(cx)
    }
}

impl Event for SleepEvent {
    type Output = ();

    fn poll_event(&mut self, _waker: &Waker) -> Poll<()> {
        if crate::park::deadline_passed(self.sleep.deadline()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        Some(self.sleep.deadline())
    }
}

/// An event that completes when the waiting task is asked to cancel: a `select!` arm with it
/// reports the cancellation as a value instead of failing with `Canceled`.
#[derive(Debug, Clone, Copy, Default)]
#[must_use = "an event does nothing until waited for"]
pub struct CancelRequestedEvent;

/// An event that completes when the waiting task is asked to cancel (not to be confused with
/// [`zsync::canceled()`](crate::canceled), which builds the `Canceled` error).
///
/// ```
/// use std::time::Duration;
/// use zsync::select::{cancel_requested, sleep};
/// zsync::run(zsync::Model::Threaded, |io| {
///     let task = io.spawn(|io| {
///         zsync::select!(io;
///             _ = cancel_requested() => "asked to stop",
///             _ = sleep(Duration::from_secs(30)) => "slept",
///         )
///     });
///     assert_eq!(task.cancel().unwrap().unwrap(), "asked to stop");
/// });
/// ```
pub fn cancel_requested() -> CancelRequestedEvent {
    CancelRequestedEvent
}

impl Event for CancelRequestedEvent {
    type Output = ();

    fn poll_event(&mut self, _waker: &Waker) -> Poll<()> {
        // The task's own waker is woken by `cancel`, so no registration is needed.
        if context::with(|c| c.is_some_and(|c| c.cancel.check_pending())) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn observes_cancel(&self) -> bool {
        true
    }
}

/// An event that completes when a task finishes, yielding its value (`Err(Canceled)` for a
/// future task dropped by its cancellation); see [`Task::join_event`](crate::Task::join_event).
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// zsync::run(zsync::Model::Threaded, |io| {
///     let mut task = io.spawn(|_| 6 * 7);
///     let joiner = std::thread::spawn(move || futures::executor::block_on(task.join_event()));
///     assert_eq!(joiner.join().unwrap().unwrap(), 42);
/// });
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct JoinEvent<'a, T> {
    pub(crate) task: &'a mut Task<T>,
}

impl<T> Event for JoinEvent<'_, T> {
    type Output = io::Result<T>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<io::Result<T>> {
        self.task.poll_join(waker)
    }
}

crate::event::event_future!([T] JoinEvent<'_, T>);

impl<T> std::fmt::Debug for JoinEvent<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinEvent").finish_non_exhaustive()
    }
}

/// [`Io::race`]: each closure in a task of one group; the first to finish wins, and dropping the
/// group cancels and waits for the others.
#[track_caller]
pub(crate) fn race<T, F>(io: &Io, fs: impl IntoIterator<Item = F>) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Io) -> T + Send + 'static,
{
    let _wait = crate::diag::wait_point::note(
        crate::diag::wait_point::WaitOp::Select,
        crate::diag::wait_point::Object::None,
    );
    let mut group: Group<T> = Group::new(io);
    for f in fs {
        // Zig: `group.concurrent(f) catch group.async(f)` (inline on Blocking).
        if let Err(refused) = group.concurrent(f) {
            group.spawn(refused.into_inner());
        }
        if let Some(first) = group.try_join_next() {
            return Ok(first); // it won before the rest started
        }
    }
    assert!(!group.is_empty(), "Io::race needs at least one closure");
    Ok(group
        .join_next()?
        .expect("a group with tasks has a next one"))
}

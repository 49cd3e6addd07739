//! Events: things a task can wait for, one at a time or several at once.
//!
//! Every coordination type in zsync exposes its waits as an [`Event`]: a value with a
//! `poll_event(&Waker) -> Poll<Output>` method that either completes now or registers the waker
//! where the condition can change. [`Io::wait`](crate::Io::wait) blocks on one event; `select`
//! polls several with one waker and completes exactly one of them.
//!
//! The contract that makes `select` sound ("the losers are left untouched"):
//!
//! 1. `poll_event` consumes state (takes a message, a permit, a lock) **only** when it returns
//!    `Ready`. A `Pending` poll has no effect besides registering the waker.
//! 2. Dropping an event that has not completed leaves the primitive as if the event never
//!    existed: its registration is removed and a wake-up it received but did not use is passed
//!    on to the next waiter (see the crate's `WaitList`).
//! 3. After `Ready`, the event is not polled again.
//!
//! ## Events are futures
//!
//! Every event of zsync's channels, sync primitives and tasks is also a [`Future`](std::future::Future) with the same
//! output: `poll` is `poll_event` with the context's waker, so the same value can be waited for
//! by colorblind code ([`Io::wait`](crate::Io::wait)) or `.await`ed by async code, and one
//! channel connects a fiber or a thread to a future. The contract above carries over: a future
//! dropped before it completed leaves the primitive as if it never existed (an unused wake-up is
//! passed on), and polling never blocks the thread: it only registers the waker. The events are
//! `Unpin` (a waiter's place in a queue is a key, not an address), so they can be polled through
//! `&mut` and moved between polls.
//!
//! ```
//! use zsync::channel;
//!
//! let (tx, rx) = channel::bounded(1);
//! let sender = std::thread::spawn(move || tx.send(7)); // a plain thread, blocking
//! // Any executor can await the event: here `futures`' `block_on`.
//! assert_eq!(futures::executor::block_on(rx.recv_event()), Ok(7));
//! sender.join().unwrap().unwrap();
//! ```
//!
//! On a zsync runtime, a future task and a colorblind task share a channel the same way:
//!
//! ```
//! for model in [zsync::Model::Blocking, zsync::Model::Threaded, zsync::Model::Green] {
//!     zsync::run(model, |io| {
//!         let (tx, rx) = zsync::channel::unbounded();
//!         let sender = io.spawn(move |_| tx.send(21)); // a fiber on Green
//!         let doubler = io.spawn_future(async move { rx.recv_event().await.unwrap() * 2 });
//!         sender.join().unwrap().unwrap();
//!         assert_eq!(doubler.join().unwrap(), 42);
//!     });
//! }
//! ```
//!
//! Not futures: the timer events of `select!` ([`select::sleep`](crate::select::sleep),
//! [`TickEvent`](crate::time::TickEvent)), which complete by their deadline
//! ([`Event::wake_at`]) rather than by a wake-up, and the `select!`-only
//! [`cancel_requested`](crate::select::cancel_requested), whose meaning is the waiting task's
//! own cancellation.

use std::task::{Poll, Waker};
use std::time::Instant;

/// Something a task can wait for: a message, a permit, a task's completion, a point in time.
///
/// Implemented by the events of zsync's channels, sync primitives, tasks and timers; implement it
/// for your own primitive to make it usable with [`Io::wait`](crate::Io::wait) and `select`.
pub trait Event {
    /// What the event yields when it completes.
    type Output;

    /// Completes the event if possible; otherwise registers `waker` to be woken when it may
    /// complete, and returns `Pending`. See the module docs for the contract.
    fn poll_event(&mut self, waker: &Waker) -> Poll<Self::Output>;

    /// A time at which the event may complete without anybody waking the task (a timer); the
    /// waiting task re-polls then.
    fn wake_at(&self) -> Option<Instant> {
        None
    }

    /// Whether this event completes when the waiting task is canceled (the [`select::cancel_requested`](crate::select::cancel_requested) event).
    /// A wait that contains such an event reports it instead of failing with `Canceled`.
    #[doc(hidden)]
    fn observes_cancel(&self) -> bool {
        false
    }
}

impl<E: Event + ?Sized> Event for &mut E {
    type Output = E::Output;
    fn poll_event(&mut self, waker: &Waker) -> Poll<E::Output> {
        (**self).poll_event(waker)
    }
    fn wake_at(&self) -> Option<Instant> {
        (**self).wake_at()
    }
    fn observes_cancel(&self) -> bool {
        (**self).observes_cancel()
    }
}

impl<E: Event + ?Sized> Event for Box<E> {
    type Output = E::Output;
    fn poll_event(&mut self, waker: &Waker) -> Poll<E::Output> {
        (**self).poll_event(waker)
    }
    fn wake_at(&self) -> Option<Instant> {
        (**self).wake_at()
    }
    fn observes_cancel(&self) -> bool {
        (**self).observes_cancel()
    }
}

/// Makes event types futures: `impl Future` whose `poll` is [`Event::poll_event`] with the
/// context's waker (the orphan rule forbids one blanket impl over every `Event`).
///
/// `event_future!([generics] Type, ...)`. The type must be `Unpin` (checked: `Pin::get_mut`
/// requires it); every zsync event is, since a waiter's place in a queue is a key, not an
/// address. An event owning a value of a generic type (a send) declares `Unpin` itself: it never
/// pins that value.
macro_rules! event_future {
    ($([$($generics:tt)*] $ty:ty),+ $(,)?) => {$(
        impl<$($generics)*> ::std::future::Future for $ty {
            type Output = <Self as $crate::Event>::Output;

            #[inline]
            fn poll(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<Self::Output> {
                $crate::Event::poll_event(::std::pin::Pin::get_mut(self), cx.waker())
            }
        }
    )+};
}
pub(crate) use event_future;

/// Blocks the running task until `event` completes; see [`Io::wait`](crate::Io::wait).
pub(crate) fn wait<E: Event>(
    mut event: E,
    deadline: Option<Instant>,
) -> std::io::Result<E::Output> {
    let check_cancel = !event.observes_cancel();
    let hint = event.wake_at();
    crate::wait::block_on(
        deadline,
        check_cancel,
        || hint,
        // A future polled inside may start ring ops on a Green worker: this wait parks the
        // fiber between polls, so the worker's loop runs and completes them.
        |waker| crate::model::green::polling_in_zsync_wait(|| event.poll_event(waker)),
    )
}

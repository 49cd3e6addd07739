//! `WaitList`: the queue of tasks waiting for one condition, and the one wake-up primitive every
//! zsync coordination type is built on.
//!
//! A waiting task holds a [`Waiter`]. It *registers* its `Waker` (joining the back of the FIFO),
//! re-checks its condition, and only then sleeps; a notifier changes the state first and then
//! calls [`notify_one`](WaitList::notify_one) or [`notify_all`](WaitList::notify_all). Because
//! registration happens before the re-check and notification after the change, a wake-up can
//! never fall between the check and the sleep.
//!
//! A notification is a *turn*, not a grant: the woken task re-checks and takes what it found.
//! What makes it lossless is the rule for leaving: a waiter that was notified and leaves without
//! using its turn (it was canceled, timed out, or lost a `select`) passes the notification on to
//! the next waiter when it drops. A waiter that did use it calls [`Waiter::used`] first.
//!
//! Entries carry a `tag` so that one list can serve many keys (the futex table hashes addresses
//! into a few lists and wakes only waiters of the address it was asked for).
//!
//! Wakers are plain `std::task::Waker`s: a thread's parker or a Green fiber's (a future's,
//! should zsync ever offer one).
//!
//! The FIFO itself is a [`WaitQueue`]; this type adds the lock and a `Waiter` that leaves on drop.

use crate::loom::sync::{Mutex, MutexGuard};
use std::task::Waker;

use super::queue::{WaitQueue, WaitSlot};

/// A FIFO of waiting tasks: a [`WaitQueue`] behind a mutex of its own. Thread-safe.
#[derive(Default)]
pub(crate) struct WaitList {
    inner: Mutex<WaitQueue>,
}

impl WaitList {
    pub(crate) fn new() -> WaitList {
        WaitList::default()
    }

    fn lock(&self) -> MutexGuard<'_, WaitQueue> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle for one waiting task, not yet registered.
    pub(crate) fn waiter(&self) -> Waiter<'_> {
        self.tagged_waiter(0)
    }

    pub(crate) fn tagged_waiter(&self, tag: usize) -> Waiter<'_> {
        Waiter {
            list: self,
            slot: WaitSlot::tagged(tag),
        }
    }

    /// Wakes the oldest waiter. Returns whether there was one.
    pub(crate) fn notify_one(&self) -> bool {
        // The hot path of every lock release: no allocation. Wake outside the lock: the woken
        // task may immediately contend for it.
        let waker = self.lock().notify_one();
        match waker {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }

    /// Wakes every waiter registered now. Returns how many.
    pub(crate) fn notify_all(&self) -> usize {
        self.notify_tagged(None, usize::MAX)
    }

    /// Wakes up to `n` of the oldest waiters whose tag is `tag` (all tags if `None`).
    pub(crate) fn notify_tagged(&self, tag: Option<usize>, n: usize) -> usize {
        let wakeups = self.lock().notify_tagged(tag, n);
        wakeups.wake()
    }

    /// Number of registered waiters that were not notified yet.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting()
    }
}

/// One task's place in a [`WaitList`]. Deregisters on drop, passing on an unused notification.
pub(crate) struct Waiter<'a> {
    list: &'a WaitList,
    slot: WaitSlot,
}

impl Waiter<'_> {
    /// Registers (or refreshes) the waker. After a notification the waiter goes to the back of
    /// the queue again. Call *before* re-checking the condition.
    pub(crate) fn register(&mut self, waker: &Waker) {
        self.slot.register(&mut self.list.lock(), waker);
    }

    /// Whether a notification arrived since the last registration.
    pub(crate) fn is_notified(&self) -> bool {
        self.slot.is_registered() && self.slot.is_notified(&self.list.lock())
    }

    /// Leaves the list, keeping any notification (the caller used its turn).
    pub(crate) fn used(&mut self) {
        if self.slot.is_registered() {
            self.slot.used(&mut self.list.lock());
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.slot.is_registered() {
            let waker = self.slot.leave(&mut self.list.lock());
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    use crate::test_waker::{counter, wakes};

    #[test]
    fn notify_one_wakes_in_fifo_order() {
        let list = WaitList::new();
        let (a, wa) = counter();
        let (b, wb) = counter();
        let mut x = list.waiter();
        let mut y = list.waiter();
        x.register(&wa);
        y.register(&wb);
        assert!(list.notify_one());
        assert_eq!((wakes(&a), wakes(&b)), (1, 0));
        assert!(list.notify_one());
        assert_eq!(wakes(&b), 1);
        assert!(!list.notify_one());
    }

    #[test]
    fn dropping_a_notified_waiter_passes_the_turn_on() {
        let list = WaitList::new();
        let (_, wa) = counter();
        let (b, wb) = counter();
        let mut x = list.waiter();
        let mut y = list.waiter();
        x.register(&wa);
        y.register(&wb);
        list.notify_one();
        drop(x); // canceled without using its turn
        assert_eq!(wakes(&b), 1);
        y.used();
    }

    #[test]
    fn used_turn_is_not_passed_on() {
        let list = WaitList::new();
        let (_, wa) = counter();
        let (b, wb) = counter();
        let mut x = list.waiter();
        let mut y = list.waiter();
        x.register(&wa);
        y.register(&wb);
        list.notify_one();
        x.used();
        drop(x);
        assert_eq!(wakes(&b), 0);
        drop(y);
        assert_eq!(list.waiting(), 0);
    }

    #[test]
    fn tags_select_waiters() {
        let list = WaitList::new();
        let (a, wa) = counter();
        let (b, wb) = counter();
        let mut x = list.tagged_waiter(1);
        let mut y = list.tagged_waiter(2);
        x.register(&wa);
        y.register(&wb);
        assert_eq!(list.notify_tagged(Some(2), usize::MAX), 1);
        assert_eq!((wakes(&a), wakes(&b)), (0, 1));
        assert_eq!(list.notify_tagged(Some(1), 1), 1);
        assert_eq!(wakes(&a), 1);
    }
}

/// Loom models of the wake-up protocol: `RUSTFLAGS="--cfg loom" cargo test --lib loom_models`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::model::{counting_waker, model, thread_waker};
    use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use crate::loom::sync::Arc;
    use ::loom::thread;

    /// Register → re-check → park never sleeps through a notification: a lost wake-up would
    /// leave the waiter parked forever, which loom reports as a deadlock.
    #[test]
    fn notify_is_never_lost_between_check_and_park() {
        model(|| {
            let list = Arc::new(WaitList::new());
            let ready = Arc::new(AtomicBool::new(false));
            let notifier = {
                let (list, ready) = (list.clone(), ready.clone());
                thread::spawn(move || {
                    ready.store(true, Ordering::Release);
                    list.notify_one();
                })
            };
            let waker = thread_waker();
            let mut waiter = list.waiter();
            loop {
                if ready.load(Ordering::Acquire) {
                    break;
                }
                waiter.register(&waker);
                if ready.load(Ordering::Acquire) {
                    break;
                }
                thread::park();
            }
            waiter.used();
            notifier.join().unwrap();
            assert_eq!(list.waiting(), 0);
        });
    }

    /// A notified waiter that leaves without `used()` (canceled, timed out, lost a select) hands
    /// its turn to the other waiter: the item still gets taken, nobody parks forever.
    #[test]
    fn unused_notification_is_passed_on() {
        model(|| {
            let list = Arc::new(WaitList::new());
            let items = Arc::new(AtomicUsize::new(0));
            let producer = {
                let (list, items) = (list.clone(), items.clone());
                thread::spawn(move || {
                    items.fetch_add(1, Ordering::Release);
                    list.notify_one();
                })
            };
            let canceled = {
                let list = list.clone();
                thread::spawn(move || {
                    let (_, waker) = counting_waker();
                    let mut waiter = list.waiter();
                    waiter.register(&waker);
                    thread::yield_now();
                    drop(waiter); // leaves without taking anything
                })
            };
            let take = || {
                items
                    .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            };
            let waker = thread_waker();
            let mut waiter = list.waiter();
            loop {
                if take() {
                    break;
                }
                waiter.register(&waker);
                if take() {
                    break;
                }
                thread::park();
            }
            waiter.used();
            producer.join().unwrap();
            canceled.join().unwrap();
            assert_eq!(items.load(Ordering::Relaxed), 0);
            assert_eq!(list.waiting(), 0);
        });
    }
}

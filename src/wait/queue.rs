//! `WaitQueue`: the bookkeeping of who waits, without a lock of its own.
//!
//! A coordination type that already guards its state with a lock (a channel's buffer) keeps its
//! waiters in a `WaitQueue` *inside* that state, so that one operation takes one lock: it changes
//! the state, registers or notifies, and leaves. [`WaitList`](super::WaitList) is the same queue
//! behind a mutex of its own, for types with no state lock (Condvar, Barrier, the futex table).
//!
//! Layout: the entries live in one [`Slab`] and are chained into a doubly-linked FIFO through
//! their keys, so registering, notifying the head and leaving are O(1) and allocate nothing once
//! the slab has grown to the number of simultaneous waiters. A notified entry is unlinked from
//! the FIFO but stays in the slab (flag `notified`) until its waiter leaves, so that the waiter
//! can tell whether it holds an unused turn:
//!
//! ```text
//!   slab:  [0: A waiting] [1: B notified] [2: C waiting]
//!   FIFO:  head ─▶ 0 ─▶ 2 ◀─ tail          (1 is out of the FIFO: its turn is pending)
//! ```
//!
//! The notifier takes the entry's `Waker` out (no clone) and wakes it after releasing the lock
//! ([`Wakeups`]); the waiter's next registration puts a waker back.

use std::task::Waker;

use slab::Slab;

/// "No entry" in the FIFO links.
const NIL: usize = usize::MAX;

struct Entry {
    /// Taken (not cloned) by the notifier; put back by the next `register`.
    waker: Option<Waker>,
    tag: usize,
    /// Notified and not yet re-registered: unlinked from the FIFO.
    notified: bool,
    prev: usize,
    next: usize,
}

/// A FIFO of waiters. Not thread-safe by itself: it lives under its owner's lock.
pub(crate) struct WaitQueue {
    entries: Slab<Entry>,
    head: usize,
    tail: usize,
    /// Entries in the FIFO (registered and not notified).
    queued: usize,
}

impl Default for WaitQueue {
    fn default() -> WaitQueue {
        WaitQueue {
            entries: Slab::new(),
            head: NIL,
            tail: NIL,
            queued: 0,
        }
    }
}

impl WaitQueue {
    /// Registered waiters, notified or not (they leave when they drop or use their turn).
    pub(crate) fn registered(&self) -> usize {
        self.entries.len()
    }

    /// Registered waiters not notified yet.
    pub(crate) fn waiting(&self) -> usize {
        self.queued
    }

    fn link_back(&mut self, key: usize) {
        let tail = self.tail;
        {
            let e = &mut self.entries[key];
            e.prev = tail;
            e.next = NIL;
        }
        match tail {
            NIL => self.head = key,
            t => self.entries[t].next = key,
        }
        self.tail = key;
        self.queued += 1;
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let e = &self.entries[key];
            (e.prev, e.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.entries[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n].prev = prev,
        }
        self.queued -= 1;
    }

    /// Marks `key` notified, unlinks it and takes its waker.
    fn notify_key(&mut self, key: usize) -> Option<Waker> {
        self.unlink(key);
        let e = &mut self.entries[key];
        e.notified = true;
        e.waker.take()
    }

    /// Notifies the oldest waiter; wake the returned waker after releasing the lock.
    #[inline]
    pub(crate) fn notify_one(&mut self) -> Option<Waker> {
        match self.head {
            NIL => None,
            key => self.notify_key(key),
        }
    }

    /// Notifies the oldest waiter whose tag is `tag`; wake the returned waker after releasing
    /// the lock.
    pub(crate) fn notify_tag(&mut self, tag: usize) -> Option<Waker> {
        let mut key = self.head;
        while key != NIL {
            let e = &self.entries[key];
            if e.tag == tag {
                return self.notify_key(key);
            }
            key = e.next;
        }
        None
    }

    /// Notifies up to `n` of the oldest waiters whose tag is `tag` (every tag if `None`).
    pub(crate) fn notify_tagged(&mut self, tag: Option<usize>, n: usize) -> Wakeups {
        let mut out = Wakeups::default();
        let mut key = self.head;
        while key != NIL && out.count < n {
            let e = &self.entries[key];
            let next = e.next;
            if tag.is_none_or(|t| t == e.tag) {
                out.push(self.notify_key(key));
            }
            key = next;
        }
        out
    }

    /// Notifies every waiter registered now.
    pub(crate) fn notify_all(&mut self) -> Wakeups {
        self.notify_tagged(None, usize::MAX)
    }
}

/// Wakers taken from a [`WaitQueue`] under its owner's lock by a notification of several
/// waiters, to be woken after releasing it. Holds one inline, so notifying a single waiter this
/// way allocates nothing (the one-waiter paths return an `Option<Waker>`).
#[derive(Default)]
#[must_use = "wake the notified waiters"]
pub(crate) struct Wakeups {
    first: Option<Waker>,
    rest: Vec<Waker>,
    /// Waiters notified (a notified entry may have had no waker to take).
    count: usize,
}

impl Wakeups {
    fn push(&mut self, waker: Option<Waker>) {
        self.count += 1;
        let Some(w) = waker else { return };
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }

    /// Wakes them all; returns how many waiters were notified. A waker that panics (a user's,
    /// from an `Event` poll) does not keep the others from being woken; its panic resumes after.
    pub(crate) fn wake(self) -> usize {
        crate::contain::wake_all(self.first.into_iter().chain(self.rest));
        self.count
    }
}

/// One waiter's place in a [`WaitQueue`]: a key while registered, and the tag it waits under.
/// Every method takes the queue, i.e. runs under the owner's lock. Leaving is explicit (there is
/// no lock to take in a destructor): [`used`](WaitSlot::used) keeps a notification,
/// [`leave`](WaitSlot::leave) passes an unused one on.
#[derive(Debug, Default)]
pub(crate) struct WaitSlot {
    key: Option<usize>,
    tag: usize,
}

impl WaitSlot {
    /// A slot waiting under `tag` (0 for queues that do not use tags).
    pub(crate) fn tagged(tag: usize) -> WaitSlot {
        WaitSlot { key: None, tag }
    }

    /// Whether the slot has an entry in its queue (notified or not).
    #[inline]
    pub(crate) fn is_registered(&self) -> bool {
        self.key.is_some()
    }

    /// Registers (or refreshes) the waker. After a notification the waiter goes to the back of
    /// the FIFO again. Call *before* re-checking the condition (under the same lock, or before
    /// the re-check of a lock-free condition).
    pub(crate) fn register(&mut self, q: &mut WaitQueue, waker: &Waker) {
        match self.key {
            Some(key) => {
                let e = &mut q.entries[key];
                match &e.waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => e.waker = Some(waker.clone()),
                }
                if e.notified {
                    e.notified = false;
                    q.link_back(key);
                }
            }
            None => {
                let key = q.entries.insert(Entry {
                    waker: Some(waker.clone()),
                    tag: self.tag,
                    notified: false,
                    prev: NIL,
                    next: NIL,
                });
                q.link_back(key);
                self.key = Some(key);
            }
        }
    }

    /// Whether a notification arrived since the last registration.
    pub(crate) fn is_notified(&self, q: &WaitQueue) -> bool {
        self.key.is_some_and(|k| q.entries[k].notified)
    }

    /// Removes the entry; returns whether it held a notification.
    fn remove(&mut self, q: &mut WaitQueue) -> bool {
        let Some(key) = self.key.take() else {
            return false;
        };
        if !q.entries[key].notified {
            q.unlink(key);
        }
        q.entries.remove(key).notified
    }

    /// Leaves the queue, keeping any notification (the caller used its turn).
    #[inline]
    pub(crate) fn used(&mut self, q: &mut WaitQueue) {
        if self.key.is_some() {
            self.remove(q);
        }
    }

    /// Leaves the queue; an unused notification goes to the next waiter of the same tag, whose
    /// waker is returned to be woken after releasing the lock.
    pub(crate) fn leave(&mut self, q: &mut WaitQueue) -> Option<Waker> {
        if self.remove(q) {
            q.notify_tag(self.tag)
        } else {
            None
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_waker::{counter, wakes};

    #[test]
    fn fifo_survives_leaving_from_the_middle_and_re_registration() {
        let mut q = WaitQueue::default();
        let (a, wa) = counter();
        let (b, wb) = counter();
        let (c, wc) = counter();
        let (mut x, mut y, mut z) = (
            WaitSlot::default(),
            WaitSlot::default(),
            WaitSlot::default(),
        );
        x.register(&mut q, &wa);
        y.register(&mut q, &wb);
        z.register(&mut q, &wc);
        assert!(
            y.leave(&mut q).is_none(),
            "an unnotified leaver passes nothing on"
        );
        assert_eq!(q.notify_one().map(Waker::wake), Some(()));
        assert_eq!((wakes(&a), wakes(&c)), (1, 0));
        x.register(&mut q, &wa); // back of the FIFO, behind z
        q.notify_one().unwrap().wake();
        assert_eq!((wakes(&a), wakes(&c)), (1, 1));
        q.notify_one().unwrap().wake();
        assert_eq!(wakes(&a), 2);
        assert!(q.notify_one().is_none());
        assert_eq!((q.registered(), q.waiting()), (2, 0));
        x.used(&mut q);
        assert!(z.leave(&mut q).is_none(), "nobody left to pass the turn to");
        assert_eq!((q.registered(), wakes(&b)), (0, 0));
    }

    #[test]
    fn an_unused_turn_goes_to_the_next_waiter_of_the_same_tag() {
        let mut q = WaitQueue::default();
        let (_, wa) = counter();
        let (b, wb) = counter();
        let (c, wc) = counter();
        let mut x = WaitSlot::tagged(7);
        let mut y = WaitSlot::tagged(8);
        let mut z = WaitSlot::tagged(7);
        x.register(&mut q, &wa);
        y.register(&mut q, &wb);
        z.register(&mut q, &wc);
        assert_eq!(q.notify_tagged(Some(7), 1).wake(), 1);
        assert!(x.is_notified(&q));
        x.leave(&mut q).expect("passed on to z").wake();
        assert_eq!((wakes(&b), wakes(&c)), (0, 1));
        assert_eq!(q.notify_all().wake(), 1);
        assert_eq!(wakes(&b), 1);
        y.used(&mut q);
        z.used(&mut q);
        assert_eq!(q.registered(), 0);
    }
}

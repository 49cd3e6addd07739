//! The hand-off queue under [`Semaphore`](super::Semaphore) and [`Notify`](super::Notify).
//!
//! A [`WaitList`](crate::wait::WaitList) notification is a *turn*: the woken task re-checks the
//! shared state and takes what it finds. That is enough for conditions (an event set, a count at
//! zero), but not for fairness: between the wake-up and the re-check, a newly arriving task could
//! take the permits the woken one was promised. A fair primitive must instead *hand the grant
//! over*: decide who gets what, under the primitive's own lock, in the same critical section as
//! the state change, and only then wake the winner. This queue is that bookkeeping: each node
//! records what its waiter needs and whether (and how) it was granted. It lives inside the
//! owning primitive's mutex, so a grant and the state change it reflects are one atomic step.
//!
//! Like `WaitList` it wakes through plain `std::task::Waker`s, so it works on every model, and
//! wakers are returned to the caller to be woken *after* the lock is released.

use std::collections::VecDeque;
use std::task::Waker;

use slab::Slab;

/// How a node was granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Handed to this waiter alone (permits, a `notify_one`): if the waiter leaves without
    /// using it, its owner must pass it on.
    Handed,
    /// Part of a broadcast (`notify_waiters`): nothing to pass on.
    Broadcast,
}

struct Node {
    need: usize,
    granted: Option<Grant>,
    waker: Waker,
}

/// Waiting nodes in arrival order. Not thread-safe by itself: it lives in its owner's mutex.
pub(crate) struct HandOffQueue {
    nodes: Slab<Node>,
    /// Keys of nodes not granted yet, oldest first. Granted nodes are popped from here.
    order: VecDeque<usize>,
}

impl HandOffQueue {
    pub(crate) const fn new() -> HandOffQueue {
        HandOffQueue {
            nodes: Slab::new(),
            order: VecDeque::new(),
        }
    }

    /// Appends a waiter that needs `need` units; returns its key.
    pub(crate) fn push(&mut self, need: usize, waker: &Waker) -> usize {
        let key = self.nodes.insert(Node {
            need,
            granted: None,
            waker: waker.clone(),
        });
        self.order.push_back(key);
        key
    }

    /// Replaces the waker of a waiting node if it would wake someone else.
    pub(crate) fn update_waker(&mut self, key: usize, waker: &Waker) {
        let node = &mut self.nodes[key];
        if !node.waker.will_wake(waker) {
            node.waker = waker.clone();
        }
    }

    /// How node `key` was granted, if it was.
    pub(crate) fn granted(&self, key: usize) -> Option<Grant> {
        self.nodes[key].granted
    }

    /// Removes node `key` (granted or not) and returns `(need, grant)`.
    pub(crate) fn remove(&mut self, key: usize) -> (usize, Option<Grant>) {
        let node = self.nodes.remove(key);
        if node.granted.is_none() {
            if let Some(pos) = self.order.iter().position(|&k| k == key) {
                self.order.remove(pos);
            }
        }
        (node.need, node.granted)
    }

    /// What the oldest waiting (not granted) node needs.
    pub(crate) fn front_need(&self) -> Option<usize> {
        self.order.front().map(|&k| self.nodes[k].need)
    }

    /// Whether no node is waiting for a grant.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of nodes waiting for a grant.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Grants the oldest waiting node; returns the waker to wake once the lock is released.
    pub(crate) fn grant_front(&mut self, grant: Grant) -> Option<Waker> {
        let key = self.order.pop_front()?;
        let node = &mut self.nodes[key];
        node.granted = Some(grant);
        Some(node.waker.clone())
    }

    /// Grants every waiting node.
    pub(crate) fn grant_all(&mut self, grant: Grant) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.order.len());
        while let Some(w) = self.grant_front(grant) {
            wakers.push(w);
        }
        wakers
    }

    /// Wakers of every waiting node, leaving them waiting (they re-check, e.g. for `closed`).
    pub(crate) fn wakers(&self) -> Vec<Waker> {
        self.order
            .iter()
            .map(|&k| self.nodes[k].waker.clone())
            .collect()
    }
}

/// Wakes every waker of `wakers` (call with no lock held), all of them even if one panics (see
/// [`crate::contain::wake_all`]).
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    crate::contain::wake_all(wakers);
}

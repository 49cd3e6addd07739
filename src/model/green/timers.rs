//! Per-worker timers: a binary heap of deadlines over a slab of wakers.
//!
//! Inserting and canceling are O(log n) and O(1); canceled entries stay in the heap until they
//! surface and are skipped (their slab slot's generation no longer matches). The worker asks for
//! the earliest deadline to bound its reactor wait and fires everything due after each wait.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;
use std::time::Instant;

use slab::Slab;

/// Identifies one armed timer, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    key: usize,
    generation: u64,
}

#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    armed: Slab<(u64, Waker)>,
    generation: u64,
}

impl Timers {
    pub(super) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerId {
        self.generation += 1;
        let generation = self.generation;
        let key = self.armed.insert((generation, waker));
        self.heap.push(Reverse((deadline, key, generation)));
        TimerId { key, generation }
    }

    pub(super) fn cancel(&mut self, id: TimerId) {
        if self
            .armed
            .get(id.key)
            .is_some_and(|(g, _)| *g == id.generation)
        {
            self.armed.remove(id.key);
        }
    }

    fn is_live(&self, key: usize, generation: u64) -> bool {
        self.armed.get(key).is_some_and(|(g, _)| *g == generation)
    }

    /// The earliest armed deadline.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, key, generation))) = self.heap.peek().copied() {
            if self.is_live(key, generation) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes every timer due at `now` and appends its waker to `due`.
    pub(super) fn expire(&mut self, now: Instant, due: &mut Vec<Waker>) {
        while let Some(Reverse((deadline, key, generation))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if self.is_live(key, generation) {
                due.push(self.armed.remove(key).1);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn fires_in_deadline_order_and_skips_canceled() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.insert(now + Duration::from_millis(30), waker.clone());
        t.insert(now + Duration::from_millis(10), waker.clone());
        t.insert(now + Duration::from_millis(20), waker.clone());
        t.cancel(a);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(10)));
        let mut due = Vec::new();
        t.expire(now + Duration::from_millis(25), &mut due);
        assert_eq!(due.len(), 2);
        assert!(
            t.next_deadline().is_none(),
            "the canceled timer never fires"
        );
        assert!(t.is_empty());
    }
}

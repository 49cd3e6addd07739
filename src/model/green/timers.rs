//! Per-worker timers: a FIFO for deadlines that arrive in order, a binary heap for the rest, and
//! a slab of wakers.
//!
//! Most timers a worker arms come in deadline order: every sleep or timeout of one duration
//! armed after another of the same duration ends later. Such a timer is appended to `sorted`, a
//! FIFO whose front is its earliest deadline: arming and firing are O(1) and touch one cache line
//! at each end. A timer that would break the order (shorter than the last one queued) goes to
//! `heap` instead (O(log n)). The earliest deadline is the smaller of the two fronts.
//!
//! Canceling is O(1): the slab slot is freed and the queued entry, whose generation no longer
//! matches, is skipped when it surfaces. A timer that fired needs no cancel: firing frees its
//! slot, so the cancel that follows is a slot lookup that finds another generation (or nothing).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::task::Waker;
use std::time::Instant;

use slab::Slab;

/// Identifies one armed timer, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    key: usize,
    generation: u64,
}

/// A queued timer: its deadline, then its slab slot and generation (ordered by deadline first).
type Entry = (Instant, usize, u64);

#[derive(Default)]
pub(super) struct Timers {
    /// Entries in non-decreasing deadline order.
    sorted: VecDeque<Entry>,
    /// Entries that arrived out of order.
    heap: BinaryHeap<Reverse<Entry>>,
    armed: Slab<(u64, Waker)>,
    generation: u64,
}

impl Timers {
    pub(super) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerId {
        self.generation += 1;
        let generation = self.generation;
        let key = self.armed.insert((generation, waker));
        let entry = (deadline, key, generation);
        match self.sorted.back() {
            Some(last) if last.0 > deadline => self.heap.push(Reverse(entry)),
            _ => self.sorted.push_back(entry),
        }
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

    /// The earliest live entry, dropping canceled ones from both fronts. `true`: it is the
    /// front of `sorted`; `false`: the top of `heap`.
    fn front(&mut self) -> Option<(Entry, bool)> {
        while let Some(&(_, key, generation)) = self.sorted.front() {
            if self.is_live(key, generation) {
                break;
            }
            self.sorted.pop_front();
        }
        while let Some(&Reverse((_, key, generation))) = self.heap.peek() {
            if self.is_live(key, generation) {
                break;
            }
            self.heap.pop();
        }
        self.earliest()
    }

    /// The earlier of the two fronts, live or not. `true`: it is the front of `sorted`;
    /// `false`: the top of `heap`.
    fn earliest(&self) -> Option<(Entry, bool)> {
        match (self.sorted.front(), self.heap.peek()) {
            (Some(&s), Some(&Reverse(h))) if h.0 < s.0 => Some((h, false)),
            (Some(&s), _) => Some((s, true)),
            (None, Some(&Reverse(h))) => Some((h, false)),
            (None, None) => None,
        }
    }

    /// The earliest armed deadline.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        self.front().map(|(entry, _)| entry.0)
    }

    /// Removes every timer due at `now` and appends its waker to `due`.
    pub(super) fn expire(&mut self, now: Instant, due: &mut Vec<Waker>) {
        // Live or not: a canceled entry is dropped here too.
        while let Some((entry, in_sorted)) = self.earliest() {
            let (deadline, key, generation) = entry;
            if deadline > now {
                break;
            }
            if in_sorted {
                self.sorted.pop_front();
            } else {
                self.heap.pop();
            }
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

    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    use crate::test_waker::counter;

    #[test]
    fn fires_in_deadline_order_and_skips_canceled() {
        let (_count, waker) = counter();
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

    #[test]
    fn in_order_and_out_of_order_deadlines_fire_together_in_order() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Push(Arc<std::sync::Mutex<Vec<u64>>>, u64);
        impl Wake for Push {
            fn wake(self: Arc<Self>) {
                self.0.lock().unwrap().push(self.1);
            }
        }
        let mut t = Timers::default();
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut ids = Vec::new();
        // 10, 20, 30 arrive in order; 5, 15, 25 break it; 40 continues it.
        for d in [10, 20, 30, 5, 15, 25, 40] {
            ids.push(t.insert(now + ms(d), Waker::from(Arc::new(Push(order.clone(), d)))));
        }
        t.cancel(ids[1]); // 20, in the FIFO
        t.cancel(ids[4]); // 15, in the heap
        assert_eq!(t.next_deadline(), Some(now + ms(5)));
        let mut due = Vec::new();
        t.expire(now + ms(30), &mut due);
        due.drain(..).for_each(Waker::wake);
        assert_eq!(*order.lock().unwrap(), [5, 10, 25, 30]);
        t.cancel(ids[0]); // already fired: a no-op
        assert_eq!(t.next_deadline(), Some(now + ms(40)));
        t.expire(now + ms(40), &mut due);
        assert_eq!(due.len(), 1);
        assert!(t.is_empty() && t.next_deadline().is_none());
    }
}

//! The ring of a broadcast channel: the last `cap` values sent, each with the number of
//! receivers that have yet to take it.
//!
//! Positions count sends from 0; the value sent at position `p` lives in slot `p % cap` until
//! the send at `p + cap` overwrites it. A receiver is its next position: behind `tail - cap` it
//! has *lagged* (the values it missed are gone) and skips ahead to the oldest value kept.
//!
//! Values are stored as `Arc<T>`. A receiver takes a reference under the channel's lock and
//! clones the value after releasing it (`T::clone` is user code: it may block or panic); the
//! last receiver to take a value takes the slot's reference itself (`rem` reaches 0), so that
//! the value is dropped as soon as everyone has it, and is moved out instead of cloned when no
//! other receiver still holds it. Overwritten and abandoned values are handed back to the
//! caller, to be dropped with the lock released.

use std::sync::Arc;

use crate::wait::WaitQueue;

struct Slot<T> {
    /// The position of the value held (meaningful only while `value` is `Some`).
    pos: u64,
    /// Receivers that were subscribed when it was sent and have not taken it yet.
    rem: usize,
    value: Option<Arc<T>>,
}

/// What a receiver at some position finds.
pub(super) enum Take<T> {
    /// The value at its position; it moves on by one.
    Value(Arc<T>),
    /// It fell behind by this many values, which are gone; it moved on to the oldest kept.
    Lagged(u64),
    /// Nothing newer has been sent.
    Empty,
}

/// A broadcast channel's state, behind its lock.
pub(super) struct Ring<T> {
    slots: Box<[Slot<T>]>,
    /// The position of the next send.
    pub(super) tail: u64,
    pub(super) senders: usize,
    pub(super) receivers: usize,
    /// Receivers waiting for a send (or for the close).
    pub(super) waiting: WaitQueue,
}

impl<T> Ring<T> {
    pub(super) fn new(cap: usize) -> Ring<T> {
        Ring {
            slots: (0..cap)
                .map(|_| Slot {
                    pos: 0,
                    rem: 0,
                    value: None,
                })
                .collect(),
            tail: 0,
            senders: 1,
            receivers: 1,
            waiting: WaitQueue::default(),
        }
    }

    fn cap(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The position of the oldest value kept.
    fn oldest(&self) -> u64 {
        self.tail.saturating_sub(self.cap())
    }

    fn slot(&mut self, pos: u64) -> &mut Slot<T> {
        let i = (pos % self.cap()) as usize;
        &mut self.slots[i]
    }

    /// Whether every sender is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.senders == 0
    }

    /// Stores `value` at the tail for every current receiver; returns the value it overwrote,
    /// to be dropped once the lock is released.
    pub(super) fn push(&mut self, value: Arc<T>) -> Option<Arc<T>> {
        let (pos, rem) = (self.tail, self.receivers);
        let slot = self.slot(pos);
        let old = slot.value.replace(value);
        slot.pos = pos;
        slot.rem = rem;
        self.tail += 1;
        old
    }

    /// What the receiver at `*next` finds; moves it on.
    pub(super) fn take(&mut self, next: &mut u64) -> Take<T> {
        if *next >= self.tail {
            return Take::Empty;
        }
        let oldest = self.oldest();
        if *next < oldest {
            let missed = oldest - *next;
            *next = oldest;
            return Take::Lagged(missed);
        }
        let pos = *next;
        *next += 1;
        let slot = self.slot(pos);
        debug_assert_eq!(slot.pos, pos);
        slot.rem -= 1;
        let value = if slot.rem == 0 {
            slot.value.take()
        } else {
            slot.value.clone()
        };
        Take::Value(value.expect("a value is kept until its last receiver takes it"))
    }

    /// Values waiting for the receiver at `next`.
    pub(super) fn pending(&self, next: u64) -> u64 {
        self.tail - next.max(self.oldest())
    }

    /// A receiver at `next` leaves: it will not take the values kept from there on. Returns
    /// those whose last receiver it was, to be dropped once the lock is released.
    pub(super) fn leave(&mut self, next: u64) -> Vec<Arc<T>> {
        self.receivers -= 1;
        let mut done = Vec::new();
        for pos in next.max(self.oldest())..self.tail {
            let slot = self.slot(pos);
            slot.rem -= 1;
            if slot.rem == 0 {
                done.extend(slot.value.take());
            }
        }
        done
    }

    /// A new receiver: it starts at the tail (it sees what is sent from now on).
    pub(super) fn join(&mut self) -> u64 {
        self.receivers += 1;
        self.tail
    }
}

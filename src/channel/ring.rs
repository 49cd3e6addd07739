//! The lock-free fast path of a bounded buffered channel (`bounded(n)`, `n > 0`).
//!
//! The messages live in a lock-free array queue (`crossbeam-queue`'s `ArrayQueue`); the waiters
//! stay in the channel's locked [`State`](super::core) wait queues, and the lock is taken only
//! when somebody waits (to register, or to notify). What lets an operation skip the lock is a
//! pair of counters that mirror the wait queues, written under the lock and read without it:
//!
//! - `tx` (one word): the `CLOSED` bit, the number of sends *in flight* (between their check of
//!   `CLOSED` and the end of their push) and the number of receivers waiting. A send adds
//!   `SENDING`, pushes, subtracts `SENDING`; the value that subtraction returns says whether a
//!   receiver waits. A receiver registers by adding `WAITER` (under the lock), then tries to pop
//!   again. Both are read-modify-writes of the one word, so one of them comes first in its
//!   modification order: either the send sees the waiter (and notifies it), or the receiver's
//!   add reads the send's subtraction (release/acquire) and its pop sees the message.
//! - `send_waiting`: senders waiting for space. A receive pops, issues a `SeqCst` fence and
//!   loads it; a sender registers (stores it under the lock), fences, and pushes again: one of
//!   the two fences comes first, so either the receive sees the waiter or the retry sees the space.
//!
//! The in-flight count is what keeps close exact: a receive reports `Closed` only after it saw
//! `CLOSED` with no send in flight (every send that got past `CLOSED` has then pushed, and its
//! push is visible), and the last send in flight after a close wakes the receivers that wait
//! for it. See docs/ARCHITECTURE.md, "Channels: the lock-free bounded buffer".

use crate::loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// `tx`: the channel is closed.
pub(crate) const CLOSED: u64 = 1;
/// `tx`: one send in flight.
pub(crate) const SENDING: u64 = 2;
/// `tx`: the bits of the in-flight count.
pub(crate) const SENDING_MASK: u64 = (1 << 32) - SENDING;
/// `tx`: one receiver waiting (registered in `recv_q`, not yet notified).
pub(crate) const WAITER: u64 = 1 << 32;

/// The buffer: a lock-free bounded MPMC queue.
#[cfg(not(loom))]
pub(crate) type Buf<T> = crossbeam_queue::ArrayQueue<T>;
#[cfg(loom)]
pub(crate) type Buf<T> = loom_buf::Buf<T>;

/// The buffer and the counters of the lock-free path.
pub(crate) struct Ring<T> {
    pub(crate) buf: Buf<T>,
    /// `CLOSED` | in-flight sends × `SENDING` | waiting receivers × `WAITER`.
    pub(crate) tx: AtomicU64,
    /// Senders waiting for space (registered in `send_q`, not yet notified).
    pub(crate) send_waiting: AtomicUsize,
}

/// What a push attempt did.
pub(crate) enum Pushed<T> {
    /// The message is in the buffer.
    Ok,
    /// No space: the value is given back.
    Full(T),
    /// The channel is closed: the value is given back.
    Closed(T),
}

impl<T> Ring<T> {
    pub(crate) fn new(cap: usize) -> Ring<T> {
        Ring {
            buf: Buf::new(cap),
            tx: AtomicU64::new(0),
            send_waiting: AtomicUsize::new(0),
        }
    }

    /// Pushes `v` unless the channel is closed or full. Returns the outcome and the `tx` word as
    /// it was just before this send left it (so the caller sees waiting receivers, and whether
    /// it was the last send in flight after a close).
    #[inline]
    pub(crate) fn push(&self, v: T) -> (Pushed<T>, u64) {
        // Acquire: the push below stays after this check of `CLOSED`.
        let before = self.tx.fetch_add(SENDING, Ordering::Acquire);
        let pushed = if before & CLOSED != 0 {
            Pushed::Closed(v)
        } else {
            match self.buf.push(v) {
                Ok(()) => Pushed::Ok,
                Err(v) => Pushed::Full(v),
            }
        };
        // Release: a receiver that reads this (or a later) value of `tx` sees the push.
        // Acquire: the waiter count read here is current for the notification that follows.
        let after = self.tx.fetch_sub(SENDING, Ordering::AcqRel);
        (pushed, after)
    }

    /// Whether a receive that found the buffer empty may report `Closed`: closed, and no send
    /// in flight (so every accepted message is visible to a pop after this).
    #[inline]
    pub(crate) fn drained_closed(&self) -> bool {
        let s = self.tx.load(Ordering::Acquire);
        s & CLOSED != 0 && s & SENDING_MASK == 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.load(Ordering::Acquire) & CLOSED != 0
    }
}

/// Under loom: a loom-visible stand-in for `ArrayQueue` with the same API, so that loom explores
/// the interleavings of the channel's own protocol around the buffer.
#[cfg(loom)]
mod loom_buf {
    use std::collections::VecDeque;

    use crate::loom::sync::Mutex;

    pub(crate) struct Buf<T> {
        q: Mutex<VecDeque<T>>,
        cap: usize,
    }

    impl<T> Buf<T> {
        pub(crate) fn new(cap: usize) -> Buf<T> {
            Buf {
                q: Mutex::new(VecDeque::new()),
                cap,
            }
        }

        pub(crate) fn push(&self, v: T) -> Result<(), T> {
            let mut q = self.q.lock().unwrap();
            if q.len() < self.cap {
                q.push_back(v);
                Ok(())
            } else {
                Err(v)
            }
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.q.lock().unwrap().pop_front()
        }

        pub(crate) fn len(&self) -> usize {
            self.q.lock().unwrap().len()
        }
    }
}

//! The lifecycle of in-flight ring operations: who owns an op's memory, and when it is freed.
//!
//! Every submission that expects a completion gets a slot in [`InFlight`], a slab keyed by the
//! SQE's `user_data`. The `user_data` packs the slot index with the slot's generation, so a
//! completion that arrives late (after its slot was freed and reused) is recognised as stale and
//! dropped instead of waking the slot's new owner.
//!
//! ```text
//!                 submit                         CQE
//!   (free) ─────────────────▶ Submitted ───────────────────────▶ Completed ──take──▶ (free)
//!                              │    ▲                          ▲
//!              cancel/deadline │    │ waker re-registered      │ CQE (the op's own result,
//!                              ▼    │                          │  maybe success, maybe -ECANCELED)
//!                       CancelRequested ───────────────────────┘
//!
//!   (free) ──arm poll──▶ Submitted ──deregister──▶ Abandoned ──CQE──▶ (free)
//!
//!   (free) ──submit owned──▶ Owned ──CQE: OwnedOp::complete──▶ (free)
//!
//!   zero-copy send (two CQEs):
//!   Submitted ──CQE with F_MORE (the result)──▶ Notifying ──CQE with F_NOTIF──▶ Completed
//! ```
//!
//! **A buffer is the kernel's until its CQE arrives.** Asking to cancel (`ASYNC_CANCEL`) does not
//! end an op: the kernel may already be copying into the buffer, and it may even complete the op
//! successfully. So:
//!
//! - A fiber that submitted an op with a borrowed buffer (on its stack) parks until the op's slot
//!   is `Completed`, even when it is canceled or its deadline passes: it then requests the cancel
//!   and keeps waiting. Its stack frame, hence the buffer, outlives the op.
//! - A poll (readiness) registration carries no memory, so its owner may walk away: the slot
//!   becomes `Abandoned` and is freed when the kernel's completion for it (or for its cancel)
//!   arrives. The slot itself stays allocated until then, so the `user_data` is never reused
//!   while the kernel may still post it.
//! - A future's op ([`Owned`](State::Owned)) cannot borrow: a future may be dropped, or polled
//!   on another worker, while its op is in the kernel. Its memory (buffer, descriptor) lives in
//!   a shared [`OwnedOp`] that the slot holds a reference to until the CQE; the worker hands the
//!   result to it there ([`OwnedOp::complete`]) and drops the slot's reference. Whoever awaits
//!   the op reads the result from the `OwnedOp`, on whatever thread, and never touches this
//!   slab; a dropped future only drops its own reference, so the memory is freed by whichever
//!   of the two lets go last.
//! - A zero-copy send (`IORING_OP_SEND_ZC`) completes twice: a first CQE carries its result
//!   with `IORING_CQE_F_MORE` set, and the kernel may go on reading the buffer until a second
//!   CQE (same `user_data`, `IORING_CQE_F_NOTIF`) says it has let go of it (the data was
//!   acknowledged, or copied). The slot keeps the first result in [`State::Notifying`] and
//!   becomes `Completed` only at the notification, so the fiber that waits for it (and the
//!   buffer on its stack) outlives the kernel's use. A cancel asked for in between cancels
//!   nothing: the send is over, only the notification is awaited.
//! - Cancel requests and the worker's wake-up poll use reserved `user_data` values outside the
//!   slab (see [`CANCEL_TOKEN`], [`WAKE_TOKEN`], [`TIMEOUT_TOKEN`]).
//!
//! The slab lives in a `RefCell` owned by one worker: only that worker's thread submits, reaps
//! and reads it, so no atomics are needed here; cross-thread wake-ups go through `Waker`s.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use slab::Slab;

/// The shared half of an op whose memory the op owns (a future's file read or write): see the
/// module docs. Implementors keep every buffer and descriptor named by the op's SQE alive for as
/// long as they live.
pub(crate) trait OwnedOp: Send + Sync {
    /// Records the CQE's `res`; returns the waker to wake (the worker wakes it, contained, after
    /// releasing its own borrows). Called once, on the worker that owns the ring.
    fn complete(&self, res: i32) -> Option<Waker>;

    /// Called once the op is queued, with the handle that cancels it (for an op that may wait
    /// for ever, a socket's receive: its future cancels it when dropped). Ignored by default.
    fn submitted(&self, cancel: RingCancel) {
        let _ = cancel;
    }
}

/// Cancel requests for a ring's owned ops, from any thread: the worker submits an
/// `ASYNC_CANCEL` for each at its next turn (see `Uring::poll`). Holds its own duplicate of the
/// worker's eventfd, so that a request made after the worker has gone writes to no reused
/// descriptor.
pub(crate) struct Mailbox {
    user_data: Mutex<Vec<u64>>,
    wake: OwnedFd,
    owner: std::thread::ThreadId,
}

impl Mailbox {
    pub(crate) fn new(wake: OwnedFd) -> Mailbox {
        Mailbox {
            user_data: Mutex::new(Vec::new()),
            wake,
            owner: std::thread::current().id(),
        }
    }

    /// The requests made since the last call.
    pub(crate) fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.user_data.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Cancels one owned op of a ring (see [`OwnedOp::submitted`]). The op still owns its memory
/// until its CQE, which may report success.
pub(crate) struct RingCancel {
    mailbox: Arc<Mailbox>,
    user_data: u64,
}

impl RingCancel {
    pub(crate) fn new(mailbox: Arc<Mailbox>, key: OpKey) -> RingCancel {
        RingCancel {
            mailbox,
            user_data: key.user_data(),
        }
    }

    /// Asks the ring's worker to cancel the op; wakes it when called from another thread (its
    /// own thread turns its ring again before it sleeps).
    pub(crate) fn cancel(&self) {
        self.mailbox
            .user_data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.user_data);
        if std::thread::current().id() != self.mailbox.owner {
            let _ = rustix::io::write(&self.mailbox.wake, &1u64.to_ne_bytes());
        }
    }
}

/// What a completion asks the worker to do.
pub(crate) enum Woken {
    /// Wake the fiber (or task) that waits for this op.
    Waker(Waker),
    /// Hand `res` to an owned op, then drop the slot's reference to it.
    Owned(Arc<dyn OwnedOp>, i32),
}

/// `user_data` of `ASYNC_CANCEL` (and `TIMEOUT_REMOVE`) submissions: their completions carry no
/// news for anyone.
pub(crate) const CANCEL_TOKEN: u64 = u64::MAX;
/// `user_data` of the poll on the worker's eventfd.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX - 1;
/// `user_data` of the standalone wait timeout (kernels without `IORING_FEAT_EXT_ARG`).
pub(crate) const TIMEOUT_TOKEN: u64 = u64::MAX - 2;
/// `user_data` of the poll on the watched descriptor (the async driver's epoll; see
/// `Reactor::watch`).
pub(crate) const WATCH_TOKEN: u64 = u64::MAX - 3;

/// Identifies one in-flight op: its slot and the slot's generation at submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpKey {
    index: u32,
    generation: u32,
}

impl OpKey {
    /// The `user_data` of the op's SQE.
    pub(crate) fn user_data(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub(crate) fn from_user_data(data: u64) -> OpKey {
        OpKey {
            index: data as u32,
            generation: (data >> 32) as u32,
        }
    }
}

/// What a slot holds. See the module docs for the transitions.
enum State {
    /// In the kernel; `waker` is woken by the CQE.
    Submitted { waker: Waker },
    /// The owner asked the kernel to cancel; the op is still the kernel's until its CQE.
    CancelRequested { waker: Waker },
    /// A zero-copy send's first CQE (`IORING_CQE_F_MORE`) has come with `result`; its memory
    /// is still the kernel's until the notification CQE (`IORING_CQE_F_NOTIF`).
    Notifying { result: i32, waker: Waker },
    /// The kernel is done: the CQE's `res`. The owner takes it and frees the slot.
    Completed { result: i32 },
    /// Nobody waits any more (a deregistered poll); freed when the CQE arrives.
    Abandoned,
    /// A future's op: its memory lives in the `OwnedOp`, kept alive here until the CQE.
    Owned(Arc<dyn OwnedOp>),
}

struct Slot {
    generation: u32,
    state: State,
}

/// The slab of in-flight ops of one ring.
#[derive(Default)]
pub(crate) struct InFlight {
    slots: Slab<Slot>,
    generation: u32,
    /// How many slots are [`State::Owned`].
    owned: usize,
}

impl InFlight {
    /// Allocates a slot for an op about to be submitted; its CQE will wake `waker`.
    pub(crate) fn insert(&mut self, waker: Waker) -> OpKey {
        // Generations skip values that would make a key collide with the reserved tokens.
        self.generation = self.generation.wrapping_add(1) & 0x7fff_ffff;
        let generation = self.generation;
        let index = self.slots.insert(Slot {
            generation,
            state: State::Submitted { waker },
        });
        OpKey {
            index: u32::try_from(index).expect("fewer than 2^32 ops in flight"),
            generation,
        }
    }

    /// Allocates a slot for an owned op about to be submitted; `op` stays referenced (and so
    /// its memory alive) until the op's CQE.
    pub(crate) fn insert_owned(&mut self, op: Arc<dyn OwnedOp>) -> OpKey {
        self.generation = self.generation.wrapping_add(1) & 0x7fff_ffff;
        let generation = self.generation;
        let index = self.slots.insert(Slot {
            generation,
            state: State::Owned(op),
        });
        self.owned += 1;
        OpKey {
            index: u32::try_from(index).expect("fewer than 2^32 ops in flight"),
            generation,
        }
    }

    /// Number of owned ops still in the kernel: a ring must not be closed before they complete
    /// (their memory would be freed while the kernel may still use it).
    pub(crate) fn owned(&self) -> usize {
        self.owned
    }

    /// The keys of the owned ops still in the kernel (to cancel them before the ring closes).
    pub(crate) fn owned_keys(&self) -> Vec<OpKey> {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Owned(_)))
            .map(|(i, s)| OpKey {
                index: i as u32,
                generation: s.generation,
            })
            .collect()
    }

    /// Whether `key` is an owned op still in the kernel (a cancel request for it is current).
    pub(crate) fn is_owned(&self, key: OpKey) -> bool {
        self.slots
            .get(key.index as usize)
            .is_some_and(|s| s.generation == key.generation && matches!(s.state, State::Owned(_)))
    }

    fn slot_mut(&mut self, key: OpKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|s| s.generation == key.generation)
    }

    /// Records the CQE for `user_data` with the CQE's `flags`: returns what to wake, if
    /// somebody still waits. A stale or unknown `user_data` is ignored.
    ///
    /// A CQE with `IORING_CQE_F_MORE` on a waited op is a zero-copy send's result with its
    /// notification still to come: kept, nobody woken ([`State::Notifying`]). The CQE with
    /// `IORING_CQE_F_NOTIF` then completes the op with that kept result.
    pub(crate) fn complete(&mut self, user_data: u64, result: i32, flags: u32) -> Option<Woken> {
        let key = OpKey::from_user_data(user_data);
        let slot = self.slot_mut(key)?;
        if io_uring::cqueue::notif(flags) {
            return match std::mem::replace(&mut slot.state, State::Abandoned) {
                State::Notifying { result, waker } => {
                    slot.state = State::Completed { result };
                    Some(Woken::Waker(waker))
                }
                other => {
                    slot.state = other;
                    None
                }
            };
        }
        if io_uring::cqueue::more(flags) {
            match std::mem::replace(&mut slot.state, State::Abandoned) {
                State::Submitted { waker } | State::CancelRequested { waker } => {
                    slot.state = State::Notifying { result, waker };
                }
                other => {
                    // Owned ops and polls are single-shot: no such CQE is expected for them.
                    debug_assert!(false, "an unexpected CQE_F_MORE");
                    slot.state = other;
                }
            }
            return None;
        }
        match std::mem::replace(&mut slot.state, State::Completed { result }) {
            State::Submitted { waker } | State::CancelRequested { waker } => {
                Some(Woken::Waker(waker))
            }
            State::Owned(op) => {
                self.slots.remove(key.index as usize);
                self.owned -= 1;
                Some(Woken::Owned(op, result))
            }
            State::Abandoned => {
                self.slots.remove(key.index as usize);
                None
            }
            // A second CQE for one op (multishot is not used): keep the first result.
            State::Completed { result } => {
                slot.state = State::Completed { result };
                None
            }
            // Only a notification ends it (handled above).
            State::Notifying { result, waker } => {
                slot.state = State::Notifying { result, waker };
                None
            }
        }
    }

    /// The op's result if its CQE has arrived (freeing the slot); else refreshes its waker.
    pub(crate) fn take(&mut self, key: OpKey, waker: &Waker) -> Option<i32> {
        let slot = self.slot_mut(key)?;
        match &mut slot.state {
            State::Completed { result } => {
                let result = *result;
                self.slots.remove(key.index as usize);
                Some(result)
            }
            State::Submitted { waker: w }
            | State::CancelRequested { waker: w }
            | State::Notifying { waker: w, .. } => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                None
            }
            State::Abandoned | State::Owned(_) => None,
        }
    }

    /// Marks the op as cancel-requested. Returns whether a cancel should be submitted (the op
    /// is still in the kernel and no cancel was requested before).
    pub(crate) fn request_cancel(&mut self, key: OpKey) -> bool {
        let Some(slot) = self.slot_mut(key) else {
            return false;
        };
        match std::mem::replace(&mut slot.state, State::Abandoned) {
            State::Submitted { waker } => {
                slot.state = State::CancelRequested { waker };
                true
            }
            other => {
                slot.state = other;
                false
            }
        }
    }

    /// The owner stops waiting for an op that carries no memory (a poll). Returns whether a
    /// cancel should be submitted: false if the CQE already arrived (the slot is freed now).
    pub(crate) fn abandon(&mut self, key: OpKey) -> bool {
        let Some(slot) = self.slot_mut(key) else {
            return false;
        };
        match std::mem::replace(&mut slot.state, State::Abandoned) {
            State::Completed { .. } => {
                self.slots.remove(key.index as usize);
                false
            }
            State::Submitted { .. } => true,
            State::CancelRequested { .. } | State::Abandoned => false,
            // Not a poll: its memory stays the kernel's until the notification.
            State::Notifying { result, waker } => {
                slot.state = State::Notifying { result, waker };
                false
            }
            // Not a poll: its memory must stay referenced until the CQE.
            State::Owned(op) => {
                slot.state = State::Owned(op);
                false
            }
        }
    }

    /// Frees the slot of an op that never reached the submission queue.
    pub(crate) fn forget(&mut self, key: OpKey) {
        if let Some(slot) = self.slot_mut(key) {
            if matches!(slot.state, State::Owned(_)) {
                self.owned -= 1;
            }
            self.slots.remove(key.index as usize);
        }
    }

    /// Number of slots the kernel may still post to.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_waker::counter;

    fn waker() -> Waker {
        counter().1
    }

    #[test]
    fn a_late_completion_never_touches_a_reused_slot() {
        let mut ops = InFlight::default();
        let a = ops.insert(waker());
        assert!(ops.abandon(a), "still in the kernel: cancel it");
        assert!(ops.complete(a.user_data(), -libc::ECANCELED, 0).is_none());
        assert_eq!(ops.len(), 0, "the abandoned slot is freed by its CQE");
        let b = ops.insert(waker());
        assert_ne!(a.user_data(), b.user_data(), "same index, new generation");
        // A duplicate, stale CQE for `a` must not complete `b`.
        assert!(ops.complete(a.user_data(), 5, 0).is_none());
        assert_eq!(ops.take(b, &waker()), None);
        assert!(ops.complete(b.user_data(), 7, 0).is_some());
        assert_eq!(ops.take(b, &waker()), Some(7));
        assert_eq!(ops.len(), 0);
    }

    #[test]
    fn a_canceled_op_keeps_its_slot_until_the_cqe() {
        let mut ops = InFlight::default();
        let a = ops.insert(waker());
        assert!(ops.request_cancel(a));
        assert!(!ops.request_cancel(a), "one cancel request is enough");
        assert_eq!(ops.take(a, &waker()), None);
        assert_eq!(ops.len(), 1);
        // The op completed successfully despite the cancel: the result is kept.
        assert!(ops.complete(a.user_data(), 3, 0).is_some());
        assert_eq!(ops.take(a, &waker()), Some(3));
        assert_eq!(ops.len(), 0);
    }

    #[test]
    fn a_zero_copy_send_completes_at_its_notification_with_its_first_result() {
        // `<linux/io_uring.h>`: the io-uring crate reads them but does not export them.
        const IORING_CQE_F_MORE: u32 = 1 << 1;
        const IORING_CQE_F_NOTIF: u32 = 1 << 3;
        let mut ops = InFlight::default();
        let (count, w) = counter();
        let a = ops.insert(w.clone());
        assert!(ops
            .complete(a.user_data(), 65536, IORING_CQE_F_MORE)
            .is_none());
        assert_eq!(
            ops.take(a, &w),
            None,
            "the kernel may still read the buffer"
        );
        assert!(
            !ops.request_cancel(a),
            "the send is over: nothing to cancel"
        );
        assert!(!ops.abandon(a), "not a poll");
        match ops.complete(a.user_data(), 0, IORING_CQE_F_NOTIF) {
            Some(Woken::Waker(w)) => w.wake(),
            _ => panic!("the notification wakes the waiting fiber"),
        }
        assert_eq!(crate::test_waker::wakes(&count), 1);
        assert_eq!(
            ops.take(a, &w),
            Some(65536),
            "the send's result, not the notification's"
        );
        assert_eq!(ops.len(), 0);
        // A failed send can be followed by a notification too.
        let b = ops.insert(waker());
        assert!(ops
            .complete(b.user_data(), -libc::EPIPE, IORING_CQE_F_MORE)
            .is_none());
        assert!(ops.complete(b.user_data(), 0, IORING_CQE_F_NOTIF).is_some());
        assert_eq!(ops.take(b, &waker()), Some(-libc::EPIPE));
    }

    struct Probe(std::sync::Mutex<Option<i32>>);

    impl OwnedOp for Probe {
        fn complete(&self, res: i32) -> Option<Waker> {
            *self.0.lock().unwrap() = Some(res);
            None
        }
    }

    #[test]
    fn an_owned_op_is_referenced_until_its_cqe_even_when_abandoned() {
        let mut ops = InFlight::default();
        let probe = Arc::new(Probe(std::sync::Mutex::new(None)));
        let a = ops.insert_owned(probe.clone());
        assert_eq!((ops.owned(), Arc::strong_count(&probe)), (1, 2));
        assert!(!ops.abandon(a), "an owned op is not a poll to abandon");
        assert!(!ops.request_cancel(a));
        assert_eq!(ops.take(a, &waker()), None);
        assert_eq!(ops.owned_keys(), vec![a]);
        assert_eq!(Arc::strong_count(&probe), 2, "still referenced by its slot");
        match ops.complete(a.user_data(), 9, 0) {
            Some(Woken::Owned(op, 9)) => assert!(op.complete(9).is_none()),
            _ => panic!("the owned op is handed its result"),
        }
        assert_eq!(*probe.0.lock().unwrap(), Some(9));
        assert_eq!(
            (ops.owned(), ops.len(), Arc::strong_count(&probe)),
            (0, 0, 1)
        );
    }

    #[test]
    fn keys_never_collide_with_reserved_tokens() {
        let mut ops = InFlight {
            generation: u32::MAX - 2,
            ..InFlight::default()
        };
        for _ in 0..4 {
            let k = ops.insert(waker());
            assert!(k.user_data() < TIMEOUT_TOKEN);
        }
    }
}

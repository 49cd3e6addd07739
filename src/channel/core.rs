//! The shared core of every channel flavour: one lock around the buffer and both wait queues.
//!
//! `Chan` is a `Mutex<State>`: the buffer, the closed flag, and two [`WaitQueue`]s — receivers
//! wait in `recv_q` for a message, senders in `send_q` for space (or, on a rendezvous channel,
//! for their offer to be taken). Every operation takes that one lock once: it changes the buffer,
//! registers itself or notifies the other side's oldest waiter, and leaves. A waiter registers
//! *under the lock* after finding its condition false, and a state change notifies under the same
//! lock, so no wake-up can be lost; the notified waker is woken *after* the lock is released
//! (the woken task may contend for it at once). Nothing is allocated per operation once the
//! wait queues have grown to the number of simultaneous waiters.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::task::{Poll, Waker};

use super::error::{RecvError, SendError, TryRecvError, TrySendError};
use crate::loom::sync::{Mutex, MutexGuard};
use crate::wait::{WaitQueue, WaitSlot};

/// Capacity value of an unbounded channel.
pub(crate) const UNBOUNDED: usize = usize::MAX;

pub(crate) struct State<T> {
    /// Buffered messages (on a rendezvous channel: offers of senders not yet taken), oldest first.
    pub(crate) queue: VecDeque<T>,
    /// Rendezvous only: the ticket of each offer in `queue`, same order. Empty otherwise.
    tickets: VecDeque<u64>,
    next_ticket: u64,
    pub(crate) closed: bool,
    /// Receivers waiting for a message.
    pub(crate) recv_q: WaitQueue,
    /// Senders waiting for space (rendezvous: for their offer to be taken, tagged by ticket).
    pub(crate) send_q: WaitQueue,
}

impl<T> State<T> {
    /// Takes the oldest message and its ticket (0 on buffered channels).
    fn pop(&mut self) -> Option<(T, u64)> {
        let v = self.queue.pop_front()?;
        Some((v, self.tickets.pop_front().unwrap_or(0)))
    }

    fn offer(&mut self, v: T) -> u64 {
        self.next_ticket += 1;
        let t = self.next_ticket;
        self.queue.push_back(v);
        self.tickets.push_back(t);
        t
    }

    /// Removes the offer with ticket `t` if it was not taken yet.
    fn withdraw(&mut self, t: u64) -> Option<T> {
        let i = self.tickets.iter().position(|&x| x == t)?;
        self.tickets.remove(i);
        self.queue.remove(i)
    }

    fn is_offered(&self, t: u64) -> bool {
        self.tickets.contains(&t)
    }
}

/// The channel proper, shared by all handles.
pub(crate) struct Chan<T> {
    state: Mutex<State<T>>,
    /// 0: rendezvous; [`UNBOUNDED`]: unbounded; else the buffer size.
    pub(crate) cap: usize,
    pub(crate) senders: AtomicUsize,
    pub(crate) receivers: AtomicUsize,
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize) -> Chan<T> {
        let initial = if cap == UNBOUNDED { 0 } else { cap.min(1024) };
        Chan {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(initial),
                tickets: VecDeque::new(),
                next_ticket: 0,
                closed: false,
                recv_q: WaitQueue::default(),
                send_q: WaitQueue::default(),
            }),
            cap,
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        }
    }

    /// Locks the state. A panic cannot leave it inconsistent (no user code runs under the lock
    /// except `T`'s destructor, which never runs under it either), so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notifies the sender side after a message with `ticket` was taken: on a rendezvous channel
    /// the sender of that offer, else the oldest sender waiting for space.
    #[inline]
    pub(crate) fn wake_sender_after_pop(&self, st: &mut State<T>, ticket: u64) -> Option<Waker> {
        if self.cap == 0 {
            st.send_q.notify_tag(ticket as usize)
        } else {
            st.send_q.notify_one()
        }
    }

    /// Closes the channel and wakes everyone. Returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        let mut st = self.lock();
        if std::mem::replace(&mut st.closed, true) {
            return false;
        }
        let receivers = st.recv_q.notify_all();
        let senders = st.send_q.notify_all();
        drop(st);
        // Both sides are woken even if a waker of the first panics (`Wakeups::wake` resumes
        // the panic only after waking the rest of its own).
        let woke_receivers = crate::contain::catch(|| receivers.wake());
        senders.wake();
        if let Err(payload) = woke_receivers {
            std::panic::resume_unwind(payload);
        }
        true
    }

    /// The last receiver left: close, and drop buffered messages (nobody can take them). Offers
    /// of blocked rendezvous senders stay: their senders take them back.
    pub(crate) fn disconnect_receivers(&self) {
        self.close();
        if self.cap != 0 {
            let dropped = std::mem::take(&mut self.lock().queue);
            drop(dropped); // outside the lock: T's destructor may do anything
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut st = self.lock();
        if st.closed {
            return Err(TrySendError::Closed(v));
        }
        if self.cap == 0 {
            // Rendezvous: only hand over to a receiver that is waiting right now.
            if st.recv_q.registered() <= st.queue.len() {
                return Err(TrySendError::Full(v));
            }
            st.offer(v);
        } else if st.queue.len() < self.cap {
            st.queue.push_back(v);
        } else {
            return Err(TrySendError::Full(v));
        }
        let wake = st.recv_q.notify_one();
        drop(st);
        if let Some(w) = wake {
            w.wake();
        }
        Ok(())
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.lock();
        match st.pop() {
            Some((v, ticket)) => {
                let wake = self.wake_sender_after_pop(&mut st, ticket);
                drop(st);
                if let Some(w) = wake {
                    w.wake();
                }
                Ok(v)
            }
            None if st.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        // Every event borrows the channel, so none can be registered any more.
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        debug_assert_eq!(st.recv_q.registered() + st.send_q.registered(), 0);
    }
}

/// A pending receive: completes with the oldest message, or `Closed` once the channel is closed
/// and drained. See [`Receiver::recv_event`](super::Receiver::recv_event).
///
/// Also a [`Future`](std::future::Future) with the same output, for async code (see
/// [`Event`](crate::Event#events-are-futures)):
///
/// ```
/// let (tx, rx) = zsync::channel::bounded(1);
/// let receiver = std::thread::spawn(move || futures::executor::block_on(rx.recv_event()));
/// tx.send("hi").unwrap();
/// assert_eq!(receiver.join().unwrap(), Ok("hi"));
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct RecvEvent<'a, T> {
    chan: &'a Chan<T>,
    slot: WaitSlot,
}

impl<'a, T> RecvEvent<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>) -> RecvEvent<'a, T> {
        RecvEvent {
            chan,
            slot: WaitSlot::default(),
        }
    }
}

impl<T> crate::Event for RecvEvent<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<Result<T, RecvError>> {
        let mut st = self.chan.lock();
        if let Some((v, ticket)) = st.pop() {
            self.slot.used(&mut st.recv_q);
            let wake = self.chan.wake_sender_after_pop(&mut st, ticket);
            drop(st);
            if let Some(w) = wake {
                w.wake();
            }
            return Poll::Ready(Ok(v));
        }
        if st.closed {
            self.slot.used(&mut st.recv_q);
            return Poll::Ready(Err(RecvError::Closed));
        }
        // Under the state lock: a sender that pushes after we unlock finds us in `recv_q`.
        self.slot.register(&mut st.recv_q, waker);
        Poll::Pending
    }
}

crate::event::event_future!([T] RecvEvent<'_, T>, [T] SendEvent<'_, T>);

// `SendEvent` only moves its value in and out by `&mut`; it never pins it, so it may move
// between polls whatever `T` is (the value is not structurally pinned).
impl<T> Unpin for SendEvent<'_, T> {}

impl<T> std::fmt::Debug for RecvEvent<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvEvent").finish_non_exhaustive()
    }
}

impl<T> Drop for RecvEvent<'_, T> {
    fn drop(&mut self) {
        if self.slot.is_registered() {
            // An unused notification goes on to the next receiver.
            let wake = self.slot.leave(&mut self.chan.lock().recv_q);
            if let Some(w) = wake {
                w.wake();
            }
        }
    }
}

/// A pending send that owns its value until it completes. See
/// [`Sender::send_event`](super::Sender::send_event).
///
/// On a buffered channel it completes once there is space; on a rendezvous channel
/// ([`bounded(0)`](super::bounded)) its first poll *offers* the value and it completes when a
/// receiver takes it. Dropping it (or [`into_value`](SendEvent::into_value)) withdraws an offer
/// not yet taken — but an offer taken meanwhile has been delivered: in a `select`, a rendezvous
/// send can thus happen alongside the winning event. Use a buffered channel where that matters.
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// let (tx, rx) = zsync::channel::bounded(0); // rendezvous: the send waits for a receiver
/// let sender = std::thread::spawn(move || futures::executor::block_on(tx.send_event(5)));
/// assert_eq!(rx.recv(), Ok(5));
/// sender.join().unwrap().unwrap();
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct SendEvent<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    slot: WaitSlot,
    /// Rendezvous: the ticket of our offer while it is in the queue; 0 otherwise.
    ticket: u64,
}

impl<'a, T> SendEvent<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>, value: T) -> SendEvent<'a, T> {
        SendEvent {
            chan,
            value: Some(value),
            slot: WaitSlot::default(),
            ticket: 0,
        }
    }

    /// The value back, if the send has not happened: `None` once it completed (or, on a
    /// rendezvous channel, once a receiver took the offer).
    pub fn into_value(mut self) -> Option<T> {
        if let Some(v) = self.value.take() {
            return Some(v); // `drop(self)` leaves the wait queue
        }
        if self.ticket != 0 {
            let t = std::mem::take(&mut self.ticket);
            let mut st = self.chan.lock();
            let wake = self.slot.leave(&mut st.send_q);
            let v = st.withdraw(t);
            drop(st);
            if let Some(w) = wake {
                w.wake();
            }
            return v;
        }
        None
    }

    fn poll_rendezvous(&mut self, waker: &Waker) -> Poll<Result<(), SendError<T>>> {
        let mut st = self.chan.lock();
        if self.ticket == 0 {
            let v = self
                .value
                .take()
                .expect("SendEvent polled after completion");
            if st.closed {
                return Poll::Ready(Err(SendError::Closed(v)));
            }
            let t = st.offer(v);
            self.ticket = t;
            // Our wake-up is personal (our offer was taken): tag it with the ticket.
            debug_assert!(!self.slot.is_registered());
            self.slot = WaitSlot::tagged(t as usize);
            self.slot.register(&mut st.send_q, waker);
            let wake = st.recv_q.notify_one();
            drop(st);
            if let Some(w) = wake {
                w.wake();
            }
            return Poll::Pending;
        }
        if !st.is_offered(self.ticket) {
            self.ticket = 0;
            self.slot.used(&mut st.send_q);
            return Poll::Ready(Ok(()));
        }
        if st.closed {
            let v = st.withdraw(self.ticket).expect("offer is queued");
            self.ticket = 0;
            self.slot.used(&mut st.send_q);
            return Poll::Ready(Err(SendError::Closed(v)));
        }
        self.slot.register(&mut st.send_q, waker);
        Poll::Pending
    }
}

impl<T> crate::Event for SendEvent<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<Result<(), SendError<T>>> {
        if self.chan.cap == 0 {
            return self.poll_rendezvous(waker);
        }
        let mut st = self.chan.lock();
        let v = self
            .value
            .take()
            .expect("SendEvent polled after completion");
        if st.closed {
            self.slot.used(&mut st.send_q);
            return Poll::Ready(Err(SendError::Closed(v)));
        }
        if st.queue.len() < self.chan.cap {
            st.queue.push_back(v);
            self.slot.used(&mut st.send_q);
            let wake = st.recv_q.notify_one();
            drop(st);
            if let Some(w) = wake {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
        self.value = Some(v);
        self.slot.register(&mut st.send_q, waker);
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for SendEvent<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendEvent")
            .field("holds_value", &self.value.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> Drop for SendEvent<'_, T> {
    fn drop(&mut self) {
        if self.slot.is_registered() || self.ticket != 0 {
            let (wake, withdrawn) = {
                let mut st = self.chan.lock();
                // An unused turn for space goes on to the next sender.
                let wake = self.slot.leave(&mut st.send_q);
                let withdrawn = match std::mem::take(&mut self.ticket) {
                    0 => None,
                    t => st.withdraw(t),
                };
                (wake, withdrawn)
            };
            if let Some(w) = wake {
                w.wake();
            }
            drop(withdrawn); // outside the lock
        }
    }
}

/// Loom models of the one-lock protocol (`RUSTFLAGS="--cfg loom" cargo test --lib loom_models`):
/// the state lock is loom's, so every interleaving of a poll with a concurrent send, receive or
/// cancel is explored. A lost wake-up leaves the waiting thread parked forever, which loom
/// reports as a deadlock.
#[cfg(all(test, loom))]
mod loom_models {
    use crate::channel::{bounded, unbounded};
    use crate::loom::model::{counting_waker, model, thread_waker};
    use crate::Event;
    use ::loom::thread;
    use std::task::Poll;

    /// Poll → (register under the lock) → park never sleeps through a send.
    #[test]
    fn a_waiting_receiver_is_woken_by_a_concurrent_send() {
        model(|| {
            let (tx, rx) = bounded::<u32>(1);
            let sender = thread::spawn(move || tx.try_send(7).unwrap());
            let waker = thread_waker();
            let mut ev = rx.recv_event();
            let got = loop {
                match ev.poll_event(&waker) {
                    Poll::Ready(v) => break v,
                    Poll::Pending => thread::park(),
                }
            };
            assert_eq!(got, Ok(7));
            drop(ev);
            sender.join().unwrap();
            assert_eq!(rx.chan.lock().recv_q.registered(), 0);
        });
    }

    /// A sender waiting for space is woken by a concurrent receive.
    #[test]
    fn a_waiting_sender_is_woken_by_a_concurrent_receive() {
        model(|| {
            let (tx, rx) = bounded::<u32>(1);
            tx.try_send(1).unwrap();
            let receiver = {
                let rx = rx.clone(); // `rx` stays: the last receiver leaving would close
                thread::spawn(move || {
                    let waker = thread_waker();
                    let mut ev = rx.recv_event();
                    loop {
                        match ev.poll_event(&waker) {
                            Poll::Ready(v) => break v.unwrap(),
                            Poll::Pending => thread::park(),
                        }
                    }
                })
            };
            let waker = thread_waker();
            let mut ev = tx.send_event(2);
            loop {
                match ev.poll_event(&waker) {
                    Poll::Ready(r) => break r.unwrap(),
                    Poll::Pending => thread::park(),
                }
            }
            drop(ev);
            assert_eq!(receiver.join().unwrap(), 1);
            assert_eq!(tx.chan.lock().send_q.registered(), 0);
            assert_eq!(rx.try_recv(), Ok(2));
        });
    }

    /// A receiver canceled after it was notified (its event dropped without taking the message)
    /// hands the turn on: the other receiver still gets the message.
    #[test]
    fn a_canceled_receiver_passes_its_turn_on() {
        model(|| {
            let (tx, rx) = unbounded::<u32>();
            let canceled = {
                let (tx, rx) = (tx.clone(), rx.clone());
                thread::spawn(move || {
                    let (_, waker) = counting_waker();
                    let mut ev = rx.recv_event();
                    if let Poll::Ready(v) = ev.poll_event(&waker) {
                        // It came too early to be canceled: put it back for the other receiver.
                        drop(ev);
                        tx.try_send(v.unwrap()).unwrap();
                        return;
                    }
                    thread::yield_now();
                    drop(ev); // canceled: never polled again
                })
            };
            let sender = {
                let tx = tx.clone();
                thread::spawn(move || tx.try_send(3).unwrap())
            };
            let waker = thread_waker();
            let mut ev = rx.recv_event();
            let got = loop {
                match ev.poll_event(&waker) {
                    Poll::Ready(v) => break v,
                    Poll::Pending => thread::park(),
                }
            };
            drop(ev);
            canceled.join().unwrap();
            sender.join().unwrap();
            assert_eq!(got, Ok(3));
            assert_eq!(rx.chan.lock().recv_q.registered(), 0);
            drop(tx);
        });
    }
}

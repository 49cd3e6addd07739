//! The shared core of every channel flavour: one lock around the buffer, two wait lists.
//!
//! `Chan` is a `Mutex<State>` (the buffer, the closed flag, and how many waiters of each side are
//! registered) plus two [`WaitList`]s: receivers wait in `recv_wait` for a message, senders wait
//! in `send_wait` for space (or, on a rendezvous channel, for their offer to be taken). A waiter
//! registers *under the state lock* after finding its condition false, and a state change notifies
//! *after* releasing the lock, so no wake-up can be lost; a side whose registered count is zero is
//! not notified at all, which keeps the uncontended path to one lock per operation.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

use super::error::{RecvError, SendError, TryRecvError, TrySendError};
use crate::wait::{WaitList, Waiter};

/// Capacity value of an unbounded channel.
pub(crate) const UNBOUNDED: usize = usize::MAX;

pub(crate) struct State<T> {
    /// Buffered messages (on a rendezvous channel: offers of senders not yet taken), oldest first.
    pub(crate) queue: VecDeque<T>,
    /// Rendezvous only: the ticket of each offer in `queue`, same order. Empty otherwise.
    tickets: VecDeque<u64>,
    next_ticket: u64,
    pub(crate) closed: bool,
    /// Receivers currently registered in `recv_wait`.
    pub(crate) recv_registered: usize,
    /// Senders currently registered in `send_wait`.
    pub(crate) send_registered: usize,
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
    pub(crate) recv_wait: WaitList,
    pub(crate) send_wait: WaitList,
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
                recv_registered: 0,
                send_registered: 0,
            }),
            recv_wait: WaitList::new(),
            send_wait: WaitList::new(),
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

    /// Wakes the sender side after a message with `ticket` was taken.
    pub(crate) fn wake_sender_after_pop(&self, ticket: u64) {
        if self.cap == 0 {
            self.send_wait.notify_tagged(Some(ticket as usize), 1);
        } else {
            self.send_wait.notify_one();
        }
    }

    /// Closes the channel and wakes everyone. Returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        let was_open = {
            let mut st = self.lock();
            !std::mem::replace(&mut st.closed, true)
        };
        if was_open {
            self.recv_wait.notify_all();
            self.send_wait.notify_all();
        }
        was_open
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
            if st.recv_registered <= st.queue.len() {
                return Err(TrySendError::Full(v));
            }
            st.offer(v);
        } else if st.queue.len() < self.cap {
            st.queue.push_back(v);
        } else {
            return Err(TrySendError::Full(v));
        }
        let wake = st.recv_registered > 0;
        drop(st);
        if wake {
            self.recv_wait.notify_one();
        }
        Ok(())
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.lock();
        match st.pop() {
            Some((v, ticket)) => {
                let wake = st.send_registered > 0;
                drop(st);
                if wake {
                    self.wake_sender_after_pop(ticket);
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
        debug_assert_eq!(self.recv_wait.waiting() + self.send_wait.waiting(), 0);
    }
}

/// A pending receive: completes with the oldest message, or `Closed` once the channel is closed
/// and drained. See [`Receiver::recv_event`](super::Receiver::recv_event).
pub struct RecvEvent<'a, T> {
    chan: &'a Chan<T>,
    waiter: Waiter<'a>,
    registered: bool,
}

impl<'a, T> RecvEvent<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>) -> RecvEvent<'a, T> {
        RecvEvent {
            chan,
            waiter: chan.recv_wait.waiter(),
            registered: false,
        }
    }

    fn leave(&mut self, st: &mut State<T>) {
        if std::mem::take(&mut self.registered) {
            st.recv_registered -= 1;
        }
    }
}

impl<T> crate::Event for RecvEvent<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<Result<T, RecvError>> {
        let mut st = self.chan.lock();
        if let Some((v, ticket)) = st.pop() {
            let wake = st.send_registered > 0;
            self.leave(&mut st);
            drop(st);
            self.waiter.used();
            if wake {
                self.chan.wake_sender_after_pop(ticket);
            }
            return Poll::Ready(Ok(v));
        }
        if st.closed {
            self.leave(&mut st);
            drop(st);
            self.waiter.used();
            return Poll::Ready(Err(RecvError::Closed));
        }
        if !self.registered {
            self.registered = true;
            st.recv_registered += 1;
        }
        // Under the state lock: a sender that pushes after we unlock sees us registered.
        self.waiter.register(waker);
        Poll::Pending
    }
}

impl<T> Drop for RecvEvent<'_, T> {
    fn drop(&mut self) {
        if self.registered {
            self.chan.lock().recv_registered -= 1;
        }
        // Then `waiter` drops: an unused notification goes on to the next receiver.
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
pub struct SendEvent<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    waiter: Waiter<'a>,
    registered: bool,
    /// Rendezvous: the ticket of our offer while it is in the queue; 0 otherwise.
    ticket: u64,
}

impl<'a, T> SendEvent<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>, value: T) -> SendEvent<'a, T> {
        SendEvent {
            chan,
            value: Some(value),
            waiter: chan.send_wait.waiter(),
            registered: false,
            ticket: 0,
        }
    }

    fn leave(&mut self, st: &mut State<T>) {
        if std::mem::take(&mut self.registered) {
            st.send_registered -= 1;
        }
    }

    /// The value back, if the send has not happened: `None` once it completed (or, on a
    /// rendezvous channel, once a receiver took the offer).
    pub fn into_value(mut self) -> Option<T> {
        if let Some(v) = self.value.take() {
            return Some(v);
        }
        if self.ticket != 0 {
            let t = std::mem::take(&mut self.ticket);
            let mut st = self.chan.lock();
            self.leave(&mut st);
            return st.withdraw(t);
        }
        None
    }

    fn done(&mut self, st: MutexGuard<'_, State<T>>) {
        let mut st = st;
        self.leave(&mut st);
        drop(st);
        self.waiter.used();
    }

    fn poll_rendezvous(&mut self, waker: &Waker) -> Poll<Result<(), SendError<T>>> {
        let mut st = self.chan.lock();
        if self.ticket == 0 {
            if st.closed {
                let v = self
                    .value
                    .take()
                    .expect("SendEvent polled after completion");
                self.done(st);
                return Poll::Ready(Err(SendError::Closed(v)));
            }
            let v = self
                .value
                .take()
                .expect("SendEvent polled after completion");
            let t = st.offer(v);
            self.ticket = t;
            // Our wake-up is personal (our offer was taken): tag it with the ticket.
            self.waiter = self.chan.send_wait.tagged_waiter(t as usize);
            self.registered = true;
            st.send_registered += 1;
            self.waiter.register(waker);
            let wake = st.recv_registered > 0;
            drop(st);
            if wake {
                self.chan.recv_wait.notify_one();
            }
            return Poll::Pending;
        }
        if !st.is_offered(self.ticket) {
            self.ticket = 0;
            self.done(st);
            return Poll::Ready(Ok(()));
        }
        if st.closed {
            let v = st.withdraw(self.ticket).expect("offer is queued");
            self.ticket = 0;
            self.done(st);
            return Poll::Ready(Err(SendError::Closed(v)));
        }
        self.waiter.register(waker);
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
            self.done(st);
            return Poll::Ready(Err(SendError::Closed(v)));
        }
        if st.queue.len() < self.chan.cap {
            st.queue.push_back(v);
            let wake = st.recv_registered > 0;
            self.done(st);
            if wake {
                self.chan.recv_wait.notify_one();
            }
            return Poll::Ready(Ok(()));
        }
        self.value = Some(v);
        if !self.registered {
            self.registered = true;
            st.send_registered += 1;
        }
        self.waiter.register(waker);
        Poll::Pending
    }
}

impl<T> Drop for SendEvent<'_, T> {
    fn drop(&mut self) {
        if self.registered || self.ticket != 0 {
            let withdrawn = {
                let mut st = self.chan.lock();
                if std::mem::take(&mut self.registered) {
                    st.send_registered -= 1;
                }
                match std::mem::take(&mut self.ticket) {
                    0 => None,
                    t => st.withdraw(t),
                }
            };
            drop(withdrawn); // outside the lock
        }
        // Then `waiter` drops: an unused turn for space goes on to the next sender.
    }
}

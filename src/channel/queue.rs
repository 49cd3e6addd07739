//! Zig's `std.Io.Queue`: a fixed-capacity buffer that moves many elements per call.

use std::fmt;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::core::Chan;
use super::{QueueError, QueueErrorKind, RecvError, RecvEvent, SendError, SendEvent};
use crate::wait::{block_until, WaitSlot, Wakeups};
use crate::Event;

/// Which of the channel's wait queues a [`QueueWaiter`] is in.
#[derive(Clone, Copy)]
enum Side {
    Senders,
    Receivers,
}

/// A `put`/`get` call's place in the channel's wait queue. Leaves it on drop (an error, or a
/// panic in `T::clone`), passing an unused turn on; the success paths leave it under the lock.
struct QueueWaiter<'a, T> {
    chan: &'a Chan<T>,
    side: Side,
    slot: WaitSlot,
}

impl<'a, T> QueueWaiter<'a, T> {
    fn new(chan: &'a Chan<T>, side: Side) -> QueueWaiter<'a, T> {
        QueueWaiter {
            chan,
            side,
            slot: WaitSlot::default(),
        }
    }
}

impl<T> Drop for QueueWaiter<'_, T> {
    fn drop(&mut self) {
        if self.slot.is_registered() {
            let mut st = self.chan.lock();
            let q = match self.side {
                Side::Senders => &mut st.send_q,
                Side::Receivers => &mut st.recv_q,
            };
            let wake = self.slot.leave(q);
            drop(st);
            if let Some(w) = wake {
                w.wake();
            }
        }
    }
}

/// A fixed-capacity, multi-producer multi-consumer FIFO buffer, after Zig's `std.Io.Queue`:
/// [`put`](Queue::put) blocks until at least `min` elements were added,
/// [`get`](Queue::get) until at least `min` were taken, and both return how many they moved —
/// as many as possible without waiting past the minimum.
///
/// It is a plain value, not a pair of handles: share it by reference (or in an `Arc`), and end it
/// with [`close`](Queue::close). It shares the core of the [bounded channel](super::bounded), so
/// waits are cancellation points and lose nothing when canceled: elements moved before the
/// cancel stay moved, and [`QueueError::count`] says how many. Every waiting call (`put`,
/// `put_all`, `put_one`, `get`, `get_one`) has a `_timeout(.., timeout)` and an
/// `_until(.., deadline)` form, and honours the task's deadline
/// ([`Io::timeout_until`](crate::Io::timeout_until)).
///
/// ```
/// use std::sync::Arc;
/// use zsync::channel::Queue;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let q = Arc::new(Queue::new(4));
///     let producer = {
///         let q = q.clone();
///         io.spawn(move |_| {
///             q.put_all(&[1, 2, 3, 4, 5, 6]).unwrap(); // blocks until all six are in
///             q.close();
///         })
///     };
///     let mut buf = [0; 8];
///     let mut got = Vec::new();
///     loop {
///         match q.get(&mut buf, 1) {
///             Ok(n) => got.extend_from_slice(&buf[..n]),
///             Err(e) => break assert_eq!(e.count, 0), // closed and drained
///         }
///     }
///     producer.join().unwrap();
///     assert_eq!(got, [1, 2, 3, 4, 5, 6]);
/// });
/// ```
pub struct Queue<T> {
    chan: Chan<T>,
}

/// `now + timeout`, or no deadline if that overflows the clock.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    crate::clock::now().checked_add(timeout)
}

fn kind_of(e: &std::io::Error) -> QueueErrorKind {
    if crate::is_canceled(e) {
        QueueErrorKind::Canceled
    } else {
        QueueErrorKind::TimedOut
    }
}

impl<T> Queue<T> {
    /// A queue holding up to `cap` elements.
    ///
    /// # Panics
    ///
    /// If `cap` is 0 (use a rendezvous [`bounded(0)`](super::bounded) channel for hand-over
    /// without a buffer).
    pub fn new(cap: usize) -> Queue<T> {
        assert!(cap > 0, "a zsync Queue needs a capacity of at least 1");
        Queue {
            chan: Chan::new(cap),
        }
    }

    /// The capacity given to [`new`](Queue::new).
    pub fn capacity(&self) -> usize {
        self.chan.cap
    }

    /// Number of buffered elements.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the queue: puts fail from now on, gets drain what is left and then fail with
    /// [`QueueErrorKind::Closed`]; waiting tasks wake. Returns whether this call closed it.
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Adds elements of `items` in order — as many as fit now, then waiting for space until at
    /// least `min` (clamped to `items.len()`) were added — and returns how many were added.
    /// `min == 0` never waits. Cancellation point. Zig: `queue.put(io, items, min)`.
    ///
    /// Elements are cloned with the queue's lock released, so `T::clone` may block or panic (a
    /// panic leaves the queue as it was before the attempt).
    ///
    /// ```
    /// let q = zsync::channel::Queue::new(3);
    /// assert_eq!(q.put(&[1, 2, 3, 4, 5], 0), Ok(3)); // only three fit; min 0 never waits
    /// ```
    #[track_caller]
    pub fn put(&self, items: &[T], min: usize) -> Result<usize, QueueError>
    where
        T: Clone,
    {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(self),
        );
        self.put_with(items, min, None)
    }

    /// Like [`put`](Queue::put), giving up with [`QueueErrorKind::TimedOut`] after `timeout`
    /// (the elements added by then stay added: [`QueueError::count`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = zsync::channel::Queue::new(2);
    /// let err = q.put_timeout(&[1, 2, 3], 3, Duration::from_millis(5)).unwrap_err();
    /// assert!(err.is_timed_out());
    /// assert_eq!(err.count, 2);
    /// ```
    pub fn put_timeout(
        &self,
        items: &[T],
        min: usize,
        timeout: Duration,
    ) -> Result<usize, QueueError>
    where
        T: Clone,
    {
        self.put_with(items, min, deadline_after(timeout))
    }

    /// Like [`put`](Queue::put), giving up with [`QueueErrorKind::TimedOut`] at `deadline`.
    pub fn put_until(&self, items: &[T], min: usize, deadline: Instant) -> Result<usize, QueueError>
    where
        T: Clone,
    {
        self.put_with(items, min, Some(deadline))
    }

    /// Adds all of `items`, waiting for space as needed. Zig: `queue.putAll(io, items)`.
    #[track_caller]
    pub fn put_all(&self, items: &[T]) -> Result<(), QueueError>
    where
        T: Clone,
    {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(self),
        );
        self.put_with(items, items.len(), None).map(drop)
    }

    /// Like [`put_all`](Queue::put_all), giving up with [`QueueErrorKind::TimedOut`] after
    /// `timeout`.
    pub fn put_all_timeout(&self, items: &[T], timeout: Duration) -> Result<(), QueueError>
    where
        T: Clone,
    {
        self.put_with(items, items.len(), deadline_after(timeout))
            .map(drop)
    }

    /// Like [`put_all`](Queue::put_all), giving up with [`QueueErrorKind::TimedOut`] at
    /// `deadline`.
    pub fn put_all_until(&self, items: &[T], deadline: Instant) -> Result<(), QueueError>
    where
        T: Clone,
    {
        self.put_with(items, items.len(), Some(deadline)).map(drop)
    }

    fn put_with(
        &self,
        items: &[T],
        min: usize,
        deadline: Option<Instant>,
    ) -> Result<usize, QueueError>
    where
        T: Clone,
    {
        let chan = &self.chan;
        let min = min.min(items.len());
        let mut added = 0;
        // Clones made outside the lock for one attempt; those that no longer fit when the lock
        // is taken again are dropped (unlocked) and cloned afresh next time.
        let mut staged: Vec<T> = Vec::new();
        let mut waiter = QueueWaiter::new(chan, Side::Senders);
        let result = block_until(deadline, |w| {
            let mut st = chan.lock();
            if st.closed {
                // Closed: everyone was woken anyway, so our turn is not passed on.
                waiter.slot.used(&mut st.send_q);
                return Poll::Ready(Err(QueueErrorKind::Closed));
            }
            // `T::clone` is user code: it runs with the lock released (it may block, or
            // panic, and a fiber must never park holding a std mutex). Clone what fits now,
            // then take the lock again and move in as much as still fits.
            let space = (chan.cap - st.queue.len()).min(items.len() - added);
            if space > 0 {
                drop(st);
                staged.extend(items[added..added + space].iter().cloned());
                st = chan.lock();
                if st.closed {
                    waiter.slot.used(&mut st.send_q);
                    drop(st);
                    staged.clear(); // drops run unlocked
                    return Poll::Ready(Err(QueueErrorKind::Closed));
                }
            }
            let n = (chan.cap - st.queue.len()).min(staged.len());
            st.queue.extend(staged.drain(..n));
            added += n;
            let wake = if n > 0 {
                st.recv_q.notify_tagged(None, n)
            } else {
                Wakeups::default()
            };
            let done = added >= min;
            if done {
                waiter.slot.used(&mut st.send_q);
            } else {
                waiter.slot.register(&mut st.send_q, w);
            }
            drop(st);
            staged.clear();
            wake.wake();
            if done {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        });
        // On an error `waiter` drops registered and passes an unused turn on.
        match result {
            Ok(Ok(())) => Ok(added),
            Ok(Err(kind)) => Err(QueueError { kind, count: added }),
            Err(e) => Err(QueueError {
                kind: kind_of(&e),
                count: added,
            }),
        }
    }

    /// Adds one element, waiting for space. Zig: `queue.putOne(io, item)`.
    ///
    /// ```
    /// let q = zsync::channel::Queue::new(1);
    /// q.put_one('a').unwrap();
    /// assert_eq!(q.get_one(), Ok('a'));
    /// ```
    #[track_caller]
    pub fn put_one(&self, item: T) -> Result<(), SendError<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(self),
        );
        self.put_one_with(item, None)
    }

    /// Like [`put_one`](Queue::put_one), giving up (and giving the element back) with
    /// [`SendError::TimedOut`] after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = zsync::channel::Queue::new(1);
    /// q.put_one(1).unwrap();
    /// let err = q.put_one_timeout(2, Duration::from_millis(5)).unwrap_err();
    /// assert!(err.is_timed_out());
    /// assert_eq!(err.into_inner(), 2);
    /// ```
    #[track_caller]
    pub fn put_one_timeout(&self, item: T, timeout: Duration) -> Result<(), SendError<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(self),
        );
        self.put_one_with(item, deadline_after(timeout))
    }

    /// Like [`put_one`](Queue::put_one), giving up with [`SendError::TimedOut`] at `deadline`.
    #[track_caller]
    pub fn put_one_until(&self, item: T, deadline: Instant) -> Result<(), SendError<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelSend,
            crate::diag::wait_point::Object::of(self),
        );
        self.put_one_with(item, Some(deadline))
    }

    fn put_one_with(&self, item: T, deadline: Option<Instant>) -> Result<(), SendError<T>> {
        let mut ev = SendEvent::new(&self.chan, item);
        match block_until(deadline, |w| ev.poll_event(w)) {
            Ok(r) => r,
            Err(e) => {
                let v = ev
                    .into_value()
                    .expect("a buffered send owns its value until done");
                Err(if crate::is_canceled(&e) {
                    SendError::Canceled(v)
                } else {
                    SendError::TimedOut(v)
                })
            }
        }
    }

    /// Adds one element as an [`Event`], for [`Io::wait`](crate::Io::wait) and `select`.
    pub fn put_event(&self, item: T) -> SendEvent<'_, T> {
        SendEvent::new(&self.chan, item)
    }

    /// Moves elements into `buf` in order — as many as are there, then waiting until at least
    /// `min` (clamped to `buf.len()`) were taken — and returns how many. `min == 0` never waits.
    /// Cancellation point. Zig: `queue.get(io, buffer, min)`.
    ///
    /// The elements of `buf` that are overwritten are dropped with the queue's lock released, so
    /// their destructor may block or use this queue.
    ///
    /// ```
    /// let q = zsync::channel::Queue::new(8);
    /// q.put_all(&[1, 2, 3]).unwrap();
    /// let mut buf = [0; 2];
    /// assert_eq!(q.get(&mut buf, 1), Ok(2));
    /// assert_eq!(buf, [1, 2]);
    /// ```
    #[track_caller]
    pub fn get(&self, buf: &mut [T], min: usize) -> Result<usize, QueueError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(self),
        );
        self.get_with(buf, min, None)
    }

    /// Like [`get`](Queue::get), giving up with [`QueueErrorKind::TimedOut`] after `timeout`
    /// (the elements taken by then are in `buf`: [`QueueError::count`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = zsync::channel::Queue::new(4);
    /// q.put_one(7).unwrap();
    /// let mut buf = [0; 2];
    /// let err = q.get_timeout(&mut buf, 2, Duration::from_millis(5)).unwrap_err();
    /// assert!(err.is_timed_out());
    /// assert_eq!((err.count, buf[0]), (1, 7));
    /// ```
    pub fn get_timeout(
        &self,
        buf: &mut [T],
        min: usize,
        timeout: Duration,
    ) -> Result<usize, QueueError> {
        self.get_with(buf, min, deadline_after(timeout))
    }

    /// Like [`get`](Queue::get), giving up with [`QueueErrorKind::TimedOut`] at `deadline`.
    pub fn get_until(
        &self,
        buf: &mut [T],
        min: usize,
        deadline: Instant,
    ) -> Result<usize, QueueError> {
        self.get_with(buf, min, Some(deadline))
    }

    fn get_with(
        &self,
        buf: &mut [T],
        min: usize,
        deadline: Option<Instant>,
    ) -> Result<usize, QueueError> {
        let chan = &self.chan;
        let min = min.min(buf.len());
        let mut got = 0;
        // The values taken under the lock, on their way into `buf`.
        let mut staged: Vec<T> = Vec::new();
        let mut waiter = QueueWaiter::new(chan, Side::Receivers);
        let result = block_until(deadline, |w| {
            let mut st = chan.lock();
            let n = st.queue.len().min(buf.len() - got);
            // Moved out under the lock, stored into `buf` after it: storing drops the values
            // `buf` held, and a `Drop` is user code (it may block or panic).
            staged.extend(st.queue.drain(..n));
            let first = got;
            got += n;
            let wake = if n > 0 {
                st.send_q.notify_tagged(None, n)
            } else {
                Wakeups::default()
            };
            let outcome = if got >= min {
                waiter.slot.used(&mut st.recv_q);
                Poll::Ready(Ok(()))
            } else if st.closed {
                waiter.slot.used(&mut st.recv_q);
                Poll::Ready(Err(QueueErrorKind::Closed))
            } else {
                waiter.slot.register(&mut st.recv_q, w);
                Poll::Pending
            };
            drop(st);
            for (slot, v) in buf[first..got].iter_mut().zip(staged.drain(..)) {
                *slot = v;
            }
            wake.wake();
            outcome
        });
        // On an error `waiter` drops registered and passes an unused turn on.
        match result {
            Ok(Ok(())) => Ok(got),
            Ok(Err(kind)) => Err(QueueError { kind, count: got }),
            Err(e) => Err(QueueError {
                kind: kind_of(&e),
                count: got,
            }),
        }
    }

    /// Takes one element, waiting while the queue is empty; `Closed` once it is closed and
    /// drained. Zig: `queue.getOne(io)`.
    #[track_caller]
    pub fn get_one(&self) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(self),
        );
        self.get_one_with(None)
    }

    /// Like [`get_one`](Queue::get_one), giving up with [`RecvError::TimedOut`] after
    /// `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::channel::{Queue, RecvError};
    /// let q = Queue::<u8>::new(1);
    /// assert_eq!(q.get_one_timeout(Duration::from_millis(5)), Err(RecvError::TimedOut));
    /// ```
    #[track_caller]
    pub fn get_one_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(self),
        );
        self.get_one_with(deadline_after(timeout))
    }

    /// Like [`get_one`](Queue::get_one), giving up with [`RecvError::TimedOut`] at `deadline`.
    #[track_caller]
    pub fn get_one_until(&self, deadline: Instant) -> Result<T, RecvError> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::ChannelRecv,
            crate::diag::wait_point::Object::of(self),
        );
        self.get_one_with(Some(deadline))
    }

    fn get_one_with(&self, deadline: Option<Instant>) -> Result<T, RecvError> {
        let mut ev = RecvEvent::new(&self.chan);
        match block_until(deadline, |w| ev.poll_event(w)) {
            Ok(r) => r,
            Err(e) => Err(RecvError::from_wait(&e)),
        }
    }

    /// Takes one element as an [`Event`], for [`Io::wait`](crate::Io::wait) and `select`.
    pub fn get_event(&self) -> RecvEvent<'_, T> {
        RecvEvent::new(&self.chan)
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

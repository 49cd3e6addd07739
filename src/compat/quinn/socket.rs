//! quinn's UDP socket: a [`zsync::net::UdpSocket`](crate::net::UdpSocket) waited on through the
//! driver's readiness, sending and receiving through `quinn-udp`'s `UdpSocketState` (GSO, GRO,
//! ECN, the packet's destination address).
//!
//! Receiving has one waiter, the endpoint driver: `poll_recv` is the socket's own
//! `poll_read_ready` followed by `try_io`, which clears the readiness when the kernel answers
//! `EAGAIN`, so the next poll waits for the next edge.
//!
//! Sending has many: every connection driver that found the socket full waits for it through
//! its own [`UdpPoller`]. The socket's readiness keeps one waker per direction (one
//! registration per descriptor), so the pollers do not register their tasks with it directly —
//! the last would evict the others, and an evicted connection would stall until its next timer.
//! Instead the socket registers one *fan-out* waker, and each poller adds its task's waker to
//! the fan-out's list before it polls; the edge wakes the fan-out, which wakes every listed
//! task. A task that finds the socket writable takes itself off the list, as does a dropped
//! poller. (Tokio's runtime gets the same from a readiness future per waiter; this keeps one
//! registration and a short list.)

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll, Wake, Waker};

use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, UdpPoller};

use crate::net::{Interest, UdpSocket};
use crate::Io;

/// The socket quinn sends and receives on.
pub(super) struct QuicSocket {
    socket: UdpSocket,
    /// quinn-udp's per-socket state: the options it set and what the kernel supports (GSO
    /// segments, GRO, whether datagrams may fragment).
    state: UdpSocketState,
    /// The tasks waiting for the socket to become writable again.
    writers: Arc<Writers>,
}

impl QuicSocket {
    /// Configures `socket` for quinn-udp (ECN, GRO, packet info, no fragmentation where the
    /// kernel allows it) and hands it to `io` (non-blocking, waited on through readiness).
    pub(super) fn new(io: &Io, socket: std::net::UdpSocket) -> io::Result<QuicSocket> {
        let state = UdpSocketState::new((&socket).into())?;
        Ok(QuicSocket {
            socket: UdpSocket::from_std(io, socket)?,
            state,
            writers: Arc::new(Writers::default()),
        })
    }
}

impl fmt::Debug for QuicSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicSocket")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for QuicSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        let id = self.writers.next_id.fetch_add(1, Ordering::Relaxed);
        let fan_out = Waker::from(Arc::clone(&self.writers));
        Box::pin(WritablePoller {
            socket: self,
            id,
            fan_out,
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.socket.try_io(Interest::Write, || {
            self.state.send((&self.socket).into(), transmit)
        })
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            match self.socket.try_io(Interest::Read, || {
                self.state.recv((&self.socket).into(), bufs, meta)
            }) {
                // Readiness cleared by `try_io`: the next poll waits for the next datagram.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Anything else is the endpoint driver's to judge (it skips `ConnectionReset`).
                done => return Poll::Ready(done),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }
}

/// The wakers of the tasks waiting to send, and the fan-out waker (this, as a [`Wake`]) that
/// the socket's write readiness wakes.
#[derive(Default)]
struct Writers {
    /// Gives each poller the key of its entry in `waiting`.
    next_id: AtomicU64,
    /// `(poller id, its task's waker)`; one entry per poller at most. The lock is held only to
    /// edit the list, never while a waker runs.
    waiting: Mutex<Vec<(u64, Waker)>>,
}

impl Writers {
    fn waiting(&self) -> MutexGuard<'_, Vec<(u64, Waker)>> {
        // Nothing that can panic runs under the lock (no waker, no user code).
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists (or refreshes) `id`'s waker.
    fn add(&self, id: u64, waker: &Waker) {
        let mut waiting = self.waiting();
        match waiting.iter_mut().find(|(key, _)| *key == id) {
            Some((_, listed)) => listed.clone_from(waker),
            None => waiting.push((id, waker.clone())),
        }
    }

    /// Takes `id` off the list.
    fn remove(&self, id: u64) {
        let removed = {
            let mut waiting = self.waiting();
            waiting
                .iter()
                .position(|(key, _)| *key == id)
                .map(|at| waiting.swap_remove(at))
        };
        // The waker is dropped here, after the lock: dropping one may run a task's code.
        drop(removed);
    }
}

impl Wake for Writers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiting = std::mem::take(&mut *self.waiting());
        for (_, waker) in waiting {
            waker.wake();
        }
    }
}

/// One connection driver's wait for the socket to become writable.
struct WritablePoller {
    socket: Arc<QuicSocket>,
    /// This poller's key in the socket's [`Writers`] list.
    id: u64,
    /// The socket's fan-out waker, made once.
    fan_out: Waker,
}

impl UdpPoller for WritablePoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let writers = &this.socket.writers;
        // Listed before the readiness is checked: an edge between the check and the listing
        // would otherwise wake the fan-out with this task not yet on its list.
        writers.add(this.id, cx.waker());
        let ready = this
            .socket
            .socket
            .poll_write_ready(&mut Context::from_waker(&this.fan_out));
        if ready.is_ready() {
            writers.remove(this.id);
        }
        ready
    }
}

impl Drop for WritablePoller {
    fn drop(&mut self) {
        self.socket.writers.remove(self.id);
    }
}

impl fmt::Debug for WritablePoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WritablePoller")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Waker;

    use super::Writers;
    use crate::test_waker::{counter, wakes};

    #[test]
    fn one_edge_wakes_every_waiting_sender_once() {
        let writers = Arc::new(Writers::default());
        let fan_out = Waker::from(Arc::clone(&writers));
        let (a, wa) = counter();
        let (b, wb) = counter();
        let (c, wc) = counter();
        writers.add(1, &wa);
        writers.add(2, &wb);
        writers.add(2, &wb); // a poller polled twice is listed once
        writers.add(3, &wc);
        writers.remove(3); // found the socket writable, or dropped
        fan_out.wake_by_ref();
        assert_eq!((wakes(&a), wakes(&b), wakes(&c)), (1, 1, 0));
        // The list was emptied: a second edge wakes nobody until they wait again.
        fan_out.wake_by_ref();
        assert_eq!((wakes(&a), wakes(&b)), (1, 1));
        writers.add(1, &wa);
        fan_out.wake();
        assert_eq!((wakes(&a), wakes(&b)), (2, 1));
    }

    #[test]
    fn a_refreshed_waker_replaces_the_old_one() {
        let writers = Arc::new(Writers::default());
        let (old, w_old) = counter();
        let (new, w_new) = counter();
        writers.add(7, &w_old);
        writers.add(7, &w_new); // the poller moved to another task
        Waker::from(Arc::clone(&writers)).wake();
        assert_eq!((wakes(&old), wakes(&new)), (0, 1));
    }
}

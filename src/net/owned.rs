//! Owned-buffer receives and sends of the stream sockets, for futures: `read_owned` and
//! `write_owned` (the names `read_async`/`write_async` are the borrowed-buffer methods; a
//! `File`'s owned methods, which came later, could take the plain names).
//!
//! Two ways, chosen at the first poll:
//!
//! - **On the ring** of the Green io_uring worker polling the future (`IORING_OP_RECV`/`SEND`):
//!   the op owns the buffer and a duplicate of the descriptor until its CQE, as a file's owned
//!   op ([`RingOp`], `fs/owned.rs`). A receive may wait for ever, so a future dropped mid-op
//!   asks the owning worker to cancel it (`ASYNC_CANCEL`, through the ring's cancel mailbox,
//!   from whichever thread drops it); the buffer is freed at the op's CQE. Bytes a canceled
//!   receive took before the cancel landed are lost with the buffer, as with any completion
//!   runtime.
//! - **Readiness** everywhere else (epoll workers, Threaded, Blocking, custom models, a future
//!   polled outside any worker or by a foreign executor on a fiber): the non-blocking syscall
//!   is tried in `poll`, waiting for the async driver between tries, as `read_async` does.
//!   A future dropped while it waits has taken nothing.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use io_uring::opcode;

use crate::driver::source::Waiter;
use crate::driver::Source;
use crate::fs::owned::{Owned, RingOp};
use crate::park::Interest;
use crate::Io;

use super::socket::Socket;

/// What a socket's owned-buffer future needs of its socket, whatever its std type.
pub(crate) trait Core: Sync {
    fn io(&self) -> &Io;
    fn fd(&self) -> BorrowedFd<'_>;
    fn source(&self) -> io::Result<&Source>;
}

impl<S: AsFd + Sync + From<OwnedFd> + Into<OwnedFd>> Core for Socket<S> {
    fn io(&self) -> &Io {
        Socket::io(self)
    }
    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
    fn source(&self) -> io::Result<&Source> {
        Socket::source(self)
    }
}

/// A receive into, or a send from, the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Recv,
    Send,
}

impl Dir {
    fn interest(self) -> Interest {
        match self {
            Dir::Recv => Interest::Read,
            Dir::Send => Interest::Write,
        }
    }
}

enum State<'a> {
    Unstarted(Vec<u8>),
    Ring(Arc<RingOp>),
    /// Tried in `poll`, waiting for readiness; the keyed waiter's key while registered.
    Ready {
        source: &'a Source,
        buf: Vec<u8>,
        key: Option<usize>,
    },
    Done,
}

/// The future of a socket's owned-buffer receive or send
/// ([`TcpStream::read_owned`](super::TcpStream::read_owned),
/// [`write_owned`](super::TcpStream::write_owned), [`UnixStream`](super::UnixStream)'s, and
/// [`UdpSocket::recv_owned`](super::UdpSocket::recv_owned)/[`send_owned`](super::UdpSocket::send_owned)):
/// yields the byte count and the buffer back. Dropped mid-op, it leaves the buffer to the op
/// (canceled on a ring, see [`zsync::net`](crate::net#owned-buffers-and-io_uring)).
///
/// ```
/// use zsync::net::{SocketBufFuture, TcpListener, TcpStream};
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let listener = TcpListener::bind(io, "127.0.0.1:0")?;
///     let a = TcpStream::connect(io, listener.local_addr()?)?;
///     let (b, _) = listener.accept()?;
///     let send: SocketBufFuture<'_> = a.write_owned(b"hi".to_vec());
///     let (n, _) = io.block_on(send)?;
///     assert_eq!(n?, 2);
///     let (n, buf) = io.block_on(b.read_owned(vec![0; 8]))?;
///     assert_eq!(&buf[..n?], b"hi");
///     Ok(())
/// }).unwrap();
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SocketBufFuture<'a> {
    sock: &'a dyn Core,
    dir: Dir,
    /// A datagram socket's: an empty buffer is an empty datagram, not a no-op.
    datagram: bool,
    state: State<'a>,
}

impl<'a> SocketBufFuture<'a> {
    /// A stream socket's receive or send.
    pub(crate) fn new(sock: &'a dyn Core, dir: Dir, buf: Vec<u8>) -> SocketBufFuture<'a> {
        SocketBufFuture {
            sock,
            dir,
            datagram: false,
            state: State::Unstarted(buf),
        }
    }

    /// A connected datagram socket's receive or send.
    pub(crate) fn datagram(sock: &'a dyn Core, dir: Dir, buf: Vec<u8>) -> SocketBufFuture<'a> {
        let mut fut = SocketBufFuture::new(sock, dir, buf);
        fut.datagram = true;
        fut
    }

    /// The ring op if the polling thread has a ring for it (and the socket's descriptor could
    /// be duplicated for the op to hold); else the readiness state, or the error registering the
    /// socket with the async driver.
    fn start(&self, buf: Vec<u8>) -> Result<State<'a>, (io::Error, Vec<u8>)> {
        let buf = match self.ring(buf) {
            Ok(op) => return Ok(State::Ring(op)),
            Err(buf) => buf,
        };
        match self.sock.source() {
            Ok(source) => Ok(State::Ready {
                source,
                buf,
                key: None,
            }),
            Err(e) => Err((e, buf)),
        }
    }

    fn ring(&self, buf: Vec<u8>) -> Result<Arc<RingOp>, Vec<u8>> {
        if crate::op::custom(self.sock.io()).is_some() {
            return Err(buf);
        }
        let code = match self.dir {
            Dir::Recv => opcode::Recv::CODE,
            Dir::Send => opcode::Send::CODE,
        };
        if !crate::model::green::owned_ring_available(code) {
            return Err(buf);
        }
        // The op's own reference to the socket: closing the socket meanwhile then cannot hand
        // its descriptor number to another file under the op.
        let Ok(fd) = self.sock.fd().try_clone_to_owned() else {
            return Err(buf);
        };
        let owned = Owned {
            file: Arc::new(std::fs::File::from(fd)),
            stream: None,
            buf,
            start: 0,
        };
        let dir = self.dir;
        RingOp::submit(owned, code, |fd, ptr, len| match dir {
            Dir::Recv => opcode::Recv::new(fd, ptr, len).build(),
            Dir::Send => opcode::Send::new(fd, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
        })
        .map_err(|owned| owned.buf)
    }
}

/// One non-blocking `recv`/`send` (with `MSG_NOSIGNAL`), retried on `EINTR`.
fn attempt(fd: BorrowedFd<'_>, dir: Dir, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let result = match dir {
            Dir::Recv => {
                rustix::net::recv(fd, &mut *buf, rustix::net::RecvFlags::empty()).map(|r| r.0)
            }
            Dir::Send => rustix::net::send(fd, &*buf, rustix::net::SendFlags::NOSIGNAL),
        };
        match result {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

impl Future for SocketBufFuture<'_> {
    type Output = (io::Result<usize>, Vec<u8>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Unstarted(buf) = &mut this.state {
            let buf = std::mem::take(buf);
            if buf.is_empty() && !this.datagram {
                // Nothing to transfer (a Unix stream's `recv` of 0 bytes would wait for data).
                this.state = State::Done;
                return Poll::Ready((Ok(0), buf));
            }
            match this.start(buf) {
                Ok(state) => this.state = state,
                Err((e, buf)) => {
                    this.state = State::Done;
                    return Poll::Ready((Err(e), buf));
                }
            }
        }
        let (sock, dir) = (this.sock, this.dir);
        match &mut this.state {
            State::Ring(op) => {
                let (result, buf) = ready!(op.poll_done(cx));
                if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                    // A kernel that does not wait on a non-blocking socket for the ring: wait
                    // for readiness instead.
                    return match sock.source() {
                        Ok(source) => {
                            this.state = State::Ready {
                                source,
                                buf,
                                key: None,
                            };
                            Pin::new(this).poll(cx)
                        }
                        Err(e) => {
                            this.state = State::Done;
                            Poll::Ready((Err(e), buf))
                        }
                    };
                }
                this.state = State::Done;
                Poll::Ready((result.map(|n| n as usize), buf))
            }
            State::Ready { source, buf, key } => {
                let interest = dir.interest();
                let waiter = Waiter::Keyed(key);
                let result =
                    ready!(source.poll_io(interest, cx, waiter, || attempt(sock.fd(), dir, buf)));
                if let Some(key) = key.take() {
                    source.leave(interest, key);
                }
                let buf = std::mem::take(buf);
                this.state = State::Done;
                Poll::Ready((result, buf))
            }
            State::Unstarted(_) => unreachable!("started above"),
            State::Done => panic!("a SocketBufFuture polled after it completed"),
        }
    }
}

impl Drop for SocketBufFuture<'_> {
    /// A ring op still in the kernel is canceled (it keeps its buffer until its CQE); a
    /// readiness waiter is withdrawn.
    fn drop(&mut self) {
        match &mut self.state {
            State::Ring(op) => op.cancel(),
            State::Ready { source, key, .. } => {
                if let Some(key) = key.take() {
                    source.leave(self.dir.interest(), key);
                }
            }
            State::Unstarted(_) | State::Done => {}
        }
    }
}

impl fmt::Debug for SocketBufFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Unstarted(_) => "unstarted",
            State::Ring(_) => "ring",
            State::Ready { .. } => "readiness",
            State::Done => "done",
        };
        f.debug_struct("SocketBufFuture")
            .field("dir", &self.dir)
            .field("state", &state)
            .finish()
    }
}

/// `read_owned` and `write_owned` for a stream socket type.
macro_rules! impl_owned_stream {
    ($t:ident, $example:literal) => {
        impl $t {
            /// Receives into `buf` (up to `buf.len()` bytes) once data is there; the future
            /// yields the byte count (`0` at the end of the stream) and the buffer back.
            ///
            /// The buffer is the op's until it ends: on a Green io_uring worker that polls the
            /// future, the kernel receives straight into it (`IORING_OP_RECV`, a completion);
            /// elsewhere the receive is tried in `poll` and waits for readiness, as
            /// [`read_async`](Self::read_async). Dropped mid-op, the future leaves the buffer
            /// to the op, which is canceled and frees it at its completion; bytes it had
            /// already received are then lost. The socket's read timeout does not apply. See
            /// [`zsync::net`](crate::net#owned-buffers-and-io_uring).
            #[doc = concat!("```\n", $example, "\n```")]
            pub fn read_owned(&self, buf: Vec<u8>) -> $crate::net::SocketBufFuture<'_> {
                $crate::net::owned::SocketBufFuture::new(
                    &self.sock,
                    $crate::net::owned::Dir::Recv,
                    buf,
                )
            }

            /// Sends from `buf` once there is room (with `MSG_NOSIGNAL`: a peer that has gone
            /// is `BrokenPipe`); the future yields the byte count (possibly fewer than
            /// `buf.len()`) and the buffer back. On a Green io_uring worker an
            /// `IORING_OP_SEND` owns the buffer until its completion; as
            /// [`read_owned`](Self::read_owned) otherwise.
            #[doc = concat!("```\n", $example, "\n```")]
            pub fn write_owned(&self, buf: Vec<u8>) -> $crate::net::SocketBufFuture<'_> {
                $crate::net::owned::SocketBufFuture::new(
                    &self.sock,
                    $crate::net::owned::Dir::Send,
                    buf,
                )
            }
        }
    };
}
pub(crate) use impl_owned_stream;

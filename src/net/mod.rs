//! Networking: TCP, UDP and Unix-domain sockets.
//!
//! Every type remembers the [`Io`](crate::Io) it was created with, implements the std traits
//! its std counterpart implements (`Read`/`Write` for streams), converts from and into the std
//! type, and exposes its descriptor (`AsFd`, `AsRawFd`). Every operation that can wait is a
//! cancellation point.
//!
//! Timeouts behave as std's: a socket's read or write timeout (`set_read_timeout`,
//! `set_write_timeout`) that expires fails the operation with
//! [`WouldBlock`](std::io::ErrorKind::WouldBlock) (`EAGAIN`), as an expired `SO_RCVTIMEO` does
//! on Unix; the task's deadline ([`Io::timeout_until`](crate::Io::timeout_until)) fails it with
//! `TimedOut` ([`is_timed_out`](crate::is_timed_out)). With both, the one that passes first
//! decides.
//!
//! A write to a stream whose peer has gone fails with
//! [`BrokenPipe`](std::io::ErrorKind::BrokenPipe) and never raises `SIGPIPE`, whatever the
//! process's disposition of it: every send carries `MSG_NOSIGNAL`, vectored ones too.
//!
//! # Owned buffers and io_uring
//!
//! `TcpStream` and `UnixStream` have, besides the borrowed-buffer `read_async`/`write_async`
//! and `AsyncRead`/`AsyncWrite` (always readiness: the async driver says when to retry the
//! non-blocking syscall), `read_owned` and `write_owned`, which take a `Vec<u8>` and give it
//! back with the result ([`SocketBufFuture`]); a connected `UdpSocket` has `recv_owned` and
//! `send_owned`. Polled by a Green io_uring worker (a future
//! task, or `Io::block_on` on a fiber), they are ring ops, `IORING_OP_RECV`/`SEND`, which own
//! the buffer (and a duplicate of the descriptor) until their completion: no readiness
//! round-trip, no syscall per attempt. A future dropped mid-op has its op canceled
//! (`ASYNC_CANCEL`, by the ring's worker, from whatever thread drops the future); the buffer is
//! freed at the op's completion. Everywhere else they take the readiness path with the same
//! signature.
//!
//! Every type is a thin wrapper over one socket core (`socket.rs`), which owns the descriptor,
//! its non-blocking mode, its timeouts and its transfers; the methods the types share are
//! generated once (`methods.rs`).

pub(crate) mod addr;
pub(crate) mod async_io;
mod methods;
pub(crate) mod owned;
mod socket;
mod tcp;
pub(crate) mod timeout;
mod udp;
mod unix;

pub(crate) use methods::impl_fd_traits;

pub use crate::park::Interest;
pub use addr::{resolve, ToSocketAddrs};
pub use owned::SocketBufFuture;
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

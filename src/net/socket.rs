//! The socket core: the one implementation of what every socket type does the same way.
//!
//! [`TcpListener`](super::TcpListener), [`TcpStream`](super::TcpStream),
//! [`UdpSocket`](super::UdpSocket), [`UnixListener`](super::UnixListener),
//! [`UnixStream`](super::UnixStream) and [`UnixDatagram`](super::UnixDatagram) are each one
//! field, a [`Socket`] over their std counterpart. The core owns the descriptor's life:
//!
//! - **Non-blocking from start to end.** A socket is switched to `O_NONBLOCK` when it is wrapped
//!   ([`Socket::from_std`]; a socket made by `accept4`/`socket` with `SOCK_NONBLOCK` is taken as
//!   it is), and back to blocking mode only when it is unwrapped ([`Socket::into_std`]). A
//!   [`try_clone`](Socket::try_clone) (`dup`) shares the open file description, so it is
//!   non-blocking already.
//! - **Timeouts.** The read and write timeouts live here, and every operation that can wait runs
//!   through [`reading`](Timeouts::reading)/[`writing`](Timeouts::writing): an expired socket
//!   timeout is `WouldBlock`, the task's deadline `TimedOut` (see [`super::timeout`]).
//! - **Transfers.** Stream reads and writes go to the op layer (`op::recv`, `op::send`), which
//!   picks the ring or the readiness path. Every write carries `MSG_NOSIGNAL`
//!   (`op/send.rs` decides it once): a peer that has gone is `BrokenPipe`, never `SIGPIPE`.
//!   Type-specific calls (`peek`, `recv_from`, ...) take the readiness path through
//!   [`read_with`](Socket::read_with)/[`write_with`](Socket::write_with).
//!
//! The public methods the types share (`from_std`, `try_clone`, `into_std`, the timeouts,
//! `take_error`, the descriptor traits, `Read`/`Write`) are generated once, with their docs, by
//! the macros of [`super::methods`].
//!
//! The core adds nothing to the hot path: a `read` is the timeout check (one relaxed load) and
//! the op, as before; the struct is the std socket (one descriptor), the `Io` (one pointer),
//! two timeout words and the async driver registration ([`Registered`], empty until the first
//! async use: `poll_read_ready`, `try_io`, an `_async` method or `AsyncRead`/`AsyncWrite`).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use socket2::SockRef;

use crate::driver::source::Waiter;
use crate::driver::{Registered, Source};
use crate::model::operation::Operation;
use crate::net::timeout::Timeouts;
use crate::op::send_zc::ZeroCopy;
use crate::park::{retry_on_fd, Interest};
use crate::{op, Io};

/// A std socket `S` in non-blocking mode, the [`Io`] it waits through, and its timeouts.
///
/// `S` is one of std's socket types: a descriptor that converts from and into an [`OwnedFd`].
pub(crate) struct Socket<S> {
    /// Tells a custom model that the descriptor closes; declared before `std`, so that it runs
    /// while the descriptor is still open.
    _close_note: CloseNote,
    /// The async driver registration, made on first async use. Declared before `std`: it must
    /// drop (deregister) while the descriptor is still open (see [`Registered`]).
    registered: Registered,
    io: Io,
    std: S,
    timeouts: Timeouts,
    /// Whether large writes go zero-copy on an io_uring worker (see `op::send_zc`): decided at
    /// the first one from the peer's address (never for Unix sockets or loopback peers).
    zero_copy: ZeroCopy,
}

impl<S: AsFd + From<OwnedFd> + Into<OwnedFd>> Socket<S> {
    /// Wraps a std socket, switching it to non-blocking mode (`FIONBIO`, as std's
    /// `set_nonblocking`).
    pub(crate) fn from_std(io: &Io, std: S) -> io::Result<Socket<S>> {
        rustix::io::ioctl_fionbio(std.as_fd(), true)?;
        Ok(Socket::from_nonblocking(io, std))
    }

    /// Wraps a socket that is non-blocking already (made or accepted with `SOCK_NONBLOCK`).
    pub(crate) fn from_nonblocking(io: &Io, std: S) -> Socket<S> {
        Socket {
            _close_note: CloseNote::new(io, std.as_fd()),
            registered: Registered::new(),
            io: io.clone(),
            std,
            timeouts: Timeouts::default(),
            zero_copy: ZeroCopy::default(),
        }
    }

    /// Wraps a raw socket descriptor, switching it to non-blocking mode.
    ///
    /// # Safety
    /// `fd` must be an open socket of the kind `S` stands for, which nothing else owns.
    pub(crate) unsafe fn from_raw_fd(io: &Io, fd: RawFd) -> io::Result<Socket<S>> {
        // SAFETY: the caller guarantees `fd` is an open socket that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Socket::from_std(io, S::from(fd))
    }

    /// A second handle to the same socket (`dup`, close-on-exec), with this one's timeouts. It
    /// shares the open file description, hence `O_NONBLOCK`: no mode switch.
    pub(crate) fn try_clone(&self) -> io::Result<Socket<S>> {
        let fd = match op::custom(&self.io) {
            Some(model) => model
                .operate(Operation::Duplicate {
                    fd: self.std.as_fd(),
                })?
                .into_fd("duplicate")?,
            None => self.std.as_fd().try_clone_to_owned()?,
        };
        let clone = Socket::from_nonblocking(&self.io, S::from(fd));
        clone.timeouts.set_read(self.timeouts.read())?;
        clone.timeouts.set_write(self.timeouts.write())?;
        Ok(clone)
    }

    /// Unwraps into the std socket, back in blocking mode.
    pub(crate) fn into_std(self) -> io::Result<S> {
        rustix::io::ioctl_fionbio(self.std.as_fd(), false)?;
        Ok(self.std)
    }

    /// The `Io` the socket was created with.
    pub(crate) fn io(&self) -> &Io {
        &self.io
    }

    /// The std socket, for the options only one type has (`TCP_NODELAY`, multicast, ...).
    pub(crate) fn get(&self) -> &S {
        &self.std
    }

    /// The socket's choice of zero-copy sends (see `op::send_zc`).
    pub(crate) fn zero_copy(&self) -> &ZeroCopy {
        &self.zero_copy
    }

    /// The descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.std.as_fd()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        SockRef::from(&self.std).take_error()
    }

    /// `shutdown(2)`.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match op::custom(&self.io) {
            Some(model) => op::done_of(
                model,
                Operation::Shutdown {
                    fd: self.std.as_fd(),
                    how,
                },
            ),
            None => SockRef::from(&self.std).shutdown(how),
        }
    }

    /// The socket's own address, or with `peer` its peer's: from a custom model for an IP
    /// socket, else from `native` (`getsockname(2)`, `getpeername(2)`).
    pub(crate) fn address<A: Address>(
        &self,
        peer: bool,
        native: impl FnOnce(&S) -> io::Result<A>,
    ) -> io::Result<A> {
        match op::custom(&self.io) {
            Some(model) if A::IP => {
                let op = Operation::Address {
                    fd: self.std.as_fd(),
                    peer,
                };
                let name = op.name();
                A::from_model(model.operate(op)?.into_address(name)?)
            }
            _ => native(&self.std),
        }
    }

    /// Sets the read timeout (`None`: none; `InvalidInput` for zero, as std).
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_read(timeout)
    }

    /// Sets the write timeout (as [`set_read_timeout`](Self::set_read_timeout)).
    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_write(timeout)
    }

    /// The read timeout.
    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.timeouts.read()
    }

    /// The write timeout.
    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.timeouts.write()
    }

    /// `recv(2)` of a connected socket (a stream's `read`). Cancellation point.
    #[track_caller]
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Read,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.fd())),
        );
        let fd = self.fd();
        self.timeouts
            .reading(|deadline| op::recv::recv(&self.io, fd, buf, deadline))
    }

    /// `readv(2)` of a connected socket (a stream's `read_vectored`). Cancellation point.
    #[track_caller]
    pub(crate) fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Read,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.fd())),
        );
        let fd = self.fd();
        self.timeouts
            .reading(|deadline| op::recv::recv_vectored(&self.io, fd, bufs, deadline))
    }

    /// `send(2)` with `MSG_NOSIGNAL` (a stream's `write`). Cancellation point.
    #[track_caller]
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Write,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.fd())),
        );
        let fd = self.fd();
        self.timeouts
            .writing(|deadline| op::send::send_stream(&self.io, fd, buf, deadline, &self.zero_copy))
    }

    /// `sendmsg(2)` with `MSG_NOSIGNAL` (a stream's `write_vectored`). Cancellation point.
    #[track_caller]
    pub(crate) fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Write,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.fd())),
        );
        let fd = self.fd();
        self.timeouts
            .writing(|deadline| op::send::send_vectored(&self.io, fd, bufs, deadline))
    }

    /// Runs the non-blocking read `attempt` on the std socket until it stops reporting
    /// `WouldBlock`, waiting for readability in between, bounded by the read timeout.
    /// Cancellation point.
    #[track_caller]
    pub(crate) fn read_with<T>(
        &self,
        mut attempt: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Read,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.fd())),
        );
        op::other_or(&self.io, "net::read", || {
            self.timeouts.reading(|deadline| {
                retry_on_fd(self.fd(), Interest::Read, deadline, || attempt(&self.std))
            })
        })
    }

    /// [`read_with`](Self::read_with) for a write: waits for writability, bounded by the write
    /// timeout.
    #[track_caller]
    pub(crate) fn write_with<T>(
        &self,
        mut attempt: impl FnMut(&S) -> io::Result<T>,
    ) -> io::Result<T> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Write,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.fd())),
        );
        op::other_or(&self.io, "net::write", || {
            self.timeouts.writing(|deadline| {
                retry_on_fd(self.fd(), Interest::Write, deadline, || attempt(&self.std))
            })
        })
    }

    /// Receives without taking the data off the queue (`MSG_PEEK`), bounded by the read
    /// timeout: on a custom model as [`Operation::Recv`] with `peek`, else by `native` on the
    /// std socket. Cancellation point.
    pub(crate) fn peek(
        &self,
        buf: &mut [u8],
        mut native: impl FnMut(&S, &mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        match op::custom(&self.io) {
            Some(model) => self.timeouts.reading(|deadline| {
                let op = Operation::Recv {
                    fd: self.std.as_fd(),
                    buf,
                    peek: true,
                    deadline,
                };
                op::count_of(model, op)
            }),
            None => self.read_with(|s| native(s, &mut *buf)),
        }
    }

    /// The write timeout's bound around `op`, for a write that waits in its own way (a Unix
    /// datagram's `send_to`, a UDP `send_to` on the ring).
    pub(crate) fn writing<T>(
        &self,
        op: impl FnOnce(Option<std::time::Instant>) -> io::Result<T>,
    ) -> io::Result<T> {
        self.timeouts.writing(op)
    }

    /// The read timeout's bound around `op` (see [`writing`](Self::writing)).
    pub(crate) fn reading<T>(
        &self,
        op: impl FnOnce(Option<std::time::Instant>) -> io::Result<T>,
    ) -> io::Result<T> {
        self.timeouts.reading(op)
    }
}

/// The async side (see [`crate::driver`]): readiness through the runtime's async driver,
/// registered on first use. These never park the task: they return `Pending` and wake the
/// waker. A socket's read and write timeouts do not apply to them (bound a future with
/// [`zsync::time::timeout`](crate::time::timeout)).
impl<S: AsFd> Socket<S> {
    /// The socket's driver registration, made on first use.
    pub(crate) fn source(&self) -> io::Result<&Source> {
        if let Some(world) = self.io.inner.model.sim() {
            if world.is_simulated_socket(self.std.as_fd()) {
                return Err(world.refuse(
                    "async I/O on a simulated socket (`AsyncRead`/`AsyncWrite`, readiness, \
                     `_async` methods)",
                ));
            }
        }
        self.registered.source(&self.io, self.std.as_fd())
    }

    /// `poll_read_ready`/`poll_write_ready`: the one poll slot of the direction.
    pub(crate) fn poll_ready(
        &self,
        interest: Interest,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if let Some(world) = self.simulated() {
            let fd = self.std.as_fd();
            return world.poll(&self.io, cx, |net, _, now| net.ready(now, fd, interest));
        }
        match self.source() {
            Ok(source) => source.poll_ready(interest, cx, Waiter::Poll),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }

    /// The simulated world, if this is a simulated socket: its async side is the world's (see
    /// `sim::net`), not the driver's.
    pub(crate) fn simulated(&self) -> Option<&crate::sim::world::World> {
        let world = self.io.inner.model.sim()?;
        world.is_simulated_socket(self.std.as_fd()).then_some(world)
    }

    /// One poll of a simulated socket's operation `attempt` (see [`simulated`](Self::simulated)).
    pub(crate) fn poll_simulated<T>(
        &self,
        world: &crate::sim::world::World,
        cx: &mut std::task::Context<'_>,
        attempt: impl FnOnce(
            &mut crate::sim::world::Network,
            &mut fastrand::Rng,
            std::time::Instant,
            BorrowedFd<'_>,
        ) -> crate::sim::world::Attempt<T>,
    ) -> std::task::Poll<io::Result<T>> {
        let fd = self.std.as_fd();
        world.poll(&self.io, cx, |net, rng, now| attempt(net, rng, now, fd))
    }

    /// Runs the non-blocking `f`; on `WouldBlock` clears the readiness it used up.
    pub(crate) fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        if let Some(world) = self.simulated() {
            return Err(world.refuse("`try_io` (a raw syscall) on a simulated socket"));
        }
        self.source()?.try_io(interest, f)
    }

    /// Polls the non-blocking transfer `f` of up to `len` bytes on the std socket until it
    /// does not report `WouldBlock` (the poll slot: for the `AsyncRead`/`AsyncWrite` impls). A
    /// short transfer uses the readiness up (see
    /// [`Source::try_transfer`](crate::driver::Source::try_transfer)).
    pub(crate) fn poll_transfer(
        &self,
        interest: Interest,
        cx: &mut std::task::Context<'_>,
        len: usize,
        mut f: impl FnMut(&S) -> io::Result<usize>,
    ) -> std::task::Poll<io::Result<usize>> {
        if self.simulated().is_some() {
            // `f` is `recv_now`/`send_now`, which a simulated socket runs on the world.
            loop {
                match f(&self.std) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        match self.poll_ready(interest, cx) {
                            std::task::Poll::Ready(Ok(())) => {}
                            std::task::Poll::Ready(Err(e)) => {
                                return std::task::Poll::Ready(Err(e))
                            }
                            std::task::Poll::Pending => return std::task::Poll::Pending,
                        }
                    }
                    r => return std::task::Poll::Ready(r),
                }
            }
        }
        match self.source() {
            Ok(source) => source.poll_transfer(interest, cx, Waiter::Poll, len, || f(&self.std)),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }

    /// [`io_async`](Self::io_async) for a stream transfer of up to `len` bytes.
    pub(crate) async fn transfer_async(
        &self,
        interest: Interest,
        len: usize,
        mut f: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.simulated().is_some() {
            return std::future::poll_fn(|cx| self.poll_transfer(interest, cx, len, &mut f)).await;
        }
        self.source()?
            .transfer(interest, len, || f(&self.std))
            .await
    }

    /// [`try_io`](Self::try_io) for a stream transfer of up to `len` bytes.
    pub(crate) fn try_transfer(
        &self,
        interest: Interest,
        len: usize,
        f: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.simulated().is_some() {
            // `f` runs on the world (see `poll_transfer`).
            return f();
        }
        self.source()?.try_transfer(interest, len, f)
    }

    /// Waits (as a future) until the non-blocking `f` on the std socket does not report
    /// `WouldBlock`. Any number of tasks may wait on one socket this way.
    pub(crate) async fn io_async<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        if let Some(world) = self.simulated() {
            // `f` is a std call on the descriptor, which a simulated socket does not have:
            // the types give their `_async` methods a simulated path of their own.
            return Err(world.refuse("a raw std call on a simulated socket"));
        }
        self.source()?.io(interest, || f(&self.std)).await
    }

    /// A non-blocking `recv(2)` (on the world for a simulated socket).
    pub(crate) fn recv_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(world) = self.simulated() {
            let fd = self.std.as_fd();
            return world.try_now(|net, _, now| net.recv(now, fd, buf, false));
        }
        Ok(rustix::net::recv(self.std.as_fd(), buf, rustix::net::RecvFlags::empty())?.0)
    }

    /// A non-blocking `send(2)` with `MSG_NOSIGNAL` (no `SIGPIPE`, as every send of zsync; on
    /// the world for a simulated socket).
    pub(crate) fn send_now(&self, buf: &[u8]) -> io::Result<usize> {
        if let Some(world) = self.simulated() {
            let fd = self.std.as_fd();
            return world.try_now(|net, rng, now| net.send(now, rng, fd, buf));
        }
        Ok(rustix::net::send(
            self.std.as_fd(),
            buf,
            rustix::net::SendFlags::NOSIGNAL,
        )?)
    }
}

impl<S: AsFd> AsFd for Socket<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.std.as_fd()
    }
}

/// The descriptor, left in non-blocking mode (`IntoRawFd`, `OwnedFd::from` of a socket type).
impl<S: Into<OwnedFd>> From<Socket<S>> for OwnedFd {
    fn from(sock: Socket<S>) -> OwnedFd {
        sock.std.into()
    }
}

impl Socket<std::net::UdpSocket> {
    /// [`peek`](Socket::peek) of a datagram and its sender (`recvfrom(2)` with `MSG_PEEK`).
    pub(crate) fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, std::net::SocketAddr)> {
        match op::custom(&self.io) {
            Some(model) => self.timeouts.reading(|deadline| {
                let op = Operation::RecvFrom {
                    fd: self.std.as_fd(),
                    buf,
                    peek: true,
                    deadline,
                };
                model.operate(op)?.into_datagram("recv_from")
            }),
            None => self.read_with(|s| s.peek_from(&mut *buf)),
        }
    }
}

/// An address type of a socket: whether a custom model answers for it (IP addresses), and the
/// conversion of its answer.
pub(crate) trait Address: Sized {
    /// Whether it is an IP socket's address, which a custom model's
    /// [`Operation::Address`] gives.
    const IP: bool;
    /// The model's answer as this type.
    fn from_model(addr: std::net::SocketAddr) -> io::Result<Self>;
}

impl Address for std::net::SocketAddr {
    const IP: bool = true;
    fn from_model(addr: std::net::SocketAddr) -> io::Result<Self> {
        Ok(addr)
    }
}

impl Address for std::os::unix::net::SocketAddr {
    const IP: bool = false;
    fn from_model(addr: std::net::SocketAddr) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a model gave the IP address {addr} for a Unix socket"),
        ))
    }
}

/// Tells a custom model, by [`Operation::Close`], that a socket's descriptor is about to
/// close; nothing on the built-in models (which make no note at all).
struct CloseNote(Option<(Io, RawFd)>);

impl CloseNote {
    fn new(io: &Io, fd: BorrowedFd<'_>) -> CloseNote {
        CloseNote(
            op::custom(io)
                .is_some()
                .then(|| (io.clone(), std::os::fd::AsRawFd::as_raw_fd(&fd))),
        )
    }
}

impl Drop for CloseNote {
    fn drop(&mut self) {
        let Some((io, fd)) = self.0.take() else {
            return;
        };
        if let Some(model) = op::custom(&io) {
            // SAFETY: the note is a field of the `Socket` that owns `fd`, declared before the
            // descriptor, so it drops while the descriptor is open; when the descriptor was
            // moved out (`into_std`, `OwnedFd::from`), the new owner holds it open. Borrowed
            // for this one call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            // A model's panic here would unwind out of a destructor: contained, and the note
            // is best effort (the descriptor closes anyway).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                model.operate(Operation::Close { fd })
            }));
        }
    }
}

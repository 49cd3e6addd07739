//! Unix-domain sockets: stream listeners and connections, datagram sockets.
//!
//! Each type wraps its [`std::os::unix::net`] counterpart, kept in non-blocking mode, exactly as
//! the TCP types wrap std's. Two waits cannot use descriptor readiness, because Linux reports an
//! unconnected Unix socket as always writable:
//!
//! - [`UnixStream::connect`] to a listener whose backlog is full fails with `EAGAIN` on a
//!   non-blocking socket (a blocking one would sleep inside the kernel, out of reach of
//!   cancellation);
//! - [`UnixDatagram::send_to`] to a socket whose receive queue is full fails the same way.
//!
//! Both retry after a short sleep that doubles from 1 ms up to 50 ms. The sleep is a
//! cancellation point and honours the running task's deadline (and, for `send_to`, the write
//! timeout).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use crate::context;
use crate::net::timeout::Timeouts;
use crate::park::{self, retry_on_fd, Interest};
use crate::Io;

/// First delay between two attempts of an operation that cannot wait for readiness.
const MIN_BACKOFF: Duration = Duration::from_millis(1);
/// Longest delay between two such attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Sleeps for `delay` (then doubles it, up to [`MAX_BACKOFF`]) before an operation is tried
/// again. Cancellation point; fails with `TimedOut` once `deadline` or the task's deadline passed.
fn backoff(deadline: Option<Instant>, delay: &mut Duration) -> io::Result<()> {
    if let Some(node) = context::current_cancel() {
        node.set_waker(park::current_waker);
    }
    context::check()?;
    let now = Instant::now();
    let mut until = now + *delay;
    if let Some(d) = context::effective_deadline(deadline) {
        if d <= now {
            return Err(crate::timed_out());
        }
        until = until.min(d);
    }
    park::park(Some(until));
    *delay = (*delay * 2).min(MAX_BACKOFF);
    context::check()
}

/// Runs a non-blocking `attempt` until it stops reporting `WouldBlock`, sleeping with
/// [`backoff`] in between. For operations whose readiness `poll` cannot report.
fn retry_with_backoff<T>(
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    context::check()?;
    let mut delay = MIN_BACKOFF;
    loop {
        match attempt() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => backoff(deadline, &mut delay)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => context::check()?,
            other => return other,
        }
    }
}

/// A Unix-domain stream socket server. Counterpart of [`std::os::unix::net::UnixListener`].
///
/// The listener remembers the [`Io`] it was created with; [`accept`](UnixListener::accept) is a
/// cancellation point. Dropping it does not remove the socket file.
///
/// ```
/// use std::io::{Read, Write};
/// use zsync::net::{UnixListener, UnixStream};
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let dir = std::env::temp_dir().join(format!("zsync-doc-unix-{}", std::process::id()));
///     std::fs::create_dir_all(&dir)?;
///     let path = dir.join("sock");
///     let _ = std::fs::remove_file(&path);
///     let listener = UnixListener::bind(io, &path)?;
///     let mut client = UnixStream::connect(io, &path)?; // queued in the listener's backlog
///     client.write_all(b"hi")?;
///     let (mut conn, _) = listener.accept()?;
///     let mut buf = [0; 2];
///     conn.read_exact(&mut buf)?;
///     assert_eq!(&buf, b"hi");
///     std::fs::remove_dir_all(&dir)
/// })
/// .unwrap();
/// ```
pub struct UnixListener {
    io: Io,
    inner: std::os::unix::net::UnixListener,
}

impl UnixListener {
    /// Creates the socket file `path` and listens on it.
    ///
    /// Errors: `AddrInUse` if `path` exists (even as a stale socket file: remove it first),
    /// `NotFound` if its directory does not exist, `InvalidInput` if the path is too long for a
    /// socket address.
    pub fn bind(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::from_std(io, std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Wraps a std listener (switching it to non-blocking mode).
    pub fn from_std(
        io: &Io,
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: io.clone(),
            inner: listener,
        })
    }

    /// Creates a second handle to the same socket (`dup`), like std's `try_clone`. The clone
    /// shares the socket and starts with this handle's timeouts.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        let clone = UnixListener::from_std(&self.io, self.inner.try_clone()?)?;
        Ok(clone)
    }

    /// Unwraps into a std listener in blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.inner.set_nonblocking(false)?;
        Ok(self.inner)
    }

    /// Waits for a connection. Cancellation point.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, peer) = retry_on_fd(self.inner.as_fd(), Interest::Read, None, || {
            self.inner.accept()
        })?;
        Ok((UnixStream::from_std(&self.io, stream)?, peer))
    }

    /// An iterator over accepted connections (each item as from [`accept`](Self::accept)).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// The `Io` this listener was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("addr", &self.inner.local_addr().ok())
            .field("fd", &self.inner.as_raw_fd())
            .finish()
    }
}

super::impl_fd_traits!(UnixListener);

/// A Unix-domain stream connection. Counterpart of [`std::os::unix::net::UnixStream`];
/// implements [`Read`] and [`Write`](std::io::Write) (also through `&UnixStream`).
///
/// Writes use `MSG_NOSIGNAL`, as std's TCP writes do: writing to a closed peer fails with
/// `BrokenPipe` instead of raising `SIGPIPE`.
///
/// Every read, write and connect is a cancellation point.
pub struct UnixStream {
    io: Io,
    inner: std::os::unix::net::UnixStream,
    timeouts: Timeouts,
}

impl UnixStream {
    /// Connects to the listener at `path`. Cancellation point.
    ///
    /// A listener whose backlog is full makes the kernel refuse with `EAGAIN`; `connect` then
    /// retries after a short sleep (1 ms, doubling up to 50 ms: an unconnected Unix socket
    /// always polls writable, so there is no readiness to wait for) until the listener accepts,
    /// the task is canceled or its deadline passes.
    ///
    /// Errors: `NotFound` if `path` does not exist, `ConnectionRefused` if nothing listens on it.
    pub fn connect(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        context::check()?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        retry_with_backoff(None, || match socket.connect(&addr) {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                // Not what Linux does for Unix sockets, but POSIX allows it: wait as for TCP.
                retry_on_fd(socket.as_fd(), Interest::Write, None, || {
                    if let Some(err) = socket.take_error()? {
                        return Err(err);
                    }
                    match socket.peer_addr() {
                        Ok(_) => Ok(()),
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            Err(io::ErrorKind::WouldBlock.into())
                        }
                        Err(e) => Err(e),
                    }
                })
            }
            other => other,
        })?;
        let fd: OwnedFd = socket.into();
        Ok(UnixStream {
            io: io.clone(),
            inner: std::os::unix::net::UnixStream::from(fd),
            timeouts: Timeouts::default(),
        })
    }

    /// A pair of connected, unnamed sockets.
    pub fn pair(io: &Io) -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(io, a)?, UnixStream::from_std(io, b)?))
    }

    /// Wraps a connected std stream (switching it to non-blocking mode).
    pub fn from_std(io: &Io, stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream {
            io: io.clone(),
            inner: stream,
            timeouts: Timeouts::default(),
        })
    }

    /// Creates a second handle to the same socket (`dup`), like std's `try_clone`. The clone
    /// shares the socket and starts with this handle's timeouts.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        let clone = UnixStream::from_std(&self.io, self.inner.try_clone()?)?;
        clone.timeouts.set_read(self.timeouts.read())?;
        clone.timeouts.set_write(self.timeouts.write())?;
        Ok(clone)
    }

    /// Unwraps into a std stream in blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.inner.set_nonblocking(false)?;
        Ok(self.inner)
    }

    /// Wraps a raw connected Unix stream socket descriptor.
    ///
    /// # Safety
    /// `fd` must be an open, connected Unix stream socket that nothing else owns.
    pub unsafe fn from_raw_fd(io: &Io, fd: RawFd) -> io::Result<UnixStream> {
        // SAFETY: the caller guarantees `fd` is an owned, open Unix stream socket.
        let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
        UnixStream::from_std(io, stream)
    }

    /// The `Io` this stream was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Shuts down the read half, the write half, or both. Reads after `Shutdown::Read` return 0;
    /// after the peer's `Shutdown::Write` they return 0 once the queued data is read.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The remote address (unnamed for a client socket or a [`pair`](Self::pair)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address (unnamed for a client socket or a [`pair`](Self::pair)).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Makes reads that wait longer than `timeout` fail with
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) (`EAGAIN`), as std's sockets report an expired
    /// `SO_RCVTIMEO` on Unix (`None`: wait forever). Each wait gets the whole `timeout`.
    ///
    /// The task's deadline ([`Io::with_deadline`](crate::Io::with_deadline),
    /// [`Io::timeout`](crate::Io::timeout)) still ends the operation with `TimedOut`; when both
    /// apply, the one that passes first gives its kind.
    ///
    /// Errors: `InvalidInput` for a zero duration, as std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_read(timeout)
    }

    /// Makes writes that wait longer than `timeout` fail with
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) (`EAGAIN`), as std's sockets report an expired
    /// `SO_SNDTIMEO` on Unix (`None`: wait forever). Each wait gets the whole `timeout`.
    ///
    /// The task's deadline ([`Io::with_deadline`](crate::Io::with_deadline),
    /// [`Io::timeout`](crate::Io::timeout)) still ends the operation with `TimedOut`; when both
    /// apply, the one that passes first gives its kind.
    ///
    /// Errors: `InvalidInput` for a zero duration, as std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_write(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.timeouts.read()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.timeouts.write()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.timeouts
            .reading(|deadline| crate::op::recv::recv(&self.io, self.inner.as_fd(), buf, deadline))
    }

    fn read_vectored_inner(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.timeouts.reading(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Read, deadline, || {
                (&self.inner).read_vectored(bufs)
            })
        })
    }

    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        self.timeouts
            .writing(|deadline| crate::op::send::send(&self.io, self.inner.as_fd(), buf, deadline))
    }

    fn write_vectored_inner(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.timeouts.writing(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Write, deadline, || {
                SockRef::from(&self.inner).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            })
        })
    }
}

super::impl_stream_io!(UnixStream);
super::impl_fd_traits!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .field("fd", &self.inner.as_raw_fd())
            .finish()
    }
}

/// A Unix-domain datagram socket. Counterpart of [`std::os::unix::net::UnixDatagram`].
///
/// Every send and receive is a cancellation point.
///
/// ```
/// use zsync::net::UnixDatagram;
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let (a, b) = UnixDatagram::pair(io)?;
///     a.send(b"ping")?;
///     let mut buf = [0; 8];
///     let n = b.recv(&mut buf)?;
///     assert_eq!(&buf[..n], b"ping");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct UnixDatagram {
    io: Io,
    inner: std::os::unix::net::UnixDatagram,
    timeouts: Timeouts,
}

impl UnixDatagram {
    /// Creates the socket file `path` and binds a datagram socket to it.
    ///
    /// Errors: `AddrInUse` if `path` exists, `NotFound` if its directory does not exist.
    pub fn bind(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(io, std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// A socket bound to no address: it can send, and receive replies only once connected.
    pub fn unbound(io: &Io) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(io, std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A pair of connected, unnamed datagram sockets.
    pub fn pair(io: &Io) -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((
            UnixDatagram::from_std(io, a)?,
            UnixDatagram::from_std(io, b)?,
        ))
    }

    /// Wraps a std socket (switching it to non-blocking mode).
    pub fn from_std(io: &Io, socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram {
            io: io.clone(),
            inner: socket,
            timeouts: Timeouts::default(),
        })
    }

    /// Creates a second handle to the same socket (`dup`), like std's `try_clone`. The clone
    /// shares the socket and starts with this handle's timeouts.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        let clone = UnixDatagram::from_std(&self.io, self.inner.try_clone()?)?;
        clone.timeouts.set_read(self.timeouts.read())?;
        clone.timeouts.set_write(self.timeouts.write())?;
        Ok(clone)
    }

    /// Unwraps into a std socket in blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        self.inner.set_nonblocking(false)?;
        Ok(self.inner)
    }

    /// The `Io` this socket was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Sets the default destination of [`send`](Self::send) and restricts
    /// [`recv`](Self::recv) to datagrams from the socket at `path`. Does not wait.
    ///
    /// Errors: `NotFound` if `path` does not exist, `ConnectionRefused` if no socket is bound to it.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.inner.connect(path)
    }

    /// Sends `buf` to the connected peer, waiting while the peer's queue is full.
    /// Cancellation point.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.timeouts.writing(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Write, deadline, || {
                self.inner.send(buf)
            })
        })
    }

    /// Receives one datagram from the connected peer. Cancellation point.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.timeouts.reading(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Read, deadline, || {
                self.inner.recv(buf)
            })
        })
    }

    /// Sends `buf` to the socket bound at `path`. Cancellation point.
    ///
    /// While the receiver's queue is full, retries after a short sleep (1 ms, doubling up to
    /// 50 ms: an unconnected socket always polls writable) until the datagram is queued, the
    /// write timeout or the task's deadline passes, or the task is canceled. A
    /// [`connect`](Self::connect)ed socket's [`send`](Self::send) waits for the peer's queue
    /// directly.
    pub fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.timeouts
            .writing(|deadline| retry_with_backoff(deadline, || self.inner.send_to(buf, path)))
    }

    /// Receives one datagram and its sender's address. Cancellation point.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.timeouts.reading(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Read, deadline, || {
                self.inner.recv_from(buf)
            })
        })
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address (`NotConnected` without [`connect`](Self::connect)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Makes receives that wait longer than `timeout` fail with
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) (`EAGAIN`), as std's sockets report an expired
    /// `SO_RCVTIMEO` on Unix (`None`: wait forever). Each wait gets the whole `timeout`.
    ///
    /// The task's deadline ([`Io::with_deadline`](crate::Io::with_deadline),
    /// [`Io::timeout`](crate::Io::timeout)) still ends the operation with `TimedOut`; when both
    /// apply, the one that passes first gives its kind.
    ///
    /// Errors: `InvalidInput` for a zero duration, as std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_read(timeout)
    }

    /// Makes sends that wait longer than `timeout` fail with
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) (`EAGAIN`), as std's sockets report an expired
    /// `SO_SNDTIMEO` on Unix (`None`: wait forever). Each wait gets the whole `timeout`.
    ///
    /// The task's deadline ([`Io::with_deadline`](crate::Io::with_deadline),
    /// [`Io::timeout`](crate::Io::timeout)) still ends the operation with `TimedOut`; when both
    /// apply, the one that passes first gives its kind.
    ///
    /// Errors: `InvalidInput` for a zero duration, as std.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeouts.set_write(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.timeouts.read()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.timeouts.write()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("local", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .field("fd", &self.inner.as_raw_fd())
            .finish()
    }
}

super::impl_fd_traits!(UnixDatagram);

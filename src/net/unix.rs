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

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Type};

use super::async_io::{impl_async_stream, impl_readiness};
use super::methods::{impl_socket, impl_stream_io, impl_timeouts};
use super::socket::Socket;
use crate::context;
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
    let now = crate::clock::now();
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
    sock: Socket<std::os::unix::net::UnixListener>,
}

impl_socket!(
    UnixListener,
    std::os::unix::net::UnixListener,
    SocketAddr,
    "listener"
);
impl_readiness!(
    UnixListener,
    "use std::task::{Context, Waker};
use zsync::net::UnixListener;

zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    let path = std::env::temp_dir().join(format!(\"zsync-doc-ready-{}.sock\", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(io, &path)?;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(listener.poll_read_ready(&mut cx).is_ready()); // ready until a try says otherwise
    std::fs::remove_file(&path)?;
    Ok(())
})
.unwrap();"
);

impl UnixListener {
    /// Creates the socket file `path` and listens on it.
    ///
    /// Errors: `AddrInUse` if `path` exists (even as a stale socket file: remove it first),
    /// `NotFound` if its directory does not exist, `InvalidInput` if the path is too long for a
    /// socket address.
    pub fn bind(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixListener> {
        crate::sim::world::refuse_in_sim(io, "`net::unix_bind` (a real Unix listener)")?;
        UnixListener::from_std(io, std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Waits for a connection. Cancellation point.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Accept,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        let (stream, peer) = crate::op::other_or(self.sock.io(), "net::unix_accept", || {
            retry_on_fd(self.sock.fd(), Interest::Read, None, || {
                self.sock.get().accept()
            })
        })?;
        Ok((UnixStream::from_std(self.sock.io(), stream)?, peer))
    }

    /// An iterator over accepted connections (each item as from [`accept`](Self::accept)).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }

    /// Waits for a connection, as a future (see [`TcpListener::accept_async`](crate::net::TcpListener::accept_async)).
    ///
    /// ```
    /// use zsync::net::{UnixListener, UnixStream};
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let dir = std::env::temp_dir().join(format!("zsync-doc-accept-{}", std::process::id()));
    ///     std::fs::create_dir_all(&dir)?;
    ///     let path = dir.join("s.sock");
    ///     let listener = UnixListener::bind(io, &path)?;
    ///     let (client, (server, _)) = io.block_on(async {
    ///         let client = UnixStream::connect_async(io, &path).await?;
    ///         Ok::<_, std::io::Error>((client, listener.accept_async().await?))
    ///     })??;
    ///     drop((client, server));
    ///     std::fs::remove_dir_all(&dir)?;
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn accept_async(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, peer) = self.sock.io_async(Interest::Read, |l| l.accept()).await?;
        Ok((UnixStream::from_std(self.sock.io(), stream)?, peer))
    }
}

/// A Unix-domain stream connection. Counterpart of [`std::os::unix::net::UnixStream`];
/// implements [`Read`](std::io::Read) and [`Write`](std::io::Write) (also through `&UnixStream`).
///
/// Writes use `MSG_NOSIGNAL`, vectored ones too, as [`TcpStream`](super::TcpStream)'s do:
/// writing to a closed peer fails with `BrokenPipe` instead of raising `SIGPIPE`. The local and
/// peer addresses are unnamed for a client socket and for a [`pair`](Self::pair).
///
/// Every read, write and connect is a cancellation point.
pub struct UnixStream {
    sock: Socket<std::os::unix::net::UnixStream>,
}

impl_socket!(
    UnixStream,
    std::os::unix::net::UnixStream,
    SocketAddr,
    "stream",
    peer_addr
);
impl_stream_io!(UnixStream);
impl_readiness!(
    UnixStream,
    "use std::task::{Context, Waker};
use zsync::net::UnixStream;

zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    let (a, _b) = UnixStream::pair(io)?;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(a.poll_write_ready(&mut cx).is_ready());
    let n = a.try_io(zsync::net::Interest::Write, || {
        rustix::net::send(&a, b\"x\", rustix::net::SendFlags::NOSIGNAL).map_err(Into::into)
    })?;
    assert_eq!(n, 1);
    Ok(())
})
.unwrap();"
);
crate::net::owned::impl_owned_stream!(
    UnixStream,
    "use zsync::net::UnixStream;

zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    let (a, b) = UnixStream::pair(io)?;
    io.block_on(async {
        let (n, _) = a.write_owned(b\"hi\".to_vec()).await;
        assert_eq!(n?, 2);
        let (n, buf) = b.read_owned(vec![0; 16]).await;
        assert_eq!(&buf[..n?], &b\"hi\"[..]);
        Ok(())
    })?
})
.unwrap();"
);
impl_async_stream!(
    UnixStream,
    "use zsync::net::UnixStream;

zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    let (a, b) = UnixStream::pair(io)?;
    io.block_on(async {
        a.write_async(b\"hi\").await?;
        let mut buf = [0; 2];
        let n = b.read_async(&mut buf).await?;
        assert_eq!(&buf[..n], &b\"hi\"[..n]);
        Ok(())
    })?
})
.unwrap();"
);
impl_timeouts!(UnixStream, "reads", "writes");

impl UnixStream {
    /// Connects to the listener at `path`. Cancellation point.
    ///
    /// A listener whose backlog is full makes the kernel refuse with `EAGAIN`; `connect` then
    /// retries after a short sleep (1 ms, doubling up to 50 ms: an unconnected Unix socket
    /// always polls writable, so there is no readiness to wait for) until the listener accepts,
    /// the task is canceled or its deadline passes.
    ///
    /// Errors: `NotFound` if `path` does not exist, `ConnectionRefused` if nothing listens on it.
    #[track_caller]
    pub fn connect(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Connect,
            crate::diag::wait_point::Object::None,
        );
        Self::connect_blocking(io, path)
    }

    /// Connects to the listener at `path`, as a future. A listener whose backlog is full is
    /// retried after short async sleeps, as [`connect`](Self::connect) does.
    ///
    /// Errors: `NotFound` if `path` does not exist, `ConnectionRefused` if nothing listens on it.
    ///
    /// ```
    /// use zsync::net::{UnixListener, UnixStream};
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let missing = std::env::temp_dir().join("zsync-doc-no-such.sock");
    ///     let e = io.block_on(UnixStream::connect_async(io, &missing))?.unwrap_err();
    ///     assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn connect_async(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        backoff_async(|| socket.connect(&addr)).await?;
        let stream = std::os::unix::net::UnixStream::from(OwnedFd::from(socket));
        Ok(UnixStream {
            sock: Socket::from_nonblocking(io, stream),
        })
    }

    fn connect_blocking(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        context::check()?;
        let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        crate::op::other_or(io, "net::unix_connect", || connect_unix(&socket, &addr))?;
        let stream = std::os::unix::net::UnixStream::from(OwnedFd::from(socket));
        Ok(UnixStream {
            sock: Socket::from_nonblocking(io, stream),
        })
    }

    /// A pair of connected, unnamed sockets.
    pub fn pair(io: &Io) -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(io, a)?, UnixStream::from_std(io, b)?))
    }

    /// Wraps a raw connected Unix stream socket descriptor.
    ///
    /// # Safety
    /// `fd` must be an open, connected Unix stream socket that nothing else owns.
    pub unsafe fn from_raw_fd(io: &Io, fd: RawFd) -> io::Result<UnixStream> {
        // SAFETY: the caller guarantees `fd` is an owned, open Unix stream socket.
        let sock = unsafe { Socket::from_raw_fd(io, fd) }?;
        Ok(UnixStream { sock })
    }

    /// Shuts down the read half, the write half, or both. Reads after `Shutdown::Read` return 0;
    /// after the peer's `Shutdown::Write` they return 0 once the queued data is read.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The remote address (unnamed for a client socket or a [`pair`](Self::pair)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.get().peer_addr()
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
    sock: Socket<std::os::unix::net::UnixDatagram>,
}

impl_socket!(
    UnixDatagram,
    std::os::unix::net::UnixDatagram,
    SocketAddr,
    "socket",
    peer_addr
);
impl_timeouts!(UnixDatagram, "receives", "sends");
impl_readiness!(
    UnixDatagram,
    "use std::task::{Context, Waker};
use zsync::net::UnixDatagram;

zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    let (a, _b) = UnixDatagram::pair(io)?;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(a.poll_write_ready(&mut cx).is_ready());
    Ok(())
})
.unwrap();"
);

/// The async side: futures waiting through the async driver (any number of tasks may wait on
/// one socket); dropped, they leave the socket untouched. The socket's timeouts do not apply
/// (bound them with [`zsync::time::timeout`](crate::time::timeout)).
///
/// ```
/// use zsync::net::UnixDatagram;
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let (a, b) = UnixDatagram::pair(io)?;
///     io.block_on(async {
///         a.send_async(b"ping").await?;
///         let mut buf = [0; 16];
///         let n = b.recv_async(&mut buf).await?;
///         assert_eq!(&buf[..n], b"ping");
///         let dir = std::env::temp_dir().join(format!("zsync-doc-dgram-{}", std::process::id()));
///         std::fs::create_dir_all(&dir)?;
///         let path = dir.join("c.sock");
///         let c = UnixDatagram::bind(io, &path)?;
///         a.send_to_async(b"hi", &path).await?;
///         let (n, _from) = c.recv_from_async(&mut buf).await?;
///         assert_eq!(&buf[..n], b"hi");
///         std::fs::remove_dir_all(&dir)?;
///         Ok(())
///     })?
/// })
/// .unwrap();
/// ```
impl UnixDatagram {
    /// Sends `buf` to the connected peer once its queue has room, as a future.
    pub async fn send_async(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.io_async(Interest::Write, |s| s.send(buf)).await
    }

    /// Receives one datagram from the connected peer, as a future.
    pub async fn recv_async(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.io_async(Interest::Read, |s| s.recv(buf)).await
    }

    /// Sends `buf` to the socket bound at `path`, as a future. While the receiver's queue is
    /// full it retries after a short [`sleep`](crate::time::sleep) (1 ms, doubling up to 50
    /// ms): an unconnected socket always polls writable, so there is no readiness to wait for.
    pub async fn send_to_async(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        backoff_async(|| self.sock.get().send_to(buf, path)).await
    }

    /// Receives one datagram and its sender's address, as a future.
    pub async fn recv_from_async(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock
            .io_async(Interest::Read, |s| s.recv_from(buf))
            .await
    }
}

/// Retries `attempt` while it reports `WouldBlock`, after async sleeps of 1 ms doubling up to
/// 50 ms (for the waits readiness cannot express; see the module docs).
async fn backoff_async<T>(mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut delay = MIN_BACKOFF;
    loop {
        match attempt() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                crate::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

impl UnixDatagram {
    /// Creates the socket file `path` and binds a datagram socket to it.
    ///
    /// Errors: `AddrInUse` if `path` exists, `NotFound` if its directory does not exist.
    pub fn bind(io: &Io, path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        crate::sim::world::refuse_in_sim(io, "`net::unix_bind` (a real Unix socket)")?;
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

    /// Sets the default destination of [`send`](Self::send) and restricts
    /// [`recv`](Self::recv) to datagrams from the socket at `path`. Does not wait.
    ///
    /// Errors: `NotFound` if `path` does not exist, `ConnectionRefused` if no socket is bound to it.
    #[track_caller]
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Connect,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(self)),
        );
        self.sock.get().connect(path)
    }

    /// Sends `buf` to the connected peer, waiting while the peer's queue is full.
    /// Cancellation point.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Send,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(self)),
        );
        self.sock.write_with(|s| s.send(buf))
    }

    /// Receives one datagram from the connected peer. Cancellation point.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Recv,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(self)),
        );
        self.sock.read_with(|s| s.recv(buf))
    }

    /// Sends `buf` to the socket bound at `path`. Cancellation point.
    ///
    /// While the receiver's queue is full, retries after a short sleep (1 ms, doubling up to
    /// 50 ms: an unconnected socket always polls writable) until the datagram is queued, the
    /// write timeout or the task's deadline passes, or the task is canceled. A
    /// [`connect`](Self::connect)ed socket's [`send`](Self::send) waits for the peer's queue
    /// directly.
    #[track_caller]
    pub fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Send,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(self)),
        );
        let path = path.as_ref();
        self.sock
            .writing(|deadline| retry_with_backoff(deadline, || self.sock.get().send_to(buf, path)))
    }

    /// Receives one datagram and its sender's address. Cancellation point.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Recv,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(self)),
        );
        self.sock.read_with(|s| s.recv_from(buf))
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The connected peer's address (`NotConnected` without [`connect`](Self::connect)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.get().peer_addr()
    }
}

/// `connect(2)` of a non-blocking Unix stream socket, retried while the listener's backlog is
/// full (see `retry_with_backoff`).
fn connect_unix(socket: &socket2::Socket, addr: &SockAddr) -> io::Result<()> {
    retry_with_backoff(None, || match socket.connect(addr) {
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
    })
}

//! TCP listeners and streams.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::net::addr::{self, ToSocketAddrs};
use crate::net::timeout::Timeouts;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

/// Socket options for [`TcpListener::bind_with`], set before the socket is bound.
///
/// The defaults are those of [`TcpListener::bind`]: `SO_REUSEADDR` on (as std does on Unix),
/// `SO_REUSEPORT` off, a backlog of 1024, the system's `IPV6_V6ONLY` default.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    reuse_address: bool,
    reuse_port: bool,
    backlog: i32,
    only_v6: Option<bool>,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions::new()
    }
}

impl ListenOptions {
    /// The defaults of [`TcpListener::bind`].
    pub fn new() -> ListenOptions {
        ListenOptions {
            reuse_address: true,
            reuse_port: false,
            backlog: 1024,
            only_v6: None,
        }
    }

    /// `SO_REUSEADDR`: allow binding a port that still has connections in `TIME_WAIT`.
    pub fn reuse_address(mut self, on: bool) -> ListenOptions {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT`: allow several listeners (each with this option) on the same address and
    /// port; the kernel balances incoming connections between them.
    pub fn reuse_port(mut self, on: bool) -> ListenOptions {
        self.reuse_port = on;
        self
    }

    /// The length of the queue of connections not yet accepted (the kernel may clamp it to
    /// `net.core.somaxconn`).
    pub fn backlog(mut self, backlog: u32) -> ListenOptions {
        self.backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self
    }

    /// `IPV6_V6ONLY` for IPv6 addresses: `true` refuses IPv4-mapped connections. Ignored for
    /// IPv4 addresses.
    pub fn only_v6(mut self, on: bool) -> ListenOptions {
        self.only_v6 = Some(on);
        self
    }
}

/// A TCP socket server, listening for connections. Counterpart of [`std::net::TcpListener`].
///
/// The listener remembers the [`Io`] it was created with; [`accept`](TcpListener::accept) is a
/// cancellation point.
pub struct TcpListener {
    io: Io,
    inner: std::net::TcpListener,
}

impl TcpListener {
    /// Binds to the first address of `addr` that works (with `SO_REUSEADDR`, as std does on Unix)
    /// and listens with a backlog of 1024.
    ///
    /// Errors: `AddrInUse` if the port is taken, `AddrNotAvailable` for an address not on this
    /// host, `NotFound` for a name that does not resolve.
    pub fn bind(io: &Io, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with(io, addr, &ListenOptions::new())
    }

    /// Binds to the first address of `addr` that works with the socket options of `options`
    /// (`SO_REUSEADDR`, `SO_REUSEPORT`, backlog) and listens.
    ///
    /// Errors as for [`bind`](Self::bind).
    ///
    /// ```
    /// use zsync::net::{ListenOptions, TcpListener};
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let opts = ListenOptions::new().reuse_port(true).backlog(16);
    ///     let a = TcpListener::bind_with(io, "127.0.0.1:0", &opts).unwrap();
    ///     // A second listener may share the port: the kernel spreads connections over both.
    ///     let b = TcpListener::bind_with(io, a.local_addr().unwrap(), &opts).unwrap();
    ///     assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
    /// });
    /// ```
    pub fn bind_with(
        io: &Io,
        addr: impl ToSocketAddrs,
        options: &ListenOptions,
    ) -> io::Result<TcpListener> {
        addr::each_addr(io, addr, |a| {
            let socket = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(options.reuse_address)?;
            if options.reuse_port {
                socket.set_reuse_port(true)?;
            }
            if let (Some(only), SocketAddr::V6(_)) = (options.only_v6, a) {
                socket.set_only_v6(only)?;
            }
            socket.bind(&a.into())?;
            socket.listen(options.backlog)?;
            TcpListener::from_std(io, socket.into())
        })
    }

    /// Wraps a std listener (switching it to non-blocking mode).
    pub fn from_std(io: &Io, listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: io.clone(),
            inner: listener,
        })
    }

    /// Creates a second handle to the same socket (`dup`), like std's `try_clone`. The clone
    /// shares the socket and starts with this handle's timeouts.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        let clone = TcpListener::from_std(&self.io, self.inner.try_clone()?)?;
        Ok(clone)
    }

    /// Unwraps into a std listener in blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.inner.set_nonblocking(false)?;
        Ok(self.inner)
    }

    /// Waits for a connection. Cancellation point.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = crate::op::accept::accept(&self.io, self.inner.as_fd())?;
        let peer = peer
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP peer address"))?;
        // The socket is non-blocking already (`SOCK_NONBLOCK`).
        let stream = TcpStream {
            io: self.io.clone(),
            inner: std::net::TcpStream::from(fd),
            timeouts: Timeouts::default(),
        };
        Ok((stream, peer))
    }

    /// An iterator over accepted connections (each item as from [`accept`](Self::accept)).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets the IP time-to-live of accepted connections.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
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

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.inner.local_addr().ok())
            .field("fd", &self.inner.as_raw_fd())
            .finish()
    }
}

super::impl_fd_traits!(TcpListener);

/// A TCP connection. Counterpart of [`std::net::TcpStream`]; implements [`Read`] and [`Write`]
/// (also through `&TcpStream`), so std and ecosystem helpers work on it unchanged.
///
/// Every read, write and connect is a cancellation point.
pub struct TcpStream {
    io: Io,
    inner: std::net::TcpStream,
    timeouts: Timeouts,
}

impl TcpStream {
    /// Connects to the first address of `addr` that accepts. A host name is resolved without
    /// stalling other tasks. Cancellation point.
    ///
    /// Errors: `ConnectionRefused` if nothing listens, `NotFound` if the name does not resolve.
    pub fn connect(io: &Io, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        addr::each_addr(io, addr, |a| Self::connect_addr(io, a, None))
    }

    /// Connects to `addr`, giving up with `TimedOut` after `timeout`. Cancellation point.
    pub fn connect_timeout(io: &Io, addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        Self::connect_addr(io, *addr, Some(Instant::now() + timeout))
    }

    fn connect_addr(io: &Io, addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        crate::context::check()?;
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        crate::op::connect::connect(io, socket.as_fd(), &addr.into(), deadline)?;
        let stream: std::net::TcpStream = socket.into();
        Ok(TcpStream {
            io: io.clone(),
            inner: stream,
            timeouts: Timeouts::default(),
        })
    }

    /// Wraps a connected std stream (switching it to non-blocking mode).
    pub fn from_std(io: &Io, stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream {
            io: io.clone(),
            inner: stream,
            timeouts: Timeouts::default(),
        })
    }

    /// Creates a second handle to the same socket (`dup`), like std's `try_clone`. The clone
    /// shares the socket and starts with this handle's timeouts.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        let clone = TcpStream::from_std(&self.io, self.inner.try_clone()?)?;
        clone.timeouts.set_read(self.timeouts.read())?;
        clone.timeouts.set_write(self.timeouts.write())?;
        Ok(clone)
    }

    /// Unwraps into a std stream in blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.inner.set_nonblocking(false)?;
        Ok(self.inner)
    }

    /// The `Io` this stream was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Shuts down the read half, the write half, or both. Reads after `Shutdown::Read` return 0.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.set_nodelay(on)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Enables `SO_KEEPALIVE` with the given idle time before the first probe, or disables it.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let sock = SockRef::from(&self.inner);
        match idle {
            Some(idle) => sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)),
            None => sock.set_keepalive(false),
        }
    }

    /// Whether `SO_KEEPALIVE` is on.
    pub fn keepalive(&self) -> io::Result<bool> {
        SockRef::from(&self.inner).keepalive()
    }

    /// Sets `SO_LINGER`: `Some(d)` makes close wait up to `d` for unsent data (`Some(0)` resets
    /// the connection on close); `None` restores the default.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(&self.inner).set_linger(linger)
    }

    /// Reads `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(&self.inner).linger()
    }

    /// Sets `SO_RCVBUF` (the kernel may double or clamp it).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        SockRef::from(&self.inner).set_recv_buffer_size(size)
    }

    /// Reads `SO_RCVBUF`.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(&self.inner).recv_buffer_size()
    }

    /// Sets `SO_SNDBUF` (the kernel may double or clamp it).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        SockRef::from(&self.inner).set_send_buffer_size(size)
    }

    /// Reads `SO_SNDBUF`.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(&self.inner).send_buffer_size()
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
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::time::{Duration, Instant};
    /// use zsync::net::{TcpListener, TcpStream};
    ///
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind(io, "127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(io, listener.local_addr()?)?;
    ///     let _server = listener.accept()?; // sends nothing
    ///     client.set_read_timeout(Some(Duration::from_millis(10)))?;
    ///     let e = client.read(&mut [0; 8]).unwrap_err();
    ///     assert_eq!(e.kind(), ErrorKind::WouldBlock); // the socket's timeout, as std
    ///     let deadline = Instant::now() + Duration::from_millis(5);
    ///     let e = io.with_deadline(deadline, |_| client.read(&mut [0; 8])).unwrap_err();
    ///     assert!(zsync::is_timed_out(&e)); // the task's deadline came first
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
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

    /// Reads without removing the data from the queue. Cancellation point.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.timeouts.reading(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Read, deadline, || {
                self.inner.peek(buf)
            })
        })
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
                (&self.inner).write_vectored(bufs)
            })
        })
    }
}

super::impl_stream_io!(TcpStream);
super::impl_fd_traits!(TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .field("fd", &self.inner.as_raw_fd())
            .finish()
    }
}

impl TcpStream {
    /// Wraps a raw connected socket descriptor.
    ///
    /// # Safety
    /// `fd` must be an open, connected TCP socket that nothing else owns.
    pub unsafe fn from_raw_fd(io: &Io, fd: RawFd) -> io::Result<TcpStream> {
        // SAFETY: the caller guarantees `fd` is an owned, open TCP socket.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        TcpStream::from_std(io, stream)
    }
}

//! TCP listeners and streams.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Type};

use super::async_io::{impl_async_stream, impl_readiness};
use super::methods::{impl_socket, impl_stream_io, impl_timeouts, impl_ttl};
use super::socket::Socket;
use crate::net::addr::{self, ToSocketAddrs};
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
    sock: Socket<std::net::TcpListener>,
}

impl_socket!(TcpListener, std::net::TcpListener, SocketAddr, "listener");
impl_ttl!(TcpListener, "accepted connections");
impl_readiness!(
    TcpListener,
    "use std::task::{Context, Waker};
use zsync::net::TcpListener;

zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    let listener = TcpListener::bind(io, \"127.0.0.1:0\")?;
    let mut cx = Context::from_waker(Waker::noop());
    // Nobody connected: accepting would block.
    let e = listener
        .try_io(zsync::net::Interest::Read, || {
            socket2::SockRef::from(&listener).accept().map(|_| ())
        })
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert!(listener.poll_read_ready(&mut cx).is_pending());
    Ok(())
})
.unwrap();"
);

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
            let socket = socket2::Socket::new(
                Domain::for_address(a),
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )?;
            socket.set_reuse_address(options.reuse_address)?;
            if options.reuse_port {
                socket.set_reuse_port(true)?;
            }
            if let (Some(only), SocketAddr::V6(_)) = (options.only_v6, a) {
                socket.set_only_v6(only)?;
            }
            match crate::op::custom(io) {
                Some(model) => crate::op::done_of(
                    model,
                    crate::model::operation::Operation::Bind {
                        fd: socket.as_fd(),
                        addr: a,
                        backlog: Some(options.backlog.max(0) as u32),
                    },
                )?,
                None => {
                    socket.bind(&a.into())?;
                    socket.listen(options.backlog)?;
                }
            }
            let listener = std::net::TcpListener::from(OwnedFd::from(socket));
            Ok(TcpListener {
                sock: Socket::from_nonblocking(io, listener),
            })
        })
    }

    /// Waits for a connection. Cancellation point.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Accept,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        let (fd, peer) = crate::op::accept::accept(self.sock.io(), self.sock.fd())?;
        let peer = peer
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP peer address"))?;
        // The socket is non-blocking already (`SOCK_NONBLOCK`).
        let stream = TcpStream {
            sock: Socket::from_nonblocking(self.sock.io(), fd.into()),
        };
        Ok((stream, peer))
    }

    /// An iterator over accepted connections (each item as from [`accept`](Self::accept)).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }

    /// Waits for a connection, as a future: [`accept`](Self::accept) through the async driver
    /// (any number of tasks may wait on one listener). Dropped, it leaves the listener
    /// untouched.
    ///
    /// ```
    /// use zsync::net::{TcpListener, TcpStream};
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind(io, "127.0.0.1:0")?;
    ///     let _client = TcpStream::connect(io, listener.local_addr()?)?;
    ///     let (_stream, peer) = io.block_on(listener.accept_async())??;
    ///     assert!(peer.ip().is_loopback());
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn accept_async(&self) -> io::Result<(TcpStream, SocketAddr)> {
        if let Some(world) = self.sock.simulated() {
            let fd = std::future::poll_fn(|cx| {
                self.sock.poll_simulated(world, cx, |net, _, now, fd| {
                    net.accept(now, fd, crate::sim::world::placeholder_stream)
                })
            })
            .await?;
            let stream = TcpStream {
                sock: Socket::from_nonblocking(self.sock.io(), fd.into()),
            };
            let peer = stream.peer_addr()?;
            return Ok((stream, peer));
        }
        let (stream, peer) = self
            .sock
            .io_async(crate::net::Interest::Read, |l| l.accept())
            .await?;
        Ok((TcpStream::from_std(self.sock.io(), stream)?, peer))
    }
}

/// A TCP connection. Counterpart of [`std::net::TcpStream`]; implements [`Read`](io::Read) and
/// [`Write`](io::Write) (also through `&TcpStream`), so std and ecosystem helpers work on it
/// unchanged.
///
/// Every read, write and connect is a cancellation point. Writes use `MSG_NOSIGNAL`, vectored
/// ones too: writing to a closed peer fails with `BrokenPipe` instead of raising `SIGPIPE`.
pub struct TcpStream {
    sock: Socket<std::net::TcpStream>,
}

impl_socket!(
    TcpStream,
    std::net::TcpStream,
    SocketAddr,
    "stream",
    peer_addr
);
impl_stream_io!(TcpStream);
impl_readiness!(
    TcpStream,
    "use std::task::{Context, Waker};
use zsync::net::{Interest, TcpListener, TcpStream};

zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    let listener = TcpListener::bind(io, \"127.0.0.1:0\")?;
    let client = TcpStream::connect(io, listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    let mut cx = Context::from_waker(Waker::noop());
    // A socket starts out ready: the first operation tells.
    assert!(client.poll_write_ready(&mut cx).is_ready());
    assert!(server.poll_read_ready(&mut cx).is_ready());
    // Nothing to read: `try_io` reports `WouldBlock` and clears the read readiness.
    let e = server
        .try_io(Interest::Read, || {
            let mut sock: &socket2::Socket = &socket2::SockRef::from(&server);
            std::io::Read::read(&mut sock, &mut [0; 8])
        })
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert!(server.poll_read_ready(&mut cx).is_pending());
    Ok(())
})
.unwrap();"
);
crate::net::owned::impl_owned_stream!(
    TcpStream,
    "use zsync::net::{TcpListener, TcpStream};

zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
    let listener = TcpListener::bind(io, \"127.0.0.1:0\")?;
    let client = TcpStream::connect(io, listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    io.block_on(async {
        let (n, _) = client.write_owned(b\"ping\".to_vec()).await;
        assert_eq!(n?, 4);
        let (n, buf) = server.read_owned(vec![0; 16]).await;
        assert_eq!(&buf[..n?], &b\"ping\"[..]);
        Ok(())
    })?
})
.unwrap();"
);
impl_async_stream!(
    TcpStream,
    "use zsync::net::{TcpListener, TcpStream};

zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
    let listener = TcpListener::bind(io, \"127.0.0.1:0\")?;
    let addr = listener.local_addr()?;
    io.block_on(async {
        let client = TcpStream::connect_async(io, addr).await?;
        let (server, _) = listener.accept_async().await?;
        assert_eq!(client.write_async(b\"ping\").await?, 4);
        let mut buf = [0; 4];
        let n = server.read_async(&mut buf).await?;
        assert_eq!(&buf[..n], &b\"ping\"[..n]);
        Ok(())
    })?
})
.unwrap();"
);
impl_ttl!(TcpStream, "outgoing packets");
impl_timeouts!(
    TcpStream,
    "reads",
    "writes",
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
    ///     let e = io.timeout_until(deadline, |_| client.read(&mut [0; 8])).unwrap_err();
    ///     assert!(zsync::is_timed_out(&e)); // the task's deadline came first
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
);

impl TcpStream {
    /// Connects to the first address of `addr` that accepts. A host name is resolved without
    /// stalling other tasks. Cancellation point.
    ///
    /// Errors: `ConnectionRefused` if nothing listens, `NotFound` if the name does not resolve.
    #[track_caller]
    pub fn connect(io: &Io, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Connect,
            crate::diag::wait_point::Object::None,
        );
        addr::each_addr(io, addr, |a| Self::connect_addr(io, a, None))
    }

    /// Connects to `addr`, giving up with `TimedOut` after `timeout`. Cancellation point.
    #[track_caller]
    pub fn connect_timeout(io: &Io, addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Connect,
            crate::diag::wait_point::Object::None,
        );
        Self::connect_addr(io, *addr, Some(crate::clock::now() + timeout))
    }

    /// Connects to `addr`, as a future: the connect is started at once and completes through
    /// the async driver (bound it with [`zsync::time::timeout`](crate::time::timeout)).
    ///
    /// Errors: `ConnectionRefused` if nothing listens.
    ///
    /// ```
    /// use zsync::net::{TcpListener, TcpStream};
    /// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind(io, "127.0.0.1:0")?;
    ///     let client = io.block_on(TcpStream::connect_async(io, listener.local_addr()?))??;
    ///     assert_eq!(client.peer_addr()?, listener.local_addr()?);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn connect_async(io: &Io, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = socket2::Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        if let Some(world) = io.inner.model.sim() {
            // A simulated connect: the handshake on the world, then its time on the clock.
            let stream = TcpStream {
                sock: Socket::from_nonblocking(
                    io,
                    std::net::TcpStream::from(OwnedFd::from(socket)),
                ),
            };
            let host = world.current_host();
            let (at, outcome) = std::future::poll_fn(|cx| {
                stream.sock.poll_simulated(world, cx, |net, rng, now, fd| {
                    net.connect(now, rng, host, fd, addr)
                })
            })
            .await?;
            crate::time::sleep_until(at).await;
            return outcome.map(|()| stream);
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream {
            sock: Socket::from_nonblocking(io, std::net::TcpStream::from(OwnedFd::from(socket))),
        };
        // Writable once the handshake is over; `SO_ERROR` says how it went, and a peer address
        // that the socket has not got yet means an early wake-up (its registration reports an
        // unconnected socket writable).
        stream
            .sock
            .io_async(crate::net::Interest::Write, |s| {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(stream)
    }

    fn connect_addr(io: &Io, addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        crate::context::check()?;
        let socket = socket2::Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        // Wrapped first, so that a custom model hears of the close if the connect fails.
        let stream = TcpStream {
            sock: Socket::from_nonblocking(io, std::net::TcpStream::from(OwnedFd::from(socket))),
        };
        crate::op::connect::connect(io, stream.sock.fd(), &addr.into(), deadline)?;
        Ok(stream)
    }

    /// Wraps a raw connected socket descriptor.
    ///
    /// # Safety
    /// `fd` must be an open, connected TCP socket that nothing else owns.
    pub unsafe fn from_raw_fd(io: &Io, fd: RawFd) -> io::Result<TcpStream> {
        // SAFETY: the caller guarantees `fd` is an owned, open TCP socket.
        let sock = unsafe { Socket::from_raw_fd(io, fd) }?;
        Ok(TcpStream { sock })
    }

    /// Shuts down the read half, the write half, or both. Reads after `Shutdown::Read` return 0.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.address(true, |s| s.peer_addr())
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.sock.get().set_nodelay(on)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.sock.get().nodelay()
    }

    /// Turns zero-copy sends on or off (off by default) for this stream's writes of at least
    /// 16 KiB ([`write`](io::Write::write), `write_all`) on a Green io_uring worker whose kernel
    /// has `IORING_OP_SEND_ZC` (Linux 6.0+); other models and backends always copy. The kernel
    /// refusing it for a socket turns it off for good.
    ///
    /// A zero-copy write returns once the kernel no longer reads the buffer — when the peer
    /// has acknowledged the bytes — not when they are queued. So a peer that stops reading
    /// holds the writer until it reads again or the connection fails, and the write timeout
    /// and cancellation cannot end that wait (the buffer is the kernel's until then). It pays
    /// only towards a real network interface: over loopback, and to this host's own
    /// addresses, the kernel copies the bytes anyway (see docs/ARCHITECTURE.md, "Zero-copy
    /// send").
    pub fn set_zero_copy_send(&self, on: bool) {
        self.sock.zero_copy().set(on);
    }

    /// Enables `SO_KEEPALIVE` with the given idle time before the first probe, or disables it.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let sock = SockRef::from(self.sock.get());
        match idle {
            Some(idle) => sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)),
            None => sock.set_keepalive(false),
        }
    }

    /// Whether `SO_KEEPALIVE` is on.
    pub fn keepalive(&self) -> io::Result<bool> {
        SockRef::from(self.sock.get()).keepalive()
    }

    /// Sets `SO_LINGER`: `Some(d)` makes close wait up to `d` for unsent data (`Some(0)` resets
    /// the connection on close); `None` restores the default.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self.sock.get()).set_linger(linger)
    }

    /// Reads `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(self.sock.get()).linger()
    }

    /// Sets `SO_RCVBUF` (the kernel may double or clamp it).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        SockRef::from(self.sock.get()).set_recv_buffer_size(size)
    }

    /// Reads `SO_RCVBUF`.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(self.sock.get()).recv_buffer_size()
    }

    /// Sets `SO_SNDBUF` (the kernel may double or clamp it).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        SockRef::from(self.sock.get()).set_send_buffer_size(size)
    }

    /// Reads `SO_SNDBUF`.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(self.sock.get()).send_buffer_size()
    }

    /// Reads without removing the data from the queue. Cancellation point.
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Read,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(self)),
        );
        self.sock.peek(buf, |s, buf| s.peek(buf))
    }
}

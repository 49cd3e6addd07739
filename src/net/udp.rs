//! UDP sockets.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

use crate::net::addr::{self, ToSocketAddrs};
use crate::net::timeout::Timeouts;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

/// A UDP socket. Counterpart of [`std::net::UdpSocket`].
///
/// The socket remembers the [`Io`] it was created with and stays in non-blocking mode; every
/// send and receive waits through the runtime and is a cancellation point.
///
/// ```
/// use zsync::net::UdpSocket;
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let a = UdpSocket::bind(io, "127.0.0.1:0")?;
///     let b = UdpSocket::bind(io, "127.0.0.1:0")?;
///     a.send_to(b"ping", b.local_addr()?)?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf)?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    io: Io,
    inner: std::net::UdpSocket,
    timeouts: Timeouts,
}

impl UdpSocket {
    /// Binds to the first address of `addr` that works. Port 0 picks an ephemeral port.
    ///
    /// Errors: `AddrInUse` if the port is taken, `AddrNotAvailable` for an address not on this
    /// host, `NotFound` for a name that does not resolve, `InvalidInput` for a malformed address.
    pub fn bind(io: &Io, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        addr::each_addr(io, addr, |a| {
            UdpSocket::from_std(io, std::net::UdpSocket::bind(a)?)
        })
    }

    /// Wraps a std socket (switching it to non-blocking mode).
    pub fn from_std(io: &Io, socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            io: io.clone(),
            inner: socket,
            timeouts: Timeouts::default(),
        })
    }

    /// Creates a second handle to the same socket (`dup`), like std's `try_clone`. The clone
    /// shares the socket and starts with this handle's timeouts.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        let clone = UdpSocket::from_std(&self.io, self.inner.try_clone()?)?;
        clone.timeouts.set_read(self.timeouts.read())?;
        clone.timeouts.set_write(self.timeouts.write())?;
        Ok(clone)
    }

    /// Unwraps into a std socket in blocking mode.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.inner.set_nonblocking(false)?;
        Ok(self.inner)
    }

    /// Wraps a raw bound UDP socket descriptor.
    ///
    /// # Safety
    /// `fd` must be an open UDP socket that nothing else owns.
    pub unsafe fn from_raw_fd(io: &Io, fd: RawFd) -> io::Result<UdpSocket> {
        // SAFETY: the caller guarantees `fd` is an owned, open UDP socket.
        let socket = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
        UdpSocket::from_std(io, socket)
    }

    /// The `Io` this socket was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Sends `buf` to the first address of `addr`; returns the number of bytes sent. A host name
    /// is resolved without stalling other tasks. Cancellation point.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let target = addr::resolve(&self.io, addr)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
            })?;
        self.timeouts.writing(|deadline| {
            crate::op::msg::send_to(&self.io, self.inner.as_fd(), buf, target, deadline)
        })
    }

    /// Receives one datagram into `buf` (the excess of a longer datagram is discarded); returns
    /// its length and its sender. Cancellation point.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.timeouts.reading(|deadline| {
            crate::op::msg::recv_from(&self.io, self.inner.as_fd(), buf, deadline)
        })
    }

    /// Like [`recv_from`](Self::recv_from), but leaves the datagram in the queue.
    /// Cancellation point.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.timeouts.reading(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Read, deadline, || {
                self.inner.peek_from(buf)
            })
        })
    }

    /// Sets the default destination of [`send`](Self::send) and restricts
    /// [`recv`](Self::recv) to datagrams from the first address of `addr` that works. Does not
    /// wait for the network.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        addr::each_addr(&self.io, addr, |a| self.inner.connect(a))
    }

    /// Sends `buf` to the connected peer. Cancellation point.
    ///
    /// Errors: `NotConnected` without [`connect`](Self::connect); `ConnectionRefused` may report
    /// an ICMP "port unreachable" caused by an earlier datagram.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.timeouts
            .writing(|deadline| crate::op::send::send(&self.io, self.inner.as_fd(), buf, deadline))
    }

    /// Receives one datagram from the connected peer. Cancellation point.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.timeouts
            .reading(|deadline| crate::op::recv::recv(&self.io, self.inner.as_fd(), buf, deadline))
    }

    /// Like [`recv`](Self::recv), but leaves the datagram in the queue. Cancellation point.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.timeouts.reading(|deadline| {
            retry_on_fd(self.inner.as_fd(), Interest::Read, deadline, || {
                self.inner.peek(buf)
            })
        })
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

    /// Sets `SO_BROADCAST`: whether datagrams may be sent to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// Sets `IP_MULTICAST_LOOP`: whether multicast datagrams sent from this socket are looped
    /// back to local listeners.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v4(on)
    }

    /// Reads `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`, the time-to-live of outgoing multicast datagrams (default 1: do
    /// not leave the local network).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_multicast_ttl_v4(ttl)
    }

    /// Reads `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.inner.multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v6(on)
    }

    /// Reads `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.inner.multicast_loop_v6()
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: let the kernel choose).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.join_multicast_v4(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group joined with [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.leave_multicast_v4(multiaddr, interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with index `interface`
    /// (0: let the kernel choose).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group joined with [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.leave_multicast_v6(multiaddr, interface)
    }

    /// Sets the IP time-to-live of outgoing unicast datagrams.
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
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("addr", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .field("fd", &self.inner.as_raw_fd())
            .finish()
    }
}

super::impl_fd_traits!(UdpSocket);

//! UDP sockets.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

use super::async_io::impl_readiness;
use super::methods::{impl_socket, impl_timeouts, impl_ttl};
use super::socket::Socket;
use crate::net::addr::{self, ToSocketAddrs};
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
    sock: Socket<std::net::UdpSocket>,
}

impl_socket!(
    UdpSocket,
    std::net::UdpSocket,
    SocketAddr,
    "socket",
    peer_addr
);
impl_timeouts!(UdpSocket, "receives", "sends");
impl_ttl!(UdpSocket, "outgoing unicast datagrams");
impl_readiness!(
    UdpSocket,
    "use std::task::{Context, Waker};
use zsync::net::UdpSocket;

zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    let socket = UdpSocket::bind(io, \"127.0.0.1:0\")?;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(socket.poll_write_ready(&mut cx).is_ready());
    Ok(())
})
.unwrap();"
);

/// The async side: futures waiting through the async driver (any number of tasks may wait on
/// one socket); dropped, they leave the socket untouched. The socket's timeouts do not apply
/// (bound them with [`zsync::time::timeout`](crate::time::timeout)).
///
/// ```
/// use zsync::net::UdpSocket;
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let a = UdpSocket::bind(io, "127.0.0.1:0")?;
///     let b = UdpSocket::bind(io, "127.0.0.1:0")?;
///     io.block_on(async {
///         a.send_to_async(b"ping", b.local_addr()?).await?;
///         let mut buf = [0; 16];
///         let (n, from) = b.recv_from_async(&mut buf).await?;
///         assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///         b.connect(from)?;
///         a.connect(b.local_addr()?)?;
///         b.send_async(b"pong").await?;
///         let n = a.recv_async(&mut buf).await?;
///         assert_eq!(&buf[..n], b"pong");
///         Ok(())
///     })?
/// })
/// .unwrap();
/// ```
impl UdpSocket {
    /// Sends `buf` to `addr` once there is room, as a future.
    pub async fn send_to_async(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
        if let Some(world) = self.sock.simulated() {
            let fd = self.sock.fd();
            return world.try_now(|net, rng, now| {
                crate::sim::world::Attempt::Done(net.send_to(now, rng, fd, buf, addr))
            });
        }
        self.sock
            .io_async(crate::net::Interest::Write, |s| s.send_to(buf, addr))
            .await
    }

    /// Receives one datagram and its sender's address, as a future.
    pub async fn recv_from_async(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Some(world) = self.sock.simulated() {
            return std::future::poll_fn(|cx| {
                self.sock.poll_simulated(world, cx, |net, _, now, fd| {
                    net.recv_from(now, fd, buf, false)
                })
            })
            .await;
        }
        self.sock
            .io_async(crate::net::Interest::Read, |s| s.recv_from(buf))
            .await
    }

    /// Sends `buf` to the connected peer, as a future.
    pub async fn send_async(&self, buf: &[u8]) -> io::Result<usize> {
        if let Some(world) = self.sock.simulated() {
            return std::future::poll_fn(|cx| {
                self.sock
                    .poll_simulated(world, cx, |net, rng, now, fd| net.send(now, rng, fd, buf))
            })
            .await;
        }
        self.sock
            .io_async(crate::net::Interest::Write, |s| s.send(buf))
            .await
    }

    /// Receives one datagram from the connected peer, as a future.
    pub async fn recv_async(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(world) = self.sock.simulated() {
            return std::future::poll_fn(|cx| {
                self.sock
                    .poll_simulated(world, cx, |net, _, now, fd| net.recv(now, fd, buf, false))
            })
            .await;
        }
        self.sock
            .io_async(crate::net::Interest::Read, |s| s.recv(buf))
            .await
    }

    /// Receives one datagram from the connected peer into `buf` (the excess of a longer one is
    /// discarded); the future yields its length and the buffer back. On a Green io_uring
    /// worker an `IORING_OP_RECV` owns the buffer until its completion (canceled if the future
    /// is dropped first); elsewhere it waits for readiness. See
    /// [`zsync::net`](crate::net#owned-buffers-and-io_uring).
    ///
    /// ```
    /// use zsync::net::UdpSocket;
    /// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
    ///     let a = UdpSocket::bind(io, "127.0.0.1:0")?;
    ///     let b = UdpSocket::bind(io, "127.0.0.1:0")?;
    ///     a.connect(b.local_addr()?)?;
    ///     b.connect(a.local_addr()?)?;
    ///     io.block_on(async {
    ///         let (n, _) = a.send_owned(b"datagram".to_vec()).await;
    ///         assert_eq!(n?, 8);
    ///         let (n, buf) = b.recv_owned(vec![0; 64]).await;
    ///         assert_eq!(&buf[..n?], b"datagram");
    ///         Ok(())
    ///     })?
    /// }).unwrap();
    /// ```
    pub fn recv_owned(&self, buf: Vec<u8>) -> crate::net::SocketBufFuture<'_> {
        crate::net::owned::SocketBufFuture::datagram(&self.sock, crate::net::owned::Dir::Recv, buf)
    }

    /// Sends `buf` as one datagram to the connected peer; the future yields the byte count and
    /// the buffer back. A ring op on a Green io_uring worker, as
    /// [`recv_owned`](Self::recv_owned).
    ///
    /// ```
    /// use zsync::net::UdpSocket;
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let a = UdpSocket::bind(io, "127.0.0.1:0")?;
    ///     let b = UdpSocket::bind(io, "127.0.0.1:0")?;
    ///     a.connect(b.local_addr()?)?;
    ///     let (n, buf) = io.block_on(a.send_owned(b"hi".to_vec()))?;
    ///     assert_eq!((n?, buf.len()), (2, 2));
    ///     let mut got = [0; 8];
    ///     assert_eq!(b.recv(&mut got)?, 2);
    ///     Ok(())
    /// }).unwrap();
    /// ```
    pub fn send_owned(&self, buf: Vec<u8>) -> crate::net::SocketBufFuture<'_> {
        crate::net::owned::SocketBufFuture::datagram(&self.sock, crate::net::owned::Dir::Send, buf)
    }
}

impl UdpSocket {
    /// Binds to the first address of `addr` that works. Port 0 picks an ephemeral port.
    ///
    /// Errors: `AddrInUse` if the port is taken, `AddrNotAvailable` for an address not on this
    /// host, `NotFound` for a name that does not resolve, `InvalidInput` for a malformed address.
    pub fn bind(io: &Io, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        addr::each_addr(io, addr, |a| match crate::op::custom(io) {
            Some(model) => {
                let socket = socket2::Socket::new(
                    socket2::Domain::for_address(a),
                    socket2::Type::DGRAM.nonblocking(),
                    Some(socket2::Protocol::UDP),
                )?;
                crate::op::done_of(
                    model,
                    crate::model::operation::Operation::Bind {
                        fd: std::os::fd::AsFd::as_fd(&socket),
                        addr: a,
                        backlog: None,
                    },
                )?;
                UdpSocket::from_std(
                    io,
                    std::net::UdpSocket::from(std::os::fd::OwnedFd::from(socket)),
                )
            }
            None => UdpSocket::from_std(io, std::net::UdpSocket::bind(a)?),
        })
    }

    /// Wraps a raw bound UDP socket descriptor.
    ///
    /// # Safety
    /// `fd` must be an open UDP socket that nothing else owns.
    pub unsafe fn from_raw_fd(io: &Io, fd: RawFd) -> io::Result<UdpSocket> {
        // SAFETY: the caller guarantees `fd` is an owned, open UDP socket.
        let sock = unsafe { Socket::from_raw_fd(io, fd) }?;
        Ok(UdpSocket { sock })
    }

    /// Sends `buf` to the first address of `addr`; returns the number of bytes sent. A host name
    /// is resolved without stalling other tasks. Cancellation point.
    #[track_caller]
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Send,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        let target = addr::resolve(self.sock.io(), addr)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
            })?;
        let fd = self.sock.fd();
        let io = self.sock.io();
        self.sock
            .writing(|deadline| crate::op::msg::send_to(io, fd, buf, target, deadline))
    }

    /// Receives one datagram into `buf` (the excess of a longer datagram is discarded); returns
    /// its length and its sender. Cancellation point.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Recv,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        let fd = self.sock.fd();
        let io = self.sock.io();
        self.sock
            .reading(|deadline| crate::op::msg::recv_from(io, fd, buf, deadline))
    }

    /// Like [`recv_from`](Self::recv_from), but leaves the datagram in the queue.
    /// Cancellation point.
    #[track_caller]
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Recv,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        self.sock.peek_from(buf)
    }

    /// Sets the default destination of [`send`](Self::send) and restricts
    /// [`recv`](Self::recv) to datagrams from the first address of `addr` that works. Does not
    /// wait for the network.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let io = self.sock.io();
        addr::each_addr(io, addr, |a| match crate::op::custom(io) {
            Some(_) => crate::op::connect::connect(io, self.sock.fd(), &a.into(), None),
            None => self.sock.get().connect(a),
        })
    }

    /// Sends `buf` to the connected peer. Cancellation point.
    ///
    /// Errors: `NotConnected` without [`connect`](Self::connect); `ConnectionRefused` may report
    /// an ICMP "port unreachable" caused by an earlier datagram.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Send,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        self.sock.send(buf)
    }

    /// Receives one datagram from the connected peer. Cancellation point.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Recv,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        self.sock.recv(buf)
    }

    /// Like [`recv`](Self::recv), but leaves the datagram in the queue. Cancellation point.
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Recv,
            crate::diag::wait_point::Object::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.sock.fd())),
        );
        self.sock.peek(buf, |s, buf| s.peek(buf))
    }

    /// The connected peer's address (`NotConnected` without [`connect`](Self::connect)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.address(true, |s| s.peer_addr())
    }

    /// Sets `SO_BROADCAST`: whether datagrams may be sent to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock.get().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.sock.get().broadcast()
    }

    /// Sets `IP_MULTICAST_LOOP`: whether multicast datagrams sent from this socket are looped
    /// back to local listeners.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.sock.get().set_multicast_loop_v4(on)
    }

    /// Reads `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.sock.get().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`, the time-to-live of outgoing multicast datagrams (default 1: do
    /// not leave the local network).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.sock.get().set_multicast_ttl_v4(ttl)
    }

    /// Reads `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.sock.get().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.sock.get().set_multicast_loop_v6(on)
    }

    /// Reads `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.sock.get().multicast_loop_v6()
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: let the kernel choose).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.get().join_multicast_v4(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group joined with [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.get().leave_multicast_v4(multiaddr, interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with index `interface`
    /// (0: let the kernel choose).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.get().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group joined with [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.get().leave_multicast_v6(multiaddr, interface)
    }
}

//! `sendmsg(2)`/`recvmsg(2)` with an address: `send_to` and `recv_from` of datagram sockets.
//!
//! On a Green io_uring fiber (kernel with the opcode) the op goes through the ring; elsewhere
//! the plain `sendto`/`recvfrom` is tried and the task waits for readiness.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use socket2::{SockAddr, SockAddrStorage};

use rustix::net::{RecvFlags, SendFlags};

use crate::model::green;
use crate::model::operation::Operation;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

/// Sends `buf` as one datagram to `addr`. Cancellation point; gives up with
/// `TimedOut` at `deadline`.
pub(crate) fn send_to(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &[u8],
    addr: SocketAddr,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(model) = super::custom(io) {
        let op = Operation::SendTo {
            fd,
            buf,
            addr,
            deadline,
        };
        return super::count_of(model, op);
    }
    if let Some(res) = send_to_on_ring(fd, buf, addr, deadline) {
        return res;
    }
    retry_on_fd(fd, Interest::Write, deadline, || {
        Ok(rustix::net::sendto(fd, buf, SendFlags::NOSIGNAL, &addr)?)
    })
}

/// [`send_to`] through the ring, or `None` where the op cannot go through one.
fn send_to_on_ring(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    addr: SocketAddr,
    deadline: Option<Instant>,
) -> Option<io::Result<usize>> {
    if !green::ring_available(opcode::SendMsg::CODE) {
        return None;
    }
    let addr = SockAddr::from(addr);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid `msghdr` (no name, no buffers, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_ptr().cast_mut().cast();
    msg.msg_namelen = addr.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let (raw, msg_ptr) = (fd.as_raw_fd(), &msg as *const libc::msghdr);
    let sqe = || opcode::SendMsg::new(Fd(raw), msg_ptr).build();
    // SAFETY: `msg`, the iovec, the address and `buf` it points to (and `fd`) all live until
    // `ring_op` returns, after the completion; the kernel only reads them.
    let res = unsafe { green::ring_op(opcode::SendMsg::CODE, deadline, sqe) }?;
    Some(res.map(super::count))
}

/// Receives one datagram into `buf` on the ring (the excess of a longer one is discarded);
/// returns its length and its sender. Cancellation point; gives up with `TimedOut` at
/// `deadline`.
pub(crate) fn recv_from(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<(usize, SocketAddr)> {
    if let Some(model) = super::custom(io) {
        let peek = false;
        let op = Operation::RecvFrom {
            fd,
            buf,
            peek,
            deadline,
        };
        return model.operate(op)?.into_datagram("recv_from");
    }
    if let Some(res) = recv_from_on_ring(fd, &mut *buf, deadline) {
        return res;
    }
    retry_on_fd(fd, Interest::Read, deadline, || {
        let (n, _, from) = rustix::net::recvfrom(fd, &mut *buf, RecvFlags::empty())?;
        ip_sender(from).map(|from| (n, from))
    })
}

/// The sender of a datagram received on an IP socket.
pub(crate) fn ip_sender(from: Option<rustix::net::SocketAddrAny>) -> io::Result<SocketAddr> {
    from.and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram from a non-IP address on an IP socket",
            )
        })
}

/// [`recv_from`] through the ring, or `None` where the op cannot go through one.
fn recv_from_on_ring(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Option<io::Result<(usize, SocketAddr)>> {
    if !green::ring_available(opcode::RecvMsg::CODE) {
        return None;
    }
    let mut storage = SockAddrStorage::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid `msghdr` (no name, no buffers, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut storage as *mut SockAddrStorage).cast();
    msg.msg_namelen = storage.size_of();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let (raw, msg_ptr) = (fd.as_raw_fd(), &mut msg as *mut libc::msghdr);
    let sqe = || opcode::RecvMsg::new(Fd(raw), msg_ptr).build();
    // SAFETY: `msg`, the iovec, `storage` and `buf` (and `fd`) all live until `ring_op`
    // returns, after the completion; nothing else touches them meanwhile.
    let res = unsafe { green::ring_op(opcode::RecvMsg::CODE, deadline, sqe) }?;
    Some(res.and_then(|n| {
        // SAFETY: the kernel wrote the sender's address (of `msg_namelen` bytes, at most the
        // storage's size) into `storage`.
        let from = unsafe { SockAddr::new(storage, msg.msg_namelen) };
        let from = from.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram from a non-IP address on an IP socket",
            )
        })?;
        Ok((super::count(n), from))
    }))
}

//! `sendmsg(2)`/`recvmsg(2)` with an address: `send_to` and `recv_from` of datagram sockets.
//!
//! Only the ring forms live here: each returns `None` where the op cannot go through a ring
//! (not a Green io_uring fiber, or a kernel without the opcode), and the socket then takes its
//! readiness path with the plain `sendto`/`recvfrom`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use socket2::{SockAddr, SockAddrStorage};

use crate::model::green;

/// Sends `buf` as one datagram to `addr` on the ring. Cancellation point; gives up with
/// `TimedOut` at `deadline`.
pub(crate) fn send_to(
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

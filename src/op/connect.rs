//! `connect(2)` of a non-blocking stream socket, waiting for the handshake.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use socket2::{SockAddr, SockRef};

use crate::model::green;
use crate::model::operation::Operation;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

/// Connects `socket` (non-blocking) to `addr`. Cancellation point; gives up with `TimedOut`
/// at `deadline`.
pub(crate) fn connect(
    io: &Io,
    socket: BorrowedFd<'_>,
    addr: &SockAddr,
    deadline: Option<Instant>,
) -> io::Result<()> {
    if let (Some(model), Some(ip)) = (super::custom(io), addr.as_socket()) {
        let op = Operation::Connect {
            fd: socket,
            addr: ip,
            deadline,
        };
        return super::done_of(model, op);
    }
    crate::context::check()?;
    let (raw, ptr, len) = (socket.as_raw_fd(), addr.as_ptr(), addr.len());
    let sqe = || opcode::Connect::new(Fd(raw), ptr.cast(), len).build();
    // SAFETY: `addr` stays borrowed until `ring_op` returns, after the completion.
    if let Some(res) = unsafe { green::ring_op(opcode::Connect::CODE, deadline, sqe) } {
        return res.map(drop);
    }
    connect_on_thread(socket, addr, deadline)
}

/// [`connect`] by `connect(2)` and a wait for writability: how the thread models connect.
pub(crate) fn connect_on_thread(
    socket: BorrowedFd<'_>,
    addr: &SockAddr,
    deadline: Option<Instant>,
) -> io::Result<()> {
    crate::context::check()?;
    let sock = SockRef::from(&socket);
    match sock.connect(addr) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            // Writable means the handshake finished, one way or the other: SO_ERROR says which.
            retry_on_fd(socket, Interest::Write, deadline, || {
                if let Some(err) = sock.take_error()? {
                    return Err(err);
                }
                match sock.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
        }
        Err(e) => Err(e),
    }
}

//! `accept4(2)` with `SOCK_CLOEXEC | SOCK_NONBLOCK`: a listener's next connection.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use io_uring::{opcode, types::Fd};
use socket2::{SockAddr, SockAddrStorage};

use crate::model::green;
use crate::model::operation::Operation;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

const FLAGS: libc::c_int = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;

/// Waits for a connection: the new (non-blocking, close-on-exec) socket and the peer's
/// address. Cancellation point.
pub(crate) fn accept(io: &Io, listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SockAddr)> {
    if let Some(model) = super::custom(io) {
        let op = Operation::Accept {
            fd: listener,
            deadline: None,
        };
        let fd = model.operate(op)?.into_fd("accept")?;
        let peer = Operation::Address {
            fd: std::os::fd::AsFd::as_fd(&fd),
            peer: true,
        };
        let peer = model.operate(peer)?.into_address("peer_addr")?;
        return Ok((fd, peer.into()));
    }
    let raw = listener.as_raw_fd();
    let init = |storage: *mut SockAddrStorage, len: *mut libc::socklen_t| {
        let sqe = || {
            opcode::Accept::new(Fd(raw), storage.cast(), len)
                .flags(FLAGS)
                .build()
        };
        // SAFETY: `storage` and `len` live in `try_init`'s frame until this closure returns,
        // and `ring_op` returns only after the completion.
        if let Some(res) = unsafe { green::ring_op(opcode::Accept::CODE, None, sqe) } {
            return res;
        }
        retry_on_fd(listener, Interest::Read, None, || {
            // SAFETY: `storage` and `len` are valid for writes (see above).
            match unsafe { libc::accept4(raw, storage.cast(), len, FLAGS) } {
                -1 => Err(io::Error::last_os_error()),
                fd => Ok(fd),
            }
        })
    };
    // SAFETY: `try_init` hands `init` zeroed storage and its size; on success the kernel wrote
    // an address of the length it stored in `len`.
    let (fd, addr) = unsafe { SockAddr::try_init(init) }?;
    // SAFETY: a successful accept returned a new descriptor that nothing else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, addr))
}

//! Reads and writes of a `File` that is a stream (FIFO, terminal, character device, a wrapped
//! pipe or socket) for futures: the async driver's readiness, as the pipes' and sockets' async
//! side, never a helper thread or a ring op.
//!
//! A disk file's op runs to completion on its own, so a future hands it to the ring or a helper
//! thread (`owned.rs`). A stream's op may wait for another party for ever; run elsewhere, it
//! would hold that thread (or ring slot, and its buffer) until then, and could take bytes after
//! its future is gone. Here it runs *in `poll`*: the non-blocking syscall is tried, and on
//! `WouldBlock` the future waits for the descriptor's readiness through the driver (registered
//! once per `File`, edge-triggered, both directions). A future dropped while it waits has taken
//! nothing; no thread or op outlives it.
//!
//! The registration ([`StreamFd`]) holds its own reference to the descriptor, declared after
//! the [`Registered`] field, so the `EPOLL_CTL_DEL` always runs on an open descriptor: it is
//! shared by the `File` and its ops in flight, and goes when the last of them does.
//!
//! A descriptor the driver cannot watch (`epoll_ctl` refuses a device without a `poll`
//! method, `/dev/null` and kin, with `EPERM`) is always ready, as `poll(2)` reports it: the
//! syscall is made directly.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use crate::driver::source::Waiter;
use crate::driver::{Registered, Source};
use crate::park::Interest;
use crate::Io;

use super::owned::{Kind, Outcome, Owned};

/// A stream `File`'s driver registration, made on first async use, with the descriptor it is
/// for.
pub(crate) struct StreamFd {
    /// Declared before `file`: dropped (deregistered) while the descriptor is still open (see
    /// [`Registered`]).
    registered: Registered,
    io: Io,
    file: Arc<std::fs::File>,
}

impl StreamFd {
    pub(super) fn new(io: &Io, file: &Arc<std::fs::File>) -> Arc<StreamFd> {
        Arc::new(StreamFd {
            registered: Registered::new(),
            io: io.clone(),
            file: file.clone(),
        })
    }

    /// The source, registering the descriptor on first use; `None` if the driver cannot watch
    /// it (always ready).
    fn source(&self) -> io::Result<Option<&Source>> {
        match self.registered.source(&self.io, self.file.as_fd()) {
            Ok(source) => Ok(Some(source)),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl std::fmt::Debug for StreamFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFd")
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

/// A stream read or write in progress: its owned buffer, and its keyed waiter while it waits.
#[derive(Debug)]
pub(super) struct StreamOp {
    kind: Kind,
    /// `None` once the outcome is handed back.
    owned: Option<Owned>,
    /// The keyed waiter's key in the source, while registered.
    key: Option<usize>,
}

impl StreamOp {
    /// Starts a read or write of `owned` (a stream): one non-blocking attempt at once, so a
    /// write that finds room is done before the caller goes on (the `File`'s write-behind then
    /// loses nothing if the `File` is dropped); `Err(outcome)` if it finished.
    pub(super) fn start(kind: Kind, mut owned: Owned) -> Result<StreamOp, Outcome> {
        match attempt(kind, &mut owned) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(StreamOp {
                kind,
                owned: Some(owned),
                key: None,
            }),
            result => Err((result, owned.buf)),
        }
    }

    fn interest(&self) -> Interest {
        match self.kind {
            Kind::Write { .. } => Interest::Write,
            _ => Interest::Read,
        }
    }

    /// The outcome once the op is over. Must not be polled again after `Ready`.
    pub(super) fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let interest = self.interest();
        let kind = self.kind;
        let owned = self
            .owned
            .as_mut()
            .expect("a StreamOp polled after it completed");
        let stream = owned
            .stream
            .clone()
            .expect("a stream op has its registration");
        let result = match stream.source() {
            Ok(Some(source)) => {
                let waiter = Waiter::Keyed(&mut self.key);
                let result = ready!(source.poll_io(interest, cx, waiter, || attempt(kind, owned)));
                if let Some(key) = self.key.take() {
                    source.leave(interest, key);
                }
                result
            }
            // Not watchable: always ready.
            Ok(None) => loop {
                match attempt(kind, owned) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            },
            Err(e) => Err(e),
        };
        let owned = self.owned.take().expect("checked above");
        Poll::Ready((result, owned.buf))
    }
}

impl Drop for StreamOp {
    /// A future dropped while it waits withdraws its waiter (nothing else is in flight).
    fn drop(&mut self) {
        let interest = self.interest();
        let (Some(key), Some(owned)) = (self.key.take(), &self.owned) else {
            return;
        };
        if let Some(stream) = &owned.stream {
            if let Ok(Some(source)) = stream.source() {
                source.leave(interest, key);
            }
        }
    }
}

/// The non-blocking syscall of a read or write of `owned.buf[start..]`.
fn attempt(kind: Kind, owned: &mut Owned) -> io::Result<u64> {
    let fd: BorrowedFd<'_> = owned.file.as_fd();
    let start = owned.start.min(owned.buf.len());
    let n = match kind {
        Kind::Read { offset: None } => rustix::io::read(fd, &mut owned.buf[start..])?,
        Kind::Read { offset: Some(at) } => rustix::io::pread(fd, &mut owned.buf[start..], at)?,
        Kind::Write { offset: None } => rustix::io::write(fd, &owned.buf[start..])?,
        Kind::Write { offset: Some(at) } => rustix::io::pwrite(fd, &owned.buf[start..], at)?,
        Kind::Sync { .. } | Kind::Seek(_) => unreachable!("only reads and writes wait"),
    };
    Ok(n as u64)
}

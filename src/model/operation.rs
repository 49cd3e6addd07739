//! The I/O operations as a model sees them: what [`CustomModel::operate`] receives.
//!
//! Zig's `std.Io` vtable has one entry per operation, so a model can replace reading, writing,
//! networking and time, not only scheduling: that is what makes `Io.failing` (fail every
//! operation from the Nth on, to test error paths) and a simulated world possible. zsync's
//! equivalent is one method, [`CustomModel::operate`], taking an [`Operation`] that names the
//! operation and borrows its arguments, and returning a [`Completion`].
//!
//! The built-in models never build an `Operation`: the operation layer ([`crate::op`], and the
//! small functions of `zsync::fs` and `zsync::net` around it) asks the model once whether it is
//! a custom one, a predictable branch, and otherwise runs its own code (a ring submission on
//! Green, a syscall elsewhere). Only a custom model pays for the description.
//!
//! [`CustomModel::operate`]: crate::CustomModel::operate

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Instant, SystemTime};

use crate::park::{retry_on_fd, Interest};

/// One I/O operation, with its arguments borrowed from the caller: what a
/// [`CustomModel`](crate::CustomModel) may run, fail, delay, record or replace in
/// [`operate`](crate::CustomModel::operate).
///
/// Descriptors are non-blocking where the operation waits for readiness (sockets, pipes);
/// `deadline` is the operation's own limit (a socket timeout), past which it fails with
/// `TimedOut`, on top of the running task's deadline. [`perform`](Operation::perform) runs the
/// operation the way the thread models do.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use zsync::{Completion, ConcurrencyUnavailable, CustomModel, Model, Operation, Runnable};
///
/// /// Counts the operations its tasks perform.
/// #[derive(Default)]
/// struct Counting(AtomicUsize);
/// impl CustomModel for Counting {
///     fn name(&self) -> &'static str { "Counting" }
///     fn spawn(&self, task: Runnable) { task.run() }
///     fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
///         std::thread::spawn(move || task.run());
///         Ok(())
///     }
///     fn operate(&self, op: Operation<'_, '_>) -> std::io::Result<Completion> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         op.perform()
///     }
/// }
///
/// let model = Arc::new(Counting::default());
/// zsync::run(Model::Custom(model.clone()), |io| {
///     io.sleep(std::time::Duration::from_millis(1)).unwrap();
///     let _ = io.now();
/// });
/// // The sleep, and the clock reads: `io.now()` and those of the sleep itself.
/// assert!(model.0.load(Ordering::Relaxed) >= 2);
/// ```
#[non_exhaustive]
pub enum Operation<'a, 'b> {
    /// Opens a file (`openat(2)`). Completes with [`Completion::Fd`].
    Open {
        /// The file's path.
        path: &'a Path,
        /// How to open it.
        options: &'a crate::fs::OpenOptions,
    },
    /// Reads into `buf` at `offset`, or at the descriptor's position when `None` (`pread(2)`,
    /// `read(2)`): a file, a pipe, a FIFO, a terminal. Completes with [`Completion::Count`]
    /// (0 at end of file).
    Read {
        /// The descriptor.
        fd: BorrowedFd<'a>,
        /// Where the bytes go.
        buf: &'a mut [u8],
        /// Where in the file; `None`: at the position, advancing it.
        offset: Option<u64>,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Reads into `bufs` in order (`preadv(2)`, `readv(2)`). Completes with
    /// [`Completion::Count`].
    ReadVectored {
        /// The descriptor.
        fd: BorrowedFd<'a>,
        /// Where the bytes go.
        bufs: &'a mut [IoSliceMut<'b>],
        /// Where in the file; `None`: at the position, advancing it.
        offset: Option<u64>,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Writes some of `buf` (`pwrite(2)`, `write(2)`). Completes with [`Completion::Count`].
    Write {
        /// The descriptor.
        fd: BorrowedFd<'a>,
        /// The bytes to write.
        buf: &'a [u8],
        /// Where in the file; `None`: at the position (the end with `O_APPEND`).
        offset: Option<u64>,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Writes from `bufs` in order (`pwritev(2)`, `writev(2)`). Completes with
    /// [`Completion::Count`].
    WriteVectored {
        /// The descriptor.
        fd: BorrowedFd<'a>,
        /// The bytes to write.
        bufs: &'a [IoSlice<'b>],
        /// Where in the file; `None`: at the position.
        offset: Option<u64>,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Flushes a file to its device (`fsync(2)`, or `fdatasync(2)` with `data_only`).
    /// Completes with [`Completion::Done`].
    Sync {
        /// The file.
        fd: BorrowedFd<'a>,
        /// Only the data (and the metadata needed to read it back).
        data_only: bool,
    },
    /// Waits for a connection on a listening socket (`accept4(2)`; the new socket is
    /// non-blocking and close-on-exec). Completes with [`Completion::Fd`].
    Accept {
        /// The listening socket.
        fd: BorrowedFd<'a>,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Connects a non-blocking stream socket to an IP address and waits for the handshake
    /// (`connect(2)`). Completes with [`Completion::Done`].
    Connect {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// The peer.
        addr: SocketAddr,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Receives from a connected socket (`recv(2)`; `MSG_PEEK` with `peek`). Completes with
    /// [`Completion::Count`] (0 at end of stream).
    Recv {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Where the bytes go.
        buf: &'a mut [u8],
        /// Leave the data queued.
        peek: bool,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Sends on a connected socket (`send(2)` with `MSG_NOSIGNAL`: a closed peer is
    /// `BrokenPipe`, never `SIGPIPE`). Completes with [`Completion::Count`].
    Send {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// The bytes to send.
        buf: &'a [u8],
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Receives from a connected socket into `bufs` in order (`readv(2)`). Completes with
    /// [`Completion::Count`].
    RecvVectored {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Where the bytes go.
        bufs: &'a mut [IoSliceMut<'b>],
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Sends `bufs` in order on a connected socket (`sendmsg(2)` with `MSG_NOSIGNAL`).
    /// Completes with [`Completion::Count`].
    SendVectored {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// The bytes to send.
        bufs: &'a [IoSlice<'b>],
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Receives one datagram and its sender on an IP socket (`recvfrom(2)`). Completes with
    /// [`Completion::Datagram`].
    RecvFrom {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Where the datagram goes (the excess of a longer one is discarded).
        buf: &'a mut [u8],
        /// Leave the datagram queued.
        peek: bool,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Sends one datagram to an IP address (`sendto(2)`). Completes with
    /// [`Completion::Count`].
    SendTo {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// The datagram.
        buf: &'a [u8],
        /// Where to.
        addr: SocketAddr,
        /// The operation's own deadline.
        deadline: Option<Instant>,
    },
    /// Binds a socket that has no address yet to `addr`, and with `backlog` also listens on it
    /// (`bind(2)`, `listen(2)`): a TCP listener or a UDP socket. Completes with
    /// [`Completion::Done`].
    Bind {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Where.
        addr: SocketAddr,
        /// For a stream socket: listen, with this many connections queued at most.
        backlog: Option<u32>,
    },
    /// Reads a socket's own address, or with `peer` its peer's (`getsockname(2)`,
    /// `getpeername(2)`). Completes with [`Completion::Address`].
    Address {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// The peer's address rather than the socket's own.
        peer: bool,
    },
    /// Shuts down one or both directions of a connected socket (`shutdown(2)`). Completes with
    /// [`Completion::Done`].
    Shutdown {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Which directions.
        how: Shutdown,
    },
    /// Makes a second descriptor for a socket (`dup(2)`, close-on-exec): `try_clone`.
    /// Completes with [`Completion::Fd`].
    Duplicate {
        /// The socket.
        fd: BorrowedFd<'a>,
    },
    /// A socket's owner is about to close its descriptor (`fd` is still open, and closes once
    /// the operation returns, whatever it returns). Completes with [`Completion::Done`].
    Close {
        /// The socket.
        fd: BorrowedFd<'a>,
    },
    /// Resolves a `"host:port"` name to socket addresses (`getaddrinfo(3)`). Completes with
    /// [`Completion::Addresses`].
    Resolve {
        /// The name, `"host:port"`.
        name: &'a str,
    },
    /// Reads a path's metadata (`statx(2)`), following a symbolic link at the end unless
    /// `follow` is false. Completes with [`Completion::Metadata`].
    Stat {
        /// The path.
        path: &'a Path,
        /// Follow a symbolic link at the end of the path.
        follow: bool,
    },
    /// Removes a file (`unlinkat(2)`), or with `dir` an empty directory. Completes with
    /// [`Completion::Done`].
    Remove {
        /// The path.
        path: &'a Path,
        /// Remove a directory rather than a file.
        dir: bool,
    },
    /// Creates a directory (`mkdirat(2)`), or with `recursive` it and every missing ancestor.
    /// Completes with [`Completion::Done`].
    CreateDir {
        /// The path.
        path: &'a Path,
        /// Create the missing ancestors too (and succeed if it exists).
        recursive: bool,
    },
    /// Renames `from` to `to`, replacing `to` if it exists (`renameat(2)`). Completes with
    /// [`Completion::Done`].
    Rename {
        /// The current path.
        from: &'a Path,
        /// The new path.
        to: &'a Path,
    },
    /// Waits until the monotonic clock reaches `deadline` ([`Io::sleep`](crate::Io::sleep)).
    /// Completes with [`Completion::Done`]; may complete early (the caller loops).
    Sleep {
        /// When to wake.
        deadline: Instant,
    },
    /// Reads the monotonic clock ([`Io::now`](crate::Io::now)). Completes with
    /// [`Completion::Instant`].
    Now,
    /// Reads the wall clock ([`Io::wall_clock`](crate::Io::wall_clock)). Completes with
    /// [`Completion::SystemTime`].
    WallClock,
    /// Any other operation (a `stat`, a directory listing, a rename, a Unix-socket call, one
    /// hop of a zero-copy transfer), named but not described: `run` performs it, keeps its
    /// result where the caller finds it, and returns only its error. Completes with
    /// [`Completion::Done`].
    Other {
        /// What the operation is, e.g. `"fs::metadata"`.
        name: &'static str,
        /// Performs it.
        run: &'a mut dyn FnMut() -> io::Result<()>,
    },
}

impl Operation<'_, '_> {
    /// A short name of the operation, e.g. `"read"` (for `Other`, its own name).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Open { .. } => "open",
            Operation::Read { .. } => "read",
            Operation::ReadVectored { .. } => "readv",
            Operation::Write { .. } => "write",
            Operation::WriteVectored { .. } => "writev",
            Operation::Sync { .. } => "sync",
            Operation::Accept { .. } => "accept",
            Operation::Connect { .. } => "connect",
            Operation::Recv { .. } => "recv",
            Operation::Send { .. } => "send",
            Operation::RecvVectored { .. } => "recv_vectored",
            Operation::SendVectored { .. } => "send_vectored",
            Operation::RecvFrom { .. } => "recv_from",
            Operation::SendTo { .. } => "send_to",
            Operation::Bind { .. } => "bind",
            Operation::Address { peer: false, .. } => "local_addr",
            Operation::Address { peer: true, .. } => "peer_addr",
            Operation::Shutdown { .. } => "shutdown",
            Operation::Duplicate { .. } => "duplicate",
            Operation::Close { .. } => "close",
            Operation::Resolve { .. } => "resolve",
            Operation::Stat { .. } => "stat",
            Operation::Remove { .. } => "remove",
            Operation::Rename { .. } => "rename",
            Operation::CreateDir { .. } => "create_dir",
            Operation::Sleep { .. } => "sleep",
            Operation::Now => "now",
            Operation::WallClock => "wall_clock",
            Operation::Other { name, .. } => name,
        }
    }

    /// Runs the operation on the calling thread the way the thread models do: the syscall,
    /// and on `WouldBlock` a wait for readiness that is a cancellation point and honours the
    /// deadlines. What a [`CustomModel`](crate::CustomModel) does by default.
    pub fn perform(self) -> io::Result<Completion> {
        use rustix::net::{RecvFlags, SendFlags};
        let count = Completion::Count;
        match self {
            Operation::Open { path, options } => {
                crate::context::check()?;
                Ok(Completion::Fd(options.as_std().open(path)?.into()))
            }
            Operation::Read {
                fd,
                buf,
                offset,
                deadline,
            } => crate::op::stream::read_on_thread(fd, buf, offset, deadline).map(count),
            Operation::ReadVectored {
                fd,
                bufs,
                offset,
                deadline,
            } => crate::op::stream::readv_on_thread(fd, bufs, offset, deadline).map(count),
            Operation::Write {
                fd,
                buf,
                offset,
                deadline,
            } => crate::op::stream::write_on_thread(fd, buf, offset, deadline).map(count),
            Operation::WriteVectored {
                fd,
                bufs,
                offset,
                deadline,
            } => crate::op::stream::writev_on_thread(fd, bufs, offset, deadline).map(count),
            Operation::Sync { fd, data_only } => {
                crate::context::check()?;
                if data_only {
                    rustix::fs::fdatasync(fd)?;
                } else {
                    rustix::fs::fsync(fd)?;
                }
                Ok(Completion::Done)
            }
            Operation::Accept { fd, deadline } => retry_on_fd(fd, Interest::Read, deadline, || {
                Ok(rustix::net::accept_with(
                    fd,
                    rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
                )?)
            })
            .map(Completion::Fd),
            Operation::Connect { fd, addr, deadline } => {
                crate::op::connect::connect_on_thread(fd, &addr.into(), deadline)
                    .map(|()| Completion::Done)
            }
            Operation::Recv {
                fd,
                buf,
                peek,
                deadline,
            } => {
                let flags = if peek {
                    RecvFlags::PEEK
                } else {
                    RecvFlags::empty()
                };
                retry_on_fd(fd, Interest::Read, deadline, || {
                    Ok(rustix::net::recv(fd, &mut *buf, flags)?.0)
                })
                .map(count)
            }
            Operation::Send { fd, buf, deadline } => {
                retry_on_fd(fd, Interest::Write, deadline, || {
                    Ok(rustix::net::send(fd, buf, crate::op::send::flags())?)
                })
                .map(count)
            }
            Operation::RecvVectored { fd, bufs, deadline } => {
                crate::op::recv::recv_vectored_on_thread(fd, bufs, deadline).map(count)
            }
            Operation::SendVectored { fd, bufs, deadline } => {
                crate::op::send::send_vectored_on_thread(fd, bufs, deadline).map(count)
            }
            Operation::RecvFrom {
                fd,
                buf,
                peek,
                deadline,
            } => {
                let flags = if peek {
                    RecvFlags::PEEK
                } else {
                    RecvFlags::empty()
                };
                retry_on_fd(fd, Interest::Read, deadline, || {
                    let (n, _, from) = rustix::net::recvfrom(fd, &mut *buf, flags)?;
                    Ok(Completion::Datagram(n, crate::op::msg::ip_sender(from)?))
                })
            }
            Operation::SendTo {
                fd,
                buf,
                addr,
                deadline,
            } => retry_on_fd(fd, Interest::Write, deadline, || {
                Ok(rustix::net::sendto(fd, buf, SendFlags::NOSIGNAL, &addr)?)
            })
            .map(count),
            Operation::Bind { fd, addr, backlog } => {
                rustix::net::bind(fd, &addr)?;
                if let Some(backlog) = backlog {
                    rustix::net::listen(fd, i32::try_from(backlog).unwrap_or(i32::MAX))?;
                }
                Ok(Completion::Done)
            }
            Operation::Address { fd, peer } => {
                let sock = socket2::SockRef::from(&fd);
                let addr = if peer {
                    sock.peer_addr()?
                } else {
                    sock.local_addr()?
                };
                addr.as_socket()
                    .map(Completion::Address)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket"))
            }
            Operation::Shutdown { fd, how } => {
                socket2::SockRef::from(&fd).shutdown(how)?;
                Ok(Completion::Done)
            }
            Operation::Duplicate { fd } => Ok(Completion::Fd(fd.try_clone_to_owned()?)),
            Operation::Close { .. } => Ok(Completion::Done),
            Operation::Resolve { name } => {
                crate::net::addr::lookup_name(name.to_owned()).map(Completion::Addresses)
            }
            Operation::Stat { path, follow } => {
                crate::context::check()?;
                let meta = if follow {
                    std::fs::metadata(path)?
                } else {
                    std::fs::symlink_metadata(path)?
                };
                Ok(Completion::Metadata(meta))
            }
            Operation::Remove { path, dir } => {
                crate::context::check()?;
                if dir {
                    std::fs::remove_dir(path)?;
                } else {
                    std::fs::remove_file(path)?;
                }
                Ok(Completion::Done)
            }
            Operation::Rename { from, to } => {
                crate::context::check()?;
                std::fs::rename(from, to)?;
                Ok(Completion::Done)
            }
            Operation::CreateDir { path, recursive } => {
                crate::context::check()?;
                if recursive {
                    std::fs::create_dir_all(path)?;
                } else {
                    std::fs::create_dir(path)?;
                }
                Ok(Completion::Done)
            }
            Operation::Sleep { deadline } => {
                crate::park::park(crate::context::effective_deadline(Some(deadline)));
                Ok(Completion::Done)
            }
            Operation::Now => Ok(Completion::Instant(Instant::now())),
            Operation::WallClock => Ok(Completion::SystemTime(SystemTime::now())),
            Operation::Other { run, .. } => run().map(|()| Completion::Done),
        }
    }
}

impl fmt::Debug for Operation<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Operation");
        d.field("name", &self.name());
        match self {
            Operation::Open { path, .. } => d.field("path", path),
            Operation::Read { fd, buf, .. } | Operation::Recv { fd, buf, .. } => {
                d.field("fd", fd).field("len", &buf.len())
            }
            Operation::RecvFrom { fd, buf, .. } => d.field("fd", fd).field("len", &buf.len()),
            Operation::Write { fd, buf, .. } | Operation::Send { fd, buf, .. } => {
                d.field("fd", fd).field("len", &buf.len())
            }
            Operation::SendTo { fd, buf, addr, .. } => d
                .field("fd", fd)
                .field("len", &buf.len())
                .field("addr", addr),
            Operation::ReadVectored { fd, bufs, .. } | Operation::RecvVectored { fd, bufs, .. } => {
                d.field("fd", fd).field("bufs", &bufs.len())
            }
            Operation::WriteVectored { fd, bufs, .. }
            | Operation::SendVectored { fd, bufs, .. } => {
                d.field("fd", fd).field("bufs", &bufs.len())
            }
            Operation::Sync { fd, .. }
            | Operation::Accept { fd, .. }
            | Operation::Address { fd, .. }
            | Operation::Shutdown { fd, .. }
            | Operation::Duplicate { fd }
            | Operation::Close { fd } => d.field("fd", fd),
            Operation::Bind { fd, addr, .. } => d.field("fd", fd).field("addr", addr),
            Operation::Resolve { name } => d.field("name", name),
            Operation::Stat { path, .. }
            | Operation::Remove { path, .. }
            | Operation::CreateDir { path, .. } => d.field("path", path),
            Operation::Rename { from, to } => d.field("from", from).field("to", to),
            Operation::Connect { fd, addr, .. } => d.field("fd", fd).field("addr", addr),
            Operation::Sleep { deadline } => d.field("deadline", deadline),
            Operation::Now | Operation::WallClock | Operation::Other { .. } => &mut d,
        };
        d.finish_non_exhaustive()
    }
}

/// What an [`Operation`] produced. Each operation documents which variant it completes with;
/// a model that answers with another one makes the operation fail with `InvalidData`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Completion {
    /// The operation succeeded and has nothing to return.
    Done,
    /// A byte count (reads, writes, sends, receives).
    Count(usize),
    /// A new descriptor (an opened file, an accepted connection).
    Fd(OwnedFd),
    /// A received datagram's length and sender.
    Datagram(usize, SocketAddr),
    /// A socket address.
    Address(SocketAddr),
    /// The addresses a name resolved to.
    Addresses(Vec<SocketAddr>),
    /// A file's metadata.
    Metadata(std::fs::Metadata),
    /// A reading of the monotonic clock.
    Instant(Instant),
    /// A reading of the wall clock.
    SystemTime(SystemTime),
}

impl Completion {
    fn mismatch(self, op: &'static str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the model answered a `{op}` operation with {self:?}"),
        )
    }

    pub(crate) fn into_done(self, op: &'static str) -> io::Result<()> {
        match self {
            Completion::Done => Ok(()),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_count(self, op: &'static str) -> io::Result<usize> {
        match self {
            Completion::Count(n) => Ok(n),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_fd(self, op: &'static str) -> io::Result<OwnedFd> {
        match self {
            Completion::Fd(fd) => Ok(fd),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_datagram(self, op: &'static str) -> io::Result<(usize, SocketAddr)> {
        match self {
            Completion::Datagram(n, from) => Ok((n, from)),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_address(self, op: &'static str) -> io::Result<SocketAddr> {
        match self {
            Completion::Address(a) => Ok(a),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_addresses(self, op: &'static str) -> io::Result<Vec<SocketAddr>> {
        match self {
            Completion::Addresses(a) => Ok(a),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_metadata(self, op: &'static str) -> io::Result<std::fs::Metadata> {
        match self {
            Completion::Metadata(m) => Ok(m),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_instant(self, op: &'static str) -> io::Result<Instant> {
        match self {
            Completion::Instant(t) => Ok(t),
            other => Err(other.mismatch(op)),
        }
    }

    pub(crate) fn into_system_time(self, op: &'static str) -> io::Result<SystemTime> {
        match self {
            Completion::SystemTime(t) => Ok(t),
            other => Err(other.mismatch(op)),
        }
    }
}

//! Zero-copy transfers between zsync files and sockets: [`send_file`], [`copy_file_range`],
//! [`splice`] and the path-picking [`copy`], each falling back transparently.
//!
//! | from → to | tried in order |
//! |---|---|
//! | regular file → socket, pipe, FIFO, character device | `sendfile(2)` → `splice(2)` through a pipe → buffered read/write (Green io_uring: see below) |
//! | regular file → regular file | `copy_file_range(2)` → `sendfile(2)` → buffered |
//! | socket or pipe → socket or pipe ([`copy`] only) | `splice(2)` through a pipe → buffered read/write |
//! | anything else (socket or pipe → regular file, …) | buffered read/write |
//!
//! A path is abandoned for the next one when the kernel says it does not do that transfer
//! (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`, `EXDEV`, …) or when its *first* call reports end of file
//! (some pseudo-files, e.g. in `/proc`, claim size 0 to `copy_file_range`; the next path then
//! confirms the end). The switch happens at the exact position reached, so a partial transfer
//! followed by a fallback neither skips nor repeats a byte. Every path:
//!
//! - returns the number of bytes actually moved — less than asked only if the source ended
//!   first (a file shorter than `offset + len`);
//! - retries `EINTR`, and on a non-blocking socket treats `EAGAIN` as "wait until writable"
//!   (`crate::park::retry_on_fd`: a cancellation point that parks the fiber on Green);
//! - runs file-to-file syscalls as `zsync::fs` does: after a cancellation check, and on a helper
//!   thread when called from a Green fiber. Chunks are at most 16 MiB, so a long copy is
//!   cancellable between chunks.
//!
//! ## Which descriptors
//!
//! Anything that implements [`Descriptor`]: [`File`], [`TcpStream`],
//! [`UnixStream`], [`PipeReader`], [`PipeWriter`], and references to them. The trait tells the transfer
//! the descriptor's [`Io`] and how it waits ([`FdKind`]).
//!
//! ## A peer that goes away
//!
//! A socket or pipe whose reader has closed fails with `BrokenPipe` (or `ConnectionReset` when
//! the peer's close discarded unread data). `sendfile` and `splice` have no `MSG_NOSIGNAL`: the
//! kernel raises `SIGPIPE` on the writing thread. Rust programs ignore `SIGPIPE` anyway; if its
//! disposition is anything else, these functions block it on the calling thread around each such
//! syscall and consume the one it raised, so the process never dies of it. Buffered writes to a
//! socket use `send(MSG_NOSIGNAL)`.
//!
//! ## Green on io_uring: the disk is waited for off the worker
//!
//! `sendfile` from a file whose pages are not cached waits for the disk on the calling thread —
//! on Green, on the fiber's worker, stalling every fiber there. So on a Green io_uring worker a
//! file-to-socket transfer goes chunk by chunk: a chunk whose pages are all cached
//! (`cachestat(2)`) leaves with `sendfile`, which then cannot wait for the disk; any other chunk
//! goes file → pipe as an `IORING_OP_SPLICE` ring op (run by a kernel io-wq thread) and pipe →
//! socket as a non-blocking `splice`. Kernels without the opcode or without `cachestat` take the
//! syscalls. Elsewhere — thread models, epoll workers — `sendfile` runs on the calling thread,
//! as regular-file reads do there.
//!
//! ## Timeouts and deadlines
//!
//! Every wait for a socket end to become writable (or readable) is bounded by the socket's
//! [`write_timeout`](Descriptor::write_timeout) ([`read_timeout`](Descriptor::read_timeout)) —
//! a peer that stops reading makes the transfer fail with `WouldBlock`, as a std socket's
//! timeout does — and by the task's deadline ([`Io::timeout_until`]: `TimedOut`); and it is a
//! cancellation point, on every model. A transfer that fails after moving bytes does not report
//! how many: the error wins.

mod sys;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::fs::FileType;

use crate::fs::File;
use crate::net::{TcpStream, UnixStream};
use crate::op;
use crate::park::Interest;
use crate::{Io, PipeReader, PipeWriter};

/// The largest chunk of one file-to-file syscall: bounds how long a transfer runs without a
/// cancellation check.
const FILE_CHUNK: u64 = 16 << 20;
/// `sendfile`'s per-call maximum on Linux (`MAX_RW_COUNT`).
const SENDFILE_MAX: u64 = 0x7fff_f000;
/// The buffer of the buffered fallback.
const COPY_BUF: usize = 256 * 1024;
/// The pipe size asked for by the `splice` path (the kernel may refuse: then 64 KiB).
const PIPE_SIZE: usize = 1 << 20;

#[cfg(test)]
thread_local! {
    /// `sendfile` calls that moved bytes on this thread (tests only: proves which path a
    /// transfer took; per thread, like `op::splice::ring_ops`).
    static SENDFILES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts one `sendfile` that moved bytes (tests only).
fn note_sendfile() {
    #[cfg(test)]
    SENDFILES.with(|n| n.set(n.get() + 1));
}

/// How a descriptor's operations wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// A non-blocking socket: try the syscall, wait for readiness on `EAGAIN`.
    Socket,
    /// A file opened in blocking mode: the syscall runs to completion (on a helper thread on
    /// Green), checked for cancellation before it starts.
    File,
    /// A non-blocking descriptor that is not a socket — a pipe, FIFO, terminal or character
    /// device ([`PipeReader`], a [`File`] that is not a regular file): try the
    /// syscall, wait for readiness on `EAGAIN`, as for a socket.
    Pipe,
}

/// A zsync file or socket that lends its descriptor to zero-copy transfers.
///
/// Implemented by [`File`], [`TcpStream`], [`UnixStream`], [`PipeReader`], [`PipeWriter`] and
/// references to anything that implements it. An implementation for another type must report
/// the [`FdKind`] that matches how its descriptor was opened (a blocking descriptor reported as
/// `Socket` or `Pipe` would block its thread).
pub trait Descriptor: AsFd {
    /// The `Io` its operations run on.
    fn io(&self) -> &Io;
    /// How its operations wait.
    fn kind(&self) -> FdKind;
    /// How long one wait for the descriptor to become readable may last before a transfer
    /// reading from it fails with `WouldBlock`, as std reports a socket timeout (a socket's
    /// [`set_read_timeout`](TcpStream::set_read_timeout)). `None`: no limit but the task's
    /// deadline.
    fn read_timeout(&self) -> Option<Duration> {
        None
    }
    /// How long one wait for the descriptor to become writable — a stalled peer — may last
    /// before a transfer writing to it fails with `WouldBlock`, as std reports a socket timeout
    /// (a socket's [`set_write_timeout`](TcpStream::set_write_timeout)). `None`: no limit but
    /// the task's deadline.
    fn write_timeout(&self) -> Option<Duration> {
        None
    }
}

impl Descriptor for File {
    fn io(&self) -> &Io {
        File::io(self)
    }
    fn kind(&self) -> FdKind {
        if self.is_stream() {
            FdKind::Pipe
        } else {
            FdKind::File
        }
    }
}

impl Descriptor for PipeReader {
    fn io(&self) -> &Io {
        PipeReader::io(self)
    }
    fn kind(&self) -> FdKind {
        FdKind::Pipe
    }
}

impl Descriptor for PipeWriter {
    fn io(&self) -> &Io {
        PipeWriter::io(self)
    }
    fn kind(&self) -> FdKind {
        FdKind::Pipe
    }
}

impl Descriptor for TcpStream {
    fn io(&self) -> &Io {
        TcpStream::io(self)
    }
    fn kind(&self) -> FdKind {
        FdKind::Socket
    }
    fn read_timeout(&self) -> Option<Duration> {
        TcpStream::read_timeout(self)
    }
    fn write_timeout(&self) -> Option<Duration> {
        TcpStream::write_timeout(self)
    }
}

impl Descriptor for UnixStream {
    fn io(&self) -> &Io {
        UnixStream::io(self)
    }
    fn kind(&self) -> FdKind {
        FdKind::Socket
    }
    fn read_timeout(&self) -> Option<Duration> {
        UnixStream::read_timeout(self)
    }
    fn write_timeout(&self) -> Option<Duration> {
        UnixStream::write_timeout(self)
    }
}

impl<T: Descriptor + ?Sized> Descriptor for &T {
    fn io(&self) -> &Io {
        (**self).io()
    }
    fn kind(&self) -> FdKind {
        (**self).kind()
    }
    fn read_timeout(&self) -> Option<Duration> {
        (**self).read_timeout()
    }
    fn write_timeout(&self) -> Option<Duration> {
        (**self).write_timeout()
    }
}

/// Sends `len` bytes of `file`, starting at byte `offset`, to `sink` — a socket or a file —
/// without copying them through user space when the kernel can: `sendfile(2)` to a socket (else
/// `splice(2)`), `copy_file_range(2)` to a file (else `sendfile(2)`), a buffered loop as the
/// last resort (see the [module docs](self)). `file`'s own offset is neither used nor moved.
/// Returns the number of bytes sent: less than `len` only if the file ends first. Cancellation
/// point.
///
/// A `file` that is not a regular file (a FIFO, a character device) is copied through a buffer;
/// with `offset == 0` it is read from where it stands, as a stream.
///
/// Errors: `BrokenPipe`/`ConnectionReset` if the peer goes away (see the module docs on
/// `SIGPIPE`), `Canceled`, the task's `TimedOut`, `WouldBlock` when a socket's timeout expires,
/// or the syscalls' own errors.
///
/// ```
/// use std::io::Read;
/// use zsync::fs::File;
/// use zsync::net::UnixStream;
///
/// let path = std::env::temp_dir().join(format!("zsync-doc-send-file-{}", std::process::id()));
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     std::fs::write(&path, b"0123456789")?;
///     let file = File::open(io, &path)?;
///     let (a, mut b) = UnixStream::pair(io)?;
///     assert_eq!(zsync::transfer::send_file(&a, &file, 2, 5)?, 5);
///     assert_eq!(zsync::transfer::send_file(&a, &file, 8, 100)?, 2); // the file ends first
///     drop(a);
///     let mut got = String::new();
///     b.read_to_string(&mut got)?;
///     assert_eq!(got, "2345689");
///     std::fs::remove_file(&path)
/// }).unwrap();
/// ```
#[track_caller]
pub fn send_file<W: Descriptor + ?Sized>(
    sink: &W,
    file: &File,
    offset: u64,
    len: u64,
) -> io::Result<u64> {
    let _wait = crate::diag::wait_point::note_fd(
        crate::diag::wait_point::WaitOp::Transfer,
        std::os::fd::AsRawFd::as_raw_fd(&sink.as_fd()),
    );
    crate::context::check()?;
    let src = End::source(file);
    let dst = End::sink(sink);
    let regular = is_regular(file.as_fd())?;
    let pos = if regular || offset != 0 {
        Some(offset)
    } else {
        None
    };
    let methods = match (regular, dst.kind) {
        (true, FdKind::Socket | FdKind::Pipe) => to_stream(),
        (true, FdKind::File) => &[Method::CopyFileRange, Method::SendFile, Method::Buffered],
        (false, _) => &[Method::Buffered],
    };
    Job::new(src, pos, dst, None, len).run(methods)
}

/// Copies `len` bytes from `from` at byte `from_offset` to `to` at byte `to_offset` with
/// `copy_file_range(2)` (in-kernel, a reflink on file systems that share extents), falling back
/// to a buffered `pread`/`pwrite` loop (across file systems on old kernels, for non-regular
/// files). Neither file's offset is used or moved. Returns the number of bytes copied: less
/// than `len` only if `from` ends first. Cancellation point (between chunks of 16 MiB).
///
/// ```
/// use zsync::fs::File;
/// let dir = std::env::temp_dir();
/// let (a, b) = (dir.join(format!("zsync-doc-cfr-a-{}", std::process::id())),
///               dir.join(format!("zsync-doc-cfr-b-{}", std::process::id())));
/// zsync::run(zsync::Model::Green, |io| -> std::io::Result<()> {
///     std::fs::write(&a, b"hello, world")?;
///     let from = File::open(io, &a)?;
///     let to = File::create(io, &b)?;
///     assert_eq!(zsync::transfer::copy_file_range(&from, 7, &to, 2, 100)?, 5);
///     assert_eq!(std::fs::read(&b)?, b"\0\0world");
///     std::fs::remove_file(&a)?;
///     std::fs::remove_file(&b)
/// }).unwrap();
/// ```
#[track_caller]
pub fn copy_file_range(
    from: &File,
    from_offset: u64,
    to: &File,
    to_offset: u64,
    len: u64,
) -> io::Result<u64> {
    let _wait = crate::diag::wait_point::note_fd(
        crate::diag::wait_point::WaitOp::Transfer,
        std::os::fd::AsRawFd::as_raw_fd(&from.as_fd()),
    );
    crate::context::check()?;
    let methods: &[Method] = if is_regular(from.as_fd())? {
        &[Method::CopyFileRange, Method::Buffered]
    } else {
        &[Method::Buffered]
    };
    Job::new(
        End::source(from),
        Some(from_offset),
        End::sink(to),
        Some(to_offset),
        len,
    )
    .run(methods)
}

/// Sends `len` bytes of the regular file `file` from byte `offset` to the socket `sink` through
/// a pipe with `splice(2)` — the path [`send_file`] takes when `sendfile(2)` is refused —
/// falling back to a buffered loop. Returns the number of bytes sent: less than `len` only if
/// the file ends first. Cancellation point.
///
/// ```
/// use std::io::Read;
/// use zsync::fs::File;
/// use zsync::net::UnixStream;
///
/// let path = std::env::temp_dir().join(format!("zsync-doc-splice-{}", std::process::id()));
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     std::fs::write(&path, b"spliced bytes")?;
///     let file = File::open(io, &path)?;
///     let (a, mut b) = UnixStream::pair(io)?;
///     assert_eq!(zsync::transfer::splice(&a, &file, 8, 5)?, 5);
///     drop(a);
///     let mut got = String::new();
///     b.read_to_string(&mut got)?;
///     assert_eq!(got, "bytes");
///     std::fs::remove_file(&path)
/// }).unwrap();
/// ```
#[track_caller]
pub fn splice<W: Descriptor + ?Sized>(
    sink: &W,
    file: &File,
    offset: u64,
    len: u64,
) -> io::Result<u64> {
    let _wait = crate::diag::wait_point::note_fd(
        crate::diag::wait_point::WaitOp::Transfer,
        std::os::fd::AsRawFd::as_raw_fd(&sink.as_fd()),
    );
    crate::context::check()?;
    let dst = End::sink(sink);
    let methods: &[Method] = if dst.kind != FdKind::File && is_regular(file.as_fd())? {
        &[Method::Splice, Method::Buffered]
    } else {
        &[Method::Buffered]
    };
    Job::new(End::source(file), Some(offset), dst, None, len).run(methods)
}

/// Copies everything from `reader` (from where it stands) to `writer` until the reader's end,
/// picking the fastest path the pair allows (see the [module docs](self)): `copy_file_range` for
/// file to file, `sendfile`/`splice` for file to socket, `splice` through a pipe for socket to
/// socket (a proxy: the bytes never enter user space), a buffered loop otherwise. Like
/// [`std::io::copy`], it uses and advances the file offsets of both. Returns the number of bytes
/// copied. Cancellation point.
///
/// Both ends carry their own [`Io`], so there is none to pass.
///
/// ```
/// use std::io::{Seek, SeekFrom};
/// use zsync::fs::File;
/// let dir = std::env::temp_dir();
/// let (a, b) = (dir.join(format!("zsync-doc-copy-a-{}", std::process::id())),
///               dir.join(format!("zsync-doc-copy-b-{}", std::process::id())));
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     std::fs::write(&a, b"skip:payload")?;
///     let mut from = File::open(io, &a)?;
///     from.seek(SeekFrom::Start(5))?;
///     let to = File::create(io, &b)?;
///     assert_eq!(zsync::copy(&from, &to)?, 7);
///     assert_eq!(std::fs::read(&b)?, b"payload");
///     assert_eq!(from.stream_position()?, 12);
///     std::fs::remove_file(&a)?;
///     std::fs::remove_file(&b)
/// }).unwrap();
/// ```
#[track_caller]
pub fn copy<R: Descriptor + ?Sized, W: Descriptor + ?Sized>(
    reader: &R,
    writer: &W,
) -> io::Result<u64> {
    let _wait = crate::diag::wait_point::note_fd(
        crate::diag::wait_point::WaitOp::Transfer,
        std::os::fd::AsRawFd::as_raw_fd(&reader.as_fd()),
    );
    crate::context::check()?;
    let src = End::source(reader);
    let dst = End::sink(writer);
    let regular = src.kind == FdKind::File && is_regular(src.fd)?;
    let methods = match (regular, src.kind, dst.kind) {
        (true, _, FdKind::Socket | FdKind::Pipe) => to_stream(),
        (true, _, FdKind::File) => &[Method::CopyFileRange, Method::SendFile, Method::Buffered],
        (false, FdKind::Socket | FdKind::Pipe, FdKind::Socket | FdKind::Pipe) => {
            &[Method::Splice, Method::Buffered]
        }
        (false, _, _) => &[Method::Buffered],
    };
    Job::new(src, None, dst, None, u64::MAX).run(methods)
}

/// The paths from a regular file to a socket or pipe, fastest first: on a Green io_uring
/// worker, `sendfile` for what is cached and ring splices for what is not (the disk is waited
/// for off the worker); elsewhere `sendfile`.
fn to_stream() -> &'static [Method] {
    if op::splice::on_ring_here() {
        &[Method::RingSplice, Method::SendFile, Method::Buffered]
    } else {
        &[Method::SendFile, Method::Splice, Method::Buffered]
    }
}

fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(u64::try_from(rustix::fs::fstat(fd)?.st_size).unwrap_or(0))
}

fn is_regular(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
}

/// One end of a transfer.
#[derive(Clone, Copy)]
struct End<'a> {
    fd: BorrowedFd<'a>,
    io: &'a Io,
    kind: FdKind,
    /// The longest one wait for readiness (`Interest::Read` for a source, `Write` for a sink)
    /// may last.
    timeout: Option<Duration>,
}

impl<'a> End<'a> {
    fn source<D: Descriptor + ?Sized>(d: &'a D) -> End<'a> {
        End {
            fd: d.as_fd(),
            io: d.io(),
            kind: d.kind(),
            timeout: d.read_timeout(),
        }
    }

    fn sink<D: Descriptor + ?Sized>(d: &'a D) -> End<'a> {
        End {
            timeout: d.write_timeout(),
            ..End::source(d)
        }
    }
}

/// The pipe of one `splice` transfer, closed when the transfer ends.
///
/// One per transfer rather than a per-worker pool: a pool would have to be emptied when its
/// worker stops (no descriptor may outlive `run`), and a pipe left holding bytes by a failed
/// transfer would have to be drained or discarded before reuse. A pipe costs one `pipe2` and one
/// `fcntl`, a few microseconds against the milliseconds of a transfer big enough to want
/// zero-copy. Every splice on it has completed when it drops: ring ops are waited for to
/// their completion even when canceled (see [`op::splice`]).
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Its capacity in bytes: the largest chunk one hop moves.
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        // Refused beyond the user's pipe page budget (`fs.pipe-user-pages-soft`): then the
        // default size (64 KiB, or one page once over the budget) does the job, in more hops.
        let size = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))?;
        Ok(Pipe { read, write, size })
    }
}

/// The ways to move bytes, fastest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    CopyFileRange,
    SendFile,
    Splice,
    /// Green io_uring: `sendfile` for cached chunks, ring splices for the others.
    RingSplice,
    Buffered,
}

/// What a method reports when it stops without an error.
enum Stop {
    /// `len` reached or the source ended: the transfer is over.
    Done,
    /// The kernel refused this method here (or its first call claimed end of file): try the
    /// next one from the position reached.
    Unsupported,
}

/// A transfer in progress: where it stands and how much is left.
struct Job<'a> {
    src: End<'a>,
    /// `Some(offset)`: positional reads at `offset` (advanced as bytes move; the file offset is
    /// untouched). `None`: reads at the source's own offset / stream position.
    src_pos: Option<u64>,
    dst: End<'a>,
    /// As `src_pos`, for writes.
    dst_pos: Option<u64>,
    left: u64,
    moved: u64,
    /// Whether SIGPIPE must be suppressed around syscalls that can raise it.
    sigpipe: bool,
}

impl<'a> Job<'a> {
    fn new(
        src: End<'a>,
        src_pos: Option<u64>,
        dst: End<'a>,
        dst_pos: Option<u64>,
        len: u64,
    ) -> Job<'a> {
        Job {
            src,
            src_pos,
            dst,
            dst_pos,
            left: len,
            moved: 0,
            sigpipe: sys::sigpipe_live(),
        }
    }

    fn run(mut self, methods: &[Method]) -> io::Result<u64> {
        if self.src.io.inner.model.sim().is_some() {
            // A simulation's descriptors are simulated files and sockets: no kernel path
            // applies, the bytes go through its operations (see `buffered_on_model`).
            return self.buffered_on_model().map(|()| self.moved);
        }
        for &m in methods {
            if self.left == 0 {
                break;
            }
            let stop = match m {
                Method::CopyFileRange => self.copy_file_range(),
                Method::SendFile => self.sendfile(),
                Method::Splice => self.splice(),
                Method::RingSplice => self.ring_splice(),
                Method::Buffered => self.buffered().map(|()| Stop::Done),
            }?;
            if let Stop::Done = stop {
                break;
            }
        }
        Ok(self.moved)
    }

    fn advance(&mut self, n: usize) {
        let n = n as u64;
        self.moved += n;
        self.left -= n;
        if let Some(p) = &mut self.src_pos {
            *p += n;
        }
    }

    /// Classifies a method's syscall result: `Ok(Some(n))` to go on, or how the method stops.
    fn step(&self, r: io::Result<usize>, first: bool) -> io::Result<Result<usize, Stop>> {
        match r {
            Ok(0) if first => Ok(Err(Stop::Unsupported)),
            Ok(0) => Ok(Err(Stop::Done)),
            Ok(n) => Ok(Ok(n)),
            Err(e) if sys::unsupported(&e) => Ok(Err(Stop::Unsupported)),
            Err(e) => Err(e),
        }
    }

    /// `copy_file_range(2)`, file to file, in chunks of at most [`FILE_CHUNK`].
    fn copy_file_range(&mut self) -> io::Result<Stop> {
        let mut first = true;
        while self.left > 0 {
            let chunk = self.left.min(FILE_CHUNK) as usize;
            let (src, dst) = (self.src.fd, self.dst.fd);
            let (mut sp, mut dp) = (self.src_pos, self.dst_pos);
            let r = sys::file_op(self.src.io, || {
                Ok(rustix::fs::copy_file_range(
                    src,
                    sp.as_mut(),
                    dst,
                    dp.as_mut(),
                    chunk,
                )?)
            });
            match self.step(r, first)? {
                Ok(n) => {
                    if let Some(p) = &mut self.dst_pos {
                        *p += n as u64;
                    }
                    self.advance(n);
                }
                Err(stop) => return Ok(stop),
            }
            first = false;
        }
        Ok(Stop::Done)
    }

    /// `sendfile(2)`: to a socket (waiting for writability) or to any file (offloaded). It
    /// writes at the sink's own offset, so a positional sink rules it out.
    fn sendfile(&mut self) -> io::Result<Stop> {
        if self.dst_pos.is_some() {
            return Ok(Stop::Unsupported);
        }
        let mut first = true;
        let live = self.sigpipe;
        while self.left > 0 {
            let max = match self.dst.kind {
                FdKind::Socket | FdKind::Pipe => SENDFILE_MAX,
                FdKind::File => FILE_CHUNK,
            };
            let chunk = self.left.min(max) as usize;
            let (src, dst) = (self.src.fd, self.dst.fd);
            let mut sp = self.src_pos;
            let r = sys::op(&self.dst, Interest::Write, || {
                sys::no_sigpipe(live, || {
                    Ok(rustix::fs::sendfile(dst, src, sp.as_mut(), chunk)?)
                })
            });
            match self.step(r, first)? {
                Ok(n) => {
                    note_sendfile();
                    self.advance(n);
                }
                Err(stop) => return Ok(stop),
            }
            first = false;
        }
        Ok(Stop::Done)
    }

    /// `splice(2)` file (or socket) → pipe → socket: file → pipe as a ring op on a Green
    /// io_uring worker for bytes not in the page cache (see [`op::splice`]), every other hop a
    /// syscall. The pipe is emptied into the socket before it is filled
    /// again, so bytes read from the file and not yet sent exist only while a send is pending;
    /// if that send fails the transfer fails (`moved` counts only what the socket took).
    fn splice(&mut self) -> io::Result<Stop> {
        let pipe = Pipe::new()?;
        let mut first = true;
        while self.left > 0 {
            let hop = op::splice::Splice {
                from: self.src.fd,
                offset: self.src_pos,
                to: pipe.write.as_fd(),
                len: self.left.min(pipe.size as u64) as usize,
            };
            let r = self.fill_pipe(&hop);
            let in_pipe = match self.step(r, first)? {
                Ok(n) => n,
                Err(stop) => return Ok(stop),
            };
            first = false;
            // Out of the pipe into the socket, as fast as it takes it.
            self.empty_pipe(pipe.read.as_fd(), in_pipe)?;
        }
        Ok(Stop::Done)
    }

    /// Source → (empty) pipe. From a file: never waits for the pipe, only for the disk. On a Green io_uring
    /// worker, bytes not in the page cache are read by a ring splice, so the disk is waited for
    /// on a kernel io-wq thread instead of the worker; cached bytes (and every other model) take
    /// the syscall, which then cannot block.
    fn fill_pipe(&self, hop: &op::splice::Splice<'_>) -> io::Result<usize> {
        if self.src.kind != FdKind::File {
            // Socket (or pipe) → pipe: whatever the socket holds, waiting (at most its read timeout) for
            // it to become readable.
            return sys::op(&self.src, Interest::Read, || hop.syscall());
        }
        if op::splice::on_ring_here() && !self.src_cached(hop.len as u64)? {
            if let Some(r) = hop.on_ring(None) {
                return r;
            }
        }
        loop {
            match hop.syscall() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => crate::context::check()?,
                other => return other,
            }
        }
    }

    /// Whether the next `len` bytes of the source are all in the page cache.
    fn src_cached(&self, len: u64) -> io::Result<bool> {
        Ok(op::splice::cached(self.src.fd, self.src_position()?, len))
    }

    /// Where the next byte is read from the source.
    fn src_position(&self) -> io::Result<u64> {
        match self.src_pos {
            Some(p) => Ok(p),
            None => Ok(rustix::fs::tell(self.src.fd)?),
        }
    }

    /// Moves the `in_pipe` bytes waiting in `pipe` into the destination, all of them, counting
    /// them as moved.
    fn empty_pipe(&mut self, pipe: BorrowedFd<'_>, mut in_pipe: usize) -> io::Result<()> {
        while in_pipe > 0 {
            let n = self.drain_pipe(pipe, in_pipe)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            in_pipe -= n;
            self.advance(n);
        }
        Ok(())
    }

    /// Pipe → socket: some of the `len` bytes in the pipe, waiting (at most the sink's write
    /// timeout) while the socket is full. Always the non-blocking syscall, also on io_uring:
    /// the pages are in the pipe already, so it never waits for the disk, and a ring op would
    /// cost a hop through an io-wq thread per chunk (the kernel runs every ring splice there) —
    /// measured: 100 MiB over loopback in 24.0 ms with ring ops for both hops, 16.8 ms with the
    /// syscall here, same run.
    fn drain_pipe(&self, pipe: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
        let hop = op::splice::Splice {
            from: pipe,
            offset: None,
            to: self.dst.fd,
            len,
        };
        let live = self.sigpipe;
        sys::op(&self.dst, Interest::Write, || {
            sys::no_sigpipe(live, || hop.syscall())
        })
    }

    /// Green io_uring, regular file to socket, chunk by chunk: bytes already in the page cache
    /// leave with one `sendfile` (nothing to wait for, and the fewest syscalls); the others take
    /// the pipe, file → pipe as a ring splice (the disk is waited for on an io-wq thread, not on
    /// the worker), pipe → socket as a syscall. The pipe is made on the first uncached chunk.
    fn ring_splice(&mut self) -> io::Result<Stop> {
        let mut pipe: Option<Pipe> = None;
        let mut first = true;
        let live = self.sigpipe;
        // Bytes from the current position known to be cached: a socket takes a few hundred KiB
        // per `sendfile`, so one `cachestat` of a 16 MiB chunk serves many calls.
        let mut cached = 0u64;
        while self.left > 0 {
            if cached == 0 {
                let pos = self.src_position()?;
                let chunk = self.left.min(FILE_CHUNK);
                if op::splice::cached(self.src.fd, pos, chunk) {
                    cached = chunk;
                } else {
                    // A page beyond the end counts as uncached, which would send a file's
                    // tail — all of a file shorter than a chunk — through the pipe and io-wq
                    // whenever `len` goes past the end (as `copy`'s does): ask again up to the
                    // end.
                    let to_end = file_size(self.src.fd)?.saturating_sub(pos);
                    if to_end == 0 {
                        // At the end: `sendfile` reports it (0) without touching the disk. One
                        // byte, should the file grow meanwhile: the loop then asks again.
                        cached = 1;
                    } else if to_end < chunk && op::splice::cached(self.src.fd, pos, to_end) {
                        cached = to_end;
                    }
                }
            }
            if cached > 0 {
                let (src, dst) = (self.src.fd, self.dst.fd);
                let mut sp = self.src_pos;
                let r = sys::op(&self.dst, Interest::Write, || {
                    sys::no_sigpipe(live, || {
                        Ok(rustix::fs::sendfile(
                            dst,
                            src,
                            sp.as_mut(),
                            cached as usize,
                        )?)
                    })
                });
                match self.step(r, first)? {
                    Ok(n) => {
                        note_sendfile();
                        self.advance(n);
                        cached -= n as u64;
                    }
                    Err(stop) => return Ok(stop),
                }
            } else {
                let pipe = match &mut pipe {
                    Some(p) => p,
                    None => pipe.insert(Pipe::new()?),
                };
                let hop = op::splice::Splice {
                    from: self.src.fd,
                    offset: self.src_pos,
                    to: pipe.write.as_fd(),
                    len: self.left.min(pipe.size as u64) as usize,
                };
                let r = match hop.on_ring(None) {
                    Some(r) => r,
                    None => hop.syscall(),
                };
                let r = match r {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        crate::context::check()?;
                        continue;
                    }
                    r => r,
                };
                let in_pipe = match self.step(r, first)? {
                    Ok(n) => n,
                    Err(stop) => return Ok(stop),
                };
                self.empty_pipe(pipe.read.as_fd(), in_pipe)?;
            }
            first = false;
        }
        Ok(Stop::Done)
    }

    /// Read into a buffer, write it out: works for every pair of descriptors.
    /// The buffered loop as operations of the model (`Read`/`Recv`, `Write`/`Send`), for a
    /// simulation, whose files and sockets only its operations know.
    fn buffered_on_model(&mut self) -> io::Result<()> {
        use crate::model::operation::Operation;
        let model =
            op::custom(self.src.io).ok_or_else(|| io::Error::other("not a custom model"))?;
        let sink = op::custom(self.dst.io).ok_or_else(|| io::Error::other("not a custom model"))?;
        let mut buf = vec![0u8; COPY_BUF.min(usize::try_from(self.left).unwrap_or(COPY_BUF))];
        while self.left > 0 {
            crate::context::check()?;
            let want = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            let (src, sp, kind) = (self.src.fd, self.src_pos, self.src.kind);
            let into = &mut buf[..want];
            let n = crate::net::timeout::bounded(self.src.timeout, |deadline| {
                let read = match kind {
                    FdKind::Socket => Operation::Recv {
                        fd: src,
                        buf: into,
                        peek: false,
                        deadline,
                    },
                    FdKind::File | FdKind::Pipe => Operation::Read {
                        fd: src,
                        buf: into,
                        offset: sp,
                        deadline,
                    },
                };
                op::count_of(model, read)
            })?;
            if n == 0 {
                return Ok(());
            }
            let mut done = 0;
            while done < n {
                let (dst, dp, kind) = (self.dst.fd, self.dst_pos, self.dst.kind);
                let chunk = &buf[done..n];
                let w = crate::net::timeout::bounded(self.dst.timeout, |deadline| {
                    let write = match kind {
                        FdKind::Socket => Operation::Send {
                            fd: dst,
                            buf: chunk,
                            deadline,
                        },
                        FdKind::File | FdKind::Pipe => Operation::Write {
                            fd: dst,
                            buf: chunk,
                            offset: dp,
                            deadline,
                        },
                    };
                    op::count_of(sink, write)
                })?;
                if w == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                done += w;
                if let Some(p) = &mut self.dst_pos {
                    *p += w as u64;
                }
                self.advance(w);
            }
        }
        Ok(())
    }

    fn buffered(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; COPY_BUF.min(usize::try_from(self.left).unwrap_or(COPY_BUF))];
        let live = self.sigpipe;
        while self.left > 0 {
            let want = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            let (src, sp) = (self.src.fd, self.src_pos);
            let dst_buf = &mut buf[..want];
            let n = sys::op(&self.src, Interest::Read, || {
                Ok(match sp {
                    Some(off) => rustix::io::pread(src, &mut *dst_buf, off)?,
                    None => rustix::io::read(src, &mut *dst_buf)?,
                })
            })?;
            if n == 0 {
                return Ok(());
            }
            let mut done = 0;
            while done < n {
                let (dst, dp, kind) = (self.dst.fd, self.dst_pos, self.dst.kind);
                let chunk = &buf[done..n];
                let w = sys::op(&self.dst, Interest::Write, || {
                    Ok(match (kind, dp) {
                        (_, Some(off)) => rustix::io::pwrite(dst, chunk, off)?,
                        (FdKind::Socket, None) => {
                            rustix::net::send(dst, chunk, rustix::net::SendFlags::NOSIGNAL)?
                        }
                        (FdKind::File | FdKind::Pipe, None) => {
                            sys::no_sigpipe(live, || Ok(rustix::io::write(dst, chunk)?))?
                        }
                    })
                })?;
                if w == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                done += w;
                if let Some(p) = &mut self.dst_pos {
                    *p += w as u64;
                }
                self.advance(w);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

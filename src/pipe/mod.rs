//! Anonymous pipes: [`pipe`], [`PipeReader`], [`PipeWriter`]. Counterparts of
//! [`std::io::pipe`], [`std::io::PipeReader`] and [`std::io::PipeWriter`], whose waits for the
//! other end are cancellation points on every model. The async side (readiness polls, `try_io`,
//! `read_async`/`write_async`, the `AsyncRead`/`AsyncWrite` traits) is in [`async_io`].

mod async_io;

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::Stdio;

use rustix::fs::FileType;
use rustix::pipe::PipeFlags;

use crate::diag::wait_point::{self, WaitOp};
use crate::driver::Registered;
use crate::op::stream;
use crate::Io;

/// Creates an anonymous pipe: bytes written to the [`PipeWriter`] come out of the
/// [`PipeReader`] in order. Counterpart of [`std::io::pipe`].
///
/// A read waits until the pipe holds data or every writer is gone (then it returns 0, end of
/// stream); a write waits while the pipe is full (64 KiB by default on Linux). Both waits are
/// cancellation points and honour the task's deadline ([`Io::timeout_until`], [`Io::timeout`])
/// on every model — unlike a read from a [`std::io::PipeReader`], which blocks its thread until
/// data comes. Pass an end to a child process with `Stdio::from` (it gets a blocking
/// descriptor, as children expect).
///
/// Both descriptors are close-on-exec and non-blocking (`O_NONBLOCK`, as Tokio's pipes are);
/// the waiting is zsync's.
///
/// ```
/// use std::io::{Read, Write};
///
/// let got = zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<String> {
///     let (mut reader, mut writer) = zsync::pipe(io)?;
///     let producer = io.spawn(move |_| -> std::io::Result<()> {
///         writer.write_all(b"through the pipe")
///         // `writer` drops here: the reader sees the end of the stream.
///     });
///     let mut text = String::new();
///     reader.read_to_string(&mut text)?;
///     producer.join()?;
///     Ok(text)
/// });
/// assert_eq!(got.unwrap(), "through the pipe");
/// ```
///
/// A read that waits for a writer who never writes gives up at the deadline:
///
/// ```
/// use std::io::Read;
/// use std::time::Duration;
///
/// zsync::run(zsync::Model::Blocking, |io| {
///     let (mut reader, _writer) = zsync::pipe(io).unwrap();
///     let err = io
///         .timeout(Duration::from_millis(10), |_| reader.read(&mut [0; 16]))
///         .unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
/// });
/// ```
pub fn pipe(io: &Io) -> io::Result<(PipeReader, PipeWriter)> {
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    Ok((
        PipeReader {
            registered: Registered::new(),
            io: io.clone(),
            inner: read.into(),
        },
        PipeWriter {
            registered: Registered::new(),
            io: io.clone(),
            inner: write.into(),
        },
    ))
}

/// Checks that `fd` is a pipe or FIFO and puts its description in non-blocking mode.
fn adopt(fd: BorrowedFd<'_>) -> io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a pipe or FIFO",
        ));
    }
    stream::set_nonblocking(fd)?;
    Ok(())
}

/// The reading end of a pipe, from [`pipe`]. Counterpart of [`std::io::PipeReader`];
/// implements [`Read`] (also through `&PipeReader`) and, for async code, `futures_io::AsyncRead`
/// (Tokio's too with feature `tokio-io`), [`read_async`](PipeReader::read_async) and
/// [`poll_read_ready`](PipeReader::poll_read_ready), which wait through the runtime's async
/// driver.
///
/// Every read is a cancellation point and honours the task's deadline; it returns 0 once every
/// writer is gone and the pipe is empty. The reader remembers the [`Io`] it was created with.
pub struct PipeReader {
    /// The async driver registration, made on first async use. Declared before `inner`: it
    /// must drop (deregister) while the descriptor is still open (see [`Registered`]).
    registered: Registered,
    io: Io,
    inner: std::io::PipeReader,
}

impl PipeReader {
    /// Wraps std's reading end, switching its open file description to non-blocking mode (see
    /// [`PipeReader::from_fd`] on what that means for a shared descriptor).
    ///
    /// Errors: `InvalidInput` if the descriptor is not a pipe or FIFO.
    pub fn from_std(io: &Io, reader: std::io::PipeReader) -> io::Result<PipeReader> {
        adopt(reader.as_fd())?;
        Ok(PipeReader {
            registered: Registered::new(),
            io: io.clone(),
            inner: reader,
        })
    }

    /// Wraps the reading end of any pipe or FIFO: an [`OwnedFd`], a child's
    /// [`ChildStdout`](std::process::ChildStdout) or
    /// [`ChildStderr`](std::process::ChildStderr), an opened FIFO's `std::fs::File`.
    ///
    /// Its open file description is switched to non-blocking mode (`O_NONBLOCK`), which every
    /// descriptor sharing it sees, in this process and in others (a pipe inherited as stdin,
    /// a FIFO another process opened is *not* shared: each `open` makes its own description).
    /// [`into_std`](PipeReader::into_std) switches it back.
    ///
    /// Errors: `InvalidInput` if the descriptor is not a pipe or FIFO.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::process::{Command, Stdio};
    /// use zsync::PipeReader;
    ///
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let mut child = Command::new("sh").args(["-c", "echo hi"]).stdout(Stdio::piped()).spawn()?;
    ///     let mut out = PipeReader::from_fd(io, child.stdout.take().unwrap())?;
    ///     let mut text = String::new();
    ///     out.read_to_string(&mut text)?; // cancelable, unlike ChildStdout's read
    ///     child.wait()?;
    ///     assert_eq!(text, "hi\n");
    ///     Ok(())
    /// }).unwrap();
    /// ```
    pub fn from_fd(io: &Io, fd: impl Into<OwnedFd>) -> io::Result<PipeReader> {
        Self::from_std(io, std::io::PipeReader::from(fd.into()))
    }

    /// Unwraps into std's reading end, switching the descriptor back to blocking mode.
    pub fn into_std(self) -> io::Result<std::io::PipeReader> {
        stream::set_blocking(self.inner.as_fd())?;
        Ok(self.inner)
    }

    /// A second reader for the same pipe (`dup`): both read from it, each byte reaching one of
    /// them.
    pub fn try_clone(&self) -> io::Result<PipeReader> {
        Ok(PipeReader {
            registered: Registered::new(),
            io: self.io.clone(),
            inner: self.inner.try_clone()?,
        })
    }

    /// The `Io` this reader was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    #[track_caller]
    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Read, self.inner.as_raw_fd());
        stream::read(&self.io, self.inner.as_fd(), buf, None, None)
    }

    #[track_caller]
    fn read_vectored_inner(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Read, self.inner.as_raw_fd());
        stream::readv(&self.io, self.inner.as_fd(), bufs, None, None)
    }
}

impl Read for PipeReader {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
    #[track_caller]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_inner(bufs)
    }
}

impl Read for &PipeReader {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
    #[track_caller]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_inner(bufs)
    }
}

/// The writing end of a pipe, from [`pipe`]. Counterpart of [`std::io::PipeWriter`];
/// implements [`Write`] (also through `&PipeWriter`) and, for async code,
/// `futures_io::AsyncWrite` (Tokio's too with feature `tokio-io`),
/// [`write_async`](PipeWriter::write_async) and
/// [`poll_write_ready`](PipeWriter::poll_write_ready).
///
/// Every write is a cancellation point and honours the task's deadline; it waits while the pipe
/// is full. A write when every reader is gone fails with `BrokenPipe` (Rust programs ignore the
/// `SIGPIPE` the kernel also sends, as for std's pipes). Writes of at most 4096 bytes
/// (`PIPE_BUF`) are atomic: they are never interleaved with other writers' bytes.
pub struct PipeWriter {
    /// The async driver registration, made on first async use. Declared before `inner`: it
    /// must drop (deregister) while the descriptor is still open (see [`Registered`]).
    registered: Registered,
    io: Io,
    inner: std::io::PipeWriter,
}

impl PipeWriter {
    /// Wraps std's writing end, switching its open file description to non-blocking mode (see
    /// [`PipeReader::from_fd`] on what that means for a shared descriptor).
    ///
    /// Errors: `InvalidInput` if the descriptor is not a pipe or FIFO.
    pub fn from_std(io: &Io, writer: std::io::PipeWriter) -> io::Result<PipeWriter> {
        adopt(writer.as_fd())?;
        Ok(PipeWriter {
            registered: Registered::new(),
            io: io.clone(),
            inner: writer,
        })
    }

    /// Wraps the writing end of any pipe or FIFO: an [`OwnedFd`], a child's
    /// [`ChildStdin`](std::process::ChildStdin), an opened FIFO's `std::fs::File`. Switches its
    /// description to non-blocking mode, as [`PipeReader::from_fd`] does.
    ///
    /// Errors: `InvalidInput` if the descriptor is not a pipe or FIFO.
    pub fn from_fd(io: &Io, fd: impl Into<OwnedFd>) -> io::Result<PipeWriter> {
        Self::from_std(io, std::io::PipeWriter::from(fd.into()))
    }

    /// Unwraps into std's writing end, switching the descriptor back to blocking mode.
    pub fn into_std(self) -> io::Result<std::io::PipeWriter> {
        stream::set_blocking(self.inner.as_fd())?;
        Ok(self.inner)
    }

    /// A second writer for the same pipe (`dup`); the reader sees the end of the stream only
    /// when both are gone.
    pub fn try_clone(&self) -> io::Result<PipeWriter> {
        Ok(PipeWriter {
            registered: Registered::new(),
            io: self.io.clone(),
            inner: self.inner.try_clone()?,
        })
    }

    /// The `Io` this writer was created with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    #[track_caller]
    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Write, self.inner.as_raw_fd());
        stream::write(&self.io, self.inner.as_fd(), buf, None, None)
    }

    #[track_caller]
    fn write_vectored_inner(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Write, self.inner.as_raw_fd());
        stream::writev(&self.io, self.inner.as_fd(), bufs, None, None)
    }
}

impl Write for PipeWriter {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    #[track_caller]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored_inner(bufs)
    }
    /// Nothing to do: writes go straight to the pipe.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &PipeWriter {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_inner(buf)
    }
    #[track_caller]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored_inner(bufs)
    }
    /// Nothing to do: writes go straight to the pipe.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

crate::net::impl_fd_traits!(PipeReader);
crate::net::impl_fd_traits!(PipeWriter);

/// For a child process's standard input: the descriptor is switched back to blocking mode,
/// which is what a child expects (a non-blocking stdin makes ordinary programs fail with
/// `EAGAIN`).
impl From<PipeReader> for Stdio {
    fn from(r: PipeReader) -> Stdio {
        // `FIONBIO` on a pipe descriptor we own does not fail; if it did, the child would see
        // `EAGAIN` errors, not lose data.
        let _ = stream::set_blocking(r.inner.as_fd());
        Stdio::from(r.inner)
    }
}

/// For a child process's standard output or error: the descriptor is switched back to blocking
/// mode, which is what a child expects.
impl From<PipeWriter> for Stdio {
    fn from(w: PipeWriter) -> Stdio {
        // As for `PipeReader`: cannot fail on a descriptor we own.
        let _ = stream::set_blocking(w.inner.as_fd());
        Stdio::from(w.inner)
    }
}

impl fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeReader")
            .field("fd", &self.inner.as_raw_fd())
            .field("model", &self.io.model_name())
            .finish()
    }
}

impl fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeWriter")
            .field("fd", &self.inner.as_raw_fd())
            .field("model", &self.io.model_name())
            .finish()
    }
}

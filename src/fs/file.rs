//! `File`: an open file.

use std::fmt;
use std::fs::{Metadata, Permissions};
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use crate::diag::wait_point::{self, WaitOp};
use crate::fs::stream_async::StreamFd;
use crate::fs::{sys, OpenOptions};
use crate::op::stream;
use crate::Io;

/// An open file. Counterpart of [`std::fs::File`]; implements [`Read`], [`Write`] and [`Seek`]
/// (also through `&File`), so std and ecosystem helpers work on it unchanged, and adds
/// positional I/O ([`read_at`](File::read_at), [`write_at`](File::write_at) and their vectored
/// forms) that leaves the file offset alone.
///
/// The file remembers the [`Io`] it was opened with. Every method that makes a syscall is a
/// cancellation point, checked before the syscall starts (see the [module docs](crate::fs)).
/// The descriptor is closed when the `File` drops.
///
/// A `File` that is not a regular file, block device or directory — a FIFO, a terminal, a
/// character device, a socket or pipe wrapped with [`from_std`](File::from_std) — is put in
/// non-blocking mode when it is opened or wrapped, and its reads and writes wait for readiness
/// as a socket's do: a read waiting for the other end of a FIFO is interrupted by
/// cancellation and deadlines on every model (see the [module docs](crate::fs#pipes-fifos-terminals-and-devices)).
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use zsync::fs::File;
///
/// let path = std::env::temp_dir().join(format!("zsync-doc-file-{}", std::process::id()));
/// let got = zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<(String, Vec<u8>)> {
///     let mut f = File::create(io, &path)?;
///     f.write_all(b"hello world")?;
///     f.write_at(b"W", 6)?; // positional: the file offset stays at 11
///
///     let mut f = File::open(io, &path)?;
///     let mut word = vec![0; 5];
///     f.read_exact_at(&mut word, 6)?;
///     f.seek(SeekFrom::Start(0))?;
///     let mut all = String::new();
///     f.read_to_string(&mut all)?;
///     zsync::fs::remove_file(io, &path)?;
///     Ok((all, word))
/// });
/// let (all, word) = got.unwrap();
/// assert_eq!(all, "hello World");
/// assert_eq!(word, b"World");
/// ```
pub struct File {
    io: Io,
    /// Shared with the ops of futures in flight (see `fs::owned`), so that a descriptor closed
    /// while one runs cannot be reused under it.
    pub(super) inner: Arc<std::fs::File>,
    kind: Kind,
    /// A stream's async driver registration, shared with its ops in flight (see
    /// `fs::stream_async`); `None` for a disk file.
    stream: Option<Arc<StreamFd>>,
    /// The state of the `AsyncRead`/`AsyncWrite`/`AsyncSeek` impls (see `fs::file_async`).
    pub(super) rw: super::file_async::Buffered,
}

/// How a file's reads and writes wait, decided once, when it is opened or wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A regular file, block device or directory: blocking syscalls that run to completion
    /// (on the ring or a helper thread on Green), checked for cancellation before they start.
    Disk,
    /// Anything else (FIFO, pipe, terminal, character device, socket, eventfd…): a non-blocking
    /// descriptor whose operations wait for readiness ([`crate::op::stream`]). `switched`: zsync
    /// put its description in non-blocking mode, so [`File::into_std`] switches it back.
    Stream { switched: bool },
}

impl Kind {
    /// Classifies `file` and readies a stream for readiness waits. A descriptor whose type
    /// cannot be read, or whose mode cannot be changed, stays blocking and is treated as a
    /// disk file: correct, only not interruptible.
    fn of(file: &std::fs::File) -> Kind {
        match sys::is_disk(file) {
            Ok(false) => match stream::set_nonblocking(file.as_fd()) {
                Ok(switched) => Kind::Stream { switched },
                Err(_) => Kind::Disk,
            },
            _ => Kind::Disk,
        }
    }
}

impl File {
    /// Opens `path` read-only. Cancellation point.
    ///
    /// Errors: `NotFound` if it does not exist, `PermissionDenied` if it may not be read.
    #[track_caller]
    pub fn open(io: &Io, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(io, path)
    }

    /// Opens `path` write-only, creating it if needed and truncating it if it exists.
    /// Cancellation point.
    #[track_caller]
    pub fn create(io: &Io, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(io, path)
    }

    /// Creates `path` read-write, failing with `AlreadyExists` if it exists. Cancellation point.
    #[track_caller]
    pub fn create_new(io: &Io, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(io, path)
    }

    /// Options for opening a file; same as [`OpenOptions::new`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps a std file. The descriptor and its offset are kept as they are.
    ///
    /// A descriptor that is not a regular file, block device or directory (a pipe, FIFO,
    /// terminal, character device or socket) is switched to non-blocking mode (`O_NONBLOCK`), so
    /// that its reads and writes can wait for readiness and be canceled. The mode belongs to the
    /// *open file description*, so every descriptor sharing it sees the change: a `dup`, a
    /// forked child, the other processes reading the same inherited stdin. A blocking reader
    /// sharing it then gets `WouldBlock` errors. Wrap only descriptors this process alone uses
    /// (or switch them back with [`into_std`](File::into_std) before others use them again);
    /// a shared stdin is better read with [`Io::blocking`](crate::Io::blocking). Tokio's
    /// `pipe::Receiver::from_file` and Python's `connect_read_pipe` make the same switch.
    ///
    /// Takes one `statx(2)` to tell the kinds apart (and two `fcntl(2)` for a stream).
    pub fn from_std(io: &Io, file: std::fs::File) -> File {
        let kind = Kind::of(&file);
        File::assemble(io, file, kind)
    }

    /// A `File` of `kind` over `file`.
    fn assemble(io: &Io, file: std::fs::File, kind: Kind) -> File {
        let inner = Arc::new(file);
        let stream = match kind {
            Kind::Stream { .. } => Some(StreamFd::new(io, &inner)),
            Kind::Disk => None,
        };
        File {
            io: io.clone(),
            inner,
            kind,
            stream,
            rw: Default::default(),
        }
    }

    /// Unwraps into the std file (same descriptor, same offset). A descriptor that
    /// [`from_std`](File::from_std) (or `open`) switched to non-blocking mode is switched back.
    ///
    /// If an operation started by a dropped future still runs on the descriptor, the std file
    /// is a duplicate of it (`dup`: same open file description and offset, another number), and
    /// the original is closed when that operation ends.
    pub fn into_std(self) -> std::fs::File {
        if let Kind::Stream { switched: true } = self.kind {
            // `FIONBIO` on a descriptor this `File` owns does not fail; if it did, the caller
            // would see `WouldBlock` errors rather than lose data.
            let _ = stream::set_blocking(self.inner.as_fd());
        }
        unshare(self.into_shared())
    }

    /// The descriptor without this `File`'s driver registration (which holds a reference to
    /// it): only ops in flight may still share it.
    fn into_shared(self) -> Arc<std::fs::File> {
        let File { inner, stream, .. } = self;
        drop(stream);
        inner
    }

    /// The `Io` this file was opened with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Whether the descriptor is a non-blocking stream (not a regular file, block device or
    /// directory) whose operations wait for readiness.
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self.kind, Kind::Stream { .. })
    }

    /// A stream's driver registration (`None` for a disk file), for its async ops.
    pub(super) fn stream_fd(&self) -> Option<&Arc<StreamFd>> {
        self.stream.as_ref()
    }

    /// The descriptor, shared with the ops in flight.
    pub(super) fn shared(&self) -> &Arc<std::fs::File> {
        &self.inner
    }

    /// Reads into `buf` from byte `offset` of the file (`pread(2)`), without using or moving the
    /// file offset. Returns the number of bytes read; 0 at or past the end of the file.
    /// Cancellation point.
    #[track_caller]
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Read, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::pread(&self.io, &self.inner, buf, offset),
            Kind::Stream { .. } => {
                stream::read(&self.io, self.inner.as_fd(), buf, Some(offset), None)
            }
        }
    }

    /// Writes `buf` at byte `offset` of the file (`pwrite(2)`), without using or moving the file
    /// offset; writing past the end extends the file (the gap reads as zeros). Returns the number
    /// of bytes written. Cancellation point.
    ///
    /// On Linux, a file opened in append mode ignores `offset` and appends.
    #[track_caller]
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Write, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::pwrite(&self.io, &self.inner, buf, offset),
            Kind::Stream { .. } => {
                stream::write(&self.io, self.inner.as_fd(), buf, Some(offset), None)
            }
        }
    }

    /// Reads into the buffers in order from byte `offset` (`preadv(2)`), without moving the file
    /// offset. Returns the total number of bytes read. Cancellation point.
    #[track_caller]
    pub fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Read, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::preadv(&self.io, &self.inner, bufs, offset),
            Kind::Stream { .. } => {
                stream::readv(&self.io, self.inner.as_fd(), bufs, Some(offset), None)
            }
        }
    }

    /// Writes the buffers in order at byte `offset` (`pwritev(2)`), without moving the file
    /// offset. Returns the total number of bytes written. Cancellation point.
    #[track_caller]
    pub fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Write, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::pwritev(&self.io, &self.inner, bufs, offset),
            Kind::Stream { .. } => {
                stream::writev(&self.io, self.inner.as_fd(), bufs, Some(offset), None)
            }
        }
    }

    /// Fills `buf` from byte `offset`, retrying short reads. Each read is a cancellation point.
    ///
    /// Errors: `UnexpectedEof` if the file ends first (how much of `buf` was filled is then
    /// unspecified).
    #[track_caller]
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        let _wait = wait_point::note_fd(WaitOp::Read, self.inner.as_raw_fd());
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at byte `offset`, retrying short writes. Each write is a
    /// cancellation point.
    ///
    /// Errors: `WriteZero` if a write makes no progress.
    #[track_caller]
    pub fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        let _wait = wait_point::note_fd(WaitOp::Write, self.inner.as_raw_fd());
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The file's metadata (`statx(2)` on the descriptor). Cancellation point.
    #[track_caller]
    pub fn metadata(&self) -> io::Result<Metadata> {
        let _wait = wait_point::note_fd(WaitOp::File, self.inner.as_raw_fd());
        sys::fstat(&self.io, &self.inner)
    }

    /// Flushes data and metadata to the device (`fsync(2)`). Cancellation point.
    #[track_caller]
    pub fn sync_all(&self) -> io::Result<()> {
        let _wait = wait_point::note_fd(WaitOp::File, self.inner.as_raw_fd());
        sys::fsync(&self.io, &self.inner)
    }

    /// Flushes data, and only the metadata needed to read it back, to the device
    /// (`fdatasync(2)`). Cancellation point.
    #[track_caller]
    pub fn sync_data(&self) -> io::Result<()> {
        let _wait = wait_point::note_fd(WaitOp::File, self.inner.as_raw_fd());
        sys::fdatasync(&self.io, &self.inner)
    }

    /// Truncates or extends the file to `size` bytes (`ftruncate(2)`); added bytes read as zeros.
    /// The file offset is not changed. Needs the file open for writing. Cancellation point.
    #[track_caller]
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        let _wait = wait_point::note_fd(WaitOp::File, self.inner.as_raw_fd());
        sys::ftruncate(&self.io, &self.inner, size)
    }

    /// Changes the file's permissions (`fchmod(2)`). Cancellation point.
    #[track_caller]
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        let _wait = wait_point::note_fd(WaitOp::File, self.inner.as_raw_fd());
        sys::fchmod(&self.io, &self.inner, perm)
    }

    /// A second `File` for the same open file description (`dup`): both share the file offset
    /// and the open mode. Cancellation point.
    #[track_caller]
    pub fn try_clone(&self) -> io::Result<File> {
        let _wait = wait_point::note_fd(WaitOp::File, self.inner.as_raw_fd());
        let inner = sys::dup(&self.io, &self.inner)?;
        Ok(File::assemble(&self.io, inner, self.kind))
    }
}

impl Read for File {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    #[track_caller]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Read for &File {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Read, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::read(&self.io, &self.inner, buf),
            Kind::Stream { .. } => stream::read(&self.io, self.inner.as_fd(), buf, None, None),
        }
    }
    #[track_caller]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Read, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::readv(&self.io, &self.inner, bufs),
            Kind::Stream { .. } => stream::readv(&self.io, self.inner.as_fd(), bufs, None, None),
        }
    }
}

impl Write for File {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    #[track_caller]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &File {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Write, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::write(&self.io, &self.inner, buf),
            Kind::Stream { .. } => stream::write(&self.io, self.inner.as_fd(), buf, None, None),
        }
    }
    #[track_caller]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let _wait = wait_point::note_fd(WaitOp::Write, self.inner.as_raw_fd());
        match self.kind {
            Kind::Disk => sys::writev(&self.io, &self.inner, bufs),
            Kind::Stream { .. } => stream::writev(&self.io, self.inner.as_fd(), bufs, None, None),
        }
    }
    /// Nothing to do: writes go straight to the kernel. Use [`File::sync_all`] for durability.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    #[track_caller]
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

impl Seek for &File {
    #[track_caller]
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let _wait = wait_point::note_fd(WaitOp::File, self.inner.as_raw_fd());
        sys::seek(&self.io, &self.inner, pos)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.inner.as_raw_fd())
            .field("model", &self.io.model_name())
            .finish()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// The descriptor as it is: one that zsync switched to non-blocking mode stays so (use
/// [`File::into_std`] to have it switched back).
impl IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        unshare(self.into_shared()).into_raw_fd()
    }
}

/// The std file, alone: the shared one if no op of a dropped future still uses it, else a
/// duplicate (the op closes the original when it ends). `dup` failing (no descriptor left)
/// leaves no good answer: the op's end is waited for then, briefly (file ops end on their own).
fn unshare(file: Arc<std::fs::File>) -> std::fs::File {
    let mut file = file;
    loop {
        match Arc::try_unwrap(file) {
            Ok(file) => return file,
            Err(shared) => match shared.try_clone() {
                Ok(dup) => return dup,
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    file = shared;
                }
            },
        }
    }
}

/// The descriptor as it is, like [`IntoRawFd`]: a stream stays in non-blocking mode.
impl From<File> for OwnedFd {
    fn from(f: File) -> OwnedFd {
        unshare(f.into_shared()).into()
    }
}

/// As [`File::into_std`]: a descriptor zsync switched to non-blocking mode is switched back.
impl From<File> for std::fs::File {
    fn from(f: File) -> std::fs::File {
        f.into_std()
    }
}

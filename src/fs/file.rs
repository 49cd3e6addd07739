//! `File`: an open file.

use std::fmt;
use std::fs::{Metadata, Permissions};
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::fs::{sys, OpenOptions};
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
    inner: std::fs::File,
}

impl File {
    /// Opens `path` read-only. Cancellation point.
    ///
    /// Errors: `NotFound` if it does not exist, `PermissionDenied` if it may not be read.
    pub fn open(io: &Io, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(io, path)
    }

    /// Opens `path` write-only, creating it if needed and truncating it if it exists.
    /// Cancellation point.
    pub fn create(io: &Io, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(io, path)
    }

    /// Creates `path` read-write, failing with `AlreadyExists` if it exists. Cancellation point.
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
    pub fn from_std(io: &Io, file: std::fs::File) -> File {
        File {
            io: io.clone(),
            inner: file,
        }
    }

    /// Unwraps into the std file (same descriptor, same offset).
    pub fn into_std(self) -> std::fs::File {
        self.inner
    }

    /// The `Io` this file was opened with.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Reads into `buf` from byte `offset` of the file (`pread(2)`), without using or moving the
    /// file offset. Returns the number of bytes read; 0 at or past the end of the file.
    /// Cancellation point.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        sys::pread(&self.io, &self.inner, buf, offset)
    }

    /// Writes `buf` at byte `offset` of the file (`pwrite(2)`), without using or moving the file
    /// offset; writing past the end extends the file (the gap reads as zeros). Returns the number
    /// of bytes written. Cancellation point.
    ///
    /// On Linux, a file opened in append mode ignores `offset` and appends.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        sys::pwrite(&self.io, &self.inner, buf, offset)
    }

    /// Reads into the buffers in order from byte `offset` (`preadv(2)`), without moving the file
    /// offset. Returns the total number of bytes read. Cancellation point.
    pub fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        sys::preadv(&self.io, &self.inner, bufs, offset)
    }

    /// Writes the buffers in order at byte `offset` (`pwritev(2)`), without moving the file
    /// offset. Returns the total number of bytes written. Cancellation point.
    pub fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        sys::pwritev(&self.io, &self.inner, bufs, offset)
    }

    /// Fills `buf` from byte `offset`, retrying short reads. Each read is a cancellation point.
    ///
    /// Errors: `UnexpectedEof` if the file ends first (how much of `buf` was filled is then
    /// unspecified).
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
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
    pub fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
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
    pub fn metadata(&self) -> io::Result<Metadata> {
        sys::fstat(&self.io, &self.inner)
    }

    /// Flushes data and metadata to the device (`fsync(2)`). Cancellation point.
    pub fn sync_all(&self) -> io::Result<()> {
        sys::fsync(&self.io, &self.inner)
    }

    /// Flushes data, and only the metadata needed to read it back, to the device
    /// (`fdatasync(2)`). Cancellation point.
    pub fn sync_data(&self) -> io::Result<()> {
        sys::fdatasync(&self.io, &self.inner)
    }

    /// Truncates or extends the file to `size` bytes (`ftruncate(2)`); added bytes read as zeros.
    /// The file offset is not changed. Needs the file open for writing. Cancellation point.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        sys::ftruncate(&self.io, &self.inner, size)
    }

    /// Changes the file's permissions (`fchmod(2)`). Cancellation point.
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        sys::fchmod(&self.io, &self.inner, perm)
    }

    /// A second `File` for the same open file description (`dup`): both share the file offset
    /// and the open mode. Cancellation point.
    pub fn try_clone(&self) -> io::Result<File> {
        let inner = sys::dup(&self.io, &self.inner)?;
        Ok(File {
            io: self.io.clone(),
            inner,
        })
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(&self.io, &self.inner, buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        sys::readv(&self.io, &self.inner, bufs)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::write(&self.io, &self.inner, buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::writev(&self.io, &self.inner, bufs)
    }
    /// Nothing to do: writes go straight to the kernel. Use [`File::sync_all`] for durability.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
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

impl IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_raw_fd()
    }
}

impl From<File> for OwnedFd {
    fn from(f: File) -> OwnedFd {
        f.inner.into()
    }
}

impl From<File> for std::fs::File {
    fn from(f: File) -> std::fs::File {
        f.inner
    }
}

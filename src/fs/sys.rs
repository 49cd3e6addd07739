//! The operation layer of `zsync::fs`: one small private function per kind of file-system
//! operation, each taking the [`Io`] that runs it.
//!
//! This is the seam for models that do file I/O differently. On the thread models (Blocking,
//! Threaded, custom models on OS threads) every operation is a plain blocking syscall, run by
//! [`blocking_op`] after a cancellation check. Operations with an io_uring form go through
//! [`crate::op`] instead (`openat`, `read`/`write` and their positioned and vectored forms,
//! `fsync`, `fdatasync`, `unlinkat`, `renameat2`, `mkdirat`, `linkat`, `symlinkat`), which submits them to the worker's ring on Green+io_uring and makes
//! the same syscall elsewhere. `statx` stays a blocking op: its result must be a
//! `std::fs::Metadata`, which only `std` can build.

use std::fs::{Metadata, Permissions};
use std::io::{self, IoSlice, IoSliceMut, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::model::operation::Operation;
use crate::Io;

/// Runs one blocking file-system operation: a cancellation point, then the syscall(s) of `f` —
/// right here on the thread models, on a helper thread for a Green fiber (see
/// `model::green::offload`).
///
/// Regular-file I/O cannot be interrupted once started (the kernel waits uninterruptibly on the
/// disk), so cancellation and deadlines are checked before it starts, never during.
#[inline]
fn blocking_op<T: Send>(
    io: &Io,
    name: &'static str,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    crate::context::check()?;
    match crate::op::custom(io) {
        Some(model) => crate::op::other(model, name, f),
        None => io.inner.model.offload(f),
    }
}

/// A file operation with a ring form: on a Green io_uring fiber it is submitted to the ring (the
/// fiber parks, the worker runs on); everywhere else it is a [`blocking_op`].
fn ring_or_blocking<T: Send>(
    io: &Io,
    code: u8,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    if crate::model::green::ring_available(code) {
        f()
    } else {
        crate::context::check()?;
        io.inner.model.offload(f)
    }
}

/// A path operation: the ring's result when `ring` ran it (a Green io_uring fiber), else `f` as
/// a [`blocking_op`]. `ring` is evaluated first, so it is also the cancellation point there.
fn ring_or(
    io: &Io,
    name: &'static str,
    ring: Option<io::Result<()>>,
    f: impl FnOnce() -> io::Result<()> + Send,
) -> io::Result<()> {
    match ring {
        Some(res) => res,
        None => blocking_op(io, name, f),
    }
}

// ---- descriptors -------------------------------------------------------------------------------

/// `openat(2)`: on the ring on a Green io_uring fiber, with the flags `std` would use.
pub(super) fn open(io: &Io, opts: &super::OpenOptions, path: &Path) -> io::Result<std::fs::File> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Open {
            path,
            options: opts,
        };
        return Ok(model.operate(op)?.into_fd("open")?.into());
    }
    if crate::op::open::on_ring() {
        crate::context::check()?;
        let (flags, mode) = opts.open_flags()?;
        if let Some(fd) = crate::op::open::openat(path, flags, mode) {
            return fd.map(std::fs::File::from);
        }
    }
    blocking_op(io, "fs::open", || opts.as_std().open(path))
}

/// Whether `file` is a regular file, block device or directory — I/O that runs to completion
/// once started — rather than a stream that may wait for another party (pipe, FIFO, terminal,
/// character device, socket). The file type never changes, so a cached answer is as good as a
/// fresh one: `AT_STATX_DONT_SYNC` keeps a network file system from asking its server. Not a
/// cancellation point: it runs on the caller's thread and does not wait for a disk.
pub(super) fn is_disk(file: &std::fs::File) -> io::Result<bool> {
    use rustix::fs::{AtFlags, FileType, StatxFlags};
    let mode = match rustix::fs::statx(
        file,
        c"",
        AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
        StatxFlags::TYPE,
    ) {
        Ok(st) => u32::from(st.stx_mode),
        // `statx` predates nothing zsync runs on, but a seccomp filter may refuse it.
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => rustix::fs::fstat(file)?.st_mode,
        Err(e) => return Err(e.into()),
    };
    Ok(matches!(
        FileType::from_raw_mode(mode),
        FileType::RegularFile | FileType::BlockDevice | FileType::Directory
    ))
}

/// `fcntl(F_DUPFD_CLOEXEC)`.
pub(super) fn dup(io: &Io, file: &std::fs::File) -> io::Result<std::fs::File> {
    blocking_op(io, "fs::dup", || file.try_clone())
}

/// `read(2)` at the file offset.
pub(super) fn read(io: &Io, file: &std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Read {
            fd: file.as_fd(),
            buf,
            offset: None,
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Read::CODE, || {
        crate::op::read_at::read(file.as_fd(), buf)
    })
}

/// `readv(2)` at the file offset.
pub(super) fn readv(
    io: &Io,
    file: &std::fs::File,
    bufs: &mut [IoSliceMut<'_>],
) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::ReadVectored {
            fd: file.as_fd(),
            bufs,
            offset: None,
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Readv::CODE, || {
        crate::op::vectored::readv(file.as_fd(), bufs, None)
    })
}

/// `write(2)` at the file offset.
pub(super) fn write(io: &Io, file: &std::fs::File, buf: &[u8]) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Write {
            fd: file.as_fd(),
            buf,
            offset: None,
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Write::CODE, || {
        crate::op::write_at::write(file.as_fd(), buf)
    })
}

/// `writev(2)` at the file offset.
pub(super) fn writev(io: &Io, file: &std::fs::File, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::WriteVectored {
            fd: file.as_fd(),
            bufs,
            offset: None,
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Writev::CODE, || {
        crate::op::vectored::writev(file.as_fd(), bufs, None)
    })
}

/// `pread(2)`.
pub(super) fn pread(
    io: &Io,
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Read {
            fd: file.as_fd(),
            buf,
            offset: Some(offset),
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Read::CODE, || {
        crate::op::read_at::read_at(file.as_fd(), buf, offset)
    })
}

/// `preadv(2)`.
pub(super) fn preadv(
    io: &Io,
    file: &std::fs::File,
    bufs: &mut [IoSliceMut<'_>],
    offset: u64,
) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::ReadVectored {
            fd: file.as_fd(),
            bufs,
            offset: Some(offset),
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Readv::CODE, || {
        crate::op::vectored::readv(file.as_fd(), bufs, Some(offset))
    })
}

/// `pwrite(2)`.
pub(super) fn pwrite(io: &Io, file: &std::fs::File, buf: &[u8], offset: u64) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Write {
            fd: file.as_fd(),
            buf,
            offset: Some(offset),
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Write::CODE, || {
        crate::op::write_at::write_at(file.as_fd(), buf, offset)
    })
}

/// `pwritev(2)`.
pub(super) fn pwritev(
    io: &Io,
    file: &std::fs::File,
    bufs: &[IoSlice<'_>],
    offset: u64,
) -> io::Result<usize> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::WriteVectored {
            fd: file.as_fd(),
            bufs,
            offset: Some(offset),
            deadline: None,
        };
        return crate::op::count_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Writev::CODE, || {
        crate::op::vectored::writev(file.as_fd(), bufs, Some(offset))
    })
}

/// `lseek(2)`.
pub(super) fn seek(io: &Io, mut file: &std::fs::File, pos: SeekFrom) -> io::Result<u64> {
    blocking_op(io, "fs::seek", || file.seek(pos))
}

/// `statx(2)` / `fstat(2)` on a descriptor.
pub(super) fn fstat(io: &Io, file: &std::fs::File) -> io::Result<Metadata> {
    blocking_op(io, "fs::fstat", || file.metadata())
}

/// `fsync(2)`.
pub(super) fn fsync(io: &Io, file: &std::fs::File) -> io::Result<()> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Sync {
            fd: file.as_fd(),
            data_only: false,
        };
        return crate::op::done_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Fsync::CODE, || {
        crate::op::fsync::fsync(file.as_fd(), false)
    })
}

/// `fdatasync(2)`.
pub(super) fn fdatasync(io: &Io, file: &std::fs::File) -> io::Result<()> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Sync {
            fd: file.as_fd(),
            data_only: true,
        };
        return crate::op::done_of(model, op);
    }
    ring_or_blocking(io, io_uring::opcode::Fsync::CODE, || {
        crate::op::fsync::fsync(file.as_fd(), true)
    })
}

/// `ftruncate(2)`.
pub(super) fn ftruncate(io: &Io, file: &std::fs::File, len: u64) -> io::Result<()> {
    blocking_op(io, "fs::ftruncate", || file.set_len(len))
}

/// `fchmod(2)`.
pub(super) fn fchmod(io: &Io, file: &std::fs::File, perm: Permissions) -> io::Result<()> {
    blocking_op(io, "fs::fchmod", || file.set_permissions(perm))
}

// ---- paths -------------------------------------------------------------------------------------

/// `statx(2)` / `stat(2)`, following symbolic links.
pub(super) fn stat(io: &Io, path: &Path) -> io::Result<Metadata> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Stat { path, follow: true };
        return model.operate(op)?.into_metadata("stat");
    }
    blocking_op(io, "fs::stat", || std::fs::metadata(path))
}

/// `statx(2)` / `lstat(2)`, not following symbolic links.
pub(super) fn lstat(io: &Io, path: &Path) -> io::Result<Metadata> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::Stat {
            path,
            follow: false,
        };
        return model.operate(op)?.into_metadata("stat");
    }
    blocking_op(io, "fs::lstat", || std::fs::symlink_metadata(path))
}

/// `unlinkat(2)`.
pub(super) fn unlink(io: &Io, path: &Path) -> io::Result<()> {
    if let Some(model) = crate::op::custom(io) {
        return crate::op::done_of(model, Operation::Remove { path, dir: false });
    }
    ring_or(
        io,
        "fs::unlink",
        crate::op::path::unlink(path, false),
        || std::fs::remove_file(path),
    )
}

/// `unlinkat(2)` with `AT_REMOVEDIR`.
pub(super) fn rmdir(io: &Io, path: &Path) -> io::Result<()> {
    if let Some(model) = crate::op::custom(io) {
        return crate::op::done_of(model, Operation::Remove { path, dir: true });
    }
    ring_or(io, "fs::rmdir", crate::op::path::unlink(path, true), || {
        std::fs::remove_dir(path)
    })
}

/// A recursive removal (many `getdents64`/`unlinkat` calls), as one operation.
pub(super) fn rmdir_all(io: &Io, path: &Path) -> io::Result<()> {
    blocking_op(io, "fs::rmdir_all", || std::fs::remove_dir_all(path))
}

/// `renameat(2)`.
pub(super) fn rename(io: &Io, from: &Path, to: &Path) -> io::Result<()> {
    if let Some(model) = crate::op::custom(io) {
        return crate::op::done_of(model, Operation::Rename { from, to });
    }
    ring_or(io, "fs::rename", crate::op::path::rename(from, to), || {
        std::fs::rename(from, to)
    })
}

/// `mkdirat(2)`.
pub(super) fn mkdir(io: &Io, path: &Path) -> io::Result<()> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::CreateDir {
            path,
            recursive: false,
        };
        return crate::op::done_of(model, op);
    }
    ring_or(io, "fs::mkdir", crate::op::path::mkdir(path), || {
        std::fs::create_dir(path)
    })
}

/// `mkdirat(2)` for every missing ancestor, as one operation.
pub(super) fn mkdir_all(io: &Io, path: &Path) -> io::Result<()> {
    if let Some(model) = crate::op::custom(io) {
        let op = Operation::CreateDir {
            path,
            recursive: true,
        };
        return crate::op::done_of(model, op);
    }
    blocking_op(io, "fs::mkdir_all", || std::fs::create_dir_all(path))
}

/// `openat(2)` of a directory for listing.
pub(super) fn opendir(io: &Io, path: &Path) -> io::Result<std::fs::ReadDir> {
    blocking_op(io, "fs::opendir", || std::fs::read_dir(path))
}

/// The next entry of a listing (`getdents64(2)` when the buffered batch is used up).
pub(super) fn readdir(
    io: &Io,
    dir: &mut std::fs::ReadDir,
) -> Option<io::Result<std::fs::DirEntry>> {
    blocking_op(io, "fs::readdir", || Ok(dir.next())).unwrap_or_else(|e| Some(Err(e)))
}

/// A whole-file copy (`copy_file_range(2)` or `sendfile(2)` in the kernel), as one operation.
pub(super) fn copy(io: &Io, from: &Path, to: &Path) -> io::Result<u64> {
    blocking_op(io, "fs::copy", || std::fs::copy(from, to))
}

/// `linkat(2)`.
pub(super) fn link(io: &Io, original: &Path, link: &Path) -> io::Result<()> {
    ring_or(
        io,
        "fs::link",
        crate::op::path::link(original, link),
        || std::fs::hard_link(original, link),
    )
}

/// `symlinkat(2)`.
pub(super) fn symlink(io: &Io, original: &Path, link: &Path) -> io::Result<()> {
    ring_or(
        io,
        "fs::symlink",
        crate::op::path::symlink(original, link),
        || std::os::unix::fs::symlink(original, link),
    )
}

/// `readlinkat(2)`.
pub(super) fn readlink(io: &Io, path: &Path) -> io::Result<PathBuf> {
    blocking_op(io, "fs::readlink", || std::fs::read_link(path))
}

/// `realpath(3)`.
pub(super) fn realpath(io: &Io, path: &Path) -> io::Result<PathBuf> {
    blocking_op(io, "fs::realpath", || std::fs::canonicalize(path))
}

/// `chmod(2)`.
pub(super) fn chmod(io: &Io, path: &Path, perm: Permissions) -> io::Result<()> {
    blocking_op(io, "fs::chmod", || std::fs::set_permissions(path, perm))
}

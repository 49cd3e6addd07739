//! Operations on names in the file system: `unlinkat(2)`, `renameat2(2)`, `mkdirat(2)`,
//! `linkat(2)` and `symlinkat(2)`, each relative to the working directory.
//!
//! Only the ring forms live here: each returns `None` where the op cannot go through a ring
//! (not a Green io_uring fiber, or a kernel without the opcode), and `zsync::fs` then runs the
//! `std` call on its helper pool. The ring ops make the same syscalls `std` makes, with the
//! same flags, so both paths give the same results and errors.

use std::ffi::{c_char, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use io_uring::{opcode, squeue, types::Fd};

use crate::model::green;

const CWD: Fd = Fd(libc::AT_FDCWD);

/// `path` as the kernel takes it; a NUL inside is `InvalidInput`, as in `std`.
pub(super) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    })
}

/// Runs the op built by `sqe` from the two C paths on the ring, or `None` off the ring.
fn on_ring(
    code: u8,
    a: &Path,
    b: Option<&Path>,
    sqe: impl FnOnce(*const c_char, *const c_char) -> squeue::Entry,
) -> Option<io::Result<()>> {
    if !green::ring_available(code) {
        return None;
    }
    let (a, b) = match (c_path(a), b.map(c_path).transpose()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
    };
    let (a_ptr, b_ptr) = (
        a.as_ptr(),
        b.as_ref().map_or(std::ptr::null(), |b| b.as_ptr()),
    );
    // SAFETY: both C strings live until `ring_op` returns, after the completion; the kernel
    // only reads them.
    let res = unsafe { green::ring_op(code, None, || sqe(a_ptr, b_ptr)) }?;
    Some(res.map(drop))
}

/// `unlinkat(path)`: `std::fs::remove_file`, or `remove_dir` with `dir`.
pub(crate) fn unlink(path: &Path, dir: bool) -> Option<io::Result<()>> {
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    on_ring(opcode::UnlinkAt::CODE, path, None, |p, _| {
        opcode::UnlinkAt::new(CWD, p).flags(flags).build()
    })
}

/// `renameat2(from, to, 0)`: `std::fs::rename`.
pub(crate) fn rename(from: &Path, to: &Path) -> Option<io::Result<()>> {
    on_ring(opcode::RenameAt::CODE, from, Some(to), |a, b| {
        opcode::RenameAt::new(CWD, a, CWD, b).build()
    })
}

/// `mkdirat(path, 0o777)`: `std::fs::create_dir` (the umask applies).
pub(crate) fn mkdir(path: &Path) -> Option<io::Result<()>> {
    on_ring(opcode::MkDirAt::CODE, path, None, |p, _| {
        opcode::MkDirAt::new(CWD, p).mode(0o777).build()
    })
}

/// `linkat(original, link, 0)`: `std::fs::hard_link` (a symbolic link is linked itself).
pub(crate) fn link(original: &Path, link: &Path) -> Option<io::Result<()>> {
    on_ring(opcode::LinkAt::CODE, original, Some(link), |a, b| {
        opcode::LinkAt::new(CWD, a, CWD, b).build()
    })
}

/// `symlinkat(original, link)`: `std::os::unix::fs::symlink`.
pub(crate) fn symlink(original: &Path, link: &Path) -> Option<io::Result<()>> {
    on_ring(opcode::SymlinkAt::CODE, original, Some(link), |a, b| {
        opcode::SymlinkAt::new(CWD, a, b).build()
    })
}

//! Whole-file and path operations: metadata, removal, renaming, links, whole-file read and write.

use std::fs::{Metadata, Permissions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::diag::wait_point::{self, WaitOp};
use crate::fs::{sys, File};
use crate::Io;

/// The metadata of `path`, following symbolic links (`statx(2)`). Cancellation point.
///
/// Errors: `NotFound` if nothing exists at `path`.
///
/// ```
/// let path = std::env::temp_dir().join(format!("zsync-doc-metadata-{}", std::process::id()));
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     zsync::fs::write(io, &path, b"12345")?;
///     let meta = zsync::fs::metadata(io, &path)?;
///     assert!(meta.is_file());
///     assert_eq!(meta.len(), 5);
///     zsync::fs::remove_file(io, &path)
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn metadata(io: &Io, path: impl AsRef<Path>) -> io::Result<Metadata> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::stat(io, path.as_ref())
}

/// The metadata of `path` itself, not following a symbolic link there. Cancellation point.
#[track_caller]
pub fn symlink_metadata(io: &Io, path: impl AsRef<Path>) -> io::Result<Metadata> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::lstat(io, path.as_ref())
}

/// Whether something exists at `path` (following symbolic links): `Ok(false)` for `NotFound`,
/// other errors (e.g. `PermissionDenied`, `Canceled`) as they are. Cancellation point.
#[track_caller]
pub fn exists(io: &Io, path: impl AsRef<Path>) -> io::Result<bool> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    match sys::stat(io, path.as_ref()) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the file (or symbolic link) `path` (`unlink(2)`). Cancellation point.
///
/// Errors: `NotFound`; `IsADirectory` (or `PermissionDenied`) for a directory.
#[track_caller]
pub fn remove_file(io: &Io, path: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::unlink(io, path.as_ref())
}

/// Renames `from` to `to` (`rename(2)`), replacing a file at `to`. Cancellation point.
///
/// Errors: `NotFound` if `from` does not exist, `CrossesDevices` across file systems.
#[track_caller]
pub fn rename(io: &Io, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::rename(io, from.as_ref(), to.as_ref())
}

/// Copies the contents and permission bits of the file `from` to `to`, creating or truncating
/// `to`; returns the number of bytes copied. The kernel copies the data (`copy_file_range(2)`).
/// Cancellation point (checked once, before the copy starts).
#[track_caller]
pub fn copy(io: &Io, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::copy(io, from.as_ref(), to.as_ref())
}

/// Creates `link` as a new name for the file `original` (`link(2)`). Cancellation point.
#[track_caller]
pub fn hard_link(io: &Io, original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::link(io, original.as_ref(), link.as_ref())
}

/// Creates a symbolic link at `link` pointing to `original` (`symlink(2)`); `original` need not
/// exist. Cancellation point.
#[track_caller]
pub fn symlink(io: &Io, original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::symlink(io, original.as_ref(), link.as_ref())
}

/// The target of the symbolic link `path` (`readlink(2)`). Cancellation point.
#[track_caller]
pub fn read_link(io: &Io, path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::readlink(io, path.as_ref())
}

/// The absolute form of `path` with every symbolic link, `.` and `..` resolved
/// (`realpath(3)`). Cancellation point.
///
/// Errors: `NotFound` if `path` does not exist.
#[track_caller]
pub fn canonicalize(io: &Io, path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::realpath(io, path.as_ref())
}

/// Changes the permissions of `path` (`chmod(2)`). Cancellation point.
#[track_caller]
pub fn set_permissions(io: &Io, path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::chmod(io, path.as_ref(), perm)
}

/// Reads the whole file `path` into a vector. Opening, the size query and each read are
/// cancellation points.
///
/// ```
/// let path = std::env::temp_dir().join(format!("zsync-doc-read-{}", std::process::id()));
/// let data = zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<Vec<u8>> {
///     zsync::fs::write(io, &path, [1, 2, 3])?;
///     let data = zsync::fs::read(io, &path)?;
///     zsync::fs::remove_file(io, &path)?;
///     Ok(data)
/// });
/// assert_eq!(data.unwrap(), [1, 2, 3]);
/// ```
#[track_caller]
pub fn read(io: &Io, path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    let mut file = File::open(io, path)?;
    let size = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    let mut buf = Vec::new();
    buf.try_reserve_exact(size)
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads the whole file `path` into a string. Cancellation points as for [`read`].
///
/// Errors: `InvalidData` if the contents are not UTF-8.
#[track_caller]
pub fn read_to_string(io: &Io, path: impl AsRef<Path>) -> io::Result<String> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    String::from_utf8(read(io, path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `contents` as the whole file `path`, creating it or truncating it first. Opening and
/// each write are cancellation points.
#[track_caller]
pub fn write(io: &Io, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    File::create(io, path)?.write_all(contents.as_ref())
}

//! Directories: creating, listing, removing.

use std::fmt;
use std::fs::DirEntry;
use std::io;
use std::path::Path;

use crate::diag::wait_point::{self, WaitOp};
use crate::fs::sys;
use crate::Io;

/// Creates the directory `path` (`mkdir(2)`, mode `0o777` before the umask). Cancellation point.
///
/// Errors: `AlreadyExists` if something exists at `path`, `NotFound` if its parent does not.
#[track_caller]
pub fn create_dir(io: &Io, path: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::mkdir(io, path.as_ref())
}

/// Creates the directory `path` and every missing ancestor; succeeds if it already exists as a
/// directory. Cancellation point (checked once, before the first `mkdir`).
///
/// ```
/// let root = std::env::temp_dir().join(format!("zsync-doc-create-dir-all-{}", std::process::id()));
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     zsync::fs::create_dir_all(io, root.join("a/b/c"))?;
///     assert!(zsync::fs::metadata(io, root.join("a/b/c"))?.is_dir());
///     zsync::fs::remove_dir_all(io, &root)
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn create_dir_all(io: &Io, path: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::mkdir_all(io, path.as_ref())
}

/// Removes the empty directory `path` (`rmdir(2)`). Cancellation point.
///
/// Errors: `DirectoryNotEmpty` if it has entries, `NotADirectory` if it is not a directory,
/// `NotFound` if it does not exist.
#[track_caller]
pub fn remove_dir(io: &Io, path: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::rmdir(io, path.as_ref())
}

/// Removes the directory `path` and everything in it, without following symbolic links.
/// Cancellation point (checked once, before the removal starts).
#[track_caller]
pub fn remove_dir_all(io: &Io, path: impl AsRef<Path>) -> io::Result<()> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    sys::rmdir_all(io, path.as_ref())
}

/// Lists the directory `path`: an iterator over its entries, without `.` and `..`, in no
/// particular order. Opening the directory and each step of the iteration are cancellation
/// points.
///
/// The entries are [`std::fs::DirEntry`] values; their own methods (`metadata`, `file_type`)
/// are plain std calls.
///
/// ```
/// let root = std::env::temp_dir().join(format!("zsync-doc-read-dir-{}", std::process::id()));
/// let names = zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<Vec<String>> {
///     zsync::fs::create_dir_all(io, root.join("sub"))?;
///     zsync::fs::write(io, root.join("file"), b"x")?;
///     let mut names = Vec::new();
///     for entry in zsync::fs::read_dir(io, &root)? {
///         names.push(entry?.file_name().into_string().unwrap());
///     }
///     names.sort();
///     zsync::fs::remove_dir_all(io, &root)?;
///     Ok(names)
/// });
/// assert_eq!(names.unwrap(), ["file", "sub"]);
/// ```
#[track_caller]
pub fn read_dir(io: &Io, path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
    let inner = sys::opendir(io, path.as_ref())?;
    Ok(ReadDir {
        io: io.clone(),
        inner,
    })
}

/// The iterator returned by [`read_dir`]. Counterpart of [`std::fs::ReadDir`]; each step is a
/// cancellation point, yielding `Err(Canceled)` in a canceled task. The directory descriptor is
/// closed when it drops.
pub struct ReadDir {
    io: Io,
    inner: std::fs::ReadDir,
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    #[track_caller]
    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
        sys::readdir(&self.io, &mut self.inner)
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("inner", &self.inner)
            .finish()
    }
}

//! `OpenOptions`: how to open a file.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::fs::{sys, File};
use crate::Io;

/// Options and flags for opening a file. Counterpart of [`std::fs::OpenOptions`] (with the Unix
/// extensions [`mode`](OpenOptions::mode) and [`custom_flags`](OpenOptions::custom_flags) built
/// in); only [`open`](OpenOptions::open) needs an [`Io`].
///
/// ```
/// use std::io::{Read, Write};
/// use zsync::fs::{File, OpenOptions};
///
/// let path = std::env::temp_dir().join(format!("zsync-doc-open-options-{}", std::process::id()));
/// let text = zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<String> {
///     let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(io, &path)?;
///     f.write_all(b"one ")?;
///     let mut f = OpenOptions::new().append(true).open(io, &path)?;
///     f.write_all(b"two")?;
///     let text = zsync::fs::read_to_string(io, &path)?;
///     zsync::fs::remove_file(io, &path)?;
///     Ok(text)
/// });
/// assert_eq!(text.unwrap(), "one two");
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    inner: std::fs::OpenOptions,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Options with every flag off (opening with them fails with `InvalidInput` until `read`,
    /// `write` or `append` is set).
    pub fn new() -> OpenOptions {
        OpenOptions {
            inner: std::fs::OpenOptions::new(),
        }
    }

    /// Opens for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.inner.read(read);
        self
    }

    /// Opens for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.inner.write(write);
        self
    }

    /// Opens for appending (`O_APPEND`): every write goes to the end of the file, whatever the
    /// file offset. Implies `write`.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.inner.append(append);
        self
    }

    /// Truncates an existing file to length 0 (`O_TRUNC`). Needs `write`.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.inner.truncate(truncate);
        self
    }

    /// Creates the file if it does not exist (`O_CREAT`). Needs `write` or `append`.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.inner.create(create);
        self
    }

    /// Creates the file, failing with `AlreadyExists` if it exists (`O_CREAT | O_EXCL`); a
    /// symbolic link at the path counts as existing. Overrides `create` and `truncate`.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.inner.create_new(create_new);
        self
    }

    /// The permission bits of a newly created file, before the umask (default `0o666`).
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.inner.mode(mode);
        self
    }

    /// Extra `open(2)` flags (e.g. `libc::O_NOFOLLOW`), or-ed in; the access mode bits are
    /// ignored and `O_CLOEXEC` is always set.
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.inner.custom_flags(flags);
        self
    }

    /// Opens `path` with these options. Cancellation point.
    ///
    /// Errors: `NotFound` if the file (or a parent directory) does not exist and is not to be
    /// created, `AlreadyExists` with `create_new`, `PermissionDenied`, `InvalidInput` for an
    /// invalid combination of options.
    pub fn open(&self, io: &Io, path: impl AsRef<Path>) -> io::Result<File> {
        let file = sys::open(io, &self.inner, path.as_ref())?;
        Ok(File::from_std(io, file))
    }
}

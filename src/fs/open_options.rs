//! `OpenOptions`: how to open a file.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::diag::wait_point::{self, WaitOp};
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
    /// The same choices as `inner` holds, readable: the ring's `openat` needs the raw flags,
    /// which `std::fs::OpenOptions` does not expose.
    flags: Flags,
}

/// What the builder methods set, mirrored for [`OpenOptions::open_flags`].
#[derive(Clone, Copy, Debug)]
struct Flags {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom: i32,
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
            flags: Flags {
                read: false,
                write: false,
                append: false,
                truncate: false,
                create: false,
                create_new: false,
                mode: 0o666,
                custom: 0,
            },
        }
    }

    /// Opens for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.inner.read(read);
        self.flags.read = read;
        self
    }

    /// Opens for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.inner.write(write);
        self.flags.write = write;
        self
    }

    /// Opens for appending (`O_APPEND`): every write goes to the end of the file, whatever the
    /// file offset. Implies `write`.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.inner.append(append);
        self.flags.append = append;
        self
    }

    /// Truncates an existing file to length 0 (`O_TRUNC`). Needs `write`.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.inner.truncate(truncate);
        self.flags.truncate = truncate;
        self
    }

    /// Creates the file if it does not exist (`O_CREAT`). Needs `write` or `append`.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.inner.create(create);
        self.flags.create = create;
        self
    }

    /// Creates the file, failing with `AlreadyExists` if it exists (`O_CREAT | O_EXCL`); a
    /// symbolic link at the path counts as existing. Overrides `create` and `truncate`.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.inner.create_new(create_new);
        self.flags.create_new = create_new;
        self
    }

    /// The permission bits of a newly created file, before the umask (default `0o666`).
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.inner.mode(mode);
        self.flags.mode = mode;
        self
    }

    /// Extra `open(2)` flags (e.g. `libc::O_NOFOLLOW`), or-ed in; the access mode bits are
    /// ignored and `O_CLOEXEC` is always set.
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.inner.custom_flags(flags);
        self.flags.custom = flags;
        self
    }

    /// Opens `path` with these options. Cancellation point.
    ///
    /// Errors: `NotFound` if the file (or a parent directory) does not exist and is not to be
    /// created, `AlreadyExists` with `create_new`, `PermissionDenied`, `InvalidInput` for an
    /// invalid combination of options.
    #[track_caller]
    pub fn open(&self, io: &Io, path: impl AsRef<Path>) -> io::Result<File> {
        let _wait = wait_point::note(WaitOp::File, wait_point::Object::None);
        let file = sys::open(io, self, path.as_ref())?;
        Ok(File::from_std(io, file))
    }

    /// The `std` options, for the thread models' `open`.
    pub(crate) fn as_std(&self) -> &std::fs::OpenOptions {
        &self.inner
    }

    /// The `open(2)` flags and mode these options stand for, validated as `std` validates
    /// them (an invalid combination is `InvalidInput`, before any syscall): what the ring's
    /// `openat` is given, so that a file opened on a Green io_uring fiber is opened exactly as
    /// `std` would open it.
    pub(crate) fn open_flags(&self) -> io::Result<(i32, u32)> {
        let f = self.flags;
        let invalid = || io::Error::from_raw_os_error(libc::EINVAL);
        let access = match (f.read, f.write, f.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return Err(invalid()),
        };
        if !f.write && !f.append && (f.truncate || f.create || f.create_new) {
            return Err(invalid());
        }
        if f.append && f.truncate && !f.create_new {
            return Err(invalid());
        }
        let creation = match (f.create, f.truncate, f.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
        };
        let flags = libc::O_CLOEXEC | access | creation | (f.custom & !libc::O_ACCMODE);
        Ok((flags, f.mode))
    }
}

#[cfg(test)]
mod tests {
    use super::OpenOptions;

    /// Every combination of the six switches: `open_flags` accepts exactly what `std` accepts,
    /// and a file opened with its flags behaves like the one `std` opens (created or not,
    /// truncated or not, readable/writable/appending as asked).
    #[test]
    fn open_flags_match_std_for_every_combination() {
        let dir = std::env::temp_dir().join(format!("zsync-open-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for bits in 0u32..64 {
            let on = |i: u32| bits & (1 << i) != 0;
            let mut o = OpenOptions::new();
            o.read(on(0))
                .write(on(1))
                .append(on(2))
                .truncate(on(3))
                .create(on(4))
                .create_new(on(5));
            for exists in [false, true] {
                let std_path = dir.join(format!("std-{bits}-{exists}"));
                let raw_path = dir.join(format!("raw-{bits}-{exists}"));
                for p in [&std_path, &raw_path] {
                    let _ = std::fs::remove_file(p);
                    if exists {
                        std::fs::write(p, b"old").unwrap();
                    }
                }
                let by_std = o.as_std().open(&std_path);
                let by_raw = o.open_flags().and_then(|(flags, mode)| {
                    let fd = rustix::fs::open(
                        &raw_path,
                        rustix::fs::OFlags::from_bits_retain(flags as u32),
                        rustix::fs::Mode::from_raw_mode(mode),
                    )?;
                    Ok(std::fs::File::from(fd))
                });
                match (&by_std, &by_raw) {
                    (Ok(_), Ok(_)) => {}
                    (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "bits {bits:06b}"),
                    _ => panic!("bits {bits:06b} exists {exists}: std {by_std:?} raw {by_raw:?}"),
                }
                if let (Ok(mut a), Ok(mut b)) = (by_std, by_raw) {
                    use std::io::{Read, Write};
                    let (mut ra, mut rb) = (Vec::new(), Vec::new());
                    assert_eq!(
                        a.read_to_end(&mut ra).is_ok(),
                        b.read_to_end(&mut rb).is_ok()
                    );
                    assert_eq!(ra, rb, "bits {bits:06b}");
                    assert_eq!(a.write_all(b"x").is_ok(), b.write_all(b"x").is_ok());
                    drop((a, b));
                    assert_eq!(
                        std::fs::read(&std_path).unwrap(),
                        std::fs::read(&raw_path).unwrap(),
                        "bits {bits:06b} exists {exists}"
                    );
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The simulated disk: files in memory, with the faults a real disk has, decided by the seed.
//!
//! Each file is an anonymous memory file (`memfd_create`): its bytes are what the program sees,
//! and the operations on it (`read`, `write`, `pread`, `fstat`, `seek`, `set_len`) are the real
//! syscalls on that memory, which do not depend on anything outside the run. An `open` of a
//! simulated path reopens the file's memfd (through `/proc/self/fd`), so each open has its own
//! position, as on a disk, and hands that descriptor to the program; the world remembers which
//! file each descriptor is (checked by inode, so a descriptor number reused after a close is
//! never mistaken for the old file).
//!
//! Beside the bytes the world keeps what was last *synced* of each file: `sync_all`/`sync_data`
//! copy the file into it. A simulated power loss ([`power_loss`](super::power_loss)) puts
//! every file back to its synced bytes, or, with torn writes on, to them plus a prefix of the
//! unsynced tail — what a program that forgets to sync finds after a crash.
//!
//! Faults ([`DiskFaults`]): a failing sync (`EIO`, and the data stays unsynced), short writes, a
//! full disk (`ENOSPC` past a capacity), and latency (the operation first waits in simulated
//! time), each drawn from the run's PRNG.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The faults of a simulated disk, drawn from the run's seed. All off by default.
///
/// ```
/// use std::time::Duration;
/// use zsync::sim::{DiskFaults, Sim};
///
/// let faults = DiskFaults::default()
///     .failing_syncs(0.1)
///     .short_writes(0.2)
///     .capacity(1 << 20)
///     .latency(Duration::from_micros(50), Duration::from_millis(5))
///     .torn_writes(true);
/// let run = Sim::new(1).disk(faults).run(|io| {
///     zsync::fs::write(io, "/data/a", b"hello").map(|()| io.now())
/// });
/// assert!(run.value.is_ok() || run.value.is_err()); // a short write may have failed it
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DiskFaults {
    /// Probability that a sync fails with `EIO` (nothing becomes durable).
    pub failing_syncs: f64,
    /// Probability that a write writes only part of its bytes (at least one).
    pub short_writes: f64,
    /// Total bytes the disk holds; a write past it fails with `ENOSPC` (`StorageFull`).
    pub capacity: Option<u64>,
    /// Each operation first waits a simulated time drawn uniformly from this range.
    pub latency: Option<(Duration, Duration)>,
    /// On a power loss, keep a random prefix of each file's unsynced tail (a torn write)
    /// rather than none of it.
    pub torn_writes: bool,
}

impl DiskFaults {
    /// Syncs fail with this probability.
    pub fn failing_syncs(mut self, p: f64) -> Self {
        self.failing_syncs = p;
        self
    }

    /// Writes are short with this probability.
    pub fn short_writes(mut self, p: f64) -> Self {
        self.short_writes = p;
        self
    }

    /// The disk holds `bytes` in all.
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Every operation first waits between `min` and `max` of simulated time.
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = Some((min, max.max(min)));
        self
    }

    /// A power loss tears the unsynced tails instead of dropping them.
    pub fn torn_writes(mut self, on: bool) -> Self {
        self.torn_writes = on;
        self
    }
}

/// One simulated file.
struct File {
    /// The bytes, in an anonymous memory file.
    memfd: OwnedFd,
    /// Its inode: how a descriptor is recognised as this file's.
    ino: u64,
    /// The bytes as of the last successful sync.
    synced: Vec<u8>,
}

/// The files of a simulated run, by path, and the descriptors open on them.
#[derive(Default)]
pub(crate) struct Disk {
    files: HashMap<PathBuf, File>,
    /// Open descriptors: which file's each is.
    open: HashMap<RawFd, PathBuf>,
}

/// What an `open` asks for, from its `open(2)` flags.
pub(crate) struct OpenRequest {
    pub(crate) flags: i32,
}

impl Disk {
    /// Opens `path` as `req` says: the file is made, truncated or refused as `open(2)` would.
    pub(crate) fn open(&mut self, path: &Path, req: OpenRequest) -> io::Result<OwnedFd> {
        let flags = req.flags;
        let exists = self.files.contains_key(path);
        if exists && flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        if !exists {
            if flags & libc::O_CREAT == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            let memfd =
                rustix::fs::memfd_create("zsync-sim-file", rustix::fs::MemfdFlags::CLOEXEC)?;
            let ino = rustix::fs::fstat(&memfd)?.st_ino;
            self.files.insert(
                path.to_owned(),
                File {
                    memfd,
                    ino,
                    synced: Vec::new(),
                },
            );
        }
        let file = &self.files[path];
        if flags & libc::O_TRUNC != 0 {
            rustix::fs::ftruncate(&file.memfd, 0)?;
        }
        let keep = libc::O_ACCMODE | libc::O_APPEND;
        let fd = rustix::fs::open(
            format!("/proc/self/fd/{}", file.memfd.as_raw_fd()),
            rustix::fs::OFlags::from_bits_retain((flags & keep | libc::O_CLOEXEC) as u32),
            rustix::fs::Mode::empty(),
        )?;
        self.open.insert(fd.as_raw_fd(), path.to_owned());
        Ok(fd)
    }

    /// The path of the simulated file open on `fd`, if it is one.
    pub(crate) fn file_of(&self, fd: impl AsFd) -> Option<&Path> {
        let fd = fd.as_fd();
        let path = self.open.get(&fd.as_raw_fd())?;
        let ino = rustix::fs::fstat(fd).ok()?.st_ino;
        (self.files.get(path)?.ino == ino).then_some(path.as_path())
    }

    /// The metadata of the file at `path` (its memory file's: a regular file of its size).
    pub(crate) fn stat(&self, path: &Path) -> io::Result<std::fs::Metadata> {
        let file = self
            .files
            .get(path)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        std::fs::File::from(file.memfd.try_clone()?).metadata()
    }

    /// Removes the file at `path`. Descriptors open on it keep it, nameless, as on a real file
    /// system; unlike on one, the removal is durable at once.
    pub(crate) fn remove(&mut self, path: &Path) -> io::Result<()> {
        let file = self
            .files
            .remove(path)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.orphan(path, file);
        Ok(())
    }

    /// Renames the file at `from` to `to`, replacing what `to` was (which descriptors open on
    /// it keep, nameless). Atomic, and durable at once (as on a file system that syncs its
    /// directories: a sync of the file's bytes is still needed).
    pub(crate) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if from == to {
            return if self.files.contains_key(from) {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::ENOENT))
            };
        }
        let file = self
            .files
            .remove(from)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        if let Some(replaced) = self.files.remove(to) {
            self.orphan(to, replaced);
        }
        for p in self.open.values_mut() {
            if p == from {
                *p = to.to_owned();
            }
        }
        self.files.insert(to.to_owned(), file);
        Ok(())
    }

    /// Keeps `file`, just unnamed from `path`, for the descriptors still open on it: under a
    /// name no path can have (it starts with a NUL). Dropped if none is.
    fn orphan(&mut self, path: &Path, file: File) {
        if !self.open.values().any(|p| p == path) {
            return;
        }
        let hidden = PathBuf::from(format!("\0removed/{}", file.ino));
        for p in self.open.values_mut() {
            if p == path {
                *p = hidden.clone();
            }
        }
        self.files.insert(hidden, file);
    }

    /// The bytes all files hold now.
    pub(crate) fn used(&self) -> u64 {
        self.files
            .values()
            .filter_map(|f| rustix::fs::fstat(&f.memfd).ok())
            .map(|st| st.st_size as u64)
            .sum()
    }

    /// The size of the file at `path`.
    pub(crate) fn size(&self, path: &Path) -> u64 {
        self.files
            .get(path)
            .and_then(|f| rustix::fs::fstat(&f.memfd).ok())
            .map_or(0, |st| st.st_size as u64)
    }

    /// Makes what `path` holds now durable.
    pub(crate) fn sync(&mut self, path: &Path) -> io::Result<()> {
        if let Some(f) = self.files.get_mut(path) {
            f.synced = read_all(&f.memfd)?;
        }
        Ok(())
    }

    /// A power loss: every file goes back to its synced bytes, plus, where `tear` gives a
    /// length for it, that much of its unsynced tail.
    pub(crate) fn power_loss(&mut self, mut tear: impl FnMut(u64) -> u64) -> io::Result<()> {
        let mut paths: Vec<&PathBuf> = self.files.keys().collect();
        // A fixed order, so that the draws of `tear` do not depend on the map's.
        paths.sort();
        let mut restored = Vec::new();
        for path in paths {
            let f = &self.files[path];
            let now = read_all(&f.memfd)?;
            let mut keep = f.synced.clone();
            if now.len() > keep.len() && now[..keep.len()] == keep[..] {
                let tail = (now.len() - keep.len()) as u64;
                let torn = tear(tail).min(tail) as usize;
                keep.extend_from_slice(&now[f.synced.len()..f.synced.len() + torn]);
            }
            restored.push((path.clone(), keep));
        }
        for (path, bytes) in restored {
            let f = &self.files[&path];
            rustix::fs::ftruncate(&f.memfd, 0)?;
            let mut at = 0;
            while at < bytes.len() {
                at += rustix::io::pwrite(&f.memfd, &bytes[at..], at as u64)?;
            }
        }
        Ok(())
    }
}

/// The whole content of `fd` (read with `pread`, the position untouched).
fn read_all(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let len = rustix::fs::fstat(fd)?.st_size as usize;
    let mut out = vec![0; len];
    let mut at = 0;
    while at < len {
        let n = rustix::io::pread(fd, &mut out[at..], at as u64)?;
        if n == 0 {
            out.truncate(at);
            break;
        }
        at += n;
    }
    Ok(out)
}

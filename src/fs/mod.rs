//! Files and directories. Counterpart of [`std::fs`].
//!
//! Every operation takes an [`Io`](crate::Io) — the free functions as their first argument, a
//! [`File`] from the `Io` it was opened with — so the same code runs on every model:
//!
//! ```
//! use std::io::Write;
//! use zsync::fs::{self, File};
//! use zsync::{Io, Model};
//!
//! /// Colorblind: writes a log file and reads it back, on whatever model the caller picked.
//! fn log_roundtrip(io: &Io, dir: &std::path::Path) -> std::io::Result<String> {
//!     fs::create_dir_all(io, dir)?;
//!     let path = dir.join("log.txt");
//!     let mut f = File::create(io, &path)?;
//!     writeln!(f, "started")?;
//!     f.sync_all()?;
//!     let text = fs::read_to_string(io, &path)?;
//!     fs::remove_dir_all(io, dir)?;
//!     Ok(text)
//! }
//!
//! for model in [Model::Blocking, Model::Threaded] {
//!     let dir = std::env::temp_dir().join(format!("zsync-doc-fs-{}-{}", std::process::id(), model.name()));
//!     let text = zsync::run(model, |io| log_roundtrip(io, &dir));
//!     assert_eq!(text.unwrap(), "started\n");
//! }
//! ```
//!
//! [`Metadata`], [`Permissions`], [`FileType`] and [`DirEntry`] are std's own types, re-exported.
//!
//! ## Cancellation
//!
//! Every operation is a cancellation point: in a canceled task it returns an error for which
//! [`is_canceled`](crate::is_canceled) is true, and past the task's deadline one of kind
//! `TimedOut`, *without* making the syscall. Unlike a socket wait, though, regular-file I/O
//! cannot be interrupted once it has started — the kernel waits for the disk uninterruptibly —
//! so cancellation is only checked *before* each syscall. An operation made of many syscalls
//! ([`read`], [`write()`], a [`ReadDir`] iteration) checks before each of them; the compound
//! operations std performs in one call ([`copy`], [`create_dir_all`], [`remove_dir_all`]) check
//! once, before they start. Inside [`Io::shielded`](crate::Io::shielded) nothing reports
//! `Canceled`.
//!
//! ## Pipes, FIFOs, terminals and devices
//!
//! Only I/O on regular files, block devices and directories is uninterruptible: it ends on its
//! own once the disk answers. A [`File`] that is anything else — a FIFO, a terminal, a character device, or a pipe or socket wrapped
//! with [`File::from_std`] — may wait on *another party* for ever, so when it is opened (or
//! wrapped) zsync tells the kinds apart (one `statx(2)`) and puts such a descriptor in
//! non-blocking mode. Its reads and writes then wait for readiness exactly as a socket's do: a
//! read of an empty FIFO is interrupted by cancellation, by a dropped [`Task`](crate::Task)
//! handle, by `run`'s shutdown and by deadlines ([`Io::timeout`](crate::Io::timeout),
//! [`Io::timeout_until`](crate::Io::timeout_until)), on every model. On a Green io_uring worker
//! the read is a ring op the kernel waits on and cancels.
//!
//! Non-blocking mode belongs to the open file description, which a `dup`, a forked child or an
//! inherited stdin share: see [`File::from_std`] before wrapping a descriptor other processes
//! use. Opening a FIFO still waits for the other end as `open(2)` does (off the worker on
//! Green, but not interruptibly). For an anonymous pipe, use [`zsync::pipe`](crate::pipe).
//!
//! ## Async code
//!
//! A [`File`] also serves futures: owned-buffer methods ([`File::read_at_async`],
//! [`File::write_at_async`], [`File::read_async`], [`File::write_async`],
//! [`File::sync_all_async`]) and the `futures_io` `AsyncRead`/`AsyncWrite`/`AsyncSeek` traits
//! (tokio's too with the `tokio-io` feature), plus [`read_async`] and [`write_async`]. On a
//! Green io_uring worker they are ring ops whose buffers the op owns until the kernel is done
//! (a future dropped mid-op leaves its buffer to the op); elsewhere they run on a helper
//! thread. Dropping such a future does not stop an op that has started. A stream's (a FIFO's,
//! a terminal's) reads and writes are different: they may wait for another party for ever, so
//! they are made in the future's `poll` and wait for readiness through the async driver, on
//! every model, as a socket's; a future dropped while it waits has read or written nothing.
//!
//! ## Models
//!
//! On the Blocking model each operation is a direct syscall on the calling thread. On the
//! Threaded model (and custom models on OS threads) it is the same blocking syscall, made by
//! the worker thread running the task. Every operation goes through one private function per
//! kind of syscall, so a model with asynchronous file I/O (io_uring) adds its path in one place
//! per operation.

mod async_path;
mod dir;
mod file;
mod file_async;
mod open_options;
pub(crate) mod owned;
mod path;
mod stream_async;
mod sys;

pub use async_path::{read_async, write_async};
pub use dir::{create_dir, create_dir_all, read_dir, remove_dir, remove_dir_all, ReadDir};
pub use file::File;
pub use file_async::{BufFuture, SyncFuture};
pub use open_options::OpenOptions;
pub use path::{
    canonicalize, copy, exists, hard_link, metadata, read, read_link, read_to_string, remove_file,
    rename, set_permissions, symlink, symlink_metadata, write,
};
pub use std::fs::{DirEntry, FileType, Metadata, Permissions};

//! `File` for async code: owned-buffer methods (`read_at_async`…) and the `futures_io` (and,
//! with the `tokio-io` feature, tokio's) `AsyncRead`/`AsyncWrite`/`AsyncSeek` traits.
//!
//! Every op runs as a [`FileOp`](super::owned::FileOp): on the polling worker's io_uring where
//! there is one, on a helper thread elsewhere, always with a buffer the op owns; a stream's
//! (FIFO's, terminal's) reads and writes are tried in `poll` and wait for the async driver's
//! readiness instead (`fs/stream_async.rs`). The traits lend
//! a `&mut [u8]` only for one poll, so the `File` keeps one buffer of its own ([`Buffered`]):
//!
//! - `poll_read` reads up to `min(buf.len(), MAX_BUF)` bytes into it and copies them out when
//!   the op completes (Tokio's way); the buffer is kept for the next op.
//! - `poll_write` copies up to `MAX_BUF` bytes into it, starts the write, and reports them
//!   written at once (write-behind). A short write is continued, an error is reported by the
//!   next `poll_write` or `poll_flush`; `poll_flush`/`poll_close` wait for the write to land.
//!   A stream's write is tried once before `poll_write` returns; if the stream was full, the
//!   rest waits for room at the next poll (`poll_flush`), and is dropped with the `File`.
//! - `poll_seek` first completes any op in flight; bytes read ahead and not yet returned are
//!   accounted for, as is a seek started and then abandoned.
//!
//! One op is in flight per `File` at a time, so ops at the file position run in call order.

use std::fmt;
use std::future::Future;
use std::io::{self, SeekFrom};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::owned::{FileOp, Kind, Outcome, Owned};
use super::File;
use crate::diag::wait_point::{Object, PendingNote, WaitOp};
use crate::Io;

/// The largest transfer one trait call starts (Tokio's default too): a caller's huge buffer is
/// filled or written in 2 MiB steps rather than duplicated whole.
const MAX_BUF: usize = 2 * 1024 * 1024;

impl File {
    fn owned(&self, buf: Vec<u8>) -> Owned {
        Owned {
            file: self.shared().clone(),
            stream: self.stream_fd().cloned(),
            buf,
            start: 0,
        }
    }

    #[track_caller]
    fn buf_op(&self, kind: Kind, buf: Vec<u8>) -> BufFuture {
        let op = match kind {
            Kind::Read { .. } => WaitOp::Read,
            Kind::Write { .. } => WaitOp::Write,
            _ => WaitOp::File,
        };
        BufFuture {
            state: OpState::Unstarted(self.io().clone(), kind, Some(self.owned(buf))),
            wait: PendingNote::new(op, Object::Fd(self.as_raw_fd())),
        }
    }

    /// Reads into `buf` (up to `buf.len()` bytes) from byte `offset` of the file, without using
    /// or moving the file offset; the future yields the byte count (0 at or past the end of the
    /// file) and the buffer back. Bytes of `buf` past the count are left as they were.
    ///
    /// The buffer is the op's until it completes: on a Green io_uring worker the kernel reads
    /// straight into it, elsewhere a helper thread does. If the future is dropped mid-read the
    /// buffer stays with the op and is freed when the read ends. The future is `'static` (it
    /// holds the descriptor, not the `File`) and starts nothing until first polled.
    ///
    /// ```
    /// use zsync::fs::File;
    /// # let path = std::env::temp_dir().join(format!("zsync-doc-read-at-async-{}", std::process::id()));
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     zsync::fs::write(io, &path, b"hello world")?;
    ///     let f = File::open(io, &path)?;
    ///     let (n, buf) = futures::executor::block_on(f.read_at_async(vec![0; 5], 6));
    ///     assert_eq!(&buf[..n?], b"world");
    ///     zsync::fs::remove_file(io, &path)
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn read_at_async(&self, buf: Vec<u8>, offset: u64) -> BufFuture {
        self.buf_op(
            Kind::Read {
                offset: Some(offset),
            },
            buf,
        )
    }

    /// Writes `buf` at byte `offset`, without using or moving the file offset; yields the byte
    /// count (a write may be short, as `pwrite(2)`'s) and the buffer back. The buffer is the
    /// op's until it completes, as with [`read_at_async`](File::read_at_async).
    ///
    /// ```
    /// use zsync::fs::File;
    /// # let path = std::env::temp_dir().join(format!("zsync-doc-write-at-async-{}", std::process::id()));
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let f = File::create(io, &path)?;
    ///     let (n, _buf) = futures::executor::block_on(f.write_at_async(b"world".to_vec(), 6));
    ///     assert_eq!(n?, 5);
    ///     assert_eq!(zsync::fs::read(io, &path)?, b"\0\0\0\0\0\0world");
    ///     zsync::fs::remove_file(io, &path)
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn write_at_async(&self, buf: Vec<u8>, offset: u64) -> BufFuture {
        self.buf_op(
            Kind::Write {
                offset: Some(offset),
            },
            buf,
        )
    }

    /// Reads into `buf` (up to `buf.len()` bytes) at the file offset, advancing it; yields the
    /// byte count (0 at the end of the file) and the buffer back. See
    /// [`read_at_async`](File::read_at_async) for the buffer's ownership. A `File` that is not a
    /// regular file (a FIFO, a terminal) waits for data through the async driver: no helper
    /// thread or ring op is involved, and a future dropped while it waits has read nothing.
    ///
    /// ```
    /// use zsync::fs::File;
    /// # let path = std::env::temp_dir().join(format!("zsync-doc-read-async-{}", std::process::id()));
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     zsync::fs::write(io, &path, b"abc")?;
    ///     let f = File::open(io, &path)?;
    ///     let (n, buf) = futures::executor::block_on(f.read_async(vec![0; 2]));
    ///     assert_eq!(&buf[..n?], b"ab");
    ///     let (n, buf) = futures::executor::block_on(f.read_async(buf));
    ///     assert_eq!(&buf[..n?], b"c");
    ///     zsync::fs::remove_file(io, &path)
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn read_async(&self, buf: Vec<u8>) -> BufFuture {
        self.buf_op(Kind::Read { offset: None }, buf)
    }

    /// Writes `buf` at the file offset, advancing it (at the end in append mode); yields the
    /// byte count (maybe short) and the buffer back. See [`read_at_async`](File::read_at_async)
    /// for the buffer's ownership.
    ///
    /// ```
    /// use zsync::fs::File;
    /// # let path = std::env::temp_dir().join(format!("zsync-doc-write-async-{}", std::process::id()));
    /// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
    ///     let f = File::create(io, &path)?;
    ///     let (n, _) = futures::executor::block_on(f.write_async(b"hi".to_vec()));
    ///     assert_eq!(n?, 2);
    ///     futures::executor::block_on(f.sync_all_async())?;
    ///     assert_eq!(zsync::fs::read(io, &path)?, b"hi");
    ///     zsync::fs::remove_file(io, &path)
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn write_async(&self, buf: Vec<u8>) -> BufFuture {
        self.buf_op(Kind::Write { offset: None }, buf)
    }

    /// Flushes data and metadata to the device (`fsync(2)`), as a future: an `IORING_OP_FSYNC`
    /// on a Green io_uring worker, a helper thread's `fsync` elsewhere. See
    /// [`write_async`](File::write_async) for an example.
    #[track_caller]
    pub fn sync_all_async(&self) -> SyncFuture {
        SyncFuture(self.buf_op(Kind::Sync { data_only: false }, Vec::new()))
    }

    /// Flushes data, and only the metadata needed to read it back (`fdatasync(2)`), as a
    /// future.
    ///
    /// ```
    /// use zsync::fs::File;
    /// # let path = std::env::temp_dir().join(format!("zsync-doc-sync-data-async-{}", std::process::id()));
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     let f = File::create(io, &path)?;
    ///     futures::executor::block_on(f.sync_data_async())?;
    ///     zsync::fs::remove_file(io, &path)
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn sync_data_async(&self) -> SyncFuture {
        SyncFuture(self.buf_op(Kind::Sync { data_only: true }, Vec::new()))
    }
}

enum OpState {
    Unstarted(Io, Kind, Option<Owned>),
    Running(FileOp),
    Done,
}

/// The future of a [`File`] read or write with an owned buffer ([`File::read_at_async`],
/// [`File::write_at_async`], [`File::read_async`], [`File::write_async`]): yields the byte count
/// and the buffer back. `'static` and `Send`; dropping it mid-op leaves the buffer with the op,
/// freed when the op ends.
///
/// ```
/// use zsync::fs::{BufFuture, File};
/// # let path = std::env::temp_dir().join(format!("zsync-doc-buf-future-{}", std::process::id()));
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     zsync::fs::write(io, &path, b"xyz")?;
///     let f = File::open(io, &path)?;
///     let read: BufFuture = f.read_at_async(vec![0; 3], 0);
///     drop(f); // the future holds the descriptor
///     let (n, buf) = futures::executor::block_on(read);
///     assert_eq!(&buf[..n?], b"xyz");
///     zsync::fs::remove_file(io, &path)
/// }).unwrap();
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct BufFuture {
    state: OpState,
    /// What a task dump shows while the op is pending.
    wait: PendingNote,
}

impl Future for BufFuture {
    type Output = (io::Result<usize>, Vec<u8>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                OpState::Unstarted(io, kind, owned) => {
                    let owned = owned.take().expect("an unstarted op has its buffer");
                    this.state = OpState::Running(FileOp::start(io, *kind, owned));
                }
                OpState::Running(op) => {
                    let Poll::Ready((result, buf)) = op.poll_done(cx) else {
                        this.wait.pending();
                        return Poll::Pending;
                    };
                    this.wait.done();
                    this.state = OpState::Done;
                    return Poll::Ready((result.map(|n| n as usize), buf));
                }
                OpState::Done => panic!("a BufFuture polled after it completed"),
            }
        }
    }
}

impl fmt::Debug for BufFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            OpState::Unstarted(..) => "unstarted",
            OpState::Running(_) => "running",
            OpState::Done => "done",
        };
        f.debug_struct("BufFuture").field("state", &state).finish()
    }
}

/// The future of [`File::sync_all_async`] and [`File::sync_data_async`].
///
/// ```
/// use zsync::fs::{File, SyncFuture};
/// # let path = std::env::temp_dir().join(format!("zsync-doc-sync-future-{}", std::process::id()));
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let f = File::create(io, &path)?;
///     let sync: SyncFuture = f.sync_all_async();
///     futures::executor::block_on(sync)?;
///     zsync::fs::remove_file(io, &path)
/// }).unwrap();
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct SyncFuture(BufFuture);

impl Future for SyncFuture {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (result, _) = ready!(Pin::new(&mut self.get_mut().0).poll(cx));
        Poll::Ready(result.map(drop))
    }
}

// ---- the trait impls' state --------------------------------------------------------------------

/// What the op in flight of the trait impls is.
#[derive(Debug, Clone, Copy)]
enum Doing {
    /// A read into `buf`.
    Read,
    /// The write of `buf[start..]` (`start` is what earlier steps wrote).
    Write { start: usize },
    /// A seek: for `poll_seek(pos)` (`Some(pos)`, whose caller wants the result), or moving
    /// the offset back over bytes read ahead (`None`).
    Seek(Option<SeekFrom>),
}

/// The `File`'s own buffer and op for the async traits. See the module docs.
#[derive(Default)]
pub(crate) struct Buffered {
    /// The buffer while no op has it; `buf[pos..end]` are bytes read ahead, not yet returned.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    op: Option<(FileOp, Doing)>,
    /// A failed read, for the next `poll_read`.
    read_err: Option<io::Error>,
    /// A read completed and its outcome (maybe 0 bytes: the end of the file) is not yet
    /// returned by `poll_read`.
    read_done: bool,
    /// A failed write-behind, for the next `poll_write`/`poll_flush`.
    write_err: Option<io::Error>,
    /// The outcome of the last `poll_seek(pos)`, for the call that started it.
    seeked: Option<(SeekFrom, io::Result<u64>)>,
    /// The position `tokio::io::AsyncSeek::start_seek` asked for.
    #[cfg(feature = "tokio-io")]
    tokio_seek: Option<SeekFrom>,
}

impl fmt::Debug for Buffered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffered")
            .field("buffered", &(self.end - self.pos))
            .field("op", &self.op.as_ref().map(|(_, d)| *d))
            .finish()
    }
}

impl File {
    /// Starts `kind` on the `File`'s own buffer.
    fn start_rw(&mut self, kind: Kind, doing: Doing, start: usize) {
        let buf = std::mem::take(&mut self.rw.buf);
        let mut owned = self.owned(buf);
        owned.start = start;
        let op = FileOp::start(self.io(), kind, owned);
        self.rw.op = Some((op, doing));
    }

    /// Drives the op in flight to its end (continuing a short write), then `Ready`.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some((op, doing)) = &mut self.rw.op {
            let doing = *doing;
            let (result, buf): Outcome = ready!(op.poll_done(cx));
            self.rw.op = None;
            self.rw.buf = buf;
            match (doing, result) {
                (Doing::Read, Ok(n)) => {
                    self.rw.pos = 0;
                    self.rw.end = (n as usize).min(self.rw.buf.len());
                    self.rw.read_done = true;
                }
                (Doing::Read, Err(e)) => self.rw.read_err = Some(e),
                (Doing::Write { start }, Ok(n)) => {
                    let done = start + n as usize;
                    if n == 0 {
                        self.rw.write_err = Some(io::ErrorKind::WriteZero.into());
                    } else if done < self.rw.buf.len() {
                        let doing = Doing::Write { start: done };
                        self.start_rw(Kind::Write { offset: None }, doing, done);
                    }
                }
                (Doing::Write { .. }, Err(e)) => self.rw.write_err = Some(e),
                (Doing::Seek(asked), result) => self.rw.seeked = asked.map(|pos| (pos, result)),
            }
        }
        Poll::Ready(())
    }

    /// Returns the bytes read ahead to the file: its offset moves back over them (an `lseek`
    /// op). Called before a write or seek at the file position.
    fn unread(&mut self) -> bool {
        self.rw.read_done = false;
        let ahead = self.rw.end - self.rw.pos;
        self.rw.pos = 0;
        self.rw.end = 0;
        if ahead == 0 {
            return false;
        }
        self.start_rw(
            Kind::Seek(SeekFrom::Current(-(ahead as i64))),
            Doing::Seek(None),
            0,
        );
        true
    }

    fn poll_read_priv(&mut self, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_idle(cx));
            if let Some(e) = self.rw.read_err.take() {
                return Poll::Ready(Err(e));
            }
            let just_read = std::mem::take(&mut self.rw.read_done);
            if self.rw.pos < self.rw.end || just_read {
                let n = (self.rw.end - self.rw.pos).min(dst.len());
                dst[..n].copy_from_slice(&self.rw.buf[self.rw.pos..self.rw.pos + n]);
                self.rw.pos += n;
                return Poll::Ready(Ok(n));
            }
            if dst.is_empty() {
                return Poll::Ready(Ok(0));
            }
            self.rw.seeked = None;
            let len = dst.len().min(MAX_BUF);
            // Grows by zeros only the first time (or for a larger read): the buffer is reused.
            self.rw.buf.resize(len, 0);
            self.start_rw(Kind::Read { offset: None }, Doing::Read, 0);
        }
    }

    fn poll_write_priv(&mut self, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_idle(cx));
            if let Some(e) = self.rw.write_err.take() {
                return Poll::Ready(Err(e));
            }
            self.rw.seeked = None;
            if self.unread() {
                continue;
            }
            if src.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let n = src.len().min(MAX_BUF);
            self.rw.buf.clear();
            self.rw.buf.extend_from_slice(&src[..n]);
            self.start_rw(Kind::Write { offset: None }, Doing::Write { start: 0 }, 0);
            // Written, as far as the caller is concerned: errors come with the next call.
            return Poll::Ready(Ok(n));
        }
    }

    fn poll_flush_priv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_idle(cx));
        match self.rw.write_err.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_seek_priv(&mut self, cx: &mut Context<'_>, pos: SeekFrom) -> Poll<io::Result<u64>> {
        loop {
            ready!(self.poll_idle(cx));
            // The seek this call started (a seek started for another position and abandoned
            // has moved the offset, and is not this call's answer).
            if let Some((asked, result)) = self.rw.seeked.take() {
                if asked == pos {
                    return Poll::Ready(result);
                }
            }
            // Bytes read ahead are not where the caller is: count them back.
            self.rw.read_done = false;
            let ahead = (self.rw.end - self.rw.pos) as i64;
            self.rw.pos = 0;
            self.rw.end = 0;
            let to = match pos {
                SeekFrom::Current(n) => SeekFrom::Current(n - ahead),
                other => other,
            };
            self.start_rw(Kind::Seek(to), Doing::Seek(Some(pos)), 0);
        }
    }
}

/// Reads at the file offset: each read of up to 2 MiB goes into a buffer the `File` keeps (the
/// op owns it while it runs, see [`zsync::fs`](crate::fs#async-code)) and is copied out when it
/// completes.
///
/// ```
/// use futures::io::AsyncReadExt;
/// use zsync::fs::File;
/// # let path = std::env::temp_dir().join(format!("zsync-doc-async-read-{}", std::process::id()));
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     zsync::fs::write(io, &path, b"async read")?;
///     let mut f = File::open(io, &path)?;
///     let mut text = String::new();
///     futures::executor::block_on(f.read_to_string(&mut text))?;
///     assert_eq!(text, "async read");
///     zsync::fs::remove_file(io, &path)
/// }).unwrap();
/// ```
impl futures_io::AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_priv(cx, buf)
    }
}

/// Writes behind: `poll_write` returns once the data (up to 2 MiB) is copied into the `File`'s
/// buffer and its write started; a short write is continued, and a failure is reported by the
/// next `poll_write` or `poll_flush`. Flush (or close) to wait for the write and learn its
/// outcome. A `File` dropped with a write in flight does not stop it (a FIFO's write waiting for
/// room, though, goes with the `File`: nothing else would ever finish it).
///
/// ```
/// use futures::io::AsyncWriteExt;
/// use zsync::fs::File;
/// # let path = std::env::temp_dir().join(format!("zsync-doc-async-write-{}", std::process::id()));
/// zsync::run(zsync::Model::Threaded, |io| -> std::io::Result<()> {
///     let mut f = File::create(io, &path)?;
///     futures::executor::block_on(async {
///         f.write_all(b"async write").await?;
///         f.flush().await
///     })?;
///     assert_eq!(zsync::fs::read(io, &path)?, b"async write");
///     zsync::fs::remove_file(io, &path)
/// }).unwrap();
/// ```
impl futures_io::AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_priv(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_priv(cx)
    }

    /// Flushes; the descriptor itself is closed when the `File` drops.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_priv(cx)
    }
}

/// Seeks once the op in flight has completed; bytes read ahead and not yet returned are
/// counted back, so `SeekFrom::Current` is relative to what the caller has read.
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncSeekExt};
/// use std::io::SeekFrom;
/// use zsync::fs::File;
/// # let path = std::env::temp_dir().join(format!("zsync-doc-async-seek-{}", std::process::id()));
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     zsync::fs::write(io, &path, b"0123456789")?;
///     let mut f = File::open(io, &path)?;
///     let mut two = [0; 2];
///     futures::executor::block_on(async {
///         assert_eq!(f.seek(SeekFrom::End(-3)).await?, 7);
///         f.read_exact(&mut two).await
///     })?;
///     assert_eq!(&two, b"78");
///     zsync::fs::remove_file(io, &path)
/// }).unwrap();
/// ```
impl futures_io::AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        self.get_mut().poll_seek_priv(cx, pos)
    }
}

/// tokio's `AsyncRead` (feature `tokio-io`): the same reads as the `futures_io` impl.
#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.get_mut().poll_read_priv(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// tokio's `AsyncWrite` (feature `tokio-io`): the same write-behind as the `futures_io` impl.
#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_priv(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_priv(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_priv(cx)
    }
}

/// tokio's `AsyncSeek` (feature `tokio-io`): `start_seek` records the target, `poll_complete`
/// runs the seek.
#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncSeek for File {
    fn start_seek(self: Pin<&mut Self>, pos: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        if this.rw.tokio_seek.is_some() {
            return Err(io::Error::other("a seek is already in progress"));
        }
        this.rw.tokio_seek = Some(pos);
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        match this.rw.tokio_seek {
            Some(pos) => {
                let result = ready!(this.poll_seek_priv(cx, pos));
                this.rw.tokio_seek = None;
                Poll::Ready(result)
            }
            // No seek asked: the current position, once the op in flight is over.
            None => this.poll_seek_priv(cx, SeekFrom::Current(0)),
        }
    }
}

//! [`Writer`]: a buffered writer whose buffer and whose caller's slices leave in one `writev`.

use std::fmt;
use std::io::{self, IoSlice, Write};
use std::ops::{Deref, DerefMut};

use super::vectored::Segments;
use super::{pool, DEFAULT_CAPACITY};
use crate::fs::File;
use crate::transfer::{self, Descriptor};

/// A buffered writer over any [`Write`], after Zig's `std.Io.Writer`.
///
/// Small writes are copied into the buffer; a write that does not fit, a [`drain`](Self::drain)
/// and a [`flush`](Self::flush) send the buffered bytes *and* the caller's slices together in one
/// vectored write, so large payloads are never copied. A pattern repeated many times (padding, a
/// fill byte run, the same header to many records) costs no copy either: see
/// [`drain`](Self::drain) and the [module docs](super).
///
/// Implements [`std::io::Write`]; the buffer is flushed (errors ignored) when the `Writer`
/// drops, as std's `BufWriter` does — call [`flush`](Self::flush) to see the error. Every method
/// that writes to the sink is a cancellation point when the sink's writes are (all zsync streams
/// and files).
///
/// The flush on drop waits like any other write: into a peer that stopped reading it waits until
/// the sink's write timeout, the task's deadline or a cancellation ends it — without any of
/// those, for as long as the peer does not read. A server that must not wait on its clients sets
/// a write timeout on the stream (or drops the `Writer` under [`Io::timeout`](crate::Io::timeout)).
///
/// ```
/// use std::io::{Read, Write};
/// use zsync::bufio::Writer;
/// use zsync::net::UnixStream;
///
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let (a, mut b) = UnixStream::pair(io)?;
///     let mut w = Writer::with_capacity(64, a);
///     write!(w, "{}:", 42)?;                  // buffered
///     w.drain(&[b"[", b"-"], 3)?;             // "42:" + "[" + "---" in one writev
///     w.flush()?;
///     drop(w);
///     let mut got = String::new();
///     b.read_to_string(&mut got)?;
///     assert_eq!(got, "42:[---");
///     Ok(())
/// }).unwrap();
/// ```
pub struct Writer<W: Write> {
    inner: W,
    /// The buffered bytes, oldest first. Held only while bytes are buffered: taken (from the
    /// thread's [`pool`]) by the first write that buffers something, given back as soon as a
    /// write to the sink empties it; capacity 0 in between. Never holds more than `cap` bytes.
    buf: WriteBuf,
    /// The buffer's size.
    cap: usize,
    /// Set while a write of the inner writer is in progress, so a panic inside it does not make
    /// `Drop` write the same bytes again.
    panicked: bool,
    /// Lent to [`Segments`] for the block of a short splat slice (kept between calls so that a
    /// repeated drain allocates nothing; at most about 4 KiB).
    splat_block: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// A writer with a buffer of 64 KiB.
    pub fn new(inner: W) -> Writer<W> {
        Writer::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// A writer with a buffer of `capacity` bytes (0 is allowed: nothing is ever buffered and
    /// every write goes straight to the sink).
    pub fn with_capacity(capacity: usize, inner: W) -> Writer<W> {
        Writer {
            inner,
            buf: WriteBuf(Vec::new()),
            cap: capacity,
            panicked: false,
            splat_block: Vec::new(),
        }
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Whether the writer holds a buffer now: only while bytes are buffered (it takes one from
    /// a small per-thread cache when it first buffers bytes and gives it back when a write to
    /// the sink empties it).
    pub fn holds_buffer(&self) -> bool {
        self.buf.capacity() != 0
    }

    /// Appends `data`, which fits in the spare room, taking a buffer first if none is held.
    fn push(&mut self, data: &[u8]) {
        debug_assert!(data.len() <= self.spare());
        if data.is_empty() {
            return;
        }
        if self.buf.capacity() == 0 {
            self.buf.0 = pool::take_write(self.cap);
        }
        self.buf.extend_from_slice(data);
    }

    /// The bytes written to the `Writer` and not yet to the sink.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// The sink.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The sink, mutably. Writing to it directly jumps ahead of the buffered bytes.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Flushes the buffer and returns the sink.
    ///
    /// Errors: the flush's error, together with the writer (nothing is lost).
    pub fn into_inner(mut self) -> Result<W, (io::Error, Writer<W>)> {
        match self.flush_buf() {
            Ok(()) => {
                // `Writer` implements `Drop`, so its fields are moved out of a `ManuallyDrop`.
                let this = std::mem::ManuallyDrop::new(self);
                // Every field is named (no `..`): a field added to `Writer` does not compile here
                // until it is moved out below too, so none is leaked (`splat_block` once was).
                let Writer {
                    inner,
                    buf,
                    cap: _,
                    panicked: _,
                    splat_block,
                } = &*this;
                // SAFETY: `this` is never used or dropped again, so each field is moved out
                // exactly once: the buffers to be dropped here, the sink to be returned.
                let (inner, buf, splat_block) = unsafe {
                    (
                        std::ptr::read(inner),
                        std::ptr::read(buf),
                        std::ptr::read(splat_block),
                    )
                };
                drop((buf, splat_block));
                Ok(inner)
            }
            Err(e) => Err((e, self)),
        }
    }

    /// Sends the buffered bytes, then `data` with its last slice repeated `splat` times, all in
    /// as few vectored writes as the sink allows — one when the sink takes it all and there are
    /// at most 1024 iovecs. Loops on partial writes, resuming at the exact byte the sink stopped
    /// at. Returns the number of bytes of `data` written:
    /// `data[..n-1]` in full plus `splat × data[n-1].len()`.
    ///
    /// The repeats are iovecs pointing at the same memory: no byte is copied, except that a
    /// slice of at most 2 KiB repeated more than 16 times is copied once into a block of about
    /// 4 KiB of whole repeats, so that one iovec carries many (see the
    /// [module docs](super) for the iovec array). `splat == 0` writes everything but the last
    /// slice; an empty `data` just flushes the buffer.
    ///
    /// Cancellation point (each underlying write). On error the buffer keeps the buffered bytes
    /// the sink did not take; how much of `data` went out is not reported (use
    /// [`drain_once`](Self::drain_once) for exact accounting).
    ///
    /// ```
    /// use zsync::bufio::Writer;
    /// let mut w = Writer::with_capacity(16, Vec::new());
    /// let n = w.drain(&[b"key=", b"0"], 8).unwrap();
    /// assert_eq!(n, 4 + 8);
    /// assert_eq!(w.get_ref().as_slice(), b"key=00000000");
    /// ```
    pub fn drain(&mut self, data: &[&[u8]], splat: usize) -> io::Result<u64> {
        self.drain_segments(data, splat)
    }

    /// Zig's `drain` to the letter: *one* vectored write of the buffered bytes followed by
    /// `data` with its last slice repeated `splat` times (at most 1024 iovecs of it). Returns the
    /// number of bytes of `data` the sink took, 0 if it took only (some of) the buffered bytes;
    /// the buffered bytes it took leave the buffer. Cancellation point.
    ///
    /// ```
    /// use zsync::bufio::Writer;
    /// let mut w = Writer::with_capacity(16, Vec::new());
    /// std::io::Write::write_all(&mut w, b"ab").unwrap(); // buffered
    /// assert_eq!(w.drain_once(&[b"c", b"d"], 2).unwrap(), 3);
    /// assert_eq!(w.get_ref().as_slice(), b"abcdd");
    /// ```
    pub fn drain_once(&mut self, data: &[&[u8]], splat: usize) -> io::Result<usize> {
        self.drain_once_segments(data, splat)
    }

    /// Writes every byte of `bufs`, in order, behind the buffered bytes, in as few vectored
    /// writes as possible (at most 1024 iovecs each); partial writes resume at the exact byte.
    /// Slices that fit in the buffer's free space are copied there instead. Cancellation point.
    ///
    /// ```
    /// use std::io::IoSlice;
    /// use zsync::bufio::Writer;
    /// let mut w = Writer::with_capacity(4, Vec::new());
    /// w.write_vectored_all(&[IoSlice::new(b"hello "), IoSlice::new(b"world")]).unwrap();
    /// assert_eq!(w.get_ref().as_slice(), b"hello world");
    /// ```
    pub fn write_vectored_all(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total <= self.spare() {
            for b in bufs {
                self.push(b);
            }
            return Ok(());
        }
        self.drain_segments(bufs, 1).map(|_| ())
    }

    /// Writes the buffered bytes to the sink, looping until all are written. Unlike
    /// [`flush`](Write::flush) it does not flush the sink itself. Cancellation point.
    pub fn flush_buf(&mut self) -> io::Result<()> {
        let none: &[&[u8]] = &[];
        self.drain_segments(none, 0).map(|_| ())
    }

    fn spare(&self) -> usize {
        self.cap - self.buf.len()
    }

    fn drain_segments<S: Deref<Target = [u8]>>(
        &mut self,
        data: &[S],
        splat: usize,
    ) -> io::Result<u64> {
        let head_len = self.buf.len();
        let mut segs = Segments::new(&self.buf, data, splat, &mut self.splat_block);
        let total = segs.remaining();
        self.panicked = true;
        let r = segs.write_all(&mut self.inner);
        self.panicked = false;
        let written = total - segs.remaining();
        self.consume_head(head_len, written);
        r.map(|()| total - head_len as u64)
    }

    fn drain_once_segments<S: Deref<Target = [u8]>>(
        &mut self,
        data: &[S],
        splat: usize,
    ) -> io::Result<usize> {
        let head_len = self.buf.len();
        let mut segs = Segments::new(&self.buf, data, splat, &mut self.splat_block);
        self.panicked = true;
        let r = segs.write_once(&mut self.inner);
        self.panicked = false;
        let written = r?;
        self.consume_head(head_len, written as u64);
        Ok(written.saturating_sub(head_len))
    }

    /// Drops the first `min(written, head_len)` buffered bytes, which the sink took.
    fn consume_head(&mut self, head_len: usize, written: u64) {
        let from_head = usize::try_from(written).unwrap_or(usize::MAX).min(head_len);
        if from_head == self.buf.len() {
            // Empty: the buffer goes back to the thread's cache until bytes are buffered again.
            self.buf = WriteBuf(Vec::new());
        } else {
            self.buf.drain(..from_head);
        }
    }

    /// `Write::write` for slices that do not fit: one vectored write of buffer + slices. Never
    /// returns `Ok(0)` for non-empty input unless the sink did.
    fn write_through<S: Deref<Target = [u8]>>(&mut self, data: &[S]) -> io::Result<usize> {
        if self.buf.is_empty() {
            let mut segs = Segments::new(&[], data, 1, &mut self.splat_block);
            self.panicked = true;
            let r = segs.write_once(&mut self.inner);
            self.panicked = false;
            return r;
        }
        let head_len = self.buf.len();
        let n = self.drain_once_segments(data, 1)?;
        if n > 0 {
            return Ok(n);
        }
        if self.buf.len() == head_len {
            return Ok(0); // the sink took nothing
        }
        // The sink took only buffered bytes: copy what now fits.
        let mut copied = 0;
        for s in data {
            let take = s.len().min(self.spare());
            self.push(&s[..take]);
            copied += take;
            if take < s.len() {
                break;
            }
        }
        Ok(copied)
    }
}

impl<W: Write + Descriptor> Writer<W> {
    /// Flushes the buffer, then sends `len` bytes of `file` starting at `offset` to the sink
    /// with [`transfer::send_file`] (`sendfile(2)`, else `splice(2)`, else a buffered copy).
    /// Returns the number of bytes sent: less than `len` only if the file ends first.
    /// Cancellation point.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use zsync::bufio::Writer;
    /// use zsync::fs::File;
    /// use zsync::net::UnixStream;
    ///
    /// let path = std::env::temp_dir().join(format!("zsync-doc-sendfile-{}", std::process::id()));
    /// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
    ///     std::fs::write(&path, b"0123456789")?;
    ///     let file = File::open(io, &path)?;
    ///     let (a, mut b) = UnixStream::pair(io)?;
    ///     let mut w = Writer::new(a);
    ///     w.write_all(b"head:")?;
    ///     assert_eq!(w.send_file(&file, 3, 4)?, 4);
    ///     drop(w);
    ///     let mut got = String::new();
    ///     b.read_to_string(&mut got)?;
    ///     assert_eq!(got, "head:3456");
    ///     std::fs::remove_file(&path)
    /// }).unwrap();
    /// ```
    pub fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        self.flush_buf()?;
        transfer::send_file(&self.inner, file, offset, len)
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() <= self.spare() {
            self.push(data);
            return Ok(data.len());
        }
        self.write_through(&[data])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total <= self.spare() {
            for b in bufs {
                self.push(b);
            }
            return Ok(total);
        }
        self.write_through(bufs)
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() <= self.spare() {
            self.push(data);
            return Ok(());
        }
        self.drain_segments(&[data], 1).map(|_| ())
    }

    /// Writes the buffered bytes, then flushes the sink. Cancellation point.
    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Writer<W> {
    fn drop(&mut self) {
        if !self.panicked {
            let _ = self.flush_buf();
        }
    }
}

impl<W: Write + fmt::Debug> fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("inner", &self.inner)
            .field("buffered", &self.buf.len())
            .field("capacity", &self.cap)
            .finish()
    }
}

/// A write buffer that goes back to its thread's [`pool`] when dropped.
struct WriteBuf(Vec<u8>);

impl Deref for WriteBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for WriteBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for WriteBuf {
    fn drop(&mut self) {
        pool::give_write(std::mem::take(&mut self.0));
    }
}

//! [`Reader`]: a buffered reader that lends out its buffer.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::ops::{Deref, DerefMut};

use super::{pool, DEFAULT_CAPACITY};
use crate::park::Interest;
use crate::transfer::{Descriptor, FdKind};

/// A buffered reader over any [`Read`], after Zig's `std.Io.Reader`.
///
/// The buffer has a fixed size chosen at construction. Methods that *look* at data
/// ([`peek`](Self::peek), [`take_bytes`](Self::take_bytes), [`take_delimited`](Self::take_delimited)) return
/// slices of the buffer itself — no copy — and read from the source as many times as needed to
/// have the bytes asked for. Methods that *move* data ([`discard`](Self::discard),
/// [`stream_to`](Self::stream_to)) hand it on straight from the buffer.
///
/// Implements [`std::io::Read`] and [`std::io::BufRead`] (so `read_until`, `read_line`, `lines`,
/// `split` and parsers written against them work). Every method that reads from the source is a
/// cancellation point when the source's reads are (all zsync streams and files).
///
/// ```
/// use std::io::{BufRead, Write};
/// use zsync::bufio::Reader;
/// use zsync::net::UnixStream;
///
/// zsync::run(zsync::Model::Blocking, |io| -> std::io::Result<()> {
///     let (mut a, b) = UnixStream::pair(io)?;
///     a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody")?;
///     drop(a);
///     let mut r = Reader::with_capacity(64, b);
///     assert_eq!(r.peek(3)?, b"GET");                       // still buffered
///     assert_eq!(r.take_delimited(b'\n')?, Some(&b"GET / HTTP/1.1\r"[..]));
///     let mut line = String::new();
///     r.read_line(&mut line)?;                              // std's BufRead
///     assert_eq!(line, "Host: x\r\n");
///     assert_eq!(r.discard(2)?, 2);                         // the blank line
///     assert_eq!(r.take_bytes(4)?, b"body");
///     assert_eq!(r.fill_more()?, 0);                        // end of stream
///     Ok(())
/// }).unwrap();
/// ```
pub struct Reader<R> {
    inner: R,
    /// The buffer while the reader holds one (`len() == cap`), else empty: a reader takes its
    /// buffer at its first read, and an [`on_demand`](Self::on_demand) reader gives it back
    /// whenever it has no buffered bytes.
    buf: ReadBuf,
    /// The buffer's size.
    cap: usize,
    /// `buf[pos..end]` are the buffered, unconsumed bytes; both 0 while no buffer is held.
    pos: usize,
    end: usize,
    /// For an [`on_demand`](Self::on_demand) reader: how it reads into an empty buffer.
    on_demand: Option<OnDemand<R>>,
}

/// A read buffer that goes back to its thread's [`pool`] when dropped.
struct ReadBuf(Box<[u8]>);

impl Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for ReadBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        pool::give_read(std::mem::take(&mut self.0));
    }
}

/// How an [`on_demand`](Reader::on_demand) reader reads into an empty buffer: a read that does
/// not wait, where that is worth a syscall; if it finds nothing, a wait for readiness holding
/// no buffer; then the read.
struct OnDemand<R> {
    /// A read that does not wait: `Some(n)` if it read (0 at end of stream), `None` if the read
    /// would have to wait or the attempt is not worth making. The flag says whether the source
    /// was just seen readable.
    try_read: fn(&R, &mut [u8], bool) -> io::Result<Option<usize>>,
    /// Waits until a read would not block (data, the end, or an error), holding no buffer.
    wait: fn(&R) -> io::Result<()>,
}

/// The non-blocking read of an [`on_demand`](Reader::on_demand) reader on a socket:
/// `recv(MSG_DONTWAIT)`.
///
/// - On readiness backends and threads it is made before the wait: it is the `recv` the
///   model's own read would try first anyway, so it costs no extra syscall.
/// - On a Green worker with io_uring it is made only after the wait (`ready`): before it, it
///   would be a syscall spent on a socket that is usually empty (the ring's readiness wait is
///   not a syscall of its own); after it, it is the read itself, cheaper than a second ring op
///   and a second park. Measured against the ring `RECV` in docs/ARCHITECTURE.md ("Memory per
///   connection").
///
/// Skipped (`None`) on a custom model (its reads are its own), for files (they read at once)
/// and pipes (the plain read after the wait is as cheap).
fn try_read<R: Descriptor>(source: &R, buf: &mut [u8], ready: bool) -> io::Result<Option<usize>> {
    if source.kind() != FdKind::Socket
        || crate::op::custom(source.io()).is_some()
        || (!ready && crate::model::green::ring_available(io_uring::opcode::Recv::CODE))
    {
        return Ok(None);
    }
    crate::context::check()?;
    loop {
        match rustix::net::recv(source.as_fd(), &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(Some(n)),
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(rustix::io::Errno::INTR) => crate::context::check()?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until `source` is readable without a buffer: a file or a source on a custom model
/// does not wait (its read waits its own way); a socket or pipe waits for readiness under its
/// read timeout, which expires as `WouldBlock`, as its read would. Cancellation point.
fn wait_readable<R: Descriptor>(source: &R) -> io::Result<()> {
    if source.kind() == FdKind::File || crate::op::custom(source.io()).is_some() {
        return Ok(());
    }
    crate::net::timeout::bounded(source.read_timeout(), |deadline| {
        crate::park::wait_fd(source.as_fd(), Interest::Read, deadline)
    })
}

impl<R: Read + Descriptor> Reader<R> {
    /// A reader with a buffer of `capacity` bytes that it holds only while bytes are buffered:
    /// when it has none and must read, it gives its buffer back (to a small per-thread cache),
    /// waits until the source is readable, and only then takes a buffer and reads. So a
    /// connection idle between requests holds no read buffer; the buffers in use at once are
    /// about as many as the requests being worked on at once. Costs one readiness wait per
    /// read into an empty buffer (see "Memory per connection" in docs/ARCHITECTURE.md).
    ///
    /// Otherwise the same as [`with_capacity`](Self::with_capacity).
    pub fn on_demand(capacity: usize, inner: R) -> Reader<R> {
        Reader {
            on_demand: Some(OnDemand {
                try_read: try_read::<R>,
                wait: wait_readable::<R>,
            }),
            ..Reader::with_capacity(capacity, inner)
        }
    }

    /// Whether the reader holds a buffer now. Any reader holds none before its first read; an
    /// [`on_demand`](Self::on_demand) one gives its buffer back when [`consume`](BufRead::consume)
    /// or [`read`](Read::read) takes its last buffered byte, and at the latest before it waits
    /// for more.
    pub fn holds_buffer(&self) -> bool {
        !self.buf.is_empty()
    }
}

impl<R: Read> Reader<R> {
    /// A reader with a buffer of 64 KiB.
    pub fn new(inner: R) -> Reader<R> {
        Reader::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// A reader with a buffer of `capacity` bytes. [`peek`](Self::peek) and
    /// [`take_bytes`](Self::take_bytes) can return at most this many bytes, and
    /// [`take_delimited`](Self::take_delimited) records of at most this length.
    ///
    /// The buffer is taken at the first read (from a small per-thread cache of buffers that
    /// readers returned, else allocated) and kept for the reader's life; see
    /// [`on_demand`](Self::on_demand) for one that gives it back whenever it is empty.
    pub fn with_capacity(capacity: usize, inner: R) -> Reader<R> {
        Reader {
            inner,
            buf: ReadBuf(Box::default()),
            cap: capacity,
            pos: 0,
            end: 0,
            on_demand: None,
        }
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Takes a buffer if the reader holds none.
    fn hold_buffer(&mut self) {
        if self.buf.len() != self.cap {
            debug_assert!(self.pos == 0 && self.end == 0);
            self.buf = ReadBuf(pool::take_read(self.cap));
        }
    }

    /// Gives the buffer back if no bytes are buffered.
    fn release_if_empty(&mut self) {
        if self.pos == self.end && !self.buf.is_empty() {
            self.pos = 0;
            self.end = 0;
            self.buf = ReadBuf(Box::default());
        }
    }

    /// The buffered, unconsumed bytes (no read).
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// The source.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The source, mutably. Reading from it directly skips the buffered bytes.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The source; the buffered bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads from the source once, appending to the buffered bytes (moving them to the front of
    /// the buffer first if there is no room behind them). Returns the number of bytes added; 0
    /// means end of stream. Cancellation point.
    ///
    /// Errors: the source's; `InvalidInput` if the buffer is full (consume something first).
    pub fn fill_more(&mut self) -> io::Result<usize> {
        if let Some(on_demand) = &self.on_demand {
            if self.pos == self.end {
                // Nothing buffered: try a read that does not wait; if there is nothing to read,
                // wait for data without holding a buffer.
                let (try_read, wait) = (on_demand.try_read, on_demand.wait);
                self.pos = 0;
                self.end = 0;
                self.hold_buffer();
                if let Some(n) = try_read(&self.inner, &mut self.buf, false)? {
                    self.end = n;
                    return Ok(n);
                }
                self.release_if_empty();
                wait(&self.inner)?;
                self.hold_buffer();
                if let Some(n) = try_read(&self.inner, &mut self.buf, true)? {
                    self.end = n;
                    return Ok(n);
                }
                // Not a socket, or readable only in name (another reader took the data): the
                // source's own read, which waits its way.
            }
        }
        self.hold_buffer();
        if self.end == self.cap {
            if self.pos == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "fill_more on a full buffer",
                ));
            }
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        } else if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A failed read (a timeout, a cancel) leaves an on-demand reader with no
                    // buffer if nothing is buffered, as its wait did.
                    if self.on_demand.is_some() {
                        self.release_if_empty();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Reads until at least `n` bytes are buffered (no read if they already are). Cancellation
    /// point.
    ///
    /// Errors: `UnexpectedEof` if the stream ends first (the bytes read stay buffered);
    /// `InvalidInput` if `n` exceeds the capacity.
    pub fn fill(&mut self, n: usize) -> io::Result<()> {
        if n > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "fill/peek/take of more bytes than the buffer holds",
            ));
        }
        if self.pos + n > self.cap {
            // Not enough room behind the buffered bytes: move them to the front.
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < n {
            if self.fill_more()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended before the requested bytes",
                ));
            }
        }
        Ok(())
    }

    /// The next `n` bytes, left in the buffer: reads as many times as needed. Cancellation
    /// point.
    ///
    /// Errors: as for [`fill`](Self::fill).
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        self.fill(n)?;
        Ok(&self.buf[self.pos..self.pos + n])
    }

    /// The next `n` bytes, consumed: [`peek`](Self::peek) then [`consume`](BufRead::consume).
    /// Zig's `take` (that name is std's [`Read::take`] here). Cancellation point.
    ///
    /// Errors: as for [`fill`](Self::fill); nothing is consumed on error.
    pub fn take_bytes(&mut self, n: usize) -> io::Result<&[u8]> {
        self.fill(n)?;
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    /// The next record ending in `delim`, consumed together with the delimiter and returned
    /// without it, as a slice of the buffer. At the end of the stream, the bytes after the last
    /// delimiter are the last record; then `None`. Cancellation point.
    ///
    /// Errors: `InvalidData` if a record does not fit in the buffer (it stays buffered; use
    /// [`read_until`](BufRead::read_until) for unbounded records).
    pub fn take_delimited(&mut self, delim: u8) -> io::Result<Option<&[u8]>> {
        let mut scanned = 0;
        loop {
            let window = &self.buf[self.pos + scanned..self.end];
            if let Some(i) = window.iter().position(|&b| b == delim) {
                let start = self.pos;
                let stop = start + scanned + i;
                self.pos = stop + 1;
                return Ok(Some(&self.buf[start..stop]));
            }
            scanned = self.end - self.pos;
            if scanned == self.cap {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "delimited record longer than the buffer",
                ));
            }
            if self.fill_more()? == 0 {
                if self.pos == self.end {
                    return Ok(None);
                }
                let start = self.pos;
                self.pos = self.end;
                return Ok(Some(&self.buf[start..self.end]));
            }
        }
    }

    /// Skips `n` bytes: the buffered ones, then reads and drops the rest. Returns the number
    /// skipped, less than `n` only if the stream ended. Cancellation point.
    pub fn discard(&mut self, n: u64) -> io::Result<u64> {
        let mut done = 0;
        while done < n {
            if self.pos == self.end && self.fill_more()? == 0 {
                break;
            }
            let step = (self.end - self.pos).min(usize::try_from(n - done).unwrap_or(usize::MAX));
            self.pos += step;
            done += step as u64;
        }
        Ok(done)
    }

    /// Writes up to `limit` bytes from this reader to `writer` (`u64::MAX` for no limit): the
    /// buffered bytes first, then reads into the buffer and writes from it — one copy, the
    /// kernel's. Returns the number of bytes moved, less than `limit` only if the stream ended.
    /// Cancellation point.
    ///
    /// ```
    /// use zsync::bufio::Reader;
    /// let mut r = Reader::with_capacity(4, &b"abcdefghij"[..]);
    /// let mut out = Vec::new();
    /// assert_eq!(r.stream_to(&mut out, 7).unwrap(), 7);
    /// assert_eq!(out, b"abcdefg");
    /// assert_eq!(r.stream_to(&mut out, u64::MAX).unwrap(), 3);
    /// ```
    pub fn stream_to<W: Write + ?Sized>(&mut self, writer: &mut W, limit: u64) -> io::Result<u64> {
        let mut done = 0;
        while done < limit {
            if self.pos == self.end && self.fill_more()? == 0 {
                break;
            }
            let step =
                (self.end - self.pos).min(usize::try_from(limit - done).unwrap_or(usize::MAX));
            writer.write_all(&self.buf[self.pos..self.pos + step])?;
            self.pos += step;
            done += step as u64;
        }
        Ok(done)
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // An empty buffer and a large read: skip the copy, read straight into `out`.
        if self.pos == self.end && out.len() >= self.cap {
            return self.inner.read(out);
        }
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.pos += n;
        if self.on_demand.is_some() {
            self.release_if_empty();
        }
        Ok(n)
    }
}

impl<R: Read> BufRead for Reader<R> {
    /// The buffered bytes; reads once from the source if there are none. Cancellation point.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.fill_more()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.end);
        if self.on_demand.is_some() {
            self.release_if_empty();
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("inner", &self.inner)
            .field("buffered", &(self.end - self.pos))
            .field("capacity", &self.cap)
            .finish()
    }
}

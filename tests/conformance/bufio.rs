//! Conformance tests: buffered Reader/Writer (drain + splat, vectored writes) and zero-copy
//! transfers (send_file, splice, copy_file_range, copy), on every model.
//!
//! Where a test needs a writer and a reader to run at the same time (a socket with a tiny send
//! buffer, a peer closing mid-transfer), it runs the reader concurrently on models that have
//! concurrency and, on Blocking, a variant whose data fits in the socket's buffer.

use std::io::{self, BufRead, ErrorKind, IoSlice, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use zsync::bufio::{Reader, Writer, IOV_MAX};
use zsync::fs::File;
use zsync::net::UnixStream;
use zsync::transfer;
use zsync::Io;

use crate::support::pattern;
use crate::support::{self, TempDir};
use crate::tcp::{cancel_blocked, pair as tcp_pair, pair_with_vanishing_reader};

// ---- helpers ------------------------------------------------------------------------------------

fn file_with(io: &Io, dir: &TempDir, name: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let f = File::open(io, &path).unwrap();
    (path, f)
}

/// Reads `r` to its end, in small reads, yielding between them: a slow peer.
fn read_slowly(io: &Io, mut r: impl Read) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(all);
        }
        all.extend_from_slice(&buf[..n]);
        io.yield_now();
    }
}

/// A source that returns at most `max` bytes per read, counting the reads.
struct Trickle<'a> {
    data: &'a [u8],
    max: usize,
    reads: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let n = buf.len().min(self.max).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A sink that forwards to `inner`, records the largest iovec count it was handed, and
/// optionally forwards at most `cap` bytes per call (forcing partial writes on any sink).
struct Spy<W> {
    inner: W,
    cap: usize,
    max_iovs: usize,
    calls: usize,
    partial: usize,
}

impl<W: Write> Spy<W> {
    fn new(inner: W, cap: usize) -> Spy<W> {
        Spy {
            inner,
            cap,
            max_iovs: 0,
            calls: 0,
            partial: 0,
        }
    }
}

impl<W: Write> Write for Spy<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        assert!(bufs.len() <= IOV_MAX, "writev with {} iovecs", bufs.len());
        self.max_iovs = self.max_iovs.max(bufs.len());
        self.calls += 1;
        // Cut the array at `cap` bytes, possibly in the middle of an iovec.
        let mut cut = Vec::new();
        let mut left = self.cap;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = b.len().min(left);
            cut.push(IoSlice::new(&b[..take]));
            left -= take;
        }
        let asked: usize = bufs.iter().map(|b| b.len()).sum();
        let n = self.inner.write_vectored(&cut)?;
        if n < asked {
            self.partial += 1;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `count` distinct slices of lengths 1..=97, and their concatenation.
fn distinct_slices(count: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let slices: Vec<Vec<u8>> = (0..count)
        .map(|i| pattern(1 + (i * 31) % 97, i as u32))
        .collect();
    let flat = slices.concat();
    (slices, flat)
}

fn assert_peer_gone(r: io::Result<u64>, what: &str) {
    match r {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{what}: expected BrokenPipe or ConnectionReset, got {e:?}"
        ),
        Ok(n) => panic!("{what}: expected an error, moved {n} bytes"),
    }
}

// ---- Reader -------------------------------------------------------------------------------------

fn reader_lines_and_records_across_buffer_boundaries(io: &Io) {
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!("line {i} {}\n", "x".repeat(i % 13)));
    }
    text.push_str("tail without newline");
    let expected: Vec<&str> = text.split('\n').collect();

    // std's BufRead on a 7-byte buffer over a source that yields 3 bytes a read.
    let mut src = Trickle {
        data: text.as_bytes(),
        max: 3,
        reads: 0,
    };
    let lines: Vec<String> = Reader::with_capacity(7, &mut src)
        .lines()
        .map(|l| l.unwrap())
        .collect();
    assert_eq!(lines, expected);
    assert!(src.reads >= text.len() / 3);

    // read_until keeps the delimiter.
    let mut r = Reader::with_capacity(5, text.as_bytes());
    let mut rec = Vec::new();
    assert_eq!(r.read_until(b'\n', &mut rec).unwrap(), 8);
    assert_eq!(rec, b"line 0 \n");

    // take_delimited over a real stream: every record a slice of a 32-byte buffer.
    let (mut a, b) = UnixStream::pair(io).unwrap();
    a.write_all(text.as_bytes()).unwrap();
    drop(a);
    let mut r = Reader::with_capacity(32, b);
    for want in &expected {
        let got = r.take_delimited(b'\n').unwrap().expect("a record");
        assert_eq!(got, want.as_bytes());
    }
    assert_eq!(r.take_delimited(b'\n').unwrap(), None);

    // A record longer than the buffer is refused and stays buffered.
    let long = [b"0123456789abcdef".as_slice(), b"\nrest"].concat();
    let mut r = Reader::with_capacity(8, long.as_slice());
    let e = r.take_delimited(b'\n').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert_eq!(r.buffer(), b"01234567");
}

fn reader_peek_larger_than_one_read(io: &Io) {
    let data = pattern(1000, 1);
    let mut src = Trickle {
        data: &data,
        max: 5,
        reads: 0,
    };
    let mut r = Reader::with_capacity(64, &mut src);
    assert_eq!(r.peek(50).unwrap(), &data[..50]);
    assert_eq!(r.get_ref().reads, 10); // 5 bytes a read
    assert_eq!(r.peek(50).unwrap(), &data[..50]);
    assert_eq!(r.get_ref().reads, 10); // no read: already buffered
    assert_eq!(r.take_bytes(50).unwrap(), &data[..50]);
    // 14 bytes buffered at offset 50 of the buffer: peek(64) moves them to the front first.
    assert_eq!(r.peek(64).unwrap(), &data[50..114]);
    assert_eq!(r.peek(65).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(r.discard(1).unwrap(), 1);
    assert_eq!(r.peek(64).unwrap(), &data[51..115]);
    assert_eq!(r.discard(939).unwrap(), 939);
    // 10 bytes left: asking for 20 fails at the end of the stream and keeps the 10.
    assert_eq!(r.peek(20).unwrap_err().kind(), ErrorKind::UnexpectedEof);
    assert_eq!(r.buffer(), &data[990..]);
    assert_eq!(r.take_bytes(10).unwrap(), &data[990..]);
    assert_eq!(r.fill_more().unwrap(), 0);

    // Over a zsync stream, peek waits for bytes that arrive in several writes.
    let (mut a, b) = UnixStream::pair(io).unwrap();
    for chunk in data[..300].chunks(70) {
        a.write_all(chunk).unwrap();
    }
    let mut r = Reader::with_capacity(512, b);
    assert_eq!(r.peek(300).unwrap(), &data[..300]);
}

fn reader_discard_and_stream_to_with_a_limit(io: &Io) {
    let dir = TempDir::new("bufio-stream");
    let data = pattern(300_000, 2);
    let (_p, f) = file_with(io, &dir, "src", &data);
    let mut r = Reader::with_capacity(4096, f);
    assert_eq!(r.discard(10_000).unwrap(), 10_000);
    let mut out = Vec::new();
    assert_eq!(r.stream_to(&mut out, 123_457).unwrap(), 123_457);
    assert_eq!(out, &data[10_000..133_457]);
    // Into a buffered file writer, no limit: the rest, exactly.
    let dst_path = dir.path().join("dst");
    let mut w = Writer::with_capacity(1000, File::create(io, &dst_path).unwrap());
    assert_eq!(r.stream_to(&mut w, u64::MAX).unwrap(), 300_000 - 133_457);
    w.flush().unwrap();
    assert_eq!(std::fs::read(&dst_path).unwrap(), &data[133_457..]);
    assert_eq!(r.discard(5).unwrap(), 0);
    assert_eq!(r.stream_to(&mut out, 5).unwrap(), 0);
}

fn reader_implements_std_read(io: &Io) {
    let data = pattern(10_000, 3);
    let (mut a, b) = UnixStream::pair(io).unwrap();
    a.write_all(&data).unwrap();
    drop(a);
    let mut r = Reader::with_capacity(100, b);
    let mut head = [0u8; 7];
    r.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..7]);
    let mut big = vec![0u8; 500]; // larger than the buffer, but 93 bytes are buffered first
    let n = r.read(&mut big).unwrap();
    assert_eq!(&big[..n], &data[7..7 + n]);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!([&head[..], &big[..n], &rest].concat(), data);
}

/// A `fill` blocked on a silent peer is a cancellation point like any read.
fn cancel_blocked_fill(io: &Io) {
    let (a, b) = UnixStream::pair(io).unwrap();
    let mut r = Reader::with_capacity(64, b);
    if cancel_blocked(io, "fill", move |_| r.fill(1)) {
        drop(a);
    }
}

/// An on-demand reader holds a buffer only while bytes are buffered, and reads what was sent,
/// in order, across many fills and the end of the stream. Its idle wait is a cancellation
/// point and honours the socket's read timeout.
fn reader_on_demand_holds_a_buffer_only_while_bytes_are_buffered(io: &Io) {
    let (mut a, b) = tcp_pair(io);
    let mut r = Reader::on_demand(64, &b);
    assert_eq!(r.capacity(), 64);
    assert!(!r.holds_buffer(), "no buffer before the first read");
    a.write_all(b"GET / HTTP/1.1\r\n\r\nrest").unwrap();
    r.fill(4).unwrap();
    assert!(r.holds_buffer());
    assert_eq!(
        r.take_delimited(b'\n').unwrap(),
        Some(&b"GET / HTTP/1.1\r"[..])
    );
    assert_eq!(r.take_delimited(b'\n').unwrap(), Some(&b"\r"[..]));
    r.fill(4).unwrap();
    assert_eq!(r.buffer(), b"rest");
    r.consume(4);
    assert!(!r.holds_buffer(), "a drained reader gives its buffer back");
    // Many records through the same reader: each fill takes a buffer, each drain returns it.
    let data = pattern(10_000, 7);
    a.write_all(&data).unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        let chunk = r.fill_buf().unwrap();
        assert!(!chunk.is_empty());
        got.extend_from_slice(chunk);
        let n = chunk.len();
        r.consume(n);
        assert!(!r.holds_buffer());
    }
    assert_eq!(got, data);
    // The idle wait under the socket's read timeout: `WouldBlock`, as a read would, no buffer.
    b.set_read_timeout(Some(std::time::Duration::from_millis(20)))
        .unwrap();
    let e = r.fill_more().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    assert!(!r.holds_buffer());
    b.set_read_timeout(None).unwrap();
    drop(a);
    assert_eq!(r.fill_more().unwrap(), 0, "end of stream");
    // A reader waiting for data with no buffer is canceled like any read.
    let (c, d) = UnixStream::pair(io).unwrap();
    let mut r = Reader::on_demand(64, d);
    if cancel_blocked(io, "on-demand fill", move |_| r.fill(1)) {
        drop(c);
    }
}

/// A writer takes its buffer when it first buffers bytes and gives it back when a write to
/// the sink empties it; what it buffered arrives in order.
fn writer_holds_a_buffer_only_while_bytes_are_buffered(io: &Io) {
    let (a, mut b) = tcp_pair(io);
    let mut w = Writer::with_capacity(4096, &a);
    assert_eq!(w.capacity(), 4096);
    assert!(!w.holds_buffer(), "no buffer before the first write");
    for i in 0..100u32 {
        w.write_all(format!("{i};").as_bytes()).unwrap();
        assert!(w.holds_buffer());
        w.flush_buf().unwrap();
        assert!(!w.holds_buffer(), "a flushed writer gives its buffer back");
    }
    // A write larger than the buffer goes straight through and leaves no buffer behind.
    w.write_all(&[b'x'; 10_000]).unwrap();
    assert!(!w.holds_buffer());
    drop(w);
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    let want: String = (0..100u32).map(|i| format!("{i};")).collect();
    assert_eq!(&got[..want.len()], want.as_bytes());
    assert_eq!(&got[want.len()..], &[b'x'; 10_000][..]);
}

// ---- Writer: drain, splat, vectored --------------------------------------------------------------

fn writer_splat_zero_one_and_many(io: &Io) {
    let (a, mut b) = UnixStream::pair(io).unwrap();
    let mut w = Writer::with_capacity(32, a);
    w.write_all(b"hdr").unwrap();
    assert_eq!(w.drain(&[b"A", b"bc"], 0).unwrap(), 1); // splat 0: the last slice left out
    assert_eq!(w.drain(&[b"D", b"ef"], 1).unwrap(), 3);
    assert_eq!(w.drain(&[b"-"], 1000).unwrap(), 1000);
    assert_eq!(w.drain(&[b"12", b"", b"345"], 2).unwrap(), 8);
    assert_eq!(w.drain(&[b"x", b""], 1_000_000).unwrap(), 1); // empty pattern: nothing
    assert_eq!(w.drain(&[], 7).unwrap(), 0);
    w.write_all(b"!").unwrap();
    assert_eq!(w.buffer(), b"!");
    drop(w); // flushes
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    let want = [&b"hdrADef"[..], &[b'-'; 1000][..], b"12345345x!"].concat();
    assert_eq!(got, want);
}

fn writer_drain_once_is_one_write(io: &Io) {
    let dir = TempDir::new("bufio-once");
    let path = dir.path().join("f");
    let spy = Spy::new(File::create(io, &path).unwrap(), 10);
    let mut w = Writer::with_capacity(8, spy);
    w.write_all(b"abcdef").unwrap();
    // One write of at most 10 bytes: the 6 buffered, then 4 of data.
    assert_eq!(w.drain_once(&[b"123", b"xy"], 3).unwrap(), 4);
    assert_eq!(w.buffer(), b"");
    // The sink takes only buffered bytes: 0 of data.
    w.write_all(b"0123456").unwrap();
    w.get_mut().cap = 3;
    assert_eq!(w.drain_once(&[b"zz"], 1).unwrap(), 0);
    assert_eq!(w.buffer(), b"3456");
    assert_eq!(w.get_ref().calls, 2);
    w.flush().unwrap();
    drop(w);
    assert_eq!(std::fs::read(&path).unwrap(), b"abcdef123x0123456");
}

fn writer_5000_slices_and_a_splat_of_5000_respect_iov_max(io: &Io) {
    let dir = TempDir::new("bufio-iov");
    let path = dir.path().join("f");
    let (slices, flat) = distinct_slices(5000);
    let refs: Vec<&[u8]> = slices.iter().map(|s| s.as_slice()).collect();
    let mut w = Writer::with_capacity(64, Spy::new(File::create(io, &path).unwrap(), usize::MAX));
    w.write_all(b"<").unwrap();
    assert_eq!(w.drain(&refs, 1).unwrap(), flat.len() as u64);
    // A short slice repeated 5000 times is blocked (4 KiB of whole repeats per iovec): few
    // iovecs. A 3000-byte one is not: 5001 iovecs.
    assert_eq!(w.drain(&[b"|", b"xyz"], 5000).unwrap(), 1 + 15_000);
    let long = vec![b'L'; 3000];
    assert_eq!(w.drain(&[b"|", &long], 5000).unwrap(), 1 + 15_000_000);
    let iov: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
    w.write_vectored_all(&iov).unwrap();
    w.flush().unwrap();
    let spy = w.into_inner().map_err(|(e, _)| e).unwrap();
    assert_eq!(spy.max_iovs, IOV_MAX);
    // Each sequence needs at least ceil(iovecs / 1024) writes: 5001, 6, 5001, 5000 iovecs.
    assert!(spy.calls >= 5 + 1 + 5 + 5, "{} writes", spy.calls);
    let want = [
        &b"<"[..],
        &flat,
        b"|",
        &b"xyz".repeat(5000),
        b"|",
        &long.repeat(5000),
        &flat,
    ]
    .concat();
    assert_eq!(std::fs::read(&path).unwrap(), want);
}

/// The classic bug: a vectored write that stops in the middle of an iovec must resume at the
/// next byte. Concurrent models: a TCP socket with a tiny send buffer and a slow reader, so the
/// kernel cuts writes wherever its buffer fills. Blocking: a socket pair behind a sink that cuts
/// every write after 997 bytes.
fn writer_partial_writes_resume_at_the_exact_byte(io: &Io) {
    // Blocking keeps the total (in 997-byte writes) well inside a socket pair's buffer.
    let concurrent = support::has_concurrency(io);
    let (count, splat) = if concurrent {
        (3000, 2000)
    } else {
        (1000, 500)
    };
    let (slices, flat) = distinct_slices(count);
    let refs: Vec<&[u8]> = slices.iter().map(|s| s.as_slice()).collect();
    let want = [&b"head"[..], &flat, &b"pad-7.."[..].repeat(splat)].concat();
    let pad: &[&[u8]] = &[b"pad-7.."];

    if concurrent {
        let (c, s) = tcp_pair(io);
        c.set_send_buffer_size(2048).unwrap();
        s.set_recv_buffer_size(2048).unwrap();
        let reader = io.concurrent(move |io| read_slowly(io, s)).unwrap();
        let mut w = Writer::with_capacity(512, Spy::new(c, usize::MAX));
        w.write_all(b"head").unwrap();
        w.drain(&refs, 1).unwrap();
        w.drain(pad, splat).unwrap();
        w.flush().unwrap();
        let spy = w.into_inner().map_err(|(e, _)| e).unwrap();
        assert!(spy.partial > 0, "the kernel never cut a write");
        drop(spy);
        assert_eq!(reader.join().unwrap().unwrap(), want);
    } else {
        let (a, mut b) = UnixStream::pair(io).unwrap();
        let total = want.len();
        let mut w = Writer::with_capacity(512, Spy::new(a, 997));
        w.write_all(b"head").unwrap();
        w.drain(&refs, 1).unwrap();
        w.drain(pad, splat).unwrap();
        w.flush().unwrap();
        let spy = w.into_inner().map_err(|(e, _)| e).unwrap();
        assert!(spy.partial >= total / 997);
        drop(spy);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, want);
    }
}

fn writer_implements_std_write(io: &Io) {
    let (a, mut b) = UnixStream::pair(io).unwrap();
    let big = pattern(5000, 4);
    let mut w = Writer::with_capacity(16, a);
    write!(w, "{}-two", 1).unwrap();
    assert_eq!(w.write(&big).unwrap(), big.len()); // too big for the buffer: one writev
    assert_eq!(w.buffer(), b"");
    let n = w
        .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
        .unwrap();
    assert_eq!((n, w.buffer()), (4, &b"abcd"[..]));
    w.write_vectored_all(&[IoSlice::new(&big[..20]), IoSlice::new(b"z")])
        .unwrap();
    let a = w.into_inner().map_err(|(e, _)| e).unwrap();
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    assert_eq!(
        got,
        [&b"1-two"[..], &big, b"abcd", &big[..20], b"z"].concat()
    );
}

fn writer_to_a_closed_peer_fails_cleanly(io: &Io) {
    let (a, b) = UnixStream::pair(io).unwrap();
    drop(b);
    let mut w = Writer::with_capacity(8, a);
    w.write_all(b"1234").unwrap();
    let e = w.drain(&[b"abc"], 3).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    assert_eq!(w.buffer(), b"1234"); // nothing was taken
}

// ---- zero-copy transfers ------------------------------------------------------------------------

fn send_file_from_an_offset(io: &Io) {
    let dir = TempDir::new("bufio-sendfile");
    let data = pattern(2 << 20, 5);
    let (_p, file) = file_with(io, &dir, "src", &data);

    // To a file: copy_file_range, positional in the source.
    let out_path = dir.path().join("out");
    let out = File::create(io, &out_path).unwrap();
    assert_eq!(
        transfer::send_file(&out, &file, 1000, 1_500_000).unwrap(),
        1_500_000
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), &data[1000..1_501_000]);
    assert_eq!((&file).stream_position().unwrap(), 0); // the source offset is untouched

    if support::has_concurrency(io) {
        // 2 MiB through loopback TCP: sendfile, splice, and Writer::send_file behind a header.
        let (c, s) = tcp_pair(io);
        let reader = io.concurrent(move |io| read_slowly(io, s)).unwrap();
        assert_eq!(
            transfer::send_file(&c, &file, 12_345, 1_000_000).unwrap(),
            1_000_000
        );
        assert_eq!(transfer::splice(&c, &file, 7, 700_000).unwrap(), 700_000);
        let mut w = Writer::new(&c);
        w.write_all(b"HEADER").unwrap();
        assert_eq!(w.send_file(&file, 0, 300_000).unwrap(), 300_000);
        drop(w);
        drop(c);
        let got = reader.join().unwrap().unwrap();
        let want = [
            &data[12_345..1_012_345],
            &data[7..700_007],
            b"HEADER",
            &data[..300_000],
        ]
        .concat();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes differ");
    } else {
        // What fits in a socket pair's buffer.
        let (a, mut b) = UnixStream::pair(io).unwrap();
        assert_eq!(
            transfer::send_file(&a, &file, 12_345, 30_000).unwrap(),
            30_000
        );
        assert_eq!(transfer::splice(&a, &file, 7, 20_000).unwrap(), 20_000);
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, [&data[12_345..42_345], &data[7..20_007]].concat());
    }
}

fn send_file_eof_in_the_middle_returns_the_count_moved(io: &Io) {
    let dir = TempDir::new("bufio-eof");
    let data = pattern(10_000, 6);
    let (_p, file) = file_with(io, &dir, "src", &data);
    let (a, mut b) = UnixStream::pair(io).unwrap();
    assert_eq!(transfer::send_file(&a, &file, 4000, 100_000).unwrap(), 6000);
    assert_eq!(transfer::splice(&a, &file, 9000, 100_000).unwrap(), 1000);
    assert_eq!(transfer::send_file(&a, &file, 20_000, 10).unwrap(), 0);
    assert_eq!(transfer::send_file(&a, &file, 0, 0).unwrap(), 0);
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    assert_eq!(got, [&data[4000..], &data[9000..]].concat());

    let out_path = dir.path().join("out");
    let out = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(io, &out_path)
        .unwrap();
    assert_eq!(
        transfer::copy_file_range(&file, 9_990, &out, 5, 100).unwrap(),
        10
    );
    assert_eq!(
        transfer::copy_file_range(&file, 10_000, &out, 0, 100).unwrap(),
        0
    );
    assert_eq!(
        transfer::send_file(&out, &file, 9_000, 50_000).unwrap(),
        1000
    );
    // copy_file_range is positional: `out` held 5 zeros and data[9990..], and its offset stayed
    // at 0, where send_file (which writes at the sink's offset) then put data[9000..].
    assert_eq!(std::fs::read(&out_path).unwrap(), &data[9_000..]);
    assert_eq!((&out).stream_position().unwrap(), 1000);
}

/// The peer goes away while a transfer is blocked on it: a clear error, no panic, no SIGPIPE.
fn transfer_to_a_peer_that_closes_mid_transfer(io: &Io) {
    let dir = TempDir::new("bufio-closes");
    let path = dir.path().join("big");
    let big = std::fs::File::create(&path).unwrap();
    big.set_len(64 << 20).unwrap(); // sparse: reads as zeros, costs no disk
    drop(big);
    let file = File::open(io, &path).unwrap();

    if support::has_concurrency(io) {
        for how in ["sendfile", "splice", "drain"] {
            // The peer reads 64 KiB, then closes with data unread (a reset).
            let (c, peer) = pair_with_vanishing_reader(io);
            let r = match how {
                "sendfile" => transfer::send_file(&c, &file, 0, 64 << 20),
                "splice" => transfer::splice(&c, &file, 0, 64 << 20),
                _ => {
                    let zeros = vec![0u8; 1 << 20];
                    Writer::new(&c).drain(&[zeros.as_slice()], 64)
                }
            };
            peer.join().unwrap().unwrap();
            assert_peer_gone(r, how);
        }
    }
    // Every model: the peer is already gone.
    for how in ["sendfile", "splice", "copy"] {
        let (a, b) = UnixStream::pair(io).unwrap();
        drop(b);
        let r = match how {
            "sendfile" => transfer::send_file(&a, &file, 0, 1 << 20),
            "splice" => transfer::splice(&a, &file, 0, 1 << 20),
            _ => zsync::copy(&file, &a),
        };
        assert_peer_gone(r, how);
    }
}

fn non_regular_sources_fall_back_to_a_buffer(io: &Io) {
    // /dev/zero: a character device.
    let zero = File::open(io, "/dev/zero").unwrap();
    let (a, mut b) = UnixStream::pair(io).unwrap();
    assert_eq!(transfer::send_file(&a, &zero, 0, 50_000).unwrap(), 50_000);
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    assert_eq!(got, vec![0u8; 50_000]);

    // A pipe, read as a stream from where it stands.
    let data = pattern(20_000, 7);
    let (r, w) = rustix::pipe::pipe().unwrap();
    let mut w = std::fs::File::from(w);
    w.write_all(&data).unwrap();
    drop(w);
    let pipe = File::from_std(io, std::fs::File::from(r));
    assert!(transfer::send_file(&pipe, &pipe, 5, 1).is_err()); // no offset on a pipe
    let (a, mut b) = UnixStream::pair(io).unwrap();
    assert_eq!(transfer::send_file(&a, &pipe, 0, 1000).unwrap(), 1000);
    let dir = TempDir::new("bufio-pipe");
    let out_path = dir.path().join("out");
    let out = File::create(io, &out_path).unwrap();
    assert_eq!(zsync::copy(&pipe, &out).unwrap(), 19_000);
    drop(a);
    let mut head = Vec::new();
    b.read_to_end(&mut head).unwrap();
    assert_eq!(head, &data[..1000]);
    assert_eq!(std::fs::read(&out_path).unwrap(), &data[1000..]);
}

fn copy_picks_a_path_for_every_pair(io: &Io) {
    let dir = TempDir::new("bufio-copy");
    let data = pattern(3 << 20, 8);
    let (_p, mut src) = file_with(io, &dir, "src", &data);

    // File to file from the source's offset; both offsets advance.
    src.seek(SeekFrom::Start(100)).unwrap();
    let out_path = dir.path().join("out");
    let mut out = File::create(io, &out_path).unwrap();
    out.write_all(b"prefix").unwrap();
    assert_eq!(zsync::copy(&src, &out).unwrap(), data.len() as u64 - 100);
    assert_eq!(src.stream_position().unwrap(), data.len() as u64);
    assert_eq!(out.stream_position().unwrap(), data.len() as u64 - 100 + 6);
    assert_eq!(
        std::fs::read(&out_path).unwrap(),
        [&b"prefix"[..], &data[100..]].concat()
    );
    assert_eq!(zsync::copy(&src, &out).unwrap(), 0); // at the end

    // File to socket, and socket to file (buffered).
    src.seek(SeekFrom::Start(0)).unwrap();
    let (a, b) = UnixStream::pair(io).unwrap();
    let len = if support::has_concurrency(io) {
        data.len()
    } else {
        20_000
    };
    let small_path = dir.path().join("small");
    let small = if len == data.len() {
        File::open(io, dir.path().join("src")).unwrap()
    } else {
        std::fs::write(&small_path, &data[..len]).unwrap();
        File::open(io, &small_path).unwrap()
    };
    let back_path = dir.path().join("back");
    let back = File::create(io, &back_path).unwrap();
    if support::has_concurrency(io) {
        let task = io.concurrent(move |_| zsync::copy(&b, &back)).unwrap();
        assert_eq!(zsync::copy(&small, &a).unwrap(), len as u64);
        drop(a);
        assert_eq!(task.join().unwrap().unwrap(), len as u64);
    } else {
        assert_eq!(zsync::copy(&small, &a).unwrap(), len as u64);
        drop(a);
        assert_eq!(zsync::copy(&b, &back).unwrap(), len as u64);
    }
    assert_eq!(std::fs::read(&back_path).unwrap(), &data[..len]);
}

/// A send_file blocked on a full socket is a cancellation point.
fn cancel_blocked_send_file(io: &Io) {
    let dir = TempDir::new("bufio-cancel");
    let path = dir.path().join("big");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let file = Arc::new(File::open(io, &path).unwrap());
    let (a, b) = UnixStream::pair(io).unwrap();
    let a = Arc::new(a);
    let (fa, ff) = (a.clone(), file.clone());
    if cancel_blocked(io, "send_file", move |_| {
        transfer::send_file(&*fa, &ff, 0, 64 << 20)
    }) {
        let (fa, ff) = (a.clone(), file.clone());
        cancel_blocked(io, "splice", move |_| {
            transfer::splice(&*fa, &ff, 0, 64 << 20)
        });
        let fa = a.clone();
        cancel_blocked(io, "drain", move |_| {
            Writer::with_capacity(0, &*fa).drain(&[b"0123456789abcdef"], 1 << 22)
        });
    }
    drop(b);
}

conformance! {
    reader_lines_and_records_across_buffer_boundaries,
    reader_peek_larger_than_one_read,
    reader_discard_and_stream_to_with_a_limit,
    reader_implements_std_read,
    cancel_blocked_fill,
    reader_on_demand_holds_a_buffer_only_while_bytes_are_buffered,
    writer_holds_a_buffer_only_while_bytes_are_buffered,
    writer_splat_zero_one_and_many,
    writer_drain_once_is_one_write,
    writer_5000_slices_and_a_splat_of_5000_respect_iov_max,
    writer_partial_writes_resume_at_the_exact_byte,
    writer_implements_std_write,
    writer_to_a_closed_peer_fails_cleanly,
    send_file_from_an_offset,
    send_file_eof_in_the_middle_returns_the_count_moved,
    transfer_to_a_peer_that_closes_mid_transfer,
    non_regular_sources_fall_back_to_a_buffer,
    copy_picks_a_path_for_every_pair,
    cancel_blocked_send_file,
}

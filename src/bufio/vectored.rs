//! The vectored-write engine under [`Writer`](super::Writer): a logical byte sequence made of
//! slices, some of them repeated, written with as few `writev` calls as the sink allows.
//!
//! The sequence is `head, data[0], …, data[n-2]` followed by `data[n-1]` repeated `splat`
//! times. [`Segments`] never materialises it: a position is a (segment, offset) pair, each
//! `writev` gets at most [`IOV_MAX`] iovecs built from the current position, and a partial write
//! advances the position by exactly the count the kernel reported — whole segments are skipped,
//! repeats of the splat slice in O(1) by division, and the first iovec of the next call starts
//! mid-slice when the kernel stopped mid-slice.
//!
//! A *short* splat slice repeated many times (a fill byte, padding) would make as many tiny
//! iovecs: a million one-byte iovecs are 977 `writev`s of 1 KiB each. So when the slice is
//! shorter than [`SPLAT_BLOCK`] / 2 and repeated more than a stack batch holds, it is copied
//! once into a block of about [`SPLAT_BLOCK`] bytes (whole repeats), the splat becomes repeats
//! of that block plus a few of the slice, and one iovec carries up to 4 KiB (Zig's `Writer`
//! fills its buffer with the pattern instead). The block is built once per call, in memory the
//! caller lends (the `Writer` keeps it between calls).

use std::io::{self, IoSlice, Write};
use std::ops::Deref;

/// The most iovecs one `writev(2)` accepts on Linux (`UIO_MAXIOV`); a longer array fails with
/// `EINVAL`, so every batch is cut at this length.
pub const IOV_MAX: usize = 1024;

/// Below this many iovecs a batch lives on the stack (a fiber costs the stack pages it touches,
/// so a full `IOV_MAX` array of 16-byte iovecs, 16 KiB, stays on the heap).
const STACK_IOVS: usize = 16;

/// The size a short splat slice is repeated up to, to make one iovec (see the module docs).
pub(crate) const SPLAT_BLOCK: usize = 4096;

/// The logical sequence `head, data[..n-1], data[n-1] × splat` and a cursor into it.
///
/// Logical segment `0` is `head`; `1..n` are `data[0..n-1]`; then come the splat's segments:
/// `splat` repeats of `data[n-1]` or, for a short slice repeated many times (see the module
/// docs), `blocks` repeats of `block` (the slice copied `k` times) and one `tail` holding the
/// `splat mod k` repeats left. With `data` empty there is only `head`.
pub(crate) struct Segments<'a, S> {
    head: &'a [u8],
    data: &'a [S],
    /// Whether the splat is made of blocks (then `block`, `blocks`, `tail` describe it).
    blocked: bool,
    /// The splat slice repeated `k` times.
    block: &'a [u8],
    /// Logical segments `n..n + blocks` are `block`.
    blocks: usize,
    /// The last logical segment, if any: the `splat - blocks·k` repeats left, a prefix of
    /// `block`.
    tail: &'a [u8],
    /// One past the last logical segment.
    count: usize,
    /// The cursor: the logical segment and the byte inside it where the next write starts.
    seg: usize,
    off: usize,
    /// Bytes from the cursor to the end.
    remaining: u64,
}

impl<'a, S: Deref<Target = [u8]>> Segments<'a, S> {
    /// The sequence; `scratch` lends the memory of the splat block, if one is made.
    pub(crate) fn new(
        head: &'a [u8],
        data: &'a [S],
        splat: usize,
        scratch: &'a mut Vec<u8>,
    ) -> Segments<'a, S> {
        let (mut count, remaining) = match data.split_last() {
            None => (1, head.len() as u64),
            Some((last, body)) => {
                let body_len: u64 = body.iter().map(|s| s.len() as u64).sum();
                let splat_len = (last.len() as u64).saturating_mul(splat as u64);
                (
                    data.len().saturating_add(splat),
                    (head.len() as u64)
                        .saturating_add(body_len)
                        .saturating_add(splat_len),
                )
            }
        };
        let (mut blocked, mut block, mut blocks, mut tail): (bool, &'a [u8], usize, &'a [u8]) =
            (false, &[], 0, &[]);
        if let Some(last) = data.last() {
            let len = last.len();
            if len > 0 && len <= SPLAT_BLOCK / 2 && splat > STACK_IOVS {
                let k = (SPLAT_BLOCK / len).min(splat);
                scratch.clear();
                scratch.reserve(k * len);
                for _ in 0..k {
                    scratch.extend_from_slice(last);
                }
                let all: &'a [u8] = scratch.as_slice();
                blocked = true;
                block = all;
                blocks = splat / k;
                tail = &all[..(splat % k) * len];
                count = data.len() + blocks + usize::from(!tail.is_empty());
            }
        }
        let mut segs = Segments {
            head,
            data,
            blocked,
            block,
            blocks,
            tail,
            count,
            seg: 0,
            off: 0,
            remaining,
        };
        segs.skip_empty();
        segs
    }

    /// Bytes not yet written.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The first logical segment that is a repeat of the last slice.
    fn splat_start(&self) -> usize {
        self.data.len()
    }

    fn get(&self, seg: usize) -> &'a [u8] {
        if seg == 0 {
            self.head
        } else if seg < self.data.len() {
            // `data` outlives `self`'s borrow: re-borrow through the `'a` slice.
            let s: &'a S = &self.data[seg - 1];
            s
        } else if !self.blocked {
            let s: &'a S = &self.data[self.data.len() - 1];
            s
        } else if seg < self.data.len() + self.blocks {
            self.block
        } else {
            self.tail
        }
    }

    /// One past the last logical segment that is the same slice as `seg` (a splat segment):
    /// the end of the block run or of the single repeats.
    fn run_end(&self, seg: usize) -> usize {
        let blocks_end = self.splat_start() + self.blocks;
        if seg < blocks_end {
            blocks_end
        } else {
            self.count
        }
    }

    /// Moves the cursor past empty segments (an empty splat slice ends the sequence).
    fn skip_empty(&mut self) {
        while self.seg < self.count && self.off == self.get(self.seg).len() {
            if self.seg >= self.splat_start() && self.get(self.seg).is_empty() {
                // Every remaining segment is this same empty slice (an empty slice is never
                // blocked).
                self.seg = self.count;
            } else {
                self.seg += 1;
            }
            self.off = 0;
        }
    }

    /// Fills `iovs` (cleared first) with up to `max` iovecs starting at the cursor.
    fn batch(&self, iovs: &mut Vec<IoSlice<'a>>, max: usize) {
        iovs.clear();
        let mut seg = self.seg;
        let mut off = self.off;
        while seg < self.count && iovs.len() < max {
            let s = &self.get(seg)[off..];
            if !s.is_empty() {
                iovs.push(IoSlice::new(s));
            } else if seg >= self.splat_start() {
                break;
            }
            seg += 1;
            off = 0;
        }
    }

    /// Advances the cursor by `n` written bytes (`n <= remaining`).
    fn advance(&mut self, n: usize) {
        debug_assert!(n as u64 <= self.remaining);
        self.remaining -= n as u64;
        let mut n = n;
        while n > 0 {
            let left = self.get(self.seg).len() - self.off;
            if n < left {
                self.off += n;
                return;
            }
            n -= left;
            self.seg += 1;
            self.off = 0;
            if self.seg >= self.splat_start() && self.seg < self.count {
                // Whole repeats of the splat slice (or block) in one step.
                let len = self.get(self.seg).len();
                if let Some(whole) = n.checked_div(len) {
                    let whole = whole.min(self.run_end(self.seg) - self.seg);
                    self.seg += whole;
                    n -= whole * len;
                }
            }
        }
        self.skip_empty();
    }

    /// One vectored write of the next batch. Returns the bytes written (the cursor has moved).
    pub(crate) fn write_once<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut heap = Vec::new();
        self.write_once_with(w, &mut heap)
    }

    fn write_once_with<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        heap: &mut Vec<IoSlice<'a>>,
    ) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        // A small batch goes in a stack array; a larger one reuses the caller's heap vector.
        let left_segs = self.count - self.seg;
        let n = if left_segs <= STACK_IOVS {
            let mut stack = [IoSlice::new(&[]); STACK_IOVS];
            let mut len = 0;
            let mut seg = self.seg;
            let mut off = self.off;
            while seg < self.count {
                let s = &self.get(seg)[off..];
                if !s.is_empty() {
                    stack[len] = IoSlice::new(s);
                    len += 1;
                }
                seg += 1;
                off = 0;
            }
            write_batch(w, &stack[..len])?
        } else {
            if heap.capacity() == 0 {
                heap.reserve_exact(left_segs.min(IOV_MAX));
            }
            self.batch(heap, IOV_MAX);
            write_batch(w, heap)?
        };
        let n = n.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.advance(n);
        Ok(n)
    }

    /// Writes everything from the cursor on, looping on partial writes and retrying
    /// `Interrupted`. On error the cursor says how far it got.
    pub(crate) fn write_all<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<()> {
        let mut heap = Vec::new();
        while self.remaining > 0 {
            match self.write_once_with(w, &mut heap) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One `write_vectored` of a non-empty batch; a single slice goes through `write`.
fn write_batch<W: Write + ?Sized>(w: &mut W, iovs: &[IoSlice<'_>]) -> io::Result<usize> {
    match iovs {
        [] => Ok(0),
        [one] => w.write(one),
        many => w.write_vectored(many),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `limit` bytes per call, and records how many iovecs each call got.
    struct Stingy {
        out: Vec<u8>,
        limit: usize,
        calls: Vec<usize>,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            assert!(bufs.len() <= IOV_MAX, "{} iovecs", bufs.len());
            self.calls.push(bufs.len());
            let mut left = self.limit;
            for b in bufs {
                let take = b.len().min(left);
                self.out.extend_from_slice(&b[..take]);
                left -= take;
                if left == 0 {
                    break;
                }
            }
            Ok(self.limit - left)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn expected(head: &[u8], data: &[&[u8]], splat: usize) -> Vec<u8> {
        let mut v = head.to_vec();
        if let Some((last, body)) = data.split_last() {
            for s in body {
                v.extend_from_slice(s);
            }
            for _ in 0..splat {
                v.extend_from_slice(last);
            }
        }
        v
    }

    #[test]
    fn every_cut_point_resumes_at_the_exact_byte() {
        let data: &[&[u8]] = &[b"abc", b"", b"defgh", b"XY"];
        for limit in 1..=20 {
            for splat in [0, 1, 2, 7] {
                let mut w = Stingy {
                    out: Vec::new(),
                    limit,
                    calls: Vec::new(),
                };
                let mut scratch = Vec::new();
                let mut segs = Segments::new(b"HEAD", data, splat, &mut scratch);
                segs.write_all(&mut w).unwrap();
                assert_eq!(
                    w.out,
                    expected(b"HEAD", data, splat),
                    "limit {limit} splat {splat}"
                );
            }
        }
    }

    #[test]
    fn empty_splat_slice_and_empty_data_end_the_sequence() {
        let mut w = Stingy {
            out: Vec::new(),
            limit: 100,
            calls: Vec::new(),
        };
        let data: &[&[u8]] = &[b"x", b""];
        let mut scratch = Vec::new();
        let mut segs = Segments::new(b"", data, usize::MAX, &mut scratch);
        assert_eq!(segs.remaining(), 1);
        segs.write_all(&mut w).unwrap();
        assert_eq!((w.out.as_slice(), w.calls.len()), (&b"x"[..], 1));
        let none: &[&[u8]] = &[];
        let mut scratch = Vec::new();
        let mut segs = Segments::new(b"", none, 3, &mut scratch);
        segs.write_all(&mut w).unwrap();
        assert_eq!(w.calls.len(), 1);
    }

    #[test]
    fn a_splat_of_5000_is_cut_at_iov_max() {
        let mut w = Stingy {
            out: Vec::new(),
            limit: usize::MAX,
            calls: Vec::new(),
        };
        // 5001 slices of 3 KiB: no block (the slice is longer than half a block).
        let long = vec![7u8; 3000];
        let data: &[&[u8]] = &[b"<", &long];
        let mut scratch = Vec::new();
        let mut segs = Segments::new(b"", data, 5000, &mut scratch);
        segs.write_all(&mut w).unwrap();
        assert_eq!(w.out, expected(b"", data, 5000));
        assert_eq!(w.calls, vec![1024, 1024, 1024, 1024, 905]);
    }

    #[test]
    fn a_short_splat_slice_is_blocked_into_few_iovecs() {
        // 1 + 2·5000 bytes: "<", 2 blocks of 2048 × "ab" (4096 bytes), then 904 × "ab" (a
        // prefix of the block).
        let mut w = Stingy {
            out: Vec::new(),
            limit: usize::MAX,
            calls: Vec::new(),
        };
        let data: &[&[u8]] = &[b"<", b"ab"];
        let mut scratch = Vec::new();
        let mut segs = Segments::new(b"", data, 5000, &mut scratch);
        segs.write_all(&mut w).unwrap();
        assert_eq!(w.out, expected(b"", data, 5000));
        assert_eq!(w.calls, vec![1 + 2 + 1]);
        // A million single bytes: 244 iovecs of 4 KiB and one of the rest, one call.
        w.out.clear();
        w.calls.clear();
        let data: &[&[u8]] = &[b"x"];
        let mut scratch = Vec::new();
        let mut segs = Segments::new(b"", data, 1_000_000, &mut scratch);
        segs.write_all(&mut w).unwrap();
        assert_eq!(w.out, vec![b'x'; 1_000_000]);
        assert_eq!(w.calls, vec![245]);
    }

    #[test]
    fn a_blocked_splat_resumes_at_the_exact_byte_after_every_cut() {
        for len in [1usize, 3, 7, 1000, 2048] {
            let slice: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let data: &[&[u8]] = &[b"head-", &slice];
            for splat in [17, 100, 4097, 10_001] {
                for limit in [1, 999, 4096, 4097, 65_521] {
                    if limit == 1 && len * splat > 50_000 {
                        continue; // a byte per call: only for the short ones
                    }
                    let mut w = Stingy {
                        out: Vec::new(),
                        limit,
                        calls: Vec::new(),
                    };
                    let mut scratch = Vec::new();
                    let mut segs = Segments::new(b"H", data, splat, &mut scratch);
                    assert_eq!(segs.remaining(), 6 + (len * splat) as u64);
                    segs.write_all(&mut w).unwrap();
                    assert!(
                        w.out == expected(b"H", data, splat),
                        "len {len} splat {splat} limit {limit}"
                    );
                    assert!(w.calls.iter().all(|&c| c <= IOV_MAX));
                }
            }
        }
    }
}

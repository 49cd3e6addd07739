//! Buffered I/O after Zig's `std.Io.Reader`/`Writer`: the buffer lives in the interface, and a
//! writer's buffer and its caller's data leave together in one vectored syscall.
//!
//! - [`Reader`] over any [`Read`](std::io::Read): [`fill`](Reader::fill),
//!   [`peek`](Reader::peek), [`take_bytes`](Reader::take_bytes), [`take_delimited`](Reader::take_delimited),
//!   [`discard`](Reader::discard), [`stream_to`](Reader::stream_to), plus std's `Read` and
//!   `BufRead` (`read_until`, `lines`).
//! - [`Writer`] over any [`Write`](std::io::Write): `write`, `write_all`, `flush`,
//!   [`drain`](Writer::drain) with *splat*, [`write_vectored_all`](Writer::write_vectored_all),
//!   and, over a zsync socket or file, [`send_file`](Writer::send_file) (zero-copy, see
//!   [`crate::transfer`]).
//!
//! Both are plain `fn` code over the std traits, so they run on every model: every read or write
//! they make on a zsync stream or file is that stream's own operation, hence a cancellation
//! point that waits the model's way (parks the fiber on Green).
//!
//! ## Buffers on demand
//!
//! A server holds a reader and a writer per connection, and most connections are idle most of
//! the time. So neither holds its buffer while it has no bytes in it:
//!
//! - a [`Writer`] takes its buffer when a write first buffers bytes and gives it back as soon
//!   as a write to the sink empties it;
//! - a [`Reader`] takes its buffer at its first read; one made with
//!   [`Reader::on_demand`] also gives it back when its last buffered byte is consumed, and
//!   reads into an empty buffer in steps: a read that does not wait (`recv(MSG_DONTWAIT)`, on
//!   readiness backends and threads, where the model's own read tries that syscall first
//!   anyway; not on an io_uring worker), then, if there was nothing, a readiness wait
//!   *without* a buffer, and only then a buffer and the read (on io_uring a plain `recv`, the
//!   socket being known readable).
//!
//! ```text
//!   connection:   request ─ parse ─ respond ─ flush ─────── idle (waiting for data) ───────── request
//!   read buffer:  [held ─────────]                                                           [held ...
//!   write buffer:         [held ─────────────]
//! ```
//!
//! The buffers come from a small per-thread cache (`pool.rs`: a list per thread, bounded in
//! bytes), so giving back and taking again costs a push and a pop, and the pages of a cached
//! buffer stay committed for the next connection on that thread: the buffers in use at once are
//! about as many as the requests being worked on at once, not as many as the connections.
//! After a load spike each thread keeps at most the cache's bound.
//!
//! ## drain and splat
//!
//! `writer.drain(&[a, b, c], splat)` writes the buffered bytes, then `a`, `b`, then `c` repeated
//! `splat` times. The iovec array handed to `writev(2)` points into the buffer and into the
//! caller's slices; the repeats of `c` are the *same* pointer again, so a run of padding or a
//! fill pattern costs no copy and no allocation of its size:
//!
//! ```text
//!   buffer: [h e a d e r . . . . . .]      a: [k e y = ]   b: [v a l u e]   c: [ 0 ]
//!            ^^^^^^^^^^^ buffered               |               |              |
//!   iovecs:  { buf, 6 } { a, 4 } { b, 5 } { c, 1 } { c, 1 } { c, 1 } ... ({ c, 1 } × splat)
//!                                          '-------- same memory, splat times ----'
//! ```
//!
//! `splat == 0` leaves `c` out (Zig uses that to write "all but the last slice"); `splat == 1`
//! is a plain vectored write.
//!
//! A *short* `c` repeated many times would make that array absurd — a million iovecs of one
//! byte, 977 `writev`s of 1 KiB. So a slice of at most 2 KiB repeated more than 16 times is
//! first copied into a block of whole repeats of about 4 KiB (once per call, in memory the
//! writer keeps), and the iovecs point at that block, the last one at a prefix of it:
//!
//! ```text
//!   c = [0], splat = 1,000,000:  { blk, 4096 } × 244  { blk, 576 }      (245 iovecs, one writev)
//! ```
//!
//! A few hundred times faster than one write per repeat for a one-byte pattern repeated a
//! million times (`cargo bench --bench transfer`, section 3; figures in
//! docs/ARCHITECTURE.md, "Measurements behind the tuning").
//!
//! Two limits shape the loop around that `writev`:
//!
//! - **Partial writes.** A socket takes what fits in its send buffer: `writev` may stop in the
//!   middle of any iovec, even in the middle of the 3,000th repeat. The writer keeps a cursor
//!   (segment, offset) and resumes at exactly the next byte, skipping whole repeats by division;
//!   the buffered bytes the sink took leave the buffer, the rest stay at its front.
//! - **`IOV_MAX`.** Linux refuses more than [`IOV_MAX`] (1024) iovecs per call, so a longer
//!   sequence — 5,000 slices, a splat of 5,000 — goes out in batches of at most 1024.
//!
//! [`Writer::drain_once`] exposes the single call (Zig's exact `drain` contract: one write,
//! returns how much of `data` went).
//!
//! ## SIGPIPE
//!
//! Writes go through the sink's own `write`/`write_vectored`. zsync's sockets send both with
//! `MSG_NOSIGNAL`: on a socket whose peer has gone they fail with `BrokenPipe` and never raise
//! `SIGPIPE`. A pipe has no such flag: a write to a [`PipeWriter`](crate::PipeWriter) (or a
//! FIFO) without a reader raises `SIGPIPE`, which Rust programs ignore (std's runtime sets it to
//! `SIG_IGN` before `main`); a program that restores the default disposition should keep pipes
//! out of its writers or use [`crate::transfer`] (which suppresses it).

mod pool;
mod reader;
mod vectored;
mod writer;

pub use reader::Reader;
pub use vectored::IOV_MAX;
pub use writer::Writer;

/// The buffer size of [`Reader::new`] and [`Writer::new`]: large enough that a bulk transfer
/// makes few syscalls, small enough for many connections.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

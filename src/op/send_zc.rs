//! `IORING_OP_SEND_ZC`: a TCP write whose bytes the kernel takes from the caller's buffer
//! itself (pinning its pages) instead of copying them into socket buffers first.
//!
//! Used by [`send_stream`](super::send::send_stream) for writes of at least [`THRESHOLD`]
//! bytes on a TCP stream whose owner turned it on (`TcpStream::set_zero_copy_send`), on a Green
//! fiber whose worker runs an io_uring whose kernel has the opcode. Everywhere else — other
//! models, epoll workers, kernels without the opcode (probed), Unix sockets, small writes, and
//! streams that did not ask — the write is a plain `send`. It is off by default, for two
//! reasons (docs/ARCHITECTURE.md, "Zero-copy send", has the figures):
//!
//! - Over loopback (and to any address of this host) it does not pay: the kernel copies the
//!   pinned pages anyway when it hands them to the local receiver, and the pinning and the
//!   second completion come on top. Only a real NIC transmits from the pages; none is here to
//!   measure.
//! - A zero-copy write is over only when the kernel lets go of the buffer, which is when the
//!   peer has acknowledged the bytes. A peer that stops reading (its window full) keeps the
//!   bytes queued and the writer waiting — and neither the write timeout nor a cancel can end
//!   that wait, since the buffer is the kernel's until then (see below). A plain send returns
//!   once the bytes are copied into the socket buffer, and its timeouts work.
//!
//! ## The buffer outlives the kernel's use of it
//!
//! A zero-copy send completes twice. The first CQE carries the result (bytes sent or an error)
//! with `IORING_CQE_F_MORE`; the kernel may still read the buffer after it — the pages sit in
//! the socket's write and retransmit queues until the peer acknowledges them — and says it is
//! done with a second CQE with `IORING_CQE_F_NOTIF`. The reactor keeps the op's slot until that
//! second CQE (`reactor::op`, `State::Notifying`), and [`green::ring_op`] returns only once the
//! slot is completed, so the borrowed `&[u8]` stays borrowed (the fiber's frame, and the
//! caller's buffer, alive) until the kernel has let go of it:
//!
//! ```text
//!   fiber:   ring_op(SEND_ZC) ── park ────────────────────────────── wake ──▶ return n
//!   kernel:        queue n bytes ── CQE(res = n, F_MORE) ── ACK ── CQE(F_NOTIF)
//!   buffer:  ◀───────────────────── the kernel's ─────────────────────▶ the caller's again
//! ```
//!
//! A fiber canceled or timed out meanwhile asks the kernel to cancel the send and keeps
//! waiting, as for every ring op: a send still waiting for room ends with `ECANCELED` (and a
//! notification right behind it, nothing being queued); a send already done leaves only the
//! notification, which no cancel can hurry. An unwind while the op is in flight aborts the
//! process (see [`green::ring_op`]) rather than free the buffer under the kernel.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use io_uring::{opcode, types::Fd};

use crate::model::green;

/// The smallest write sent zero-copy: below it, pinning the pages and the notification cost
/// more than the copy they save (see docs/ARCHITECTURE.md, "Zero-copy send").
pub(crate) const THRESHOLD: usize = 16 * 1024;

/// Zero-copy sends completed through a ring in this process (for tests: proves the path taken).
#[cfg(test)]
pub(crate) static RING_ZC_SENDS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Large writes go zero-copy.
const ON: u8 = 1;
/// Plain sends only (the default).
const OFF: u8 = 0;

/// One TCP stream's choice of zero-copy sends, kept by the socket (one byte, in what was
/// padding): off until [`set`](Self::set) turns it on (see the module docs for why it is not
/// the default). Relaxed atomics: a concurrent `set` may or may not apply to a write already
/// started, as with any socket option.
#[derive(Debug)]
pub(crate) struct ZeroCopy(AtomicU8);

impl Default for ZeroCopy {
    fn default() -> ZeroCopy {
        ZeroCopy(AtomicU8::new(OFF))
    }
}

impl ZeroCopy {
    /// Turns zero-copy sends on or off.
    pub(crate) fn set(&self, on: bool) {
        self.0.store(if on { ON } else { OFF }, Ordering::Relaxed);
    }

    /// Whether zero-copy sends are on.
    fn on(&self) -> bool {
        self.0.load(Ordering::Relaxed) == ON
    }

    /// After the kernel refused a zero-copy send on this socket: plain sends from now on.
    fn refused(&self) {
        self.0.store(OFF, Ordering::Relaxed);
    }
}

/// Writes some of `buf` to the TCP stream `fd` with `IORING_OP_SEND_ZC`, if `zc` wants it for
/// a write this size and the write can go through a ring here; returns how much, after the
/// kernel's notification that it no longer reads `buf`. `None`: take the plain send (not
/// wanted, not on a ring, a kernel without the opcode, or the kernel refused zero-copy for
/// this socket or right now). Cancellation point; gives up with `TimedOut` at `deadline`, after
/// the notification.
pub(crate) fn send_zc(
    zc: &ZeroCopy,
    fd: BorrowedFd<'_>,
    buf: &[u8],
    flags: i32,
    deadline: Option<Instant>,
) -> Option<io::Result<usize>> {
    if buf.len() < THRESHOLD || !zc.on() || !green::ring_available(opcode::SendZc::CODE) {
        return None;
    }
    let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_ptr(), super::ring_len(buf.len()));
    let sqe = || opcode::SendZc::new(Fd(raw), ptr, len).flags(flags).build();
    // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, which is after the op's
    // last CQE: its notification, once the kernel no longer reads `buf` (see the module docs).
    let res = unsafe { green::ring_op(opcode::SendZc::CODE, deadline, sqe) }?;
    match res {
        Ok(n) => {
            #[cfg(test)]
            RING_ZC_SENDS.fetch_add(1, Ordering::Relaxed);
            Some(Ok(super::count(n)))
        }
        // The socket does not do zero-copy (`EOPNOTSUPP`), or the kernel cannot pin or account
        // the pages now (`ENOMEM`, `ENOBUFS`, `EFAULT` for memory it cannot pin, such as some
        // device mappings), or flags it does not know (`EINVAL`): nothing was sent, the plain
        // send does the job. Only `EOPNOTSUPP`/`EINVAL` are permanent for the socket.
        Err(e) => match e.raw_os_error() {
            Some(libc::EOPNOTSUPP | libc::EINVAL) => {
                zc.refused();
                None
            }
            Some(libc::ENOMEM | libc::ENOBUFS | libc::EFAULT) => None,
            _ => Some(Err(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::net::{TcpListener, TcpStream};
    use crate::{Backend, Builder, Io, Model};

    /// Serialises these tests: they read the process-wide [`RING_ZC_SENDS`].
    static SERIAL: Mutex<()> = Mutex::new(());

    /// Whether the kernel lets this process use io_uring with `IORING_OP_SEND_ZC`; where it
    /// does not, says so past the harness's capture.
    fn skip_without_send_zc(what: &str) -> bool {
        let why = match crate::model::green::reactor::uring::support() {
            Err(e) => e.to_string(),
            Ok(s) if !s.has(opcode::SendZc::CODE) => "no IORING_OP_SEND_ZC".into(),
            Ok(_) => match Backend::IoUring.resolve() {
                Ok(_) => return false,
                Err(e) => e.to_string(),
            },
        };
        let _ = writeln!(
            std::io::stderr(),
            "{what}: skipped: io_uring unavailable: {why}"
        );
        true
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// A connected pair over loopback: (writer, reader).
    fn pair(io: &Io) -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
        let a = TcpStream::connect(io, listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        (a, b)
    }

    /// Writes `data` with `write_all` from a stream set up by `setup` while a std thread reads
    /// it all (every model has threads; Blocking has no concurrent tasks); returns what arrived.
    fn send_and_receive(io: &Io, data: &[u8], setup: impl FnOnce(&TcpStream)) -> Vec<u8> {
        let (mut a, b) = pair(io);
        setup(&a);
        let mut b = b.into_std().unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let mut got = Vec::new();
                b.read_to_end(&mut got).map(|_| got)
            });
            a.write_all(data).unwrap();
            drop(a);
            reader.join().unwrap().unwrap()
        })
    }

    #[test]
    fn a_large_write_on_an_io_uring_worker_goes_zero_copy_and_arrives_intact() {
        if skip_without_send_zc("a_large_write_on_an_io_uring_worker_goes_zero_copy") {
            return;
        }
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let data = pattern(3 << 20 | 12345);
        let builder = Builder::new(Model::Green).backend(Backend::IoUring);
        let (zc, got) = builder.worker_threads(1).run(|io| {
            let before = RING_ZC_SENDS.load(Ordering::Relaxed);
            let got = send_and_receive(io, &data, |a| a.set_zero_copy_send(true));
            (RING_ZC_SENDS.load(Ordering::Relaxed) - before, got)
        });
        assert!(zc >= 1, "SEND_ZC was taken");
        assert!(got == data, "every byte arrived, in order");
    }

    #[test]
    fn streams_that_did_not_ask_and_small_writes_take_the_plain_send() {
        if skip_without_send_zc("streams_that_did_not_ask_and_small_writes") {
            return;
        }
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let data = pattern(1 << 20);
        let builder = Builder::new(Model::Green).backend(Backend::IoUring);
        builder.worker_threads(1).run(|io| {
            let before = RING_ZC_SENDS.load(Ordering::Relaxed);
            // Off unless asked for.
            assert!(send_and_receive(io, &data, |_| ()) == data);
            // Forced on, but each write below the threshold.
            let (mut a, mut b) = pair(io);
            a.set_zero_copy_send(true);
            let reader = io
                .concurrent(move |_| {
                    let mut got = Vec::new();
                    b.read_to_end(&mut got).map(|_| got)
                })
                .unwrap();
            for chunk in data.chunks(THRESHOLD - 1) {
                a.write_all(chunk).unwrap();
            }
            drop(a);
            assert!(reader.join().unwrap().unwrap() == data);
            assert_eq!(RING_ZC_SENDS.load(Ordering::Relaxed), before);
        });
    }

    /// Where io_uring is not used (thread models, epoll workers, or the kernel refusing it), a
    /// stream with zero-copy forced on writes with plain sends, and the bytes arrive.
    #[test]
    fn zero_copy_forced_on_falls_back_to_plain_sends_without_io_uring() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let data = pattern(2 << 20 | 77);
        let builders = [
            Builder::new(Model::Blocking),
            Builder::new(Model::Threaded),
            Builder::new(Model::Green).backend(Backend::Epoll),
        ];
        for builder in builders {
            let before = RING_ZC_SENDS.load(Ordering::Relaxed);
            let got = builder.run(|io| send_and_receive(io, &data, |a| a.set_zero_copy_send(true)));
            assert!(got == data);
            assert_eq!(RING_ZC_SENDS.load(Ordering::Relaxed), before);
        }
        // A Unix stream never tries: the kernel would refuse (`EOPNOTSUPP`).
        Builder::new(Model::Green).run(|io| {
            let (mut a, mut b) = crate::net::UnixStream::pair(io).unwrap();
            let reader = io
                .concurrent(move |_| {
                    let mut got = Vec::new();
                    b.read_to_end(&mut got).map(|_| got)
                })
                .unwrap();
            a.write_all(&data).unwrap();
            drop(a);
            assert!(reader.join().unwrap().unwrap() == data);
        });
    }

    /// A zero-copy send stopped while the peer is not reading — by the socket's write timeout,
    /// by the task's deadline, by a cancel — keeps its writer until the kernel lets go of the
    /// buffer, which is after the peer has read (and so acknowledged) the bytes: the write
    /// in flight returns (with the count the kernel reported) only once the reader has
    /// started; the writer then scribbles over its buffer and frees it, and the reader gets
    /// exactly the bytes reported sent, unchanged.
    #[test]
    fn a_zero_copy_send_stopped_mid_way_returns_after_the_kernel_let_go_of_the_buffer() {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        if skip_without_send_zc("a_zero_copy_send_stopped_mid_way") {
            return;
        }
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let data: &'static [u8] = pattern(1 << 20).leak();
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum Stop {
            WriteTimeout,
            Deadline,
            Cancel,
        }
        for stop in [Stop::WriteTimeout, Stop::Deadline, Stop::Cancel] {
            let builder = Builder::new(Model::Green).backend(Backend::IoUring);
            builder.worker_threads(1).run(|io| {
                let before = RING_ZC_SENDS.load(Ordering::Relaxed);
                let (a, mut b) = pair(io);
                a.set_zero_copy_send(true);
                if stop == Stop::WriteTimeout {
                    a.set_write_timeout(Some(Duration::from_millis(50)))
                        .unwrap();
                }
                let writes = Arc::new(AtomicUsize::new(0));
                let stopping = Arc::new(AtomicBool::new(false));
                let reading = Arc::new(AtomicBool::new(false));
                // Nobody reads `b` until the writer has been stopped: its window fills, and the
                // last send's bytes wait in the kernel's queues, its buffer pinned.
                let (w, r) = (writes.clone(), reading.clone());
                let writer = io
                    .concurrent(move |io| {
                        let mut buf = data.to_vec();
                        // How much each write took: each starts again at the buffer's start.
                        let mut sent = Vec::new();
                        let mut write = |_: &Io| loop {
                            let res = (&a).write(&buf);
                            w.fetch_add(1, Ordering::SeqCst);
                            match res {
                                // Returned after the reader started: the write in flight at
                                // the stop is over.
                                Ok(n) if r.load(Ordering::SeqCst) => break (n, None),
                                Ok(n) => sent.push(n),
                                Err(e) => break (0, Some(e.kind())),
                            }
                        };
                        let (last, err) = match stop {
                            Stop::Deadline => io.timeout(Duration::from_millis(200), &mut write),
                            _ => write(io),
                        };
                        sent.push(last);
                        // The kernel is done with `buf`: scribble over it and free it.
                        buf.fill(0xEE);
                        drop(buf);
                        (sent, err, r.load(Ordering::SeqCst), a)
                    })
                    .unwrap();
                let s = stopping.clone();
                let reader = io
                    .concurrent(move |io| {
                        while !s.load(Ordering::SeqCst) {
                            io.sleep(Duration::from_millis(10)).unwrap();
                        }
                        // Well after the stop: the writer is still in its send.
                        io.sleep(Duration::from_millis(300)).unwrap();
                        reading.store(true, Ordering::SeqCst);
                        let mut got = Vec::new();
                        b.read_to_end(&mut got).map(|_| got)
                    })
                    .unwrap();
                // Wait (up to 10 s) until the writer has stopped making progress: stuck in a
                // send whose bytes the peer does not take.
                let mut last = usize::MAX;
                for _ in 0..50 {
                    io.sleep(Duration::from_millis(200)).unwrap();
                    let now = writes.load(Ordering::SeqCst);
                    if now == last {
                        break;
                    }
                    last = now;
                }
                stopping.store(true, Ordering::SeqCst);
                let (sent, err, after_reader, a) = match stop {
                    Stop::Cancel => writer.cancel().unwrap(),
                    _ => writer.join().unwrap(),
                };
                match (stop, err) {
                    // The stop came while the kernel held the buffer: the send in flight still
                    // completed, after the reader started.
                    (_, None) => assert!(after_reader, "the writer waited for its notification"),
                    // The deadline passed before the socket filled (a loaded machine).
                    (Stop::Deadline, Some(kind)) => {
                        assert_eq!(kind, std::io::ErrorKind::TimedOut)
                    }
                    // The send in flight completed after the reader started; the next write
                    // saw the cancel.
                    (Stop::Cancel, Some(kind)) => {
                        assert!(after_reader, "the writer waited for its notification");
                        assert_eq!(kind, crate::error::canceled().kind());
                    }
                    other => panic!("unexpected outcome {other:?}"),
                }
                drop(a);
                let got = reader.join().unwrap().unwrap();
                let expected: Vec<u8> = sent.iter().flat_map(|&n| &data[..n]).copied().collect();
                assert_eq!(got.len(), expected.len(), "{stop:?}");
                assert!(
                    got == expected,
                    "{stop:?}: the bytes sent are the buffer's, unchanged"
                );
                assert!(RING_ZC_SENDS.load(Ordering::Relaxed) > before, "{stop:?}");
            });
        }
    }
}

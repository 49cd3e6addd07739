//! Conformance tests: pipes and FIFOs from async code (issue 13, item 3) on every model:
//! `PipeReader`/`PipeWriter`'s readiness polls, `_async` methods and `AsyncRead`/`AsyncWrite`,
//! and a `zsync::fs::File` on a FIFO, all waiting through the async driver. Future tasks and
//! fiber (closure) tasks talk through one pipe in both directions.
//!
//! Nothing here asserts timing; waits that a regression would turn into hangs are bounded by
//! [`WATCHDOG`] and fail instead.

use std::future::Future;
use std::io::{self, ErrorKind};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::{join, join3};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use zsync::fs::{File, OpenOptions};
use zsync::net::{TcpListener, TcpStream};
use zsync::time::{sleep, timeout};
use zsync::Io;

use crate::support::{pattern, TempDir};

/// Bounds every wait a regression could make endless (far beyond any legitimate one).
const WATCHDOG: Duration = Duration::from_secs(60);

/// Several pipe buffers' worth (64 KiB each by default): the writer fills the pipe many times.
const LARGE: usize = 6 * 1024 * 1024;

/// Colorblind code waiting for a future, bounded by the watchdog.
fn block_on<F: Future>(io: &Io, future: F) -> F::Output {
    io.block_on(timeout(WATCHDOG, future))
        .expect("the task is not canceled")
        .expect("within the watchdog")
}

/// Polls `fut` once (with a waker that does nothing) and drops it.
fn poll_once_then_drop<F: Future>(fut: F) -> bool {
    let mut fut = std::pin::pin!(fut);
    fut.as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_pending()
}

/// FNV-1a over a stream of chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checksum(u64, usize);

impl Checksum {
    fn new() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325, 0)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.1 += bytes.len();
    }
    fn of(bytes: &[u8]) -> Checksum {
        let mut c = Checksum::new();
        c.update(bytes);
        c
    }
}

/// Reads `reader` to its end through `AsyncRead`, checksumming.
async fn checksum_async(mut reader: impl futures_util::io::AsyncRead + Unpin) -> Checksum {
    let mut sum = Checksum::new();
    let mut buf = vec![0; 48 * 1024];
    loop {
        let n = AsyncReadExt::read(&mut reader, &mut buf).await.unwrap();
        if n == 0 {
            return sum;
        }
        sum.update(&buf[..n]);
    }
}

/// Reads `reader` to its end with the colorblind `Read`, checksumming.
fn checksum_blocking(mut reader: impl io::Read) -> Checksum {
    let mut sum = Checksum::new();
    let mut buf = vec![0; 40 * 1024];
    loop {
        let n = io::Read::read(&mut reader, &mut buf).unwrap();
        if n == 0 {
            return sum;
        }
        sum.update(&buf[..n]);
    }
}

// ---- futures and fibers through one pipe -------------------------------------------------------

/// A future task reads what a fiber task writes, and a fiber task reads what a future task
/// writes. (On Blocking each task runs to completion when spawned: the data fits in the pipe.)
fn future_and_fiber_tasks_talk_through_a_pipe(io: &Io) {
    let data = pattern(20_000, 1);
    // Fiber writes, future reads.
    let (mut reader, mut writer) = zsync::pipe(io).unwrap();
    let sent = data.clone();
    let fiber = io.spawn(move |_| {
        for chunk in sent.chunks(3000) {
            io::Write::write_all(&mut writer, chunk).unwrap();
        }
        // `writer` drops: the end of the stream.
    });
    let future = io.spawn_future(async move {
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut reader, &mut got)
            .await
            .unwrap();
        got
    });
    fiber.join().unwrap();
    assert_eq!(block_on(io, future).unwrap(), data);

    // Future writes, fiber reads.
    let (mut reader, writer) = zsync::pipe(io).unwrap();
    let sent = data.clone();
    let future = io.spawn_future(async move {
        let mut w = &writer; // `&PipeWriter` writes too
        for chunk in sent.chunks(3000) {
            AsyncWriteExt::write_all(&mut w, chunk).await.unwrap();
        }
        w.close().await.unwrap();
        drop(writer);
    });
    let fiber = io.spawn(move |_| {
        let mut got = Vec::new();
        io::Read::read_to_end(&mut reader, &mut got).unwrap();
        got
    });
    block_on(io, future).unwrap();
    assert_eq!(fiber.join().unwrap(), data);
}

/// `read_async` and `AsyncRead` see the end of the stream when every writer has dropped,
/// including a writer dropped while a read waits (and a clone keeps the stream open).
fn end_of_stream_when_the_writers_drop(io: &Io) {
    let (reader, writer) = zsync::pipe(io).unwrap();
    let second = writer.try_clone().unwrap();
    block_on(io, async {
        assert_eq!(writer.write_async(b"last").await.unwrap(), 4);
        drop(writer);
        let mut buf = [0; 16];
        assert_eq!(reader.read_async(&mut buf).await.unwrap(), 4);
        // One writer remains: a read waits; dropping it ends the wait with 0.
        let read = reader.read_async(&mut buf);
        let (n, ()) = join(read, async move {
            sleep(Duration::from_millis(5)).await;
            drop(second);
        })
        .await;
        assert_eq!(n.unwrap(), 0);
        let mut rest = Vec::new();
        let n = AsyncReadExt::read_to_end(&mut &reader, &mut rest).await;
        assert_eq!(n.unwrap(), 0);
    });
}

/// A write to a pipe without a reader is `BrokenPipe`, whether the reader was gone before the
/// write or goes while the write waits for room in a full pipe: an error, not a hang. (The test
/// binary ignores `SIGPIPE`, as every Rust program does before `main`.)
fn broken_pipe_is_an_error_not_a_hang(io: &Io) {
    let (reader, writer) = zsync::pipe(io).unwrap();
    drop(reader);
    block_on(io, async {
        let e = writer.write_async(b"x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
        let e = AsyncWriteExt::write_all(&mut &writer, b"y")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    });

    let (reader, writer) = zsync::pipe(io).unwrap();
    let raw = std::fs::File::from(writer.as_fd().try_clone_to_owned().unwrap());
    let chunk = [9u8; 4096];
    let mut filled = 0;
    let mut cx = Context::from_waker(Waker::noop());
    // Until full and the write readiness is cleared (an event that came in during the
    // `WouldBlock` try, such as the registration's first one, keeps it set for one more try).
    loop {
        match writer.try_io(|| io::Write::write(&mut &raw, &chunk)) {
            Ok(n) => filled += n,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::WouldBlock);
                if writer.poll_write_ready(&mut cx).is_pending() {
                    break;
                }
            }
        }
    }
    assert!(filled >= 4096);
    block_on(io, async {
        let (written, ()) = join(writer.write_async(&chunk), async move {
            sleep(Duration::from_millis(5)).await;
            drop(reader);
        })
        .await;
        assert_eq!(written.unwrap_err().kind(), ErrorKind::BrokenPipe);
    });
}

/// Several MiB in each direction across many pipe-buffer fills, checksummed: a fiber task
/// writes and a future task reads, then the other way round (on Blocking, which runs a task to
/// completion at once, both sides are futures joined in the caller).
fn large_transfer_across_buffer_fills(io: &Io) {
    let data = Arc::new(pattern(LARGE, 7));
    let expected = Checksum::of(&data);
    let concurrent = io.supports_concurrency();

    // Fiber writes (colorblind), future reads (AsyncRead).
    let (reader, mut writer) = zsync::pipe(io).unwrap();
    if concurrent {
        let sent = data.clone();
        let fiber = io
            .concurrent(move |_| io::Write::write_all(&mut writer, &sent))
            .unwrap();
        let future = io.spawn_future(checksum_async(reader));
        assert_eq!(block_on(io, future).unwrap(), expected);
        fiber.join().unwrap().unwrap();
    } else {
        let send = async move {
            let mut w = writer;
            AsyncWriteExt::write_all(&mut w, &data).await.unwrap();
        };
        let (_, sum) = block_on(io, join(send, checksum_async(reader)));
        assert_eq!(sum, expected);
        return;
    }

    // Future writes (AsyncWrite, vectored too), fiber reads (colorblind).
    let (reader, writer) = zsync::pipe(io).unwrap();
    let sent = data.clone();
    let future = io.spawn_future(async move {
        let mut w = writer;
        let (head, tail) = sent.split_at(LARGE / 3);
        AsyncWriteExt::write_all(&mut w, head).await.unwrap();
        let mut rest = tail;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(rest.len().min(5000));
            let n = w
                .write_vectored(&[std::io::IoSlice::new(a), std::io::IoSlice::new(b)])
                .await
                .unwrap();
            rest = &rest[n..];
        }
    });
    let fiber = io.concurrent(move |_| checksum_blocking(reader)).unwrap();
    block_on(io, future).unwrap();
    assert_eq!(fiber.join().unwrap(), expected);
}

/// A future task parked on a pipe read, canceled, is dropped at once and takes nothing with
/// it: the pipe still works, for futures and for the colorblind methods alike. The same for a
/// read future dropped after one pending poll, and for one a `timeout` ends.
fn canceled_read_leaves_the_pipe_usable(io: &Io) {
    let (reader, mut writer) = zsync::pipe(io).unwrap();
    let reader = Arc::new(reader);
    // Dropped after a pending poll (on every model).
    assert!(poll_once_then_drop(reader.read_async(&mut [0; 8])));
    // Ended by a timeout.
    let e = io
        .block_on(timeout(
            Duration::from_millis(10),
            reader.read_async(&mut [0; 8]),
        ))
        .unwrap()
        .unwrap_err();
    assert!(zsync::is_timed_out(&e), "{e:?}");
    // A future task parked on the read, canceled.
    let parked = reader.clone();
    let task = io.concurrent_future(async move {
        let mut buf = [0; 8];
        parked.read_async(&mut buf).await.map(|n| buf[..n].to_vec())
    });
    match task {
        Ok(task) => {
            block_on(io, sleep(Duration::from_millis(5)));
            assert!(zsync::is_canceled(&task.cancel().unwrap_err()));
        }
        // Blocking: no task runs beside the caller; the refusal hands the future back.
        Err(refused) => drop(refused),
    }
    // Nothing was consumed: both paths read what comes next.
    io::Write::write_all(&mut writer, b"after").unwrap();
    let mut buf = [0; 3];
    assert_eq!(block_on(io, reader.read_async(&mut buf)).unwrap(), 3);
    assert_eq!(&buf, b"aft");
    let mut buf = [0; 2];
    io::Read::read_exact(&mut &*reader, &mut buf).unwrap();
    assert_eq!(&buf, b"er");
    // A dropped reader leaves no registration behind.
    let registered = io.async_driver_counts().0;
    drop(reader);
    assert_eq!(io.async_driver_counts().0, registered - 1);
}

/// `try_io` and the readiness polls keep the edge-triggered protocol: `WouldBlock` clears the
/// readiness, new data sets it again.
fn readiness_and_try_io(io: &Io) {
    let (reader, mut writer) = zsync::pipe(io).unwrap();
    let raw = std::fs::File::from(reader.as_fd().try_clone_to_owned().unwrap());
    let mut cx = Context::from_waker(Waker::noop());
    for round in 0..20u8 {
        let e = reader
            .try_io(|| io::Read::read(&mut &raw, &mut [0; 4]))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert!(reader.poll_read_ready(&mut cx).is_pending());
        io::Write::write_all(&mut writer, &[round]).unwrap();
        block_on(io, std::future::poll_fn(|cx| reader.poll_read_ready(cx))).unwrap();
        let mut one = [0; 4];
        assert_eq!(
            reader
                .try_io(|| io::Read::read(&mut &raw, &mut one))
                .unwrap(),
            1
        );
        assert_eq!(one[0], round);
    }
    // A reader registered with the driver still reads with the colorblind methods.
    io::Write::write_all(&mut writer, b"plain").unwrap();
    let mut five = [0; 5];
    io::Read::read_exact(&mut &reader, &mut five).unwrap();
    assert_eq!(&five, b"plain");
    assert!(matches!(
        writer.poll_write_ready(&mut cx),
        Poll::Ready(Ok(()))
    ));
}

/// `futures::io::copy` from a `PipeReader` into a `TcpStream`, and into another pipe.
fn futures_copy_from_a_pipe(io: &Io) {
    let data = pattern(300_000, 3);
    // Pipe -> TCP.
    let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = block_on(io, async {
        let (c, a) = join(TcpStream::connect_async(io, addr), listener.accept_async()).await;
        (c.unwrap(), a.unwrap().0)
    });
    let (reader, writer) = zsync::pipe(io).unwrap();
    let got = block_on(io, async {
        let feed = async move {
            let mut w = writer;
            AsyncWriteExt::write_all(&mut w, &data).await.unwrap();
            // `w` drops: the copy sees the end.
        };
        let copy = async move {
            let mut r = reader;
            let mut c = client;
            let n = futures_util::io::copy(&mut r, &mut c).await.unwrap();
            c.close().await.unwrap();
            n
        };
        let drain = async {
            let mut got = Vec::new();
            AsyncReadExt::read_to_end(&mut &server, &mut got)
                .await
                .unwrap();
            got
        };
        let ((), n, got) = join3(feed, copy, drain).await;
        assert_eq!(n, 300_000);
        got
    });
    assert_eq!(got, pattern(300_000, 3));

    // Pipe -> pipe.
    let (r1, w1) = zsync::pipe(io).unwrap();
    let (r2, w2) = zsync::pipe(io).unwrap();
    let data = pattern(200_000, 4);
    let sent = data.clone();
    let got = block_on(io, async move {
        let feed = async move {
            AsyncWriteExt::write_all(&mut &w1, &sent).await.unwrap();
            drop(w1);
        };
        let copy = async move {
            let n = futures_util::io::copy(&r1, &mut &w2).await.unwrap();
            drop(w2);
            n
        };
        let drain = async move {
            let mut got = Vec::new();
            AsyncReadExt::read_to_end(&mut &r2, &mut got).await.unwrap();
            got
        };
        let ((), n, got) = join3(feed, copy, drain).await;
        assert_eq!(n, 200_000);
        got
    });
    assert_eq!(got, data);
}

/// A child's piped stdout is a `PipeReader`: readable from async code.
fn child_stdout_from_async_code(io: &Io) {
    let mut child = zsync::process::Command::new("sh")
        .args(["-c", "printf 'from the child'"])
        .stdout(zsync::process::Stdio::piped())
        .spawn(io)
        .unwrap();
    let out = child.stdout.take().unwrap();
    let text = block_on(io, async move {
        let mut out = out;
        let mut text = String::new();
        AsyncReadExt::read_to_string(&mut out, &mut text)
            .await
            .unwrap();
        text
    });
    assert_eq!(text, "from the child");
    assert!(child.wait().unwrap().success());
}

#[cfg(feature = "tokio-io")]
fn tokio_io_traits(io: &Io) {
    use tokio::io::{AsyncReadExt as TokioRead, AsyncWriteExt as TokioWrite};
    let (mut reader, mut writer) = zsync::pipe(io).unwrap();
    let data = pattern(150_000, 5);
    let got = block_on(io, async {
        let send = async {
            TokioWrite::write_all(&mut writer, &data).await.unwrap();
            TokioWrite::shutdown(&mut writer).await.unwrap(); // nothing to do for a pipe
            drop(writer);
        };
        let recv = async {
            let mut got = Vec::new();
            TokioRead::read_to_end(&mut reader, &mut got).await.unwrap();
            got
        };
        join(send, recv).await.1
    });
    assert_eq!(got, data);
    // `&PipeReader`/`&PipeWriter` too.
    let (reader, writer) = zsync::pipe(io).unwrap();
    block_on(io, async {
        TokioWrite::write_all(&mut &writer, b"ref").await.unwrap();
        let mut buf = [0; 3];
        TokioRead::read_exact(&mut &reader, &mut buf).await.unwrap();
        assert_eq!(&buf, b"ref");
    });
}

#[cfg(not(feature = "tokio-io"))]
fn tokio_io_traits(_io: &Io) {}

// ---- a File on a FIFO --------------------------------------------------------------------------

/// Makes a FIFO in `dir`.
fn mkfifo(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("fifo");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path
}

/// A `File` on a FIFO waits for data through the driver on every model: a read future is
/// `Pending` at its first poll (Blocking too: nothing waits inline), a dropped one takes no
/// data, a waiting one is woken by a write, and the dropped `File` leaves no registration.
fn fifo_file_waits_through_the_driver(io: &Io) {
    let dir = TempDir::new("apipe-fifo");
    let path = mkfifo(&dir);
    // Read-write: opening does not wait for another end (Linux).
    let fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(io, &path)
        .unwrap();
    let registered = io.async_driver_counts().0;
    assert!(
        poll_once_then_drop(fifo.read_async(vec![0; 16])),
        "nothing to read yet"
    );
    assert_eq!(
        io.async_driver_counts().0,
        registered + 1,
        "registered once"
    );
    let e = io
        .block_on(timeout(
            Duration::from_millis(10),
            fifo.read_async(vec![0; 16]),
        ))
        .unwrap()
        .unwrap_err();
    assert!(zsync::is_timed_out(&e), "{e:?}");
    let (read, written) = block_on(io, async {
        join(fifo.read_async(vec![0; 16]), async {
            sleep(Duration::from_millis(5)).await;
            fifo.write_async(b"woken".to_vec()).await
        })
        .await
    });
    assert_eq!(written.0.unwrap(), 5);
    let (n, buf) = read;
    assert_eq!(
        &buf[..n.unwrap()],
        b"woken",
        "the dropped reads took nothing"
    );
    drop(fifo);
    assert_eq!(
        io.async_driver_counts().0,
        registered,
        "deregistered with the File"
    );
}

/// A future task reads a FIFO a fiber task writes (through two `File`s), several MiB across
/// many buffer fills, checksummed; then the `futures_io` traits in both directions.
fn fifo_file_large_transfer(io: &Io) {
    let dir = TempDir::new("apipe-fifo-large");
    let path = mkfifo(&dir);
    let reader = OpenOptions::new()
        .read(true)
        .write(true)
        .open(io, &path)
        .unwrap();
    // A reader exists: a write-only open does not wait.
    let writer = OpenOptions::new().write(true).open(io, &path).unwrap();
    let data = Arc::new(pattern(LARGE / 2, 9));
    let expected = Checksum::of(&data);
    let len = data.len();
    let read_n = |mut reader: File, len: usize| async move {
        let mut sum = Checksum::new();
        let mut buf = vec![0; 32 * 1024];
        while sum.1 < len {
            let want = (len - sum.1).min(buf.len());
            let n = AsyncReadExt::read(&mut reader, &mut buf[..want])
                .await
                .unwrap();
            assert!(n > 0);
            sum.update(&buf[..n]);
        }
        (sum, reader)
    };
    let (sum, reader) = if io.supports_concurrency() {
        let sent = data.clone();
        let fiber = io
            .concurrent(move |_| {
                let mut w = writer;
                io::Write::write_all(&mut w, &sent).unwrap();
                w
            })
            .unwrap();
        let future = io.spawn_future(read_n(reader, data.len()));
        let got = block_on(io, future).unwrap();
        drop(fiber.join().unwrap());
        got
    } else {
        let send = async move {
            let mut w = writer;
            AsyncWriteExt::write_all(&mut w, &data).await.unwrap();
            w.flush().await.unwrap();
        };
        block_on(io, join(send, read_n(reader, len))).1
    };
    assert_eq!(sum, expected);
    // The same `File` through the traits both ways (write-behind, then flush).
    let mut fifo = reader;
    block_on(io, async {
        fifo.write_all(b"both ways").await.unwrap();
        fifo.flush().await.unwrap();
        let mut got = [0; 9];
        fifo.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"both ways");
    });
}

conformance! {
    future_and_fiber_tasks_talk_through_a_pipe,
    end_of_stream_when_the_writers_drop,
    broken_pipe_is_an_error_not_a_hang,
    large_transfer_across_buffer_fills,
    canceled_read_leaves_the_pipe_usable,
    readiness_and_try_io,
    futures_copy_from_a_pipe,
    child_stdout_from_async_code,
    tokio_io_traits,
    fifo_file_waits_through_the_driver,
    fifo_file_large_transfer,
}

//! Conformance tests: `zsync::fs::File` from async code (owned-buffer ops, the `futures_io`
//! traits), on every model. On Green with io_uring the ops are ring ops whose buffers the op
//! owns; elsewhere they run on helper threads.

use std::future::Future;
use std::io::SeekFrom;
use std::task::{Context, Waker};
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use zsync::fs::{self, File, OpenOptions};
use zsync::Io;

use crate::support::TempDir;

/// Waits for `fut` in the running task: the fiber parks on Green (its worker keeps running,
/// so ring completions arrive), the thread parks elsewhere.
fn block_on<F: Future>(io: &Io, fut: F) -> F::Output {
    io.block_on(fut).expect("not canceled")
}

/// Bytes that differ at every offset (a misplaced chunk shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

fn read_write(io: &Io, path: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(io, path)
        .unwrap()
}

fn async_traits_round_trip_with_seeks(io: &Io) {
    let dir = TempDir::new("afs-traits");
    let mut f = read_write(io, &dir.path().join("f"));
    block_on(io, async {
        f.write_all(b"0123456789").await.unwrap();
        f.flush().await.unwrap();
        assert_eq!(f.seek(SeekFrom::Start(0)).await.unwrap(), 0);
        let mut three = [0u8; 3];
        f.read_exact(&mut three).await.unwrap();
        assert_eq!(&three, b"012");
        assert_eq!(f.seek(SeekFrom::Current(2)).await.unwrap(), 5);
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"56789");
        assert_eq!(f.seek(SeekFrom::End(-4)).await.unwrap(), 6);
        f.write_all(b"AB").await.unwrap();
        f.close().await.unwrap();
        assert_eq!(f.stream_position().await.unwrap(), 8);
        assert!(
            f.seek(SeekFrom::Current(-100)).await.is_err(),
            "before the start"
        );
    });
    assert_eq!(fs::read(io, dir.path().join("f")).unwrap(), b"012345AB89");
}

fn owned_buffer_methods_round_trip(io: &Io) {
    let dir = TempDir::new("afs-owned");
    let path = dir.path().join("f");
    let f = read_write(io, &path);
    block_on(io, async {
        let (n, buf) = f.write_at_async(b"world".to_vec(), 6).await;
        assert_eq!((n.unwrap(), &buf[..]), (5, &b"world"[..]));
        let (n, _) = f.write_async(b"hello ".to_vec()).await;
        assert_eq!(n.unwrap(), 6);
        f.sync_data_async().await.unwrap();
        f.sync_all_async().await.unwrap();

        let (n, buf) = f.read_at_async(vec![0; 32], 0).await;
        assert_eq!(&buf[..n.unwrap()], b"hello world");
        // At the cursor: after the 6 bytes written there.
        let (n, buf) = f.read_async(vec![7; 3]).await;
        assert_eq!(&buf[..], b"wor");
        assert_eq!(n.unwrap(), 3);
        // Past the end: 0, the buffer untouched.
        let (n, buf) = f.read_at_async(vec![9; 4], 100).await;
        assert_eq!((n.unwrap(), &buf[..]), (0, &[9u8; 4][..]));
        // An empty buffer reads nothing.
        let (n, buf) = f.read_at_async(Vec::new(), 0).await;
        assert_eq!((n.unwrap(), buf.len()), (0, 0));
    });

    let other = dir.path().join("g");
    block_on(io, fs::write_async(io, &other, b"whole file")).unwrap();
    assert_eq!(
        block_on(io, fs::read_async(io, &other)).unwrap(),
        b"whole file"
    );
    let missing = block_on(io, fs::read_async(io, dir.path().join("missing")));
    assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
}

fn errors_come_back_with_the_buffer(io: &Io) {
    let dir = TempDir::new("afs-errors");
    let path = dir.path().join("f");
    fs::write(io, &path, b"data").unwrap();
    let ro = File::open(io, &path).unwrap();
    block_on(io, async {
        let (n, buf) = ro.write_at_async(b"no".to_vec(), 0).await;
        assert!(n.is_err(), "a read-only file refuses writes");
        assert_eq!(buf, b"no", "the buffer comes back");
        let mut ro = File::open(io, &path).unwrap();
        ro.write_all(b"x").await.unwrap(); // write-behind: accepted...
        let err = ro.flush().await.unwrap_err(); // ...its failure reported by the flush
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        ro.flush().await.unwrap();
    });
}

fn a_large_file_round_trips_in_steps(io: &Io) {
    let dir = TempDir::new("afs-large");
    let path = dir.path().join("big");
    // Larger than the 2 MiB a trait call transfers at once, with an odd tail.
    let data = pattern(5 * 1024 * 1024 + 1234);
    let mut f = read_write(io, &path);
    block_on(io, async {
        f.write_all(&data).await.unwrap();
        f.flush().await.unwrap();
        f.seek(SeekFrom::Start(0)).await.unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).await.unwrap();
        let first_diff = back.iter().zip(&data).position(|(a, b)| a != b);
        assert_eq!(
            (back.len(), first_diff),
            (data.len(), None),
            "read back what was written"
        );
        // One owned-buffer read of the whole file (possibly short: loop).
        let mut whole = vec![0u8; data.len()];
        let mut at = 0;
        while at < whole.len() {
            let (n, buf) = f.read_at_async(vec![0; whole.len() - at], at as u64).await;
            let n = n.unwrap();
            assert!(n > 0);
            whole[at..at + n].copy_from_slice(&buf[..n]);
            at += n;
        }
        assert!(whole == data);
    });
    assert_eq!(fs::metadata(io, &path).unwrap().len(), data.len() as u64);
}

/// Polls `fut` once with a waker that does nothing, then drops it: on a ring the op is in the
/// kernel and must keep its buffer until its completion, long after the future is gone.
fn poll_once_then_drop<F: Future>(fut: F) {
    let mut fut = Box::pin(fut);
    let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
}

fn a_read_future_dropped_mid_op_leaves_its_buffer_to_the_op(io: &Io) {
    let dir = TempDir::new("afs-dropped");
    let path = dir.path().join("f");
    let data = pattern(1024 * 1024);
    fs::write(io, &path, &data).unwrap();
    for round in 0..20 {
        let f = File::open(io, &path).unwrap();
        // Dropped mid-read, then the file closed: the op keeps both alive until it ends.
        poll_once_then_drop(f.read_at_async(vec![0; data.len()], 0));
        poll_once_then_drop(f.read_async(vec![0; 4096]));
        drop(f);
        // The heap is reused at once: a freed buffer the kernel still wrote into would show
        // up under ASan, or as corrupted data here.
        let scratch = vec![round as u8; data.len()];
        let g = File::open(io, &path).unwrap();
        let (n, buf) = block_on(io, g.read_at_async(vec![0; 64], 1000));
        assert_eq!(&buf[..n.unwrap()], &data[1000..1064]);
        assert!(scratch.iter().all(|&b| b == round as u8));
    }
}

fn a_write_future_dropped_mid_op_still_lands(io: &Io) {
    let dir = TempDir::new("afs-dropped-write");
    let path = dir.path().join("f");
    let f = File::create(io, &path).unwrap();
    poll_once_then_drop(f.write_at_async(b"landed".to_vec(), 0));
    drop(f);
    // The op owns its buffer and descriptor: it completes although nobody waits for it.
    let give_up = crate::support::now() + Duration::from_secs(20);
    while fs::read(io, &path).unwrap() != b"landed" {
        assert!(
            crate::support::now() < give_up,
            "the dropped write never landed"
        );
        io.sleep(Duration::from_millis(2)).unwrap();
    }
}

fn many_concurrent_reads_from_futures(io: &Io) {
    let dir = TempDir::new("afs-many");
    let path = dir.path().join("f");
    const CHUNK: usize = 4096;
    const CHUNKS: usize = 64;
    let data = pattern(CHUNK * CHUNKS);
    fs::write(io, &path, &data).unwrap();
    let f = File::open(io, &path).unwrap();
    // All in flight at once from one task.
    let reads = (0..CHUNKS).map(|i| f.read_at_async(vec![0; CHUNK], (i * CHUNK) as u64));
    let results = block_on(io, futures::future::join_all(reads));
    for (i, (n, buf)) in results.into_iter().enumerate() {
        assert_eq!(n.unwrap(), CHUNK);
        assert!(buf[..] == data[i * CHUNK..(i + 1) * CHUNK], "chunk {i}");
    }
    // And from several tasks at once, each with its reads in flight.
    let mut group = zsync::Group::new(io);
    for t in 0..4 {
        let f = f.try_clone().unwrap();
        let data = data.clone();
        group.spawn(move |io| {
            let reads = (0..CHUNKS / 4).map(|i| {
                let at = ((t * CHUNKS / 4 + i) * CHUNK) as u64;
                let read = f.read_at_async(vec![0; CHUNK], at);
                async move { (at, read.await) }
            });
            let reads: Vec<_> = reads.collect();
            for (at, (n, buf)) in block_on(io, futures::future::join_all(reads)) {
                let at = at as usize;
                assert_eq!(n.unwrap(), CHUNK);
                assert!(buf[..] == data[at..at + CHUNK]);
            }
        });
    }
    group.join_all().unwrap();
}

fn many_file_reads_from_future_tasks(io: &Io) {
    let dir = TempDir::new("afs-tasks");
    let path = dir.path().join("f");
    const CHUNK: usize = 8192;
    const TASKS: usize = 32;
    let data = std::sync::Arc::new(pattern(CHUNK * TASKS));
    fs::write(io, &path, &data[..]).unwrap();
    let f = std::sync::Arc::new(File::open(io, &path).unwrap());
    // Each task reads its chunk in four steps; on Green a task may be polled on another
    // worker than the one whose ring holds its op.
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (f, data) = (f.clone(), data.clone());
            io.spawn_future(async move {
                let mut got = Vec::with_capacity(CHUNK);
                while got.len() < CHUNK {
                    let at = t * CHUNK + got.len();
                    let (n, buf) = f.read_at_async(vec![0; CHUNK / 4], at as u64).await;
                    let n = n.unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got[..] == data[t * CHUNK..(t + 1) * CHUNK], "task {t}");
                t
            })
        })
        .collect();
    for (t, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.join().unwrap(), t);
    }
    // The traits from a future task, too.
    let p = path.clone();
    let io2 = io.clone();
    let whole = io
        .spawn_future(async move {
            let mut f = File::open(&io2, &p).unwrap();
            let mut all = Vec::new();
            f.read_to_end(&mut all).await.unwrap();
            all
        })
        .join()
        .unwrap();
    assert!(whole[..] == data[..]);
}

fn a_future_task_canceled_mid_read_leaves_its_buffer_to_the_op(io: &Io) {
    let dir = TempDir::new("afs-cancel");
    let path = dir.path().join("f");
    let data = pattern(512 * 1024);
    fs::write(io, &path, &data).unwrap();
    let f = std::sync::Arc::new(File::open(io, &path).unwrap());
    for _ in 0..20 {
        let g = f.clone();
        let task = io.spawn_future(async move {
            let (n, _buf) = g.read_at_async(vec![0; 512 * 1024], 0).await;
            n.unwrap()
        });
        io.yield_now(); // let it start, maybe
                        // Canceled: dropped at its next poll, its read (if started) still in flight.
        match task.cancel() {
            Ok(n) => assert_eq!(n, data.len()),
            Err(e) => assert!(zsync::is_canceled(&e), "{e}"),
        }
    }
    let (n, buf) = block_on(io, f.read_at_async(vec![0; 16], 100));
    assert_eq!(&buf[..n.unwrap()], &data[100..116]);
}

/// A `File` that is a FIFO waits for data; a read future dropped while it waits lets go of
/// whatever waited for it (the run's shutdown, and the leak check, see no helper left behind).
fn a_fifo_file_from_async_code(io: &Io) {
    let dir = TempDir::new("afs-fifo");
    let path = dir.path().join("fifo");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Read-write: opening does not wait for another end (Linux).
    let mut fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(io, &path)
        .unwrap();
    // Nothing to read yet: the first poll is pending on every model (the wait is the driver's
    // readiness, not a blocking read), and dropping the future takes nothing.
    poll_once_then_drop(fifo.read_async(vec![0; 16]));
    block_on(io, async {
        let (n, _) = fifo.write_async(b"through".to_vec()).await;
        assert_eq!(n.unwrap(), 7);
        let mut got = [0u8; 7];
        fifo.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"through");
    });
}

fn a_file_dropped_with_a_write_behind_keeps_the_write(io: &Io) {
    let dir = TempDir::new("afs-write-behind");
    let path = dir.path().join("f");
    let mut f = File::create(io, &path).unwrap();
    let n = block_on(io, f.write(b"behind")).unwrap();
    assert_eq!(n, 6);
    drop(f); // not flushed: the write in flight still lands
    let give_up = crate::support::now() + Duration::from_secs(20);
    while fs::read(io, &path).unwrap() != b"behind" {
        assert!(
            crate::support::now() < give_up,
            "the write-behind never landed"
        );
        io.sleep(Duration::from_millis(2)).unwrap();
    }
}

conformance! {
    async_traits_round_trip_with_seeks,
    owned_buffer_methods_round_trip,
    errors_come_back_with_the_buffer,
    a_large_file_round_trips_in_steps,
    a_read_future_dropped_mid_op_leaves_its_buffer_to_the_op,
    a_write_future_dropped_mid_op_still_lands,
    many_concurrent_reads_from_futures,
    many_file_reads_from_future_tasks,
    a_future_task_canceled_mid_read_leaves_its_buffer_to_the_op,
    a_file_dropped_with_a_write_behind_keeps_the_write,
    a_fifo_file_from_async_code,
}

#[cfg(feature = "tokio-io")]
standalone! {
    /// tokio's traits (feature `tokio-io`) on the same `File`, without a Tokio runtime.
    #[test]
    fn tokio_traits_round_trip_without_a_tokio_runtime() {
        use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
        let dir = TempDir::new("afs-tokio");
        let path = dir.path().join("f");
        zsync::run(zsync::Model::Threaded, |io| {
            let mut f = read_write(io, &path);
            block_on(io, async {
                AsyncWriteExt::write_all(&mut f, b"tokio traits").await.unwrap();
                AsyncWriteExt::flush(&mut f).await.unwrap();
                let at = AsyncSeekExt::seek(&mut f, SeekFrom::Start(6)).await.unwrap();
                assert_eq!(at, 6);
                let mut s = String::new();
                AsyncReadExt::read_to_string(&mut f, &mut s).await.unwrap();
                assert_eq!(s, "traits");
            });
        });
    }
}

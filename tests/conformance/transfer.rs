//! Conformance tests: zero-copy transfers from files that are *not* in the page cache (on a
//! Green io_uring worker these take the ring's `SPLICE`: file → pipe on a kernel io-wq thread,
//! pipe → socket as a syscall), and transfers to a stalled peer: the task's deadline, the
//! socket's write timeout and cancellation each end them, on every model.
//!
//! The leak check (tests/leaks.rs) runs these bodies too: a transfer that fails or is canceled
//! mid-way must close its pipe.

use std::io::{self, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zsync::bufio::Writer;
use zsync::fs::File;
use zsync::net::UnixStream;
use zsync::transfer;
use zsync::Io;

use crate::support::pattern;
use crate::support::{self, TempDir};
use crate::tcp::{cancel_blocked, pair as tcp_pair, pair_with_vanishing_reader};

/// How long a stalled transfer is given before its deadline or timeout.
const STALL: Duration = Duration::from_millis(150);
/// How late a deadline or timeout may end the transfer (a loaded CI machine).
const LATE: Duration = Duration::from_secs(5);

/// Writes `bytes` to `dir/name`, writes them back to the disk and drops them from the page
/// cache, so the next read of the file must go to the disk.
fn cold_file(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    evict(&path);
    path
}

fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

/// A sparse file of `len` bytes (zeros, no disk blocks), not in the page cache.
fn cold_sparse(dir: &TempDir, name: &str, len: u64) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    evict(&path);
    path
}

fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    r.read_to_end(&mut all)?;
    Ok(all)
}

// ---- from a cold file -----------------------------------------------------------------------

fn send_file_of_a_cold_file_from_an_offset(io: &Io) {
    let dir = TempDir::new("transfer-cold");
    let data = pattern(3 << 20, 11);
    let path = cold_file(&dir, "src", &data);
    let file = File::open(io, &path).unwrap();
    if support::has_concurrency(io) {
        let (c, s) = tcp_pair(io);
        let reader = io.concurrent(move |_| read_all(s)).unwrap();
        assert_eq!(
            transfer::send_file(&c, &file, 12_345, 2_500_000).unwrap(),
            2_500_000
        );
        evict(&path);
        assert_eq!(
            transfer::splice(&c, &file, 777, 1_200_000).unwrap(),
            1_200_000
        );
        evict(&path);
        let mut w = Writer::new(&c);
        std::io::Write::write_all(&mut w, b"HEAD").unwrap();
        assert_eq!(w.send_file(&file, 2_900_000, 200_000).unwrap(), 200_000);
        drop(w);
        drop(c);
        let got = reader.join().unwrap().unwrap();
        let want = [
            &data[12_345..2_512_345],
            &data[777..1_200_777],
            b"HEAD",
            &data[2_900_000..3_100_000],
        ]
        .concat();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes differ");
    } else {
        // What fits in a socket pair's buffer.
        let (a, b) = UnixStream::pair(io).unwrap();
        assert_eq!(
            transfer::send_file(&a, &file, 12_345, 30_000).unwrap(),
            30_000
        );
        assert_eq!(transfer::splice(&a, &file, 777, 20_000).unwrap(), 20_000);
        drop(a);
        let got = read_all(b).unwrap();
        assert_eq!(got, [&data[12_345..42_345], &data[777..20_777]].concat());
    }
    // The source's own offset is neither used nor moved.
    assert_eq!(std::io::Seek::stream_position(&mut &file).unwrap(), 0);
}

fn send_file_of_a_cold_file_that_ends_first(io: &Io) {
    let dir = TempDir::new("transfer-cold-eof");
    let data = pattern(10_000, 12);
    let path = cold_file(&dir, "src", &data);
    let file = File::open(io, &path).unwrap();
    let (a, b) = UnixStream::pair(io).unwrap();
    assert_eq!(transfer::send_file(&a, &file, 4000, 100_000).unwrap(), 6000);
    evict(&path);
    assert_eq!(transfer::splice(&a, &file, 9000, 100_000).unwrap(), 1000);
    evict(&path);
    assert_eq!(transfer::send_file(&a, &file, 10_000, 10).unwrap(), 0);
    assert_eq!(transfer::send_file(&a, &file, 50_000, 10).unwrap(), 0);
    drop(a);
    assert_eq!(
        read_all(b).unwrap(),
        [&data[4000..], &data[9000..]].concat()
    );
}

/// `zsync::copy` from a cold file reads at (and advances) the file's own offset.
fn copy_of_a_cold_file_from_its_position(io: &Io) {
    let dir = TempDir::new("transfer-cold-copy");
    let data = pattern(40_000, 13);
    let path = cold_file(&dir, "src", &data);
    let mut file = File::open(io, &path).unwrap();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(25_000)).unwrap();
    let (a, b) = UnixStream::pair(io).unwrap();
    assert_eq!(zsync::copy(&file, &a).unwrap(), 15_000);
    assert_eq!(std::io::Seek::stream_position(&mut file).unwrap(), 40_000);
    drop(a);
    assert_eq!(read_all(b).unwrap(), &data[25_000..]);
}

/// The peer goes away while a transfer from a cold file is blocked on it: a clear error, no
/// panic, no SIGPIPE, no pipe left open (the leak check).
fn send_file_of_a_cold_file_to_a_peer_that_closes(io: &Io) {
    let dir = TempDir::new("transfer-cold-closes");
    let path = cold_sparse(&dir, "big", 64 << 20);
    let file = File::open(io, &path).unwrap();
    if support::has_concurrency(io) {
        for how in ["send_file", "splice"] {
            evict(&path);
            let (c, peer) = pair_with_vanishing_reader(io);
            let r = match how {
                "send_file" => transfer::send_file(&c, &file, 0, 64 << 20),
                _ => transfer::splice(&c, &file, 0, 64 << 20),
            };
            peer.join().unwrap().unwrap();
            let e = r.expect_err(how);
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{how}: {e:?}"
            );
        }
    }
    for how in ["send_file", "splice"] {
        evict(&path);
        let (a, b) = UnixStream::pair(io).unwrap();
        drop(b);
        let r = match how {
            "send_file" => transfer::send_file(&a, &file, 0, 1 << 20),
            _ => transfer::splice(&a, &file, 0, 1 << 20),
        };
        assert_eq!(r.expect_err(how).kind(), ErrorKind::BrokenPipe, "{how}");
    }
}

// ---- socket to socket ------------------------------------------------------------------------

/// `zsync::copy` between two sockets (a proxy) moves every byte in order through a pipe, ends
/// at the source's end of stream, and reports a peer that went away.
fn copy_between_two_sockets(io: &Io) {
    let data = pattern(
        if support::has_concurrency(io) {
            3 << 20
        } else {
            20_000
        },
        15,
    );
    let (mut in_w, in_r) = UnixStream::pair(io).unwrap();
    let (out_w, out_r) = tcp_pair(io);
    if support::has_concurrency(io) {
        let feed = data.clone();
        let writer = io
            .concurrent(move |_| std::io::Write::write_all(&mut in_w, &feed))
            .unwrap();
        let reader = io.concurrent(move |_| read_all(out_r)).unwrap();
        assert_eq!(zsync::copy(&in_r, &out_w).unwrap(), data.len() as u64);
        writer.join().unwrap().unwrap();
        drop(out_w);
        assert!(reader.join().unwrap().unwrap() == data);
    } else {
        std::io::Write::write_all(&mut in_w, &data).unwrap();
        drop(in_w);
        assert_eq!(zsync::copy(&in_r, &out_w).unwrap(), data.len() as u64);
        drop(out_w);
        assert_eq!(read_all(out_r).unwrap(), data);
    }
    // Into a socket whose peer is gone.
    let (mut a, b) = UnixStream::pair(io).unwrap();
    let (c, d) = UnixStream::pair(io).unwrap();
    drop(d);
    std::io::Write::write_all(&mut a, b"lost").unwrap();
    drop(a);
    let e = zsync::copy(&b, &c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
}

// ---- a stalled peer ---------------------------------------------------------------------------

/// The ways into a socket that the stall tests run: each sends far more than the socket
/// buffers hold to a peer that never reads.
const STALLED: [&str; 4] = ["send_file", "send_file cold", "splice", "drain"];

fn stalled_send(io: &Io, how: &str, sink: &UnixStream, dir: &TempDir) -> io::Result<u64> {
    send_stalled(how, sink, &stalled_source(io, how, dir))
}

/// The source file of a stalled send: 64 MiB, sparse, dropped from the page cache for
/// `send_file cold`.
fn stalled_source(io: &Io, how: &str, dir: &TempDir) -> File {
    let path = dir.path().join("big");
    if !path.exists() {
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
    }
    if how == "send_file cold" {
        evict(&path);
    }
    File::open(io, &path).unwrap()
}

/// Sends far more of `file` (or of memory, for `drain`) into `sink` than its buffers hold.
fn send_stalled(how: &str, sink: &UnixStream, file: &File) -> io::Result<u64> {
    match how {
        "send_file" | "send_file cold" => transfer::send_file(sink, file, 0, 64 << 20),
        "splice" => transfer::splice(sink, file, 0, 64 << 20),
        _ => Writer::with_capacity(0, sink).drain(&[b"0123456789abcdef"], 1 << 22),
    }
}

/// The task's deadline ends a transfer stalled on a peer that does not read, with `TimedOut`,
/// on every model (Blocking too: nothing else needs to run).
fn deadline_on_a_stalled_send_file(io: &Io) {
    let dir = TempDir::new("transfer-deadline");
    for how in STALLED {
        let (a, _b) = UnixStream::pair(io).unwrap();
        let t0 = crate::support::now();
        let r = io.timeout_until(t0 + STALL, |_| stalled_send(io, how, &a, &dir));
        let took = crate::support::elapsed(t0);
        let e = r.expect_err(how);
        assert!(zsync::is_timed_out(&e), "{how}: {e:?}");
        assert!(took >= STALL, "{how}: ended after {took:?}");
        assert!(took < STALL + LATE, "{how}: ended after {took:?}");
    }
}

/// A socket's write timeout bounds each wait of a transfer into it: a peer that stops reading
/// makes the transfer fail with `WouldBlock` (as a std socket's timeout), on every model.
fn write_timeout_on_a_stalled_send_file(io: &Io) {
    let dir = TempDir::new("transfer-write-timeout");
    for how in STALLED {
        let (a, _b) = UnixStream::pair(io).unwrap();
        a.set_write_timeout(Some(STALL)).unwrap();
        let t0 = crate::support::now();
        let r = stalled_send(io, how, &a, &dir);
        let took = crate::support::elapsed(t0);
        let e = r.expect_err(how);
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{how}: {e:?}");
        assert!(took >= STALL, "{how}: ended after {took:?}");
        assert!(took < STALL + LATE, "{how}: ended after {took:?}");
    }
    // A peer that reads slowly but steadily never trips the timeout: it bounds a wait, not the
    // transfer.
    if support::has_concurrency(io) {
        let data = pattern(2 << 20, 14);
        let path = cold_file(&dir, "steady", &data);
        let file = File::open(io, &path).unwrap();
        let (a, b) = UnixStream::pair(io).unwrap();
        a.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let reader = io
            .concurrent(move |io| {
                let mut b = b;
                let mut all = Vec::new();
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = b.read(&mut buf)?;
                    if n == 0 {
                        return Ok::<_, io::Error>(all);
                    }
                    all.extend_from_slice(&buf[..n]);
                    io.sleep(Duration::from_millis(2))?;
                }
            })
            .unwrap();
        assert_eq!(transfer::send_file(&a, &file, 0, 2 << 20).unwrap(), 2 << 20);
        drop(a);
        assert!(reader.join().unwrap().unwrap() == data);
    }
}

/// Cancellation ends a transfer stalled on a peer that does not read, from a cached and from a
/// cold file, on every model with concurrency.
fn cancel_of_a_stalled_send_file(io: &Io) {
    let dir = TempDir::new("transfer-cancel");
    for how in STALLED {
        let (a, b) = UnixStream::pair(io).unwrap();
        // The file is prepared here, not in the task: on a loaded machine the cancel could
        // land while the task still wrote back and opened the file (a cancellation point),
        // and the test failed on that open instead of canceling the stalled send.
        let file = stalled_source(io, how, &dir);
        if !cancel_blocked(io, how, move |_| send_stalled(how, &a, &file)) {
            return;
        }
        drop(b);
    }
}

conformance! {
    send_file_of_a_cold_file_from_an_offset,
    copy_between_two_sockets,
    send_file_of_a_cold_file_that_ends_first,
    copy_of_a_cold_file_from_its_position,
    send_file_of_a_cold_file_to_a_peer_that_closes,
    deadline_on_a_stalled_send_file,
    write_timeout_on_a_stalled_send_file,
    cancel_of_a_stalled_send_file,
}

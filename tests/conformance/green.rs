//! Conformance tests: the Green model's I/O backends (io_uring ring ops and epoll readiness).
//!
//! The bodies run on every model; those about ring ops check the same invariants everywhere
//! (they are only the interesting case on `green_uring`). Tests that need a runtime of their own
//! (choosing the backend, the environment override) are `standalone!` items: the leak-check
//! binary leaves them out.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::net::{TcpListener, TcpStream, UnixStream};
use zsync::Io;

use crate::support::{self, assert_canceled};

conformance! {
    backend_name_names_an_engine,
    cancel_storm_on_idle_reads,
    read_canceled_right_after_data_arrives_keeps_the_data,
    ring_ops_roundtrip_tcp_and_files,
}

fn backend_name_names_an_engine(io: &Io) {
    match io.model_name() {
        "Green" => assert!(
            ["io_uring", "epoll"].contains(&io.backend_name()),
            "{}",
            io.backend_name()
        ),
        _ => assert_eq!(io.backend_name(), "syscalls"),
    }
}

/// Waits until `n` tasks announced themselves, then gives them time to enter their read.
fn wait_for(io: &Io, counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::SeqCst) < n {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    io.sleep(Duration::from_millis(20)).unwrap();
}

/// 100 tasks blocked in `read` on idle sockets, all canceled: every one returns `Canceled`,
/// and (checked by the leak test) every socket and in-flight op is released.
fn cancel_storm_on_idle_reads(io: &Io) {
    if !support::has_concurrency(io) {
        return;
    }
    const TASKS: usize = 100;
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let mut peers = Vec::new(); // kept open: the reads stay idle
    for _ in 0..TASKS {
        let (mut a, b) = UnixStream::pair(io).unwrap();
        peers.push(b);
        let started = started.clone();
        tasks.push(
            io.concurrent(move |_| {
                started.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 64];
                a.read(&mut buf)
            })
            .unwrap(),
        );
    }
    wait_for(io, &started, TASKS);
    for t in &tasks {
        t.request_cancel();
    }
    for t in tasks {
        assert_canceled(t.join().unwrap());
    }
    drop(peers);
}

/// Data arrives and the reader is canceled right after: whatever the race gives, no byte is
/// lost. Either the read returns the data, or it reports `Canceled` and the data is still
/// in the socket.
fn read_canceled_right_after_data_arrives_keeps_the_data(io: &Io) {
    if !support::has_concurrency(io) {
        return;
    }
    let (mut ok, mut canceled) = (0, 0);
    for round in 0..100u8 {
        let (mut a, mut b) = UnixStream::pair(io).unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let reader = io
            .concurrent(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 16];
                let r = a.read(&mut buf).map(|n| buf[..n].to_vec());
                (r, a)
            })
            .unwrap();
        while started.load(Ordering::SeqCst) == 0 {
            io.yield_now();
        }
        if round % 2 == 0 {
            // Sometimes let the reader get all the way into its wait.
            io.sleep(Duration::from_millis(1)).unwrap();
        }
        b.write_all(&[round; 4]).unwrap();
        let (r, mut a) = reader.cancel();
        match r {
            Ok(data) => {
                assert_eq!(data, vec![round; 4]);
                ok += 1;
            }
            Err(e) => {
                assert!(zsync::is_canceled(&e), "{e:?}");
                let mut buf = [0u8; 16];
                let n = a.read(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[round; 4], "a canceled read dropped data");
                canceled += 1;
            }
        }
    }
    assert_eq!(ok + canceled, 100);
}

/// The ops the ring runs (accept, connect, recv, send, pread, pwrite, fsync) give the same
/// results as syscalls.
fn ring_ops_roundtrip_tcp_and_files(io: &Io) {
    let l = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut c = TcpStream::connect(io, addr).unwrap();
    let (mut s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    for i in 0..50u32 {
        c.write_all(&i.to_le_bytes()).unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), i);
    }
    drop(c);
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);

    let dir = support::TempDir::new("green-ring");
    let path = dir.path().join("f");
    let f = zsync::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(io, &path)
        .unwrap();
    assert_eq!(f.write_at(b"hello ring", 3).unwrap(), 10);
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    let mut buf = [0u8; 13];
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 13);
    assert_eq!(&buf, b"\0\0\0hello ring");
    assert_eq!(f.read_at(&mut buf, 100).unwrap(), 0, "past the end");
}

standalone! {
    #[test]
    fn a_forced_backend_is_the_one_used() {
        let name = |b| {
            zsync::Builder::new(zsync::Model::Green)
                .worker_threads(1)
                .backend(b)
                .run(|io| io.backend_name())
        };
        assert_eq!(name(zsync::Backend::Epoll), "epoll");
        assert_eq!(name(zsync::Backend::IoUring), "io_uring");
        assert_eq!(name(zsync::Backend::Auto), {
            match std::env::var("ZSYNC_BACKEND").as_deref() {
                Ok("epoll") => "epoll",
                _ => "io_uring", // this machine has io_uring (a forced IoUring above worked)
            }
        });
    }

    /// `ZSYNC_BACKEND=epoll` turns `Auto` into epoll: checked in a child process (this test
    /// binary re-run with the variable set and a filter selecting the child test).
    #[test]
    fn env_override_selects_epoll_for_auto() {
        let exe = std::env::current_exe().unwrap();
        for (value, expected) in [("epoll", "epoll"), ("io_uring", "io_uring")] {
            let out = std::process::Command::new(&exe)
                .args(["--exact", "green::env_override_child", "--nocapture", "--include-ignored"])
                .env("ZSYNC_BACKEND", value)
                .env("ZSYNC_TEST_EXPECT_BACKEND", expected)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "child failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
        }
    }

    /// Run by `env_override_selects_epoll_for_auto` only.
    #[test]
    #[ignore = "run in a child process by env_override_selects_epoll_for_auto"]
    fn env_override_child() {
        let expected = std::env::var("ZSYNC_TEST_EXPECT_BACKEND").unwrap();
        let name = zsync::Builder::new(zsync::Model::Green)
            .worker_threads(1)
            .run(|io| io.backend_name());
        assert_eq!(name, expected);
    }
}

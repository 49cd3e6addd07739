//! A dropped `zsync::Runtime` leaves no thread and no file descriptor behind, on every model,
//! also when created and dropped 100 times in a row.
//!
//! A binary of its own with a single test, so that no other test starts threads or opens
//! descriptors while the counts are taken.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zsync::net::{TcpListener, TcpStream};
use zsync::Io;

#[path = "conformance/support/mod.rs"]
#[allow(unused_macros)]
mod support;

use support::{open_fds, quiescent_thread_count, settled_thread_count};

/// Some work that touches what a runtime owns: tasks, a sleep, a socket pair (on Green, the
/// workers' reactors or rings).
fn work(io: &Io) {
    let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(io, addr).unwrap();
    client.write_all(b"ping").unwrap();
    let server = io.spawn(move |_| {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0; 4];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf).unwrap();
    });
    let mut reply = [0; 4];
    client.read_exact(&mut reply).unwrap();
    server.join().unwrap();
    assert_eq!(&reply, b"ping");
    io.sleep(Duration::from_millis(1)).unwrap();
}

#[test]
fn a_dropped_runtime_leaves_no_thread_and_no_fd() {
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Acquire) {
                if start.elapsed() > Duration::from_secs(300) {
                    eprintln!("runtime_leaks hung: aborting");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    // `block_on` runs on a fresh thread each time, as `main` of a program would: thread-local
    // state (a thread's wake-up eventfd) goes when that thread ends, as in real programs.
    let use_once = |make: support::MakeBuilder| {
        std::thread::spawn(move || {
            let rt = make().worker_threads(2).build().unwrap();
            rt.block_on(work);
            if rt.io().supports_concurrency() {
                // Left sleeping for the drop to cancel.
                rt.spawn(|io| io.sleep(Duration::from_secs(3600))).detach();
            }
            let handle = rt.handle();
            std::thread::spawn(move || handle.spawn(|io| io.sleep(Duration::from_millis(1))))
                .join()
                .unwrap()
                .join()
                .unwrap()
                .unwrap();
            drop(rt);
        })
        .join()
        .unwrap()
    };
    // Process-wide lazies (the resolver, the io_uring probe) before the baseline.
    for (_, make) in support::models() {
        use_once(make);
    }
    let fds_before = open_fds();
    let threads_before = quiescent_thread_count();
    for (name, make) in support::models() {
        use_once(make);
        assert_eq!(
            settled_thread_count(threads_before),
            threads_before,
            "{name}: a thread outlived the Runtime"
        );
        assert_eq!(
            open_fds(),
            fds_before,
            "{name}: a descriptor outlived the Runtime"
        );
        // Created and dropped in a loop, with a task at each drop.
        for _ in 0..100 {
            let rt = make().worker_threads(2).build().unwrap();
            assert_eq!(rt.block_on(|io| io.spawn(|_| 7).join().unwrap()), 7);
            if rt.io().supports_concurrency() {
                rt.spawn(|io| io.sleep(Duration::from_secs(3600))).detach();
            }
            drop(rt);
        }
        assert_eq!(
            settled_thread_count(threads_before),
            threads_before,
            "{name}: 100 Runtimes left threads"
        );
        assert_eq!(
            open_fds(),
            fds_before,
            "{name}: 100 Runtimes left descriptors"
        );
    }
    done.store(true, Ordering::Release);
}

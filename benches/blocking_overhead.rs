//! Overhead of the Blocking model over calling std directly.
//!
//! The claim under test: on [`Model::Blocking`] zsync is "std plus a cancellation check", so a
//! colorblind program pays nothing measurable for being colorblind. Each group measures the same
//! operation twice, side by side:
//!
//! - `std`: the operation written against std, no runtime anywhere;
//! - `zsync-blocking`: the same operation through zsync inside `zsync::run(Model::Blocking, ..)`.
//!
//! Groups:
//!
//! - `tcp_loopback_64B`: write 64 bytes on one end of a connected loopback TCP pair, read them
//!   back on the other end (`std::net` vs `zsync::net`). Two syscalls per iteration, so this is
//!   the per-operation I/O path: zsync tries the non-blocking syscall first and only polls on
//!   `WouldBlock`, which loopback data never hits.
//! - `spawn_join`: `io.spawn(|_| x).join()` vs calling the function. On Blocking `spawn` runs the
//!   closure inline; what remains is the panic guard and the task handle.
//! - `sleep_zero`: `io.sleep(Duration::ZERO)` vs `std::thread::sleep(Duration::ZERO)`. Neither
//!   makes a syscall (std returns at once for zero); zsync's is a cancellation point, so this
//!   measures the cost of a cancellation check plus two clock reads.
//!
//! The runtime is set up once per group and every iteration runs inside it, so what is measured
//! is the per-operation cost, not `run`'s setup. Measurement windows are short (2 s, 0.5 s warm
//! up) so the whole bench finishes in well under a minute:
//!
//! ```text
//! cargo bench --bench blocking_overhead
//! ```

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use zsync::{Io, Model};

/// Bytes written and read back per round trip in the TCP group.
const MSG: usize = 64;

/// Criterion settings shared by every group: short windows, enough samples for a stable median.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

/// A connected std loopback pair `(client, server)` with Nagle off, so each write leaves at once.
fn std_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// The same pair through zsync. The connection sits in the kernel backlog until `accept`, so
/// this works inline on Blocking without any concurrency.
fn zsync_pair(io: &Io) -> (zsync::net::TcpStream, zsync::net::TcpStream) {
    let listener = zsync::net::TcpListener::bind(io, "127.0.0.1:0").expect("bind loopback");
    let client =
        zsync::net::TcpStream::connect(io, listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

fn tcp_loopback(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_loopback_64B");
    let msg = [0x5au8; MSG];

    group.bench_function("std", |b| {
        let (mut client, mut server) = std_pair();
        let mut buf = [0u8; MSG];
        b.iter(|| {
            client.write_all(black_box(&msg)).unwrap();
            server.read_exact(&mut buf).unwrap();
            black_box(&buf);
        });
    });

    // One runtime for the whole measurement: `b.iter` runs inside the root task, so every
    // read and write goes through zsync's cancellation-aware path, exactly as application code.
    zsync::run(Model::Blocking, |io| {
        group.bench_function("zsync-blocking", |b| {
            let (mut client, mut server) = zsync_pair(io);
            let mut buf = [0u8; MSG];
            b.iter(|| {
                client.write_all(black_box(&msg)).unwrap();
                server.read_exact(&mut buf).unwrap();
                black_box(&buf);
            });
        });
    });

    group.finish();
}

/// The work a spawned task does: small enough that the spawn machinery dominates.
#[inline(never)]
fn work(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");

    group.bench_function("std", |b| {
        b.iter(|| work(black_box(42)));
    });

    zsync::run(Model::Blocking, |io| {
        group.bench_function("zsync-blocking", |b| {
            b.iter(|| {
                let x = black_box(42);
                io.spawn(move |_| work(x)).join().unwrap()
            });
        });
    });

    group.finish();
}

fn sleep_zero(c: &mut Criterion) {
    let mut group = c.benchmark_group("sleep_zero");

    group.bench_function("std", |b| {
        b.iter(|| std::thread::sleep(black_box(Duration::ZERO)));
    });

    zsync::run(Model::Blocking, |io| {
        group.bench_function("zsync-blocking", |b| {
            b.iter(|| io.sleep(black_box(Duration::ZERO)).unwrap());
        });
    });

    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = tcp_loopback, spawn_join, sleep_zero
}
criterion_main!(benches);

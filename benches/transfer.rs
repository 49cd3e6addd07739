//! Zero-copy transfers against the usual ways, side by side, in one run.
//!
//! 1. **File copy** (1 GiB by default): `zsync::copy` (on Blocking and on Green) vs
//!    `std::io::copy` vs spawning `cp`. The source is written once and read from the page cache
//!    by every contender; each destination is deleted after its run.
//! 2. **Serving a file over loopback TCP** (100 MiB by default): `zsync::transfer::send_file` on
//!    every model (and `transfer::splice` on Blocking) vs a `sendfile(2)` loop, `splice(2)`
//!    through a pipe, a read/write loop through a 256 KiB buffer and `std::io::copy` from a file
//!    to a socket (which std does with `read`/`sendto` through an 8 KiB buffer, not `sendfile`:
//!    see `strace -c`). A std client thread reads everything into a 256 KiB buffer; the time is
//!    from the server's start (inside a running runtime for zsync) to the client seeing end of
//!    stream. The serving and measuring code is `benches/transfer/serve.rs`, which the runner's
//!    transfer section (`bench/src/transfer.rs`) compiles too.
//!
//! Each contender runs `COPY_ROUNDS` / `SERVE_ROUNDS` times, interleaved with the others in a
//! rotating order; the table shows the best and median time of each and, for zsync, two ratios
//! to the fastest non-zsync contender (higher is better): best time against best time, and the
//! median over rounds of the ratio within a round. The serve runs twice, with the server and the
//! client pinned to different CPUs and to the same one: on this kind of 2-core VM the scheduler
//! otherwise picks either placement depending on the other load, and the two give opposite
//! answers (see docs/ARCHITECTURE.md, "Zero-copy transfers").
//!
//! 3. **Zero-copy writes over loopback**: `TcpStream::write_all` of 16 KiB, 64 KiB and 1 MiB
//!    buffers (64 MiB per round by default, `ZSYNC_BENCH_ZC_MIB`) on Green io_uring, with
//!    `IORING_OP_SEND_ZC` forced on (`set_zero_copy_send(true)`) and off, against a std
//!    `write_all` loop; the client is a std thread on the other CPU.
//! 4. **A fill pattern**: `Writer::drain` of one byte repeated a million times.
//!
//! `ZSYNC_BENCH_ONLY=copy,serve,cold,zc,splat` runs only the named sections.
//!
//! ```text
//! cargo bench --bench transfer
//! ZSYNC_BENCH_COPY_MIB=256 ZSYNC_BENCH_SERVE_MIB=100 cargo bench --bench transfer
//! ```
//!
//! Files go to `ZSYNC_BENCH_DIR` (default: the system temp dir); check its free space first
//! (`df -h /tmp`): the copy needs twice its size.

#[path = "transfer/serve.rs"]
mod serve;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serve::{Contender, Placement};
use zsync::fs::File;
use zsync::{Backend, Model};

/// Rounds of the file copy (each copies the whole file once per contender).
const COPY_ROUNDS: usize = 9;
/// Rounds of the loopback serve (short: more rounds to see through scheduling noise).
const SERVE_ROUNDS: usize = 21;
/// Rounds of the serve from a file not in the page cache (each reads it from the disk).
const COLD_ROUNDS: usize = 5;

fn env_mib(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the contenders (`serve::measure`) and prints each one's best and median time and, for
/// zsync, its two ratios to the fastest non-zsync contender (higher is better).
fn report(title: &str, bytes: u64, rounds: usize, contenders: &mut [Contender<'_>]) {
    let rows = serve::measure(bytes, rounds, contenders);
    println!("\n{title} ({} MiB, {rounds} rounds)", bytes >> 20);
    println!(
        "{:<36} {:>9} {:>9} {:>7} {:>11} {:>13}",
        "contender", "best", "median", "GiB/s", "best/best", "per-round med"
    );
    for r in rows {
        let x = |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_default();
        println!(
            "{:<36} {:>7.1}ms {:>7.1}ms {:>7.2} {:>11} {:>13}",
            r.contender,
            r.best_ms,
            r.median_ms,
            r.best_gib_s,
            x(r.vs_best_peer),
            x(r.vs_peer_per_round)
        );
    }
}

fn timed_copy(dst: &Path, f: impl FnOnce() -> u64, expect: u64) -> Duration {
    let t0 = Instant::now();
    let n = f();
    let t = t0.elapsed();
    assert_eq!(n, expect);
    std::fs::remove_file(dst).unwrap();
    t
}

fn zsync_copy(model: Model, src: &Path, dst: &Path) -> u64 {
    zsync::run(model, |io| {
        let from = File::open(io, src).unwrap();
        let to = File::create(io, dst).unwrap();
        zsync::copy(&from, &to).unwrap()
    })
}

/// Whether the kernel lets this process use io_uring. Where it does not, the first call prints
/// why, and the Green io_uring rows are left out of the tables.
fn io_uring_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| match Backend::IoUring.resolve() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("Green io_uring rows skipped: io_uring unavailable: {e}");
            false
        }
    })
}

/// One serve table: every contender serves `src` to a client placed as `at`, `rounds` times; a
/// `cold` table drops the file from the page cache before each transfer.
fn serve_table(
    listener: &TcpListener,
    src: &Path,
    serve_bytes: u64,
    (where_, at): (&str, Placement),
    cold: bool,
    rounds: usize,
) {
    let mut servers =
        serve::serve_contenders(listener, src, serve_bytes, at, cold, io_uring_available());
    let cache = if cold {
        "file not cached"
    } else {
        "file cached"
    };
    report(
        &format!("serving a file over loopback TCP, {where_}, {cache}"),
        serve_bytes,
        rounds,
        &mut servers,
    );
}

/// Whether the section `name` runs: all of them unless `ZSYNC_BENCH_ONLY` names some.
fn section(name: &str) -> bool {
    match std::env::var("ZSYNC_BENCH_ONLY") {
        Ok(only) => only.split(',').any(|s| s.trim() == name),
        Err(_) => true,
    }
}
fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir: PathBuf = std::env::var_os("ZSYNC_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("zsync-bench-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy_bytes = env_mib("ZSYNC_BENCH_COPY_MIB", 1024) << 20;
    let serve_bytes = env_mib("ZSYNC_BENCH_SERVE_MIB", 100) << 20;

    // 1. File copy.
    let src = dir.join("src");
    let dst = dir.join("dst");
    if section("copy") {
        serve::write_source(&src, copy_bytes);
    }
    let mut copiers: Vec<Contender<'_>> = vec![
        (
            "zsync::copy (Blocking)".into(),
            true,
            Box::new(|| timed_copy(&dst, || zsync_copy(Model::Blocking, &src, &dst), copy_bytes)),
        ),
        (
            "zsync::copy (Green)".into(),
            true,
            Box::new(|| timed_copy(&dst, || zsync_copy(Model::Green, &src, &dst), copy_bytes)),
        ),
        (
            "std::io::copy".into(),
            false,
            Box::new(|| {
                timed_copy(
                    &dst,
                    || {
                        let mut from = std::fs::File::open(&src).unwrap();
                        let mut to = std::fs::File::create(&dst).unwrap();
                        std::io::copy(&mut from, &mut to).unwrap()
                    },
                    copy_bytes,
                )
            }),
        ),
        (
            "cp (process)".into(),
            false,
            Box::new(|| {
                timed_copy(
                    &dst,
                    || {
                        let ok = Command::new("cp").arg(&src).arg(&dst).status().unwrap();
                        assert!(ok.success());
                        std::fs::metadata(&dst).unwrap().len()
                    },
                    copy_bytes,
                )
            }),
        ),
    ];
    if section("copy") {
        report("file copy", copy_bytes, COPY_ROUNDS, &mut copiers);
        std::fs::remove_file(&src).unwrap();
    }
    drop(copiers);

    // 2. Serving a file over loopback, with the client on its own core and on the server's.
    let src = dir.join("served");
    serve::write_source(&src, serve_bytes);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut placements = vec![("client on its own core", Placement::apart())];
    if serve::cpus() > 1 {
        placements.push((
            "client sharing the server's core",
            Placement {
                server: 0,
                client: 0,
            },
        ));
    }
    if section("serve") {
        for &placement in &placements {
            serve_table(&listener, &src, serve_bytes, placement, false, SERVE_ROUNDS);
        }
    }
    // From the disk: on Green io_uring the file -> pipe hop is a ring op (an io-wq thread waits
    // for the disk, not the worker).
    if section("cold") {
        serve_table(
            &listener,
            &src,
            serve_bytes,
            placements[0],
            true,
            COLD_ROUNDS,
        );
    }

    // 3. Zero-copy writes.
    if section("zc") && io_uring_available() {
        let zc_bytes = env_mib("ZSYNC_BENCH_ZC_MIB", 64) << 20;
        for size in [16 << 10, 64 << 10, 1 << 20] {
            zc_table(&listener, zc_bytes, size, placements[0].1);
        }
    }
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();

    // 4. A fill pattern: `Writer::drain` of a 1-byte slice repeated a million times.
    if section("splat") {
        splat_table();
    }
}
/// Writes of `size` bytes over loopback, `bytes` in all per round: zsync's `write_all` on
/// Green io_uring with zero-copy sends forced on and off, against std's `write_all`.
fn zc_table(listener: &TcpListener, bytes: u64, size: usize, at: Placement) {
    let buf: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let (total, mut writers) = serve::write_contenders(listener, &buf, bytes, at);
    report(
        &format!("write_all of {} KiB buffers over loopback", size >> 10),
        total,
        SERVE_ROUNDS,
        &mut writers,
    );
}

/// `Writer::drain(&[b"x"], 1_000_000)` into `/dev/null` and into a socket pair drained by a
/// thread, against `write_all` of a materialised 1 MB buffer.
fn splat_table() {
    const SPLAT: usize = 1_000_000;
    const ROUNDS: usize = 200;
    zsync::run(Model::Blocking, |io| {
        let null = File::options().write(true).open(io, "/dev/null").unwrap();
        let mut w = zsync::bufio::Writer::with_capacity(0, &null);
        let t0 = Instant::now();
        for _ in 0..ROUNDS {
            assert_eq!(w.drain(&[b"x"], SPLAT).unwrap(), SPLAT as u64);
        }
        let drain = t0.elapsed() / ROUNDS as u32;
        let ones = vec![b'x'; SPLAT];
        let mut null = std::fs::File::options()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let t0 = Instant::now();
        for _ in 0..ROUNDS {
            null.write_all(&ones).unwrap();
        }
        let plain = t0.elapsed() / ROUNDS as u32;
        println!("\nsplat: drain of 1 byte x {SPLAT} to /dev/null ({ROUNDS} rounds)");
        println!(
            "Writer::drain(&[b\"x\"], {SPLAT})     {:>8.1} us",
            drain.as_secs_f64() * 1e6
        );
        println!(
            "write_all of a 1 MB buffer          {:>8.1} us",
            plain.as_secs_f64() * 1e6
        );
    });
}

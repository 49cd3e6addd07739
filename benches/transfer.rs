//! Zero-copy transfers against the usual ways, side by side, in one run.
//!
//! 1. **File copy** (1 GiB by default): `zsync::copy` (on Blocking and on Green) vs
//!    `std::io::copy` vs spawning `cp`. The source is written once and read from the page cache
//!    by every contender; each destination is deleted after its run.
//! 2. **Serving a file over loopback TCP** (100 MiB by default): `zsync::transfer::send_file` (on
//!    Blocking, Green io_uring, Green epoll; `transfer::splice` on Blocking) vs a read/write loop
//!    through a 256 KiB buffer vs `std::io::copy` from a file to a socket (which std does with
//!    `read`/`sendto` through an 8 KiB buffer, not `sendfile`: see `strace -c`). A std client
//!    thread reads everything into a 256 KiB buffer; the time is from the first byte offered to
//!    the client seeing end of stream.
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

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use zsync::fs::File;
use zsync::net::TcpStream;
use zsync::{Backend, Builder, Model};

/// Rounds of the file copy (each copies the whole file once per contender).
const COPY_ROUNDS: usize = 9;
/// Rounds of the loopback serve (short: more rounds to see through scheduling noise).
const SERVE_ROUNDS: usize = 21;
/// Rounds of the serve from a file not in the page cache (each reads it from the disk).
const COLD_ROUNDS: usize = 5;
const BUF: usize = 256 * 1024;

fn env_mib(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_source(path: &Path, bytes: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut chunk = vec![0u8; 8 << 20];
    let mut x = 0x9e37_79b9_u32;
    for b in chunk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

/// One contender: a name, whether it is zsync, and a function that performs the transfer once
/// and returns its time.
type Contender<'a> = (&'static str, bool, Box<dyn FnMut() -> Duration + 'a>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs every contender once per round, interleaved (in a rotating order), and prints each one's best and median time
/// and, for zsync, two ratios to the fastest non-zsync contender (higher is better): of the best
/// times, and the median over rounds of the ratio within the round (both ran within a few
/// milliseconds of each other, so a change of the machine's load mid-run hits both).
fn report(title: &str, bytes: u64, rounds: usize, contenders: &mut [Contender<'_>]) {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    let n = contenders.len();
    for r in 0..rounds {
        // Each round starts with another contender, so none always runs right after the same
        // one (a predecessor's freed page cache, its writeback, a warm socket buffer).
        for k in 0..n {
            let i = (r + k) % n;
            let t = (contenders[i].2)();
            times[i].push(t);
        }
    }
    let peers: Vec<usize> = (0..contenders.len())
        .filter(|&i| !contenders[i].1)
        .collect();
    let best = |i: usize| *times[i].iter().min().unwrap();
    let best_peer = peers.iter().map(|&i| best(i)).min().unwrap();
    println!("\n{title} ({} MiB, {rounds} rounds)", bytes >> 20);
    println!(
        "{:<34} {:>9} {:>9} {:>7} {:>11} {:>13}",
        "contender", "best", "median", "GiB/s", "best/best", "per-round med"
    );
    for (i, (name, zsync, _)) in contenders.iter().enumerate() {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let med = median(times[i].iter().map(|d| ms(*d)).collect());
        let gibs = bytes as f64 / best(i).as_secs_f64() / (1u64 << 30) as f64;
        let (vs_best, vs_round) = if *zsync {
            let per_round: Vec<f64> = (0..rounds)
                .map(|r| {
                    let peer = peers.iter().map(|&p| times[p][r]).min().unwrap();
                    peer.as_secs_f64() / times[i][r].as_secs_f64()
                })
                .collect();
            (
                format!("{:.2}x", best_peer.as_secs_f64() / best(i).as_secs_f64()),
                format!("{:.2}x", median(per_round)),
            )
        } else {
            (String::new(), String::new())
        };
        println!(
            "{name:<34} {:>7.1}ms {med:>7.1}ms {gibs:>7.2} {vs_best:>11} {vs_round:>13}",
            ms(best(i))
        );
    }
}

/// Pins the calling thread (and the threads it starts from now on) to `cpus`.
fn pin(cpus: &[usize]) {
    // SAFETY: `set` is a zeroed, then filled `cpu_set_t`; `sched_setaffinity` reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn all_cpus() -> Vec<usize> {
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
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

/// Accepts one connection on `listener`, runs `serve` on it (a std socket), and returns the time
/// until a std client has read `bytes` and end of stream.
fn timed_serve(
    listener: &TcpListener,
    bytes: u64,
    placement: Placement,
    serve: impl FnOnce(std::net::TcpStream) + Send,
) -> Duration {
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|s| {
        let client = s.spawn(move || {
            pin(&[placement.client]);
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let mut buf = vec![0u8; BUF];
            let mut got = 0u64;
            loop {
                let n = c.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            (got, Instant::now())
        });
        let (conn, _) = listener.accept().unwrap();
        let t0 = Instant::now();
        // The server (and the workers a runtime starts for it) on its CPU.
        let t = s.spawn(move || {
            pin(&[placement.server]);
            serve(conn);
        });
        t.join().unwrap();
        let (got, end) = client.join().unwrap();
        assert_eq!(got, bytes);
        end - t0
    })
}

/// Where the serving thread and the client thread run.
#[derive(Clone, Copy)]
struct Placement {
    server: usize,
    client: usize,
}

fn zsync_send_file(model: Builder, conn: std::net::TcpStream, src: &Path, bytes: u64) {
    model.run(|io| {
        let file = File::open(io, src).unwrap();
        let sock = TcpStream::from_std(io, conn).unwrap();
        assert_eq!(
            zsync::transfer::send_file(&sock, &file, 0, bytes).unwrap(),
            bytes
        );
    });
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

/// Writes the file back and drops it from the page cache: the next read goes to the disk.
fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: `posix_fadvise` only reads its arguments; the descriptor is open.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
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
    let send_file = |builder: fn() -> Builder| -> Box<dyn FnMut() -> Duration + '_> {
        Box::new(move || {
            timed_serve(listener, serve_bytes, at, |c| {
                zsync_send_file(builder(), c, src, serve_bytes)
            })
        })
    };
    let servers: Vec<Contender<'_>> = vec![
        (
            "send_file (Blocking)",
            true,
            send_file(|| Builder::new(Model::Blocking)),
        ),
        (
            "send_file (Threaded)",
            true,
            send_file(|| Builder::new(Model::Threaded)),
        ),
        (
            "send_file (Green io_uring)",
            true,
            send_file(|| Builder::new(Model::Green).backend(Backend::IoUring)),
        ),
        (
            "send_file (Green epoll)",
            true,
            send_file(|| Builder::new(Model::Green).backend(Backend::Epoll)),
        ),
        (
            "transfer::splice (Blocking)",
            true,
            Box::new(|| {
                timed_serve(listener, serve_bytes, at, |c| {
                    zsync::run(Model::Blocking, |io| {
                        let file = File::open(io, src).unwrap();
                        let sock = TcpStream::from_std(io, c).unwrap();
                        let n = zsync::transfer::splice(&sock, &file, 0, serve_bytes).unwrap();
                        assert_eq!(n, serve_bytes);
                    })
                })
            }),
        ),
        (
            "read/write loop, 256 KiB buffer",
            false,
            Box::new(|| {
                timed_serve(listener, serve_bytes, at, |mut c| {
                    let mut f = std::fs::File::open(src).unwrap();
                    let mut buf = vec![0u8; BUF];
                    loop {
                        let n = f.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        c.write_all(&buf[..n]).unwrap();
                    }
                })
            }),
        ),
        (
            "std::io::copy (file to socket)",
            false,
            Box::new(|| {
                timed_serve(listener, serve_bytes, at, |mut c| {
                    let mut f = std::fs::File::open(src).unwrap();
                    std::io::copy(&mut f, &mut c).unwrap();
                })
            }),
        ),
    ];
    let mut servers: Vec<Contender<'_>> = servers
        .into_iter()
        .filter(|(name, ..)| !name.contains("io_uring") || io_uring_available())
        .map(|(name, zsync, mut f)| -> Contender<'_> {
            let run: Box<dyn FnMut() -> Duration + '_> = Box::new(move || {
                if cold {
                    evict(src);
                }
                f()
            });
            (name, zsync, run)
        })
        .collect();
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
        write_source(&src, copy_bytes);
    }
    let mut copiers: Vec<Contender<'_>> = vec![
        (
            "zsync::copy (Blocking)",
            true,
            Box::new(|| timed_copy(&dst, || zsync_copy(Model::Blocking, &src, &dst), copy_bytes)),
        ),
        (
            "zsync::copy (Green)",
            true,
            Box::new(|| timed_copy(&dst, || zsync_copy(Model::Green, &src, &dst), copy_bytes)),
        ),
        (
            "std::io::copy",
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
            "cp (process)",
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
    write_source(&src, serve_bytes);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let cpus = all_cpus();
    let mut placements = vec![(
        "client on its own core",
        Placement {
            server: 0,
            client: cpus.len() - 1,
        },
    )];
    if cpus.len() > 1 {
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
    let rounds = (bytes / size as u64) as usize;
    let zsync_write = |zc: bool| -> Box<dyn FnMut() -> Duration + '_> {
        let buf = &buf;
        Box::new(move || {
            timed_serve(listener, bytes, at, |c| {
                Builder::new(Model::Green)
                    .backend(Backend::IoUring)
                    .worker_threads(1)
                    .run(|io| {
                        let mut sock = TcpStream::from_std(io, c).unwrap();
                        sock.set_zero_copy_send(zc);
                        for _ in 0..rounds {
                            sock.write_all(buf).unwrap();
                        }
                    })
            })
        })
    };
    let mut writers: Vec<Contender<'_>> = vec![
        (
            "write_all, SEND_ZC (Green io_uring)",
            true,
            zsync_write(true),
        ),
        ("write_all, send (Green io_uring)", true, zsync_write(false)),
        (
            "std write_all (thread)",
            false,
            Box::new(|| {
                timed_serve(listener, bytes, at, |mut c| {
                    for _ in 0..rounds {
                        c.write_all(&buf).unwrap();
                    }
                })
            }),
        ),
    ];
    report(
        &format!("write_all of {} KiB buffers over loopback", size >> 10),
        bytes,
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

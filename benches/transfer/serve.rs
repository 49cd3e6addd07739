//! Serving a file over loopback TCP and large socket writes, zsync against the runtime-free
//! ways — the one copy of this code, compiled into both `benches/transfer.rs` (`cargo bench
//! --bench transfer`) and the runner's transfer section (`bench/src/transfer.rs`, through
//! `#[path]`). Only std, libc and zsync here: both crates have them.
//!
//! **What is timed.** From the moment the server starts serving — inside the runtime for zsync
//! (the runtime already running, as a server's is), before opening the file for every contender —
//! until the client (a std thread reading into a 256 KiB buffer) has seen all the bytes and end
//! of stream. Starting and stopping a runtime (workers, rings: a millisecond on Green, a few
//! per cent of a 100 MiB serve) is not a transfer cost and is left out, as the raw peers have none.
//!
//! Each contender runs once per round, interleaved with the others in a rotating order. A row
//! carries the best and median time and, for zsync, two ratios to the best peer — the non-zsync
//! contender with the best time — (higher is better): best time against best time, and the
//! median over rounds of the ratio within the round (both ran within milliseconds of each other,
//! so a change of the machine's load mid-run hits both). `send_file (Blocking)` makes the same
//! `sendfile(2)` call as the `sendfile(2)` loop: its distance from 1.00× is the run's noise.

#![allow(dead_code)] // each includer uses a part

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use zsync::fs::File;
use zsync::net::TcpStream;
use zsync::{Backend, Builder, Model};

/// The client's and the read/write loop's buffer.
pub const BUF: usize = 256 * 1024;

/// A contender: its name, whether it is zsync, and one timed round.
pub type Contender<'a> = (String, bool, Box<dyn FnMut() -> Duration + 'a>);

/// Where the serving thread (and the threads it starts) and the client thread run.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub server: usize,
    pub client: usize,
}

impl Placement {
    /// Server on CPU 0, client on the last CPU (its own core when there are two).
    pub fn apart() -> Placement {
        Placement {
            server: 0,
            client: cpus() - 1,
        }
    }
}

/// The number of CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One contender's figures.
#[derive(Clone, Debug)]
pub struct Row {
    pub contender: String,
    pub zsync: bool,
    pub rounds: usize,
    pub best_ms: f64,
    pub median_ms: f64,
    pub best_gib_s: f64,
    /// zsync rows: the best peer's best time ÷ this row's best time (the best peer: the
    /// non-zsync contender with the best time).
    pub vs_best_peer: Option<f64>,
    /// zsync rows: the median over rounds of (the best peer's time ÷ this row's time) in the
    /// round.
    pub vs_peer_per_round: Option<f64>,
}

/// The serving contenders: `zsync::transfer::send_file` on every model (Green io_uring only if
/// `uring`) and `transfer::splice` on Blocking, against a `sendfile(2)` loop, `splice(2)`
/// through a 1 MiB pipe, a read/write loop and `std::io::copy` (which std does with
/// `read`/`sendto` through an 8 KiB buffer). `cold`: the file is dropped from the page cache
/// before each round (outside the timed part).
pub fn serve_contenders<'a>(
    listener: &'a TcpListener,
    src: &'a Path,
    bytes: u64,
    at: Placement,
    cold: bool,
    uring: bool,
) -> Vec<Contender<'a>> {
    let round = move |serve: Box<dyn Fn(std::net::TcpStream) -> Instant + Send + Sync + 'a>| {
        Box::new(move || {
            if cold {
                evict(src);
            }
            timed(listener, bytes, at, &*serve)
        }) as Box<dyn FnMut() -> Duration + 'a>
    };
    let send_file = move |builder: fn() -> Builder| {
        round(Box::new(move |conn| {
            builder().run(|io| {
                let t0 = Instant::now();
                let file = File::open(io, src).unwrap();
                let sock = TcpStream::from_std(io, conn).unwrap();
                let n = zsync::transfer::send_file(&sock, &file, 0, bytes).unwrap();
                assert_eq!(n, bytes);
                t0
            })
        }))
    };
    let mut c: Vec<Contender<'a>> = vec![
        (
            "send_file (Blocking)".into(),
            true,
            send_file(|| Builder::new(Model::Blocking)),
        ),
        (
            "send_file (Threaded)".into(),
            true,
            send_file(|| Builder::new(Model::Threaded)),
        ),
        (
            "send_file (Green epoll)".into(),
            true,
            send_file(|| Builder::new(Model::Green).backend(Backend::Epoll)),
        ),
    ];
    if uring {
        c.push((
            "send_file (Green io_uring)".into(),
            true,
            send_file(|| Builder::new(Model::Green).backend(Backend::IoUring)),
        ));
    }
    c.push((
        "transfer::splice (Blocking)".into(),
        true,
        round(Box::new(move |conn| {
            zsync::run(Model::Blocking, |io| {
                let t0 = Instant::now();
                let file = File::open(io, src).unwrap();
                let sock = TcpStream::from_std(io, conn).unwrap();
                let n = zsync::transfer::splice(&sock, &file, 0, bytes).unwrap();
                assert_eq!(n, bytes);
                t0
            })
        })),
    ));
    c.push((
        "sendfile(2) loop".into(),
        false,
        round(Box::new(move |conn| {
            let t0 = Instant::now();
            let f = std::fs::File::open(src).unwrap();
            let mut off: libc::off_t = 0;
            while (off as u64) < bytes {
                let left = (bytes - off as u64) as usize;
                // SAFETY: two open descriptors and a valid offset pointer.
                let n = unsafe { libc::sendfile(conn.as_raw_fd(), f.as_raw_fd(), &mut off, left) };
                assert!(n > 0, "sendfile: {}", std::io::Error::last_os_error());
            }
            t0
        })),
    ));
    c.push((
        "splice(2) through a pipe".into(),
        false,
        round(Box::new(move |conn| {
            let t0 = Instant::now();
            raw_splice(src, &conn, bytes);
            t0
        })),
    ));
    c.push((
        "read/write loop, 256 KiB".into(),
        false,
        round(Box::new(move |mut conn| {
            let t0 = Instant::now();
            let mut f = std::fs::File::open(src).unwrap();
            let mut buf = vec![0u8; BUF];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                conn.write_all(&buf[..n]).unwrap();
            }
            t0
        })),
    ));
    c.push((
        "std::io::copy (file to socket)".into(),
        false,
        round(Box::new(move |mut conn| {
            let t0 = Instant::now();
            let mut f = std::fs::File::open(src).unwrap();
            std::io::copy(&mut f, &mut conn).unwrap();
            t0
        })),
    ));
    c
}

/// `splice` file → pipe → socket, blocking, 1 MiB pipe.
fn raw_splice(src: &Path, conn: &std::net::TcpStream, bytes: u64) {
    let f = std::fs::File::open(src).unwrap();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fcntl on the pipe just made; refusal leaves the default size.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
    let mut off: libc::loff_t = 0;
    while (off as u64) < bytes {
        let want = ((bytes - off as u64) as usize).min(1 << 20);
        // SAFETY: open descriptors, a valid offset pointer, a null one for the pipe.
        let n = unsafe {
            libc::splice(
                f.as_raw_fd(),
                &mut off,
                fds[1],
                std::ptr::null_mut(),
                want,
                libc::SPLICE_F_MOVE,
            )
        };
        assert!(n > 0, "splice: {}", std::io::Error::last_os_error());
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: as above.
            let m = unsafe {
                libc::splice(
                    fds[0],
                    std::ptr::null_mut(),
                    conn.as_raw_fd(),
                    std::ptr::null_mut(),
                    left,
                    libc::SPLICE_F_MOVE,
                )
            };
            assert!(m > 0, "splice: {}", std::io::Error::last_os_error());
            left -= m as usize;
        }
    }
    // SAFETY: the pipe's two descriptors, closed once.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

/// `write_all` of `size`-byte buffers, about `bytes` in all per round (returned: a whole number
/// of buffers), on Green io_uring with zero-copy sends forced on and off, against std's
/// `write_all`.
pub fn write_contenders<'a>(
    listener: &'a TcpListener,
    buf: &'a [u8],
    bytes: u64,
    at: Placement,
) -> (u64, Vec<Contender<'a>>) {
    let n = (bytes / buf.len() as u64) as usize;
    let total = (n * buf.len()) as u64;
    let zsync_write = move |zc: bool| -> Box<dyn FnMut() -> Duration + 'a> {
        Box::new(move || {
            timed(listener, total, at, &|conn| {
                Builder::new(Model::Green)
                    .backend(Backend::IoUring)
                    .worker_threads(1)
                    .run(|io| {
                        let t0 = Instant::now();
                        let mut sock = TcpStream::from_std(io, conn).unwrap();
                        sock.set_zero_copy_send(zc);
                        for _ in 0..n {
                            sock.write_all(buf).unwrap();
                        }
                        t0
                    })
            })
        })
    };
    let c: Vec<Contender<'a>> = vec![
        (
            "write_all, SEND_ZC (Green io_uring)".into(),
            true,
            zsync_write(true),
        ),
        (
            "write_all, copying send (Green io_uring)".into(),
            true,
            zsync_write(false),
        ),
        (
            "std write_all".into(),
            false,
            Box::new(move || {
                timed(listener, total, at, &|mut conn| {
                    let t0 = Instant::now();
                    for _ in 0..n {
                        conn.write_all(buf).unwrap();
                    }
                    t0
                })
            }),
        ),
    ];
    (total, c)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs every contender once per round, interleaved in a rotating order (none always runs right
/// after the same one: a predecessor's freed page cache, its writeback, a warm socket buffer),
/// into rows.
pub fn measure(bytes: u64, rounds: usize, c: &mut [Contender<'_>]) -> Vec<Row> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); c.len()];
    for r in 0..rounds {
        for k in 0..c.len() {
            let i = (r + k) % c.len();
            times[i].push((c[i].2)().as_secs_f64() * 1e3);
        }
    }
    let best = |i: usize| times[i].iter().copied().fold(f64::INFINITY, f64::min);
    // The peer with the best time: every zsync row is compared with that one contender, best
    // against best and round by round (the best of several peers per round would be a lower
    // sample than any single contender's, by noise alone).
    let peer = (0..c.len())
        .filter(|&i| !c[i].1)
        .min_by(|&a, &b| best(a).total_cmp(&best(b)));
    c.iter()
        .enumerate()
        .map(|(i, (name, zsync, _))| {
            let vs_peer = |p: usize| {
                let per_round = (0..rounds).map(|r| times[p][r] / times[i][r]).collect();
                (best(p) / best(i), median(per_round))
            };
            let vs = peer.filter(|_| *zsync).map(vs_peer);
            Row {
                contender: name.clone(),
                zsync: *zsync,
                rounds,
                best_ms: best(i),
                median_ms: median(times[i].clone()),
                best_gib_s: bytes as f64 / (best(i) / 1e3) / (1u64 << 30) as f64,
                vs_best_peer: vs.map(|v| v.0),
                vs_peer_per_round: vs.map(|v| v.1),
            }
        })
        .collect()
}

/// Accepts one connection, runs `serve` on it on a thread pinned to `at.server` (the threads a
/// runtime starts there inherit it), and returns the time from the instant `serve` reports (its
/// start) until the client, pinned to `at.client`, has read `bytes` and end of stream.
pub fn timed(
    listener: &TcpListener,
    bytes: u64,
    at: Placement,
    serve: &(dyn Fn(std::net::TcpStream) -> Instant + Sync),
) -> Duration {
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|s| {
        let client = s.spawn(move || {
            pin(&[at.client]);
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
        let t0 = s
            .spawn(move || {
                pin(&[at.server]);
                serve(conn)
            })
            .join()
            .unwrap();
        let (got, end) = client.join().unwrap();
        assert_eq!(got, bytes);
        end - t0
    })
}

/// Pins the calling thread (and the threads it starts from now on) to `cpus`.
pub fn pin(cpus: &[usize]) {
    // SAFETY: `set` is a zeroed, then filled `cpu_set_t`; `sched_setaffinity` reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Writes `bytes` of pseudo-random data to `path` and syncs it.
pub fn write_source(path: &Path, bytes: u64) {
    let mut f = std::fs::File::create(path).expect("source file");
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

/// Writes the file back and drops it from the page cache: the next read goes to the disk.
pub fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: `posix_fadvise` only reads its arguments; the descriptor is open.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
}

//! The runner's transfer section (issue 15, item 5): serving a file over loopback TCP with
//! `zsync::transfer::send_file` in every run mode against the best of the runtime-free ways
//! (`sendfile(2)`, `splice(2)` through a pipe, a `read`/`write` loop), and large socket writes
//! with and without `IORING_OP_SEND_ZC`.
//!
//! Runs in this process (zsync is a library dependency), so it needs no build of its own. Each
//! contender runs `rounds` times, interleaved with the others in a rotating order; a std client
//! thread reads everything. The server and the client run on different CPUs when there are two
//! (`sched_setaffinity`), as `benches/transfer.rs` does in its first table. The rows carry the
//! best and median time and, for zsync, the ratio of the best peer's best time to its own
//! (≥ 0.95 is issue 15's target). Stackless has no `send_file` of its own (a future task
//! would block its worker in `sendfile`), so it has no row.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use zsync::fs::File;
use zsync::net::TcpStream;
use zsync::{Backend, Builder, Model};

/// The client's and the read/write loop's buffer.
const BUF: usize = 256 * 1024;

/// One contender's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferRow {
    /// "serve" (a file to a socket) or "write" (`write_all` of buffers of `write_size`).
    pub table: String,
    pub contender: String,
    pub zsync: bool,
    pub bytes: u64,
    /// Buffer size of a "write" row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_size: Option<usize>,
    pub rounds: usize,
    pub best_ms: f64,
    pub median_ms: f64,
    pub best_gib_s: f64,
    /// zsync rows: the best peer's best time ÷ this row's best time (higher is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_best_peer: Option<f64>,
}

type Contender<'a> = (String, bool, Box<dyn FnMut() -> Duration + 'a>);

/// Runs the section: serving `serve_mib` MiB in every mode, then `write_all` of 1 MiB buffers
/// with and without zero-copy sends. `quick` runs fewer rounds.
pub fn run(serve_mib: u64, quick: bool) -> Vec<TransferRow> {
    let rounds = if quick { 5 } else { 9 };
    let dir = std::env::temp_dir().join(format!("zsync-runner-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("served");
    let bytes = serve_mib << 20;
    write_source(&src, bytes);
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    let uring = Backend::IoUring.resolve().is_ok();
    let mut rows = serve(&listener, &src, bytes, rounds, uring);
    if uring {
        rows.extend(writes(&listener, bytes, 1 << 20, rounds));
    }
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

fn serve(
    listener: &TcpListener,
    src: &Path,
    bytes: u64,
    rounds: usize,
    uring: bool,
) -> Vec<TransferRow> {
    let send_file = |builder: fn() -> Builder| -> Box<dyn FnMut() -> Duration + '_> {
        Box::new(move || {
            timed(listener, bytes, |conn| {
                builder().run(|io| {
                    let file = File::open(io, src).unwrap();
                    let sock = TcpStream::from_std(io, conn).unwrap();
                    let n = zsync::transfer::send_file(&sock, &file, 0, bytes).unwrap();
                    assert_eq!(n, bytes);
                })
            })
        })
    };
    let mut c: Vec<Contender<'_>> = vec![
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
        "sendfile(2) loop".into(),
        false,
        Box::new(|| {
            timed(listener, bytes, |conn| {
                let f = std::fs::File::open(src).unwrap();
                let mut off: libc::off_t = 0;
                while (off as u64) < bytes {
                    let left = (bytes - off as u64) as usize;
                    // SAFETY: two open descriptors and a valid offset pointer.
                    let n =
                        unsafe { libc::sendfile(conn.as_raw_fd(), f.as_raw_fd(), &mut off, left) };
                    assert!(n > 0, "sendfile: {}", std::io::Error::last_os_error());
                }
            })
        }),
    ));
    c.push((
        "splice(2) through a pipe".into(),
        false,
        Box::new(|| timed(listener, bytes, |conn| raw_splice(src, &conn, bytes))),
    ));
    c.push((
        "read/write loop, 256 KiB".into(),
        false,
        Box::new(|| {
            timed(listener, bytes, |mut conn| {
                let mut f = std::fs::File::open(src).unwrap();
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    conn.write_all(&buf[..n]).unwrap();
                }
            })
        }),
    ));
    measure("serve", bytes, None, rounds, &mut c)
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

/// `write_all` of `size`-byte buffers, `bytes` in all per round, on Green io_uring with
/// zero-copy sends forced on and off, against std's `write_all`.
fn writes(listener: &TcpListener, bytes: u64, size: usize, rounds: usize) -> Vec<TransferRow> {
    let buf: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let n = (bytes / size as u64) as usize;
    let total = (n * size) as u64;
    let zsync_write = |zc: bool| -> Box<dyn FnMut() -> Duration + '_> {
        let buf = &buf;
        Box::new(move || {
            timed(listener, total, |conn| {
                Builder::new(Model::Green)
                    .backend(Backend::IoUring)
                    .worker_threads(1)
                    .run(|io| {
                        let mut sock = TcpStream::from_std(io, conn).unwrap();
                        sock.set_zero_copy_send(zc);
                        for _ in 0..n {
                            sock.write_all(buf).unwrap();
                        }
                    })
            })
        })
    };
    let mut c: Vec<Contender<'_>> = vec![
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
            Box::new(|| {
                timed(listener, total, |mut conn| {
                    for _ in 0..n {
                        conn.write_all(&buf).unwrap();
                    }
                })
            }),
        ),
    ];
    measure("write", total, Some(size), rounds, &mut c)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs every contender once per round, interleaved in a rotating order, into rows.
fn measure(
    table: &str,
    bytes: u64,
    write_size: Option<usize>,
    rounds: usize,
    c: &mut [Contender<'_>],
) -> Vec<TransferRow> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); c.len()];
    for r in 0..rounds {
        for k in 0..c.len() {
            let i = (r + k) % c.len();
            times[i].push((c[i].2)().as_secs_f64() * 1e3);
        }
    }
    let best = |i: usize| times[i].iter().copied().fold(f64::INFINITY, f64::min);
    let best_peer = (0..c.len())
        .filter(|&i| !c[i].1)
        .map(best)
        .fold(f64::INFINITY, f64::min);
    c.iter()
        .enumerate()
        .map(|(i, (name, zsync, _))| TransferRow {
            table: table.to_string(),
            contender: name.clone(),
            zsync: *zsync,
            bytes,
            write_size,
            rounds,
            best_ms: best(i),
            median_ms: median(times[i].clone()),
            best_gib_s: bytes as f64 / (best(i) / 1e3) / (1u64 << 30) as f64,
            vs_best_peer: zsync.then(|| best_peer / best(i)),
        })
        .collect()
}

/// Accepts one connection, runs `serve` on it on a thread pinned to CPU 0, and returns the
/// time until a std client (pinned to the last CPU) has read `bytes` and end of stream.
fn timed(
    listener: &TcpListener,
    bytes: u64,
    serve: impl FnOnce(std::net::TcpStream) + Send,
) -> Duration {
    let addr = listener.local_addr().unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        let client = s.spawn(move || {
            pin(cpus - 1);
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
        s.spawn(move || {
            pin(0);
            serve(conn);
        })
        .join()
        .unwrap();
        let (got, end) = client.join().unwrap();
        assert_eq!(got, bytes);
        end - t0
    })
}

/// Pins the calling thread (and the threads it starts) to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: `set` is a zeroed, then filled `cpu_set_t`; `sched_setaffinity` reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn write_source(path: &Path, bytes: u64) {
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

/// Prints the section's table.
pub fn print_table(rows: &[TransferRow]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\ntransfers over loopback (best of {} rounds)",
        rows[0].rounds
    );
    println!(
        "{:<44} {:>9} {:>9} {:>7} {:>12}",
        "contender", "best", "median", "GiB/s", "vs best peer"
    );
    let mut table = "";
    for r in rows {
        if r.table != table {
            table = &r.table;
            match r.write_size {
                Some(s) => println!(
                    "-- write_all of {} KiB buffers, {} MiB",
                    s >> 10,
                    r.bytes >> 20
                ),
                None => println!("-- serving a {} MiB file", r.bytes >> 20),
            }
        }
        let vs = r
            .vs_best_peer
            .map(|v| format!("{v:.2}x"))
            .unwrap_or_default();
        println!(
            "{:<44} {:>7.1}ms {:>7.1}ms {:>7.2} {:>12}",
            r.contender, r.best_ms, r.median_ms, r.best_gib_s, vs
        );
    }
}

/// Bars of GiB/s (best round), one per row, labelled inside; zsync red, peers grey.
pub fn draw(path: &Path, rows: &[TransferRow]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1100, 120 + 26 * rows.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.draw(&Text::new(
        "zsync transfers over loopback vs sendfile/splice/read-write — GiB/s, best round, higher is better",
        (20, 12),
        ("sans-serif", 16).into_font(),
    ))?;
    let top = rows.iter().map(|r| r.best_gib_s).fold(0.0, f64::max) * 1.25;
    let mut chart = ChartBuilder::on(&body)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..top.max(0.1), 0.0..rows.len() as f64)?;
    chart
        .configure_mesh()
        .x_desc("GiB/s")
        .y_labels(0)
        .disable_y_mesh()
        .draw()?;
    for (i, r) in rows.iter().enumerate() {
        let y = (rows.len() - 1 - i) as f64;
        let color = if r.zsync {
            RGBColor(255, 152, 150)
        } else {
            RGBColor(199, 199, 199)
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y + 0.15), (r.best_gib_s, y + 0.85)],
            color.filled(),
        )))?;
        let what = match r.write_size {
            Some(s) => format!("{} ({} KiB writes)", r.contender, s >> 10),
            None => r.contender.clone(),
        };
        chart.draw_series(std::iter::once(Text::new(
            what,
            (top * 0.005, y + 0.65),
            ("sans-serif", 12).into_font(),
        )))?;
        let vs = r
            .vs_best_peer
            .map(|v| format!("  {v:.2}x best peer"))
            .unwrap_or_default();
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.2}{vs}", r.best_gib_s),
            (r.best_gib_s + top * 0.01, y + 0.7),
            ("sans-serif", 11).into_font(),
        )))?;
    }
    root.present()?;
    Ok(())
}

//! A load client for `echo_server` (or any TCP echo server): N connections, each doing
//! request/response round trips of `--size` bytes, then req/s and latency percentiles.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:9000 &
//! cargo run --release --example load_client -- --addr 127.0.0.1:9000 --connections 64 --size 64 --duration 10
//! ```
//!
//! Each connection writes `--size` bytes, reads the echo back in full, checks it byte for byte
//! and records the round trip's latency; it stops after `--duration` seconds, or once the
//! connections together have made `--requests` round trips when that is given. Latencies are
//! kept in one `Vec` per connection (no histogram: exact percentiles), merged and sorted at the
//! end. A connection that fails (refused, reset, a wrong or late echo — reads and writes give up
//! after 5 s) counts as an error; the client still reports what the others did.
//!
//! The client dogfoods zsync: every connection is a task of its own (`io.concurrent`) in one
//! `zsync::run`, by default on `--model green` (fibers on io_uring where the kernel allows it),
//! so a thousand connections cost a thousand fibers, not threads. `--model threaded` gives each
//! connection a thread; `--model blocking` runs the connections one after another (only useful
//! with `--connections 1`).
//!
//! Flags:
//!
//! ```text
//!   --addr HOST:PORT     server (default 127.0.0.1:9000)
//!   --connections N      concurrent connections (default 64)
//!   --size BYTES         bytes per request (and per echo) (default 64)
//!   --duration SECS      how long to run (default 10; fractions allowed)
//!   --requests N         stop after N round trips in total instead (split over the connections)
//!   --model blocking|threaded|green, --backend io_uring|epoll|auto, --workers N, --max-threads N
//!   --json               print the result as one JSON object instead of text
//! ```
//!
//! Exit status: 0 when every connection ran without error, 1 otherwise, 2 on bad flags.

#[path = "common/mod.rs"]
mod common;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cli::{self, RuntimeOpts};
use zsync::net::TcpStream;
use zsync::Io;

const USAGE: &str = "\
usage: load_client [--addr 127.0.0.1:9000] [--connections 64] [--size 64] [--duration 10 | --requests N]
                   [--model blocking|threaded|green] [--backend io_uring|epoll|auto] [--workers N] [--json]";

/// How long one read or write may wait before the connection counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// When a connection stops.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// At this instant.
    At(Instant),
    /// After this many round trips.
    After(u64),
}

/// What one connection did.
#[derive(Debug, Default)]
struct ConnResult {
    /// Round-trip latencies in nanoseconds.
    latencies: Vec<u64>,
    /// Why it ended early, if it did.
    error: Option<String>,
}

/// A flag's value, or the usage message and exit status 2.
fn or_exit<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| cli::exit_usage(USAGE, &e))
}

fn main() {
    let valued = [
        cli::RUNTIME_FLAGS,
        &["addr", "connections", "size", "duration", "requests"],
    ]
    .concat();
    let args = cli::parse_or_exit(
        &format!("{USAGE}\n\n{}", cli::RUNTIME_HELP),
        &valued,
        &["json"],
    );
    let rt = or_exit(RuntimeOpts::from_args(&args, "green"));
    let addr: SocketAddr = or_exit(args.get_or("addr", "127.0.0.1:9000".parse().expect("literal")));
    let connections: usize = or_exit(args.get_or("connections", 64)).max(1);
    let size: usize = or_exit(args.get_or("size", 64)).max(1);
    let duration: f64 = or_exit(args.get_or("duration", 10.0));
    if !(duration.is_finite() && duration > 0.0) {
        cli::exit_usage(USAGE, "--duration must be a positive number of seconds");
    }
    let requests: Option<u64> = or_exit(
        args.value("requests")
            .map(str::parse)
            .transpose()
            .map_err(|e: std::num::ParseIntError| format!("--requests: {e}")),
    );
    let json = args.switch("json");

    let (results, elapsed, model, backend) = rt.builder().run(|io| {
        let start = Instant::now();
        let stops: Vec<Stop> = (0..connections as u64)
            .map(|i| match requests {
                // Spread the total: the first `total % n` connections do one more.
                Some(total) => {
                    let n = connections as u64;
                    Stop::After(total / n + u64::from(i < total % n))
                }
                None => Stop::At(start + Duration::from_secs_f64(duration)),
            })
            .collect();
        let tasks: Vec<_> = stops
            .into_iter()
            .map(|stop| {
                let conn = move |io: &Io| connection(io, addr, size, stop);
                io.concurrent(conn)
                    .unwrap_or_else(|refused| io.spawn(refused.into_inner()))
            })
            .collect();
        let results: Vec<ConnResult> = tasks
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|e| ConnResult {
                    latencies: Vec::new(),
                    error: Some(e.to_string()),
                })
            })
            .collect();
        (results, start.elapsed(), io.model_name(), io.backend_name())
    });

    let errors: Vec<&str> = results.iter().filter_map(|r| r.error.as_deref()).collect();
    let mut all: Vec<u64> = Vec::with_capacity(results.iter().map(|r| r.latencies.len()).sum());
    for r in &results {
        all.extend_from_slice(&r.latencies);
    }
    all.sort_unstable();
    let total = all.len() as u64;
    let secs = elapsed.as_secs_f64();
    let rps = total as f64 / secs;
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        // Nearest rank.
        let rank = ((p / 100.0) * all.len() as f64).ceil() as usize;
        all[rank.clamp(1, all.len()) - 1] as f64 / 1e3
    };
    let (p50, p99, max) = (pct(50.0), pct(99.0), pct(100.0));
    if json {
        println!(
            "{{\"connections\":{connections},\"size\":{size},\"model\":\"{model}\",\"backend\":\"{backend}\",\
             \"requests\":{total},\"seconds\":{secs:.3},\"rps\":{rps:.1},\"p50_us\":{p50:.1},\
             \"p99_us\":{p99:.1},\"max_us\":{max:.1},\"errors\":{}}}",
            errors.len()
        );
    } else {
        println!(
            "load_client: {connections} connections x {size} B to {addr} ({model}, {backend})"
        );
        println!(
            "  {total} round trips in {secs:.2} s = {rps:.0} req/s; latency p50 {p50:.1} µs, p99 {p99:.1} µs, max {max:.1} µs"
        );
        // The machine-readable line the benchmark runner (`bench/`) parses.
        println!(
            "req/s={rps:.1} p50_us={p50:.1} p99_us={p99:.1} requests={total} errors={}",
            errors.len()
        );
        if !errors.is_empty() {
            println!(
                "  {} connection(s) failed; first: {}",
                errors.len(),
                errors[0]
            );
        }
    }
    std::process::exit(if errors.is_empty() { 0 } else { 1 });
}

/// One connection: round trips until `stop`. Colorblind, like the servers.
fn connection(io: &Io, addr: SocketAddr, size: usize, stop: Stop) -> ConnResult {
    let mut out = ConnResult::default();
    if let Err(e) = round_trips(io, addr, size, stop, &mut out.latencies) {
        out.error = Some(e.to_string());
    }
    out
}

fn round_trips(
    io: &Io,
    addr: SocketAddr,
    size: usize,
    stop: Stop,
    latencies: &mut Vec<u64>,
) -> io::Result<()> {
    let mut stream = TcpStream::connect(io, addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut reply = vec![0u8; size];
    if let Stop::After(n) = stop {
        latencies.reserve(usize::try_from(n).unwrap_or(0));
    }
    for i in 0u64.. {
        let now = Instant::now();
        match stop {
            Stop::At(end) if now >= end => break,
            Stop::After(n) if i >= n => break,
            _ => {}
        }
        // A request unique to its round, so a stale or mixed-up echo is caught.
        let tag = i.to_le_bytes();
        let k = tag.len().min(size);
        request[..k].copy_from_slice(&tag[..k]);
        stream.write_all(&request)?;
        stream.read_exact(&mut reply)?;
        latencies.push(u64::try_from(now.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if reply != request {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("round trip {i}: the echo differs from the request"),
            ));
        }
    }
    Ok(())
}

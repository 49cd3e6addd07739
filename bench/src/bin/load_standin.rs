//! Echo load client, a stand-in for `examples/load_client` until it is merged (same flags, same
//! output contract). One thread (like `wrk -t1`), `--connections` connections, each sending
//! `--size` bytes and waiting for them to come back, in a loop, for `--duration` seconds.
//!
//! `load-standin --addr 127.0.0.1:8080 --connections 64 --size 64 --duration 5`
//!
//! Prints `req/s=<f> p50_us=<f> p99_us=<f> requests=<n> errors=<n>`.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zsync_bench::{percentile, Args};

fn main() {
    let args = Args::from_env();
    let addr = args.get_or("--addr", "127.0.0.1:8080");
    let conns = args.parse_or("--connections", 64usize).max(1);
    let size = args.parse_or("--size", 64usize).max(1);
    let secs = args.parse_or("--duration", 5.0f64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (lat, errors, elapsed) = rt.block_on(async move {
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            let s = TcpStream::connect(&addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            streams.push(s);
        }
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    let msg = vec![0x5au8; size];
                    let mut back = vec![0u8; size];
                    let mut lat: Vec<u32> = Vec::with_capacity(1 << 14);
                    let mut errors = 0u64;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        if s.write_all(&msg).await.is_err()
                            || s.read_exact(&mut back).await.is_err()
                        {
                            errors += 1;
                            break;
                        }
                        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    (lat, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("client task");
            all.extend(l);
            errors += e;
        }
        (all, errors, start.elapsed())
    });
    let mut lat = lat;
    lat.sort_unstable();
    let n = lat.len() as u64;
    println!(
        "req/s={:.1} p50_us={:.1} p99_us={:.1} requests={} errors={}",
        n as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        n,
        errors
    );
}

//! `examples/microservices` against its Tokio peer (`bench/peers/tokio_microservices.rs`): the
//! three services (gateway → users → orders) in one process each side, driven through the
//! gateway with `wrk -t1 -c64 --latency` on `GET /api/users/7` (two downstream hops per
//! request, pooled keep-alive connections, the deadline header and the breakers on the path).
//! Rounds alternate between the contenders; the rows give the best and worst round.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{AppRow, Ctx};
use zsync_bench::parse_wrk;

const APP: &str = "microservices";
const CONNS: usize = 64;
const PATH: &str = "/api/users/7";

struct Contender {
    name: &'static str,
    zsync: bool,
    program: std::path::PathBuf,
    extra: Vec<String>,
}

/// A started contender: killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Whether `GET PATH` through `gateway` answers 200 (the whole chain is up).
fn chain_up(gateway: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&gateway, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {PATH} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n");
    let mut out = Vec::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_end(&mut out).is_ok()
        && out.starts_with(b"HTTP/1.1 200")
}

fn start(c: &Contender, workers: usize) -> Result<(Running, SocketAddr), String> {
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| free_addr())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let child = Command::new(&c.program)
        .args([
            "--gateway-addr".to_string(),
            addrs[0].to_string(),
            "--users-addr".to_string(),
            addrs[1].to_string(),
            "--orders-addr".to_string(),
            addrs[2].to_string(),
            "--workers".to_string(),
            workers.to_string(),
        ])
        .args(&c.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", c.program.display()))?;
    let mut running = Running(child);
    let t = Instant::now();
    while !chain_up(addrs[0]) {
        if let Ok(Some(st)) = running.0.try_wait() {
            return Err(format!("exited at start ({st})"));
        }
        if t.elapsed() > Duration::from_secs(20) {
            return Err("the chain did not answer within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((running, addrs[0]))
}

/// One round: (req/s, p99 µs, non-2xx + socket errors).
fn round(c: &Contender, workers: usize, secs: u64) -> Result<(f64, f64, u64), String> {
    let (_running, gateway) = start(c, workers)?;
    let url = format!("http://{gateway}{PATH}");
    // Warm-up: connections in every pool.
    let _ = Command::new("wrk")
        .args(["-t1", &format!("-c{CONNS}"), "-d1s", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let out = Command::new("wrk")
        .args([
            "-t1".to_string(),
            format!("-c{CONNS}"),
            format!("-d{secs}s"),
            "--latency".to_string(),
            url,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let r = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
    Ok((r.req_per_sec, r.p99_us, r.errors))
}

/// The benchmark: see the module docs.
pub fn run(ctx: &Ctx) -> Vec<AppRow> {
    let (Some(zsync_bin), Some(peer_bin)) = (
        ctx.built_example("microservices", "hyper"),
        ctx.peer("tokio-microservices"),
    ) else {
        return Vec::new();
    };
    if which_wrk().is_none() {
        println!("note: wrk is missing (bench/setup.sh installs it): {APP} skipped");
        return Vec::new();
    }
    let contenders = [
        Contender {
            name: "zsync green (hyper, fibers)",
            zsync: true,
            program: zsync_bin.clone(),
            extra: vec![],
        },
        Contender {
            name: "zsync green epoll (hyper, fibers)",
            zsync: true,
            program: zsync_bin,
            extra: vec!["--backend".into(), "epoll".into()],
        },
        Contender {
            name: "tokio + hyper-util client",
            zsync: false,
            program: peer_bin,
            extra: vec![],
        },
    ];
    let (rounds, secs) = if ctx.quick { (1, 2) } else { (3, 5) };
    let mut results: Vec<Vec<(f64, f64, u64)>> = vec![Vec::new(); contenders.len()];
    for r in 0..rounds {
        for (i, c) in contenders.iter().enumerate() {
            match round(c, ctx.workers, secs) {
                Ok(v) => {
                    println!(
                        "  round {}: {:<36} {:>9.0} req/s  p99 {:>8.0} µs  errors {}",
                        r + 1,
                        c.name,
                        v.0,
                        v.1,
                        v.2
                    );
                    results[i].push(v);
                }
                Err(e) => println!("  round {}: {}: {e}", r + 1, c.name),
            }
        }
    }
    let mut rows = Vec::new();
    for (c, res) in contenders.iter().zip(&results) {
        if res.is_empty() {
            continue;
        }
        let rps: Vec<f64> = res.iter().map(|r| r.0).collect();
        let p99: Vec<f64> = res.iter().map(|r| r.1).collect();
        let errors: u64 = res.iter().map(|r| r.2).sum();
        let note = format!(
            "wrk -t1 -c{CONNS} -d{secs}s GET {PATH}, {} round(s), errors {errors}",
            res.len()
        );
        let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
        let min = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
        let several = res.len() > 1;
        rows.push(AppRow {
            app: APP.into(),
            contender: c.name.into(),
            zsync: c.zsync,
            metric: "req/s".into(),
            value: max(&rps),
            higher_is_better: true,
            vs_peer: None,
            worst: several.then(|| min(&rps)),
            note: note.clone(),
        });
        rows.push(AppRow {
            app: APP.into(),
            contender: c.name.into(),
            zsync: c.zsync,
            metric: "p99 µs".into(),
            value: min(&p99),
            higher_is_better: false,
            vs_peer: None,
            worst: several.then(|| max(&p99)),
            note,
        });
    }
    rows
}

fn which_wrk() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("wrk"))
            .find(|p| p.exists())
    })
}

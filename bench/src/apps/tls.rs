//! HTTPS (issue 16 item 6): `http_server --tls --model green` against `tokio-https`
//! (`bench/peers/tokio_https.rs`: `tokio_http.rs`'s handler behind tokio-rustls), both with
//! rustls and its ring provider and the same certificate (ECDSA P-256, made here by rcgen and
//! loaded from PEM files by both servers).
//!
//! Driven by `wrk -t1 -c<N> --latency https://.../` (keep-alive `GET /`, so one handshake per
//! connection, then record encryption per request) at the runner's connection counts: for each
//! round and count, each server in turn, so that both see the same machine. Per contender and
//! count: req/s, p99 latency and server CPU per request (user + sys from `/proc/PID/stat` over
//! the run); best and worst over the rounds. TLS is CPU-bound: on a 2-core machine wrk's own
//! encryption takes a good share of the cores the server would use.
//!
//! An apps module rather than rows in the HTTP tables: the HTTP section compares many peers on
//! the plaintext route, this one two contenders on a route that needs certificates and a
//! TLS-capable load generator; keeping it apart keeps both sections' setup simple.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zsync_bench::{clock_ticks_per_sec, cpu_us_per_request, parse_wrk, read_proc_stat};

use super::{AppRow, Ctx};

const APP: &str = "tls";

/// One server under test.
struct Contender {
    name: &'static str,
    zsync: bool,
    program: PathBuf,
    args: Vec<String>,
}

/// A running server, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run's figures: req/s, p99 µs, CPU µs per request, errors.
struct Figures {
    rps: f64,
    p99_us: f64,
    cpu_us: f64,
    errors: u64,
}

/// Runs the HTTPS benchmark; no rows (with a note) if something it needs is missing.
/// A metric's name, whether higher is better, and how to read it from a run.
type Metric = (&'static str, bool, fn(&Figures) -> f64);

pub fn run(ctx: &Ctx) -> Vec<AppRow> {
    let (Some(zsync_bin), Some(peer_bin)) = (
        ctx.built_example("http_server", ""),
        ctx.peer("tokio-https"),
    ) else {
        return Vec::new();
    };
    let Some(wrk) = which("wrk") else {
        println!("note: wrk is missing (bench/setup.sh installs it): no HTTPS figures");
        return Vec::new();
    };
    let dir = std::env::temp_dir().join(format!("zsync-bench-tls-{}", std::process::id()));
    let (cert, key) = match write_certificate(&dir) {
        Ok(paths) => paths,
        Err(e) => {
            println!(
                "note: cannot write the certificate in {}: {e}",
                dir.display()
            );
            return Vec::new();
        }
    };
    let workers = ctx.workers.to_string();
    let tls_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["--workers".into(), workers.clone()]);
        v.extend(["--cert".into(), cert.display().to_string()]);
        v.extend(["--key".into(), key.display().to_string()]);
        v
    };
    let contenders = [
        Contender {
            name: "zsync green (http_server --tls)",
            zsync: true,
            program: zsync_bin,
            args: tls_args(&["--tls", "--model", "green"]),
        },
        Contender {
            name: "tokio + tokio-rustls",
            zsync: false,
            program: peer_bin,
            args: tls_args(&[]),
        },
    ];
    let conns: Vec<usize> = if ctx.quick {
        vec![64]
    } else {
        vec![16, 64, 256, 1024]
    };
    let secs = if ctx.quick { 3 } else { 5 };
    let rounds = if ctx.quick { 1 } else { 2 };
    println!(
        "HTTPS GET / (keep-alive), wrk -t1 -d{secs}s, {rounds} round(s) per connection count, \
         servers with {workers} workers"
    );
    let mut servers = Vec::new();
    for c in &contenders {
        match start(c, &dir) {
            Ok(s) => servers.push(s),
            Err(e) => {
                println!("note: {}: {e}", c.name);
                let _ = std::fs::remove_dir_all(&dir);
                return Vec::new();
            }
        }
    }
    // Warm-up: handshakes, caches, fiber stacks and buffers.
    for s in &servers {
        let _ = drive(&wrk, s, 64, 1);
    }
    // figures[contender][count] = one entry per round.
    let mut figures: Vec<Vec<Vec<Figures>>> = contenders
        .iter()
        .map(|_| conns.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (ci, &n) in conns.iter().enumerate() {
            for (si, s) in servers.iter().enumerate() {
                match drive(&wrk, s, n, secs) {
                    Ok(f) => {
                        println!(
                            "  round {} c={n:<5} {:<34} {:>9.0} req/s  p99 {:>8.0} µs  {:>6.1} µs CPU/req{}",
                            round + 1,
                            contenders[si].name,
                            f.rps,
                            f.p99_us,
                            f.cpu_us,
                            if f.errors > 0 {
                                format!("  {} errors", f.errors)
                            } else {
                                String::new()
                            }
                        );
                        figures[si][ci].push(f);
                    }
                    Err(e) => println!("  c={n} {}: {e}", contenders[si].name),
                }
            }
        }
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    for (si, c) in contenders.iter().enumerate() {
        for (ci, &n) in conns.iter().enumerate() {
            let runs = &figures[si][ci];
            if runs.is_empty() {
                continue;
            }
            let errors: u64 = runs.iter().map(|f| f.errors).sum();
            let note = if errors > 0 {
                format!("{errors} wrk errors")
            } else {
                String::new()
            };
            let metrics: [Metric; 3] = [
                ("req/s", true, |f| f.rps),
                ("p99 µs", false, |f| f.p99_us),
                ("CPU µs/req", false, |f| f.cpu_us),
            ];
            for (metric, higher, get) in metrics {
                let values: Vec<f64> = runs.iter().map(get).filter(|v| v.is_finite()).collect();
                if values.is_empty() {
                    continue;
                }
                let best = if higher { max(&values) } else { min(&values) };
                let worst = if higher { min(&values) } else { max(&values) };
                rows.push(AppRow {
                    app: APP.to_string(),
                    contender: c.name.to_string(),
                    zsync: c.zsync,
                    metric: format!("{metric} c={n}"),
                    value: best,
                    higher_is_better: higher,
                    vs_peer: None,
                    worst: (values.len() > 1).then_some(worst),
                    note: note.clone(),
                });
            }
        }
    }
    rows
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: `dir/cert.pem`, `dir/key.pem`.
fn write_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&key, made.signing_key.serialize_pem()).map_err(|e| e.to_string())?;
    Ok((cert, key))
}

/// Starts `c` on a free loopback port (its output in `dir`) and waits until it accepts.
fn start(c: &Contender, dir: &Path) -> Result<Server, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .expect("loopback address");
    let log = dir.join(format!("{}.log", if c.zsync { "zsync" } else { "peer" }));
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = Command::new(&c.program)
        .args(&c.args)
        .args(["--addr", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", c.program.display()))?;
    let mut server = Server { child, addr };
    let t = Instant::now();
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("exited at start ({st}): {}", text.trim()));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(server);
        }
        if t.elapsed() > Duration::from_secs(20) {
            return Err("did not listen within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `wrk` run against `s` with `conns` connections for `secs` seconds.
fn drive(wrk: &Path, s: &Server, conns: usize, secs: u64) -> Result<Figures, String> {
    let pid = s.child.id();
    let before = read_proc_stat(pid).map_err(|e| format!("server gone: {e}"))?;
    let out = Command::new(wrk)
        .args([
            "-t1".to_string(),
            format!("-c{conns}"),
            format!("-d{secs}s"),
            "--latency".to_string(),
            format!("https://{}/", s.addr),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let after = read_proc_stat(pid).map_err(|e| format!("server gone: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let r = parse_wrk(&text).map_err(|e| {
        format!(
            "wrk output: {e}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    Ok(Figures {
        rps: r.req_per_sec,
        p99_us: r.p99_us,
        cpu_us: cpu_us_per_request(before, after, clock_ticks_per_sec(), r.requests),
        errors: r.errors,
    })
}

/// The path of `cmd` on `PATH`, if any.
fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

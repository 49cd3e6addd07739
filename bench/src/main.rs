//! `cargo run --release -p zsync-bench [-- --quick]`: the side-by-side benchmark runner.
//!
//! Builds every peer, then starts each server on loopback in turn, drives it — HTTP with
//! `wrk -t1 -c<N> -d<secs>s --latency`, echo with the load client — at each connection count,
//! samples the server's user+sys CPU ticks from `/proc/PID/stat` before and after each load run,
//! and prints a table (req/s, p50, p99, CPU µs per request, ratios to Tokio and to the io_uring
//! ceiling). Writes `bench/results.json` and `docs/bench.svg`. Besides every peer at
//! `--workers` threads, zsync Green runs once more with one worker (`zsync green, 1
//! worker`), and once with the Tokio peer's own handler and buffers (`zsync green/io_uring,
//! peer handler`: the like-for-like row, since `examples/http_server` is a complete server
//! with deadlines and limits on every request): the load generator takes one of this machine's 2 cores, and Green's pinned fibers
//! stall on a worker whose thread waits for a CPU, where Tokio's tasks move to the other one.
//!
//! Then runs the micro-benchmarks (spawn+join, yield, ping-pong, 100k sleeps, RSS per parked
//! task) for zsync, Tokio, may, Go and Node, and their stackless twins (zsync's future tasks
//! against Tokio's) (see `micro.rs`), and charts them in `docs/bench-micro.svg`.
//!
//! The HTTP runs include the hyper pair: `zsync hyper` (`examples/hyper_server.rs`, hyper 1.x
//! on zsync Green, built with `--features hyper`) and `tokio hyper` (`peers/tokio_hyper.rs`,
//! the same hyper server and handler on Tokio); their "vs tokio" column compares them to
//! each other (`--only hyper` runs just the pair).
//!
//! Flags: `--quick` (64 connections, 3 s), `--duration SECS`, `--conns 16,64,...`,
//! `--only NAME,...` (peers whose name contains one of them), `--workers N` (server threads, 2),
//! `--rss-conns N` (also each HTTP server's RSS per keep-alive connection with N connections
//! under load: a fresh server, RSS after a warm-up and halfway through an N-connection run),
//! `--pin [SERVER/LOAD]` (run each server on CPUs SERVER and the load generator on CPUs LOAD
//! with `taskset -c`, default `1/0`: with `--workers 1`, the server has a core to itself),
//! `--size BYTES` (echo message, 64), `--no-echo`, `--no-http`, `--no-micro`, `--micro NAME,...`
//! (micro-benchmarks whose name contains one of them, e.g. `stackless`), `--no-transfer`
//! (skip the transfer section: a file served over loopback in every run mode against
//! sendfile/splice/read-write, and large writes with and without `SEND_ZC`, see `transfer.rs`;
//! charted in `docs/bench-transfer.svg`), `--transfer-mib N` (its file size, 100), `--no-apps` (skip the
//! application section: each example application under `examples/` against the same
//! application on its peer, see `apps/mod.rs`), `--apps NAME,...` (only those applications),
//! `--blocking` (also
//! zsync's Blocking model, which serves one connection at a time), `--no-setup` (never run
//! `bench/setup.sh`), `--json PATH`, `--svg PATH`, `--replot` (only redraw the charts from
//! the JSON file).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
mod apps;
mod micro;
mod transfer;

use apps::AppRow;
use micro::MicroRow;
use transfer::TransferRow;
use zsync_bench::{
    clock_ticks_per_sec, cpu_us_per_request, parse_load_line, parse_wrk, raise_nofile,
    read_proc_stat, read_rss_kib, Args,
};

const TOKIO: &str = "tokio";
/// hyper 1.x on zsync Green (`examples/hyper_server.rs`).
const ZSYNC_HYPER: &str = "zsync hyper";
/// The same hyper server on Tokio (`peers/tokio_hyper.rs`): `ZSYNC_HYPER`'s reference.
const TOKIO_HYPER: &str = "tokio hyper";
const CEILING: &str = "ceiling io_uring";
/// zsync Green on io_uring serving with the very handler and buffers of the Tokio peer and the
/// ceiling (`zsync_bench::serve_http` / `serve_echo` through `peers/zsync_http_standin.rs`):
/// the like-for-like row for CPU per request and memory per connection. The `zsync green/*`
/// rows run `examples/`, a complete server (deadlines on every wait, header limits, a body
/// budget), which does more per request than the peers' minimal handler.
const ZSYNC_PEER_HANDLER: &str = "zsync green/io_uring, peer handler";
/// zsync Green on io_uring with a single worker (the others run `--workers`).
const ZSYNC_ONE_WORKER: &str = "zsync green, 1 worker";

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Http,
    Echo,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Echo => "echo",
        }
    }
}

struct Peer {
    name: String,
    kind: Kind,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Served by the suite's stand-in rather than the zsync example.
    standin: bool,
}

#[derive(Serialize, Deserialize, Clone)]
struct Row {
    bench: Kind,
    peer: String,
    standin: bool,
    connections: usize,
    req_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    requests: u64,
    errors: u64,
}

#[derive(Serialize)]
struct Skipped {
    peer: String,
    reason: String,
}

#[derive(Serialize)]
struct Report<'a> {
    generated_unix: u64,
    machine: Machine,
    quick: bool,
    duration_secs: f64,
    server_workers: usize,
    /// Where servers and load ran, for a `--pin` run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned: Option<Pin>,
    http_driver: String,
    echo_driver: String,
    echo_size: usize,
    rows: &'a [Row],
    #[serde(skip_serializing_if = "<[RssRow]>::is_empty")]
    rss_per_conn: &'a [RssRow],
    micro: &'a [MicroRow],
    #[serde(skip_serializing_if = "<[TransferRow]>::is_empty")]
    transfer: &'a [TransferRow],
    #[serde(skip_serializing_if = "<[AppRow]>::is_empty")]
    apps: &'a [AppRow],
    skipped: &'a [Skipped],
}

/// What `--replot` reads back from a results file.
#[derive(Deserialize)]
struct Saved {
    duration_secs: f64,
    rows: Vec<Row>,
    #[serde(default)]
    micro: Vec<MicroRow>,
    #[serde(default)]
    transfer: Vec<TransferRow>,
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    /// 1-minute load average before the runs: well above 0 means a noisy neighbour.
    loadavg_before: f64,
    kernel: String,
}

struct Opts {
    quick: bool,
    secs: f64,
    conns: Vec<usize>,
    only: Vec<String>,
    workers: usize,
    size: usize,
    http: bool,
    echo: bool,
    micro: bool,
    micro_only: Vec<String>,
    /// `--no-transfer` turns it off; `--transfer-mib` sizes its file.
    transfer: bool,
    transfer_mib: u64,
    /// `--no-apps` turns the application section off; `--apps NAME,...` picks applications.
    apps: bool,
    apps_only: Vec<String>,
    blocking: bool,
    setup: bool,
    json: PathBuf,
    svg: PathBuf,
    /// `--pin`: where the servers and the load generator run (CPU lists for `taskset -c`).
    pin: Option<Pin>,
    /// `--rss-conns N`: also measure each HTTP server's RSS per keep-alive connection with N
    /// connections open under load.
    rss_conns: Option<usize>,
}

/// Server memory per connection: a fresh server's RSS with `conns` keep-alive connections
/// under load (sampled halfway through the run), less its RSS after a warm-up, per connection;
/// and its RSS [`RSS_SETTLE`] after the load ended (whether the memory comes back).
#[derive(Serialize)]
struct RssRow {
    peer: String,
    conns: usize,
    baseline_kib: u64,
    loaded_kib: u64,
    kib_per_conn: f64,
    req_per_sec: f64,
    /// RSS [`RSS_SETTLE`] after the load generator closed its connections.
    after_kib: u64,
}

/// How long after a load run [`rss_per_conn`] samples the server's RSS again: a few of the
/// Green workers' stack trim periods.
const RSS_SETTLE: Duration = Duration::from_secs(2);

/// CPU placement of a pinned run (`--pin SERVER/LOAD`, default `1/0`): each server on its CPUs,
/// `wrk` or the echo client on the others, so that the server has its cores to itself.
#[derive(Clone, Debug, Serialize)]
struct Pin {
    server_cpus: String,
    load_cpus: String,
}

impl Pin {
    fn parse(spec: &str) -> Pin {
        let (server, load) = spec
            .split_once('/')
            .expect("--pin SERVER_CPUS/LOAD_CPUS, e.g. 1/0");
        Pin {
            server_cpus: server.to_string(),
            load_cpus: load.to_string(),
        }
    }
}

/// `program` run on `cpus` (through `taskset -c`, which execs it: the PID stays the program's)
/// or as it is.
fn command_on(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpus]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn main() {
    let args = Args::from_env();
    if args.flag("--help") || args.flag("-h") {
        println!(
            "{}",
            include_str!("main.rs")
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .map(|l| l.trim_start_matches("//!"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        return;
    }
    let root = workspace_root();
    if args.flag("--replot") {
        replot(&root, &args);
        return;
    }
    let quick = args.flag("--quick");
    let mut opts = Opts {
        quick,
        secs: args.parse_or("--duration", if quick { 3.0 } else { 5.0 }),
        conns: match args.get("--conns") {
            Some(list) => list
                .split(',')
                .map(|c| c.trim().parse().expect("--conns 16,64,..."))
                .collect(),
            None if quick => vec![64],
            None => vec![16, 64, 256, 1024],
        },
        only: args
            .get("--only")
            .map(|s| s.split(',').map(|p| p.trim().to_lowercase()).collect())
            .unwrap_or_default(),
        workers: args.parse_or("--workers", 2usize),
        size: args.parse_or("--size", 64usize),
        http: !args.flag("--no-http"),
        echo: !args.flag("--no-echo"),
        micro: !args.flag("--no-micro"),
        micro_only: args
            .get("--micro")
            .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default(),
        transfer: !args.flag("--no-transfer"),
        transfer_mib: args.parse_or("--transfer-mib", 100u64),
        apps: !args.flag("--no-apps"),
        apps_only: args
            .get("--apps")
            .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default(),
        blocking: args.flag("--blocking"),
        setup: !args.flag("--no-setup"),
        json: args
            .get("--json")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("bench/results.json")),
        svg: args
            .get("--svg")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("docs/bench.svg")),
        pin: match args.get("--pin") {
            Some(spec) if !spec.starts_with("--") => Some(Pin::parse(&spec)),
            _ if args.flag("--pin") => Some(Pin::parse("1/0")),
            _ => None,
        },
        rss_conns: args
            .get("--rss-conns")
            .map(|n| n.parse().expect("--rss-conns N")),
    };
    // A run that leaves sections or connection counts out writes its results beside the
    // committed full run's (`bench/results.json`, `docs/bench.svg`), not over them.
    let partial = quick
        || !(opts.http && opts.echo && opts.micro && opts.transfer && opts.apps)
        || !opts.apps_only.is_empty()
        || !opts.micro_only.is_empty()
        || args.get("--conns").is_some();
    if partial && (args.get("--json").is_none() || args.get("--svg").is_none()) {
        let dir = root.join("target/zsync-bench");
        let _ = std::fs::create_dir_all(&dir);
        if args.get("--json").is_none() {
            opts.json = dir.join("results-partial.json");
        }
        if args.get("--svg").is_none() {
            opts.svg = dir.join("bench-partial.svg");
        }
        note(&format!(
            "a partial run: results go to {} (--json PATH to choose)",
            opts.json.display()
        ));
    }
    if let Some(n) = opts.rss_conns {
        // The servers and wrk inherit it: each side holds one descriptor per connection.
        let limit = raise_nofile(n as u64 + 1024);
        if limit < n as u64 + 256 {
            eprintln!(
                "--rss-conns {n}: the open-file limit is {limit} (hard limit); raise it first"
            );
            std::process::exit(2);
        }
    }
    if opts.pin.is_some() && which("taskset").is_none() {
        eprintln!("--pin needs taskset (util-linux)");
        std::process::exit(2);
    }
    let mut skipped = Vec::new();

    // ---- tools
    if which("wrk").is_none() && opts.setup && opts.http {
        note("wrk is missing: running bench/setup.sh once");
        let ok = Command::new("bash")
            .arg(root.join("bench/setup.sh"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            note("bench/setup.sh failed (not root, or no apt-get?): peers it installs are skipped");
        }
    }
    let wrk = which("wrk");
    if wrk.is_none() && opts.http {
        skip(
            &mut skipped,
            "all HTTP runs",
            "wrk not installed (bench/setup.sh installs it)",
        );
    }

    // ---- build
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let release = target.join("release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    section("building peers");
    let ok = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "zsync-bench", "--bins"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("cargo build of the bench crate failed");
        std::process::exit(1);
    }
    let mut examples = Vec::new();
    for ex in ["http_server", "echo_server", "load_client"] {
        if root.join(format!("examples/{ex}.rs")).exists() {
            examples.push(ex);
        } else {
            note(&format!(
                "examples/{ex}.rs not in this tree: using the bench crate's stand-in"
            ));
        }
    }
    if !examples.is_empty() {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&root)
            .args(["build", "--release", "-p", "zsync-io"]);
        for ex in &examples {
            cmd.args(["--example", ex]);
        }
        if !cmd.status().map(|s| s.success()).unwrap_or(false) {
            note("building the zsync examples failed: using the stand-ins");
            examples.clear();
        }
    }
    // The hyper example needs the `hyper` feature: a build of its own.
    let hyper_example = root.join("examples/hyper_server.rs").exists() && opts.http && {
        let ok = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "-p",
                "zsync-io",
                "--features",
                "hyper",
            ])
            .args(["--example", "hyper_server"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            note("building examples/hyper_server.rs (--features hyper) failed");
        }
        ok
    };
    if !hyper_example && opts.http {
        skip(
            &mut skipped,
            ZSYNC_HYPER,
            "examples/hyper_server.rs not in this tree or not built",
        );
    }
    let example = |name: &str| {
        examples
            .contains(&name)
            .then(|| release.join("examples").join(name))
    };
    let go_bin = build_go(&root, &target, &mut skipped);
    let node = which("node");
    if node.is_none() {
        skip(
            &mut skipped,
            "node http",
            "node not installed (bench/setup.sh installs nodejs)",
        );
    }

    let suite = if opts.micro {
        section("building micro-benchmarks");
        let go = which("go");
        let mut skip_note = |peer: &str, why: &str| skip(&mut skipped, peer, why);
        let mut suite = micro::prepare(
            &root,
            &target,
            &cargo,
            go.as_deref(),
            node.as_deref(),
            opts.quick,
            &mut skip_note,
        );
        if let Some(s) = &mut suite {
            s.retain(&opts.only);
            s.retain_benches(&opts.micro_only);
        }
        suite
    } else {
        None
    };

    // ---- peers
    let w = opts.workers.to_string();
    let mut peers = Vec::new();
    let mut zsync_models = vec![
        ("zsync green/io_uring", "green", "io_uring"),
        ("zsync green/epoll", "green", "epoll"),
        ("zsync threaded", "threaded", "epoll"),
    ];
    // Where the kernel refuses io_uring (`kernel.io_uring_disabled`, a container's seccomp
    // profile), the io_uring rows cannot run: say why and leave them out.
    let no_uring = zsync::Backend::IoUring
        .resolve()
        .err()
        .map(|e| e.to_string());
    if let Some(why) = &no_uring {
        zsync_models.retain(|&(_, _, backend)| backend != "io_uring");
        for name in [
            "zsync green/io_uring",
            ZSYNC_PEER_HANDLER,
            ZSYNC_ONE_WORKER,
            CEILING,
        ] {
            skip(&mut skipped, name, &format!("io_uring unavailable: {why}"));
        }
    }
    if opts.blocking {
        zsync_models.push(("zsync blocking", "blocking", "epoll"));
    } else {
        skip(
            &mut skipped,
            "zsync blocking",
            "serves one connection at a time, so wrk's other connections only time out (--blocking runs it anyway)",
        );
    }
    let peer = |name: &str, kind, program: PathBuf, args: &[&str]| Peer {
        name: name.to_string(),
        kind,
        program,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        standin: false,
    };
    for kind in [Kind::Http, Kind::Echo] {
        let (ex, mode) = match kind {
            Kind::Http => ("http_server", "http"),
            Kind::Echo => ("echo_server", "echo"),
        };
        for &(name, model, backend) in &zsync_models {
            let zargs = ["--model", model, "--backend", backend, "--workers", &w];
            let mut p = match example(ex) {
                Some(prog) => peer(name, kind, prog, &zargs),
                None => {
                    let mut p = peer(name, kind, release.join("zsync-http-standin"), &zargs);
                    p.args.extend(["--mode".into(), mode.into()]);
                    p.standin = true;
                    p
                }
            };
            if model == "threaded" {
                p.args.retain(|a| a != "--backend" && a != "epoll");
            }
            peers.push(p);
        }
        if no_uring.is_none() {
            let mut p = peer(
                ZSYNC_PEER_HANDLER,
                kind,
                release.join("zsync-http-standin"),
                &["--model", "green", "--backend", "io_uring", "--workers", &w],
            );
            p.args.extend(["--mode".into(), mode.into()]);
            peers.push(p);
        }
        // Green pins a connection's fiber to one worker for life, so a worker whose thread
        // waits for a CPU (here: `wrk` or the load client takes one of the 2 cores) stalls its
        // connections, where Tokio's other worker takes over its tasks. This row shows what the
        // same server does with one worker, which then has a core of its own: not a
        // like-for-like peer (the others run `--workers` threads), hence its own name.
        if opts.workers > 1 && no_uring.is_none() {
            if let Some(prog) = example(ex) {
                let one = [
                    "--model",
                    "green",
                    "--backend",
                    "io_uring",
                    "--workers",
                    "1",
                ];
                peers.push(peer(ZSYNC_ONE_WORKER, kind, prog, &one));
            }
        }
        let rargs = ["--workers", &w, "--mode", mode];
        peers.push(peer(TOKIO, kind, release.join("tokio-http"), &rargs));
        if kind == Kind::Http {
            // The hyper pair: the same hyper server and handler on zsync Green and on Tokio.
            if hyper_example {
                let prog = release.join("examples/hyper_server");
                peers.push(peer(
                    ZSYNC_HYPER,
                    kind,
                    prog,
                    &["--model", "green", "--workers", &w],
                ));
            }
            peers.push(peer(
                TOKIO_HYPER,
                kind,
                release.join("tokio-hyper"),
                &["--workers", &w],
            ));
        }
        peers.push(peer("may", kind, release.join("may-http"), &rargs));
        // Go and Node: `net/http` and `http` for HTTP, their plain TCP servers for echo.
        let (go_name, node_name) = match kind {
            Kind::Http => ("go net/http", "node http"),
            Kind::Echo => ("go net", "node net"),
        };
        if let Some(go) = &go_bin {
            let mut p = peer(
                go_name,
                kind,
                go.clone(),
                &["--workers", &w, "--mode", mode],
            );
            p.env.push(("GOMAXPROCS".into(), w.clone()));
            peers.push(p);
        }
        if let Some(node) = &node {
            let script = root.join("bench/peers/node/server.js");
            peers.push(peer(
                node_name,
                kind,
                node.clone(),
                &[script.to_str().unwrap(), "--mode", mode],
            ));
        }
        if no_uring.is_none() {
            peers.push(peer(CEILING, kind, release.join("uring-ceiling"), &rargs));
        }
    }
    peers.retain(|p| match p.kind {
        Kind::Http => opts.http && wrk.is_some(),
        Kind::Echo => opts.echo,
    });
    if !opts.only.is_empty() {
        peers.retain(|p| {
            let n = p.name.to_lowercase();
            opts.only.iter().any(|o| n.contains(o.as_str()))
        });
    }
    let load_client = example("load_client").unwrap_or_else(|| release.join("load-standin"));

    // ---- run
    let total = peers.len() * opts.conns.len();
    let est = peers.len() as f64 * (1.5 + opts.conns.len() as f64 * (opts.secs + 0.5));
    section(&format!(
        "{} peers x {} connection counts, {} s each: about {:.0} s",
        peers.len(),
        opts.conns.len(),
        opts.secs,
        est
    ));
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load_before = loadavg();
    if load_before > cpus as f64 * 0.5 {
        note(&format!(
            "load average {load_before:.2} on {cpus} CPUs before the run: something else is busy, absolute numbers will be noisy"
        ));
    }
    let run_start = Instant::now();
    let logs = target.join("bench-logs");
    let _ = std::fs::create_dir_all(&logs);
    let hz = clock_ticks_per_sec();
    let mut rows = Vec::new();
    let mut rss_rows: Vec<RssRow> = Vec::new();
    let mut done = 0;
    for p in &peers {
        let mut server = match start(p, &logs, opts.pin.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                done += opts.conns.len();
                skip(&mut skipped, &format!("{} {}", p.kind.name(), p.name), &e);
                continue;
            }
        };
        // Warm-up (not measured): JITs, lazily grown pools, page faults of fresh stacks.
        let _ = drive(
            p.kind,
            &server.addr,
            64,
            1.0,
            wrk.as_deref(),
            &load_client,
            &opts,
        );
        for &c in &opts.conns {
            done += 1;
            print!(
                "[{done:>2}/{total}] {:<4} {:<22} c={c:<5} ",
                p.kind.name(),
                p.name
            );
            let _ = std::io::stdout().flush();
            match measure(p, &mut server, c, &opts, wrk.as_deref(), &load_client, hz) {
                Ok(r) => {
                    println!(
                        "{:>9.0} req/s  p50 {:>8}  p99 {:>8}  cpu {:>5.2} µs/req{}",
                        r.req_per_sec,
                        fmt_us(r.p50_us),
                        fmt_us(r.p99_us),
                        r.cpu_us_per_req,
                        if r.errors > 0 {
                            format!("  ({} errors)", r.errors)
                        } else {
                            String::new()
                        }
                    );
                    rows.push(r);
                }
                Err(e) => {
                    println!("failed: {e}");
                    skip(
                        &mut skipped,
                        &format!("{} {} c={c}", p.kind.name(), p.name),
                        &e,
                    );
                }
            }
        }
        server.stop();
        if let (Some(n), Kind::Http) = (opts.rss_conns, p.kind) {
            print!("[rss] {:<22} c={n:<5} ", p.name);
            let _ = std::io::stdout().flush();
            match rss_per_conn(p, &logs, n, &opts, wrk.as_deref(), &load_client) {
                Ok(r) => {
                    println!(
                        "{:>9.0} req/s  RSS {} KiB idle, {} KiB loaded: {:.1} KiB/conn; {} KiB {:.0} s after",
                        r.req_per_sec,
                        r.baseline_kib,
                        r.loaded_kib,
                        r.kib_per_conn,
                        r.after_kib,
                        RSS_SETTLE.as_secs_f64()
                    );
                    rss_rows.push(r);
                }
                Err(e) => {
                    println!("failed: {e}");
                    skip(&mut skipped, &format!("rss {} c={n}", p.name), &e);
                }
            }
        }
    }
    let micro_rows = match &suite {
        Some(suite) if suite.len() > 0 => {
            section(&format!(
                "micro-benchmarks: {} runs, each in a fresh process",
                suite.len()
            ));
            suite.run()
        }
        _ => Vec::new(),
    };
    let transfer_rows = if opts.transfer {
        section(&format!(
            "transfers: a {} MiB file over loopback in every run mode, large writes with and without SEND_ZC",
            opts.transfer_mib
        ));
        transfer::run(opts.transfer_mib, opts.quick)
    } else {
        Vec::new()
    };
    let mut app_rows = if opts.apps {
        section("applications: each example against the same application on its peer");
        apps::run(
            &apps::Ctx {
                root: root.clone(),
                quick: opts.quick,
                workers: opts.workers,
            },
            &opts.apps_only,
        )
    } else {
        Vec::new()
    };
    apps::compare(&mut app_rows);

    // ---- report
    println!(
        "\nran {} load runs and {} micro-benchmarks in {:.0} s; load average before {:.2}, after {:.2}",
        rows.len(),
        micro_rows.iter().filter(|r| r.error.is_none()).count(),
        run_start.elapsed().as_secs_f64(),
        load_before,
        loadavg()
    );
    for kind in [Kind::Http, Kind::Echo] {
        print_table(kind, &rows, &opts);
    }
    micro::print_table(&micro_rows);
    transfer::print_table(&transfer_rows);
    apps::print_table(&app_rows);
    if rows.iter().any(|r| r.standin) {
        println!("\n* zsync served by the bench crate's stand-in (zsync-http-standin / load-standin), not by examples/");
    }
    if !skipped.is_empty() {
        println!("\nskipped:");
        for s in &skipped {
            println!("  - {}: {}", s.peer, s.reason);
        }
    }
    let report = Report {
        generated_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        machine: Machine {
            cpus,
            loadavg_before: load_before,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        },
        quick: opts.quick,
        duration_secs: opts.secs,
        server_workers: opts.workers,
        pinned: opts.pin.clone(),
        http_driver: format!("wrk -t1 -c<N> -d{}s --latency", opts.secs),
        echo_driver: format!(
            "{} --connections <N> --size {} --duration {}",
            load_client.file_name().unwrap().to_string_lossy(),
            opts.size,
            opts.secs
        ),
        echo_size: opts.size,
        rows: &rows,
        rss_per_conn: &rss_rows,
        micro: &micro_rows,
        transfer: &transfer_rows,
        apps: &app_rows,
        skipped: &skipped,
    };
    match serde_json::to_string_pretty(&report) {
        Ok(j) => match std::fs::write(&opts.json, j + "\n") {
            Ok(()) => println!("\nwrote {}", opts.json.display()),
            Err(e) => eprintln!("writing {}: {e}", opts.json.display()),
        },
        Err(e) => eprintln!("json: {e}"),
    }
    if let Some(dir) = opts.svg.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if !rows.is_empty() {
        match chart::draw(&opts.svg, &rows, &opts.conns, opts.secs) {
            Ok(()) => println!("wrote {}", opts.svg.display()),
            Err(e) => eprintln!("chart: {e}"),
        }
    }
    if !micro_rows.is_empty() {
        let svg = micro_svg(&opts.svg);
        match chart::draw_micro(&svg, &micro_rows) {
            Ok(()) => println!("wrote {}", svg.display()),
            Err(e) => eprintln!("micro chart: {e}"),
        }
    }
    draw_transfer(&opts.svg, &transfer_rows);
}

/// `docs/bench.svg` → `docs/bench-micro.svg`: where the micro chart goes.
fn micro_svg(svg: &Path) -> PathBuf {
    let stem = svg.file_stem().unwrap_or_default().to_string_lossy();
    svg.with_file_name(format!("{stem}-micro.svg"))
}

/// Draws the transfer chart next to `svg` (`docs/bench-transfer.svg`), if there are rows.
fn draw_transfer(svg: &Path, rows: &[TransferRow]) {
    if rows.is_empty() {
        return;
    }
    let stem = svg.file_stem().unwrap_or_default().to_string_lossy();
    let path = svg.with_file_name(format!("{stem}-transfer.svg"));
    match transfer::draw(&path, rows) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("transfer chart: {e}"),
    }
}

/// `--replot [--json PATH] [--svg PATH]`: redraws the chart from a results file, no runs.
fn replot(root: &Path, args: &Args) {
    let json = args
        .get("--json")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/results.json"));
    let svg = args
        .get("--svg")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("docs/bench.svg"));
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("reading {}: {e}", json.display()));
    let saved: Saved = serde_json::from_str(&text).expect("results file");
    let mut conns: Vec<usize> = saved.rows.iter().map(|r| r.connections).collect();
    conns.sort_unstable();
    conns.dedup();
    if !saved.rows.is_empty() {
        match chart::draw(&svg, &saved.rows, &conns, saved.duration_secs) {
            Ok(()) => println!("wrote {}", svg.display()),
            Err(e) => eprintln!("chart: {e}"),
        }
    }
    if !saved.micro.is_empty() {
        let micro = micro_svg(&svg);
        match chart::draw_micro(&micro, &saved.micro) {
            Ok(()) => println!("wrote {}", micro.display()),
            Err(e) => eprintln!("micro chart: {e}"),
        }
    }
    draw_transfer(&svg, &saved.transfer);
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

fn section(s: &str) {
    println!("\n==== {s}");
}

fn note(s: &str) {
    println!("note: {s}");
}

fn skip(skipped: &mut Vec<Skipped>, peer: &str, reason: &str) {
    println!("note: skipping {peer}: {reason}");
    skipped.push(Skipped {
        peer: peer.to_string(),
        reason: reason.to_string(),
    });
}

/// 1-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

fn build_go(root: &Path, target: &Path, skipped: &mut Vec<Skipped>) -> Option<PathBuf> {
    let Some(go) = which("go") else {
        skip(
            skipped,
            "go net/http",
            "go not installed (bench/setup.sh installs golang-go)",
        );
        return None;
    };
    let built = go_build(&go, root, target, "go", "go-http");
    if built.is_none() {
        skip(skipped, "go net/http", "go build failed");
    }
    built
}

/// Builds the Go program in `bench/peers/<package>` into `target/release/<binary>`, offline
/// and with the local toolchain; `None` if the build fails.
fn go_build(go: &Path, root: &Path, target: &Path, package: &str, binary: &str) -> Option<PathBuf> {
    let out = target.join("release").join(binary);
    Command::new(go)
        .current_dir(root.join("bench/peers").join(package))
        .env("GOCACHE", target.join("go-cache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .status()
        .is_ok_and(|s| s.success())
        .then_some(out)
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start(p: &Peer, logs: &Path, pin: Option<&Pin>) -> Result<Server, String> {
    if !p.program.exists() {
        return Err(format!("{} not built", p.program.display()));
    }
    let addr = format!("127.0.0.1:{}", free_port().map_err(|e| e.to_string())?);
    let slug: String = format!("{}-{}", p.kind.name(), p.name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let log_path = logs.join(format!("{slug}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd = command_on(&p.program, pin.map(|p| p.server_cpus.as_str()));
    cmd.args(&p.args)
        .args(["--addr", &addr])
        .envs(p.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", p.program.display()))?;
    let mut server = Server { child, addr };
    let sa: SocketAddr = server.addr.parse().unwrap();
    let t = Instant::now();
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(3).collect();
            return Err(format!("exited at start ({st}): {}", tail.join(" | ")));
        }
        if TcpStream::connect_timeout(&sa, Duration::from_millis(100)).is_ok() {
            return Ok(server);
        }
        if t.elapsed() > Duration::from_secs(20) {
            return Err("did not listen within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`RssRow`] for peer `p`: a fresh server, a warm-up, its RSS, then `conns` connections of
/// `wrk` for the run's duration with the RSS sampled halfway.
fn rss_per_conn(
    p: &Peer,
    logs: &Path,
    conns: usize,
    opts: &Opts,
    wrk: Option<&Path>,
    load_client: &Path,
) -> Result<RssRow, String> {
    let mut server = start(p, logs, opts.pin.as_ref())?;
    let result = (|| {
        let _ = drive(p.kind, &server.addr, 64, 1.0, wrk, load_client, opts);
        let pid = server.pid();
        let baseline = read_rss_kib(pid).map_err(|e| format!("server gone: {e}"))?;
        let half = Duration::from_secs_f64(opts.secs.round().max(2.0) / 2.0);
        let sampler = std::thread::spawn(move || {
            std::thread::sleep(half);
            read_rss_kib(pid)
        });
        let (rps, _, _, _, _) = drive(
            p.kind,
            &server.addr,
            conns,
            opts.secs,
            wrk,
            load_client,
            opts,
        )?;
        let loaded = sampler
            .join()
            .map_err(|_| "RSS sampler panicked".to_string())?
            .map_err(|e| format!("server gone: {e}"))?;
        std::thread::sleep(RSS_SETTLE);
        let after = read_rss_kib(pid).map_err(|e| format!("server gone: {e}"))?;
        Ok(RssRow {
            peer: p.name.clone(),
            conns,
            baseline_kib: baseline,
            loaded_kib: loaded,
            kib_per_conn: loaded.saturating_sub(baseline) as f64 / conns as f64,
            req_per_sec: rps,
            after_kib: after,
        })
    })();
    server.stop();
    result
}

/// One load run: (req/s, p50 µs, p99 µs, requests, errors).
fn drive(
    kind: Kind,
    addr: &str,
    conns: usize,
    secs: f64,
    wrk: Option<&Path>,
    load_client: &Path,
    opts: &Opts,
) -> Result<(f64, f64, f64, u64, u64), String> {
    let size = opts.size;
    let load_cpus = opts.pin.as_ref().map(|p| p.load_cpus.as_str());
    match kind {
        Kind::Http => {
            let wrk = wrk.ok_or("wrk missing")?;
            let out = command_on(wrk, load_cpus)
                .args([
                    "-t1".to_string(),
                    format!("-c{conns}"),
                    format!("-d{}s", secs.round().max(1.0) as u64),
                    "--latency".to_string(),
                    format!("http://{addr}/"),
                ])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("wrk: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let r = parse_wrk(&text).map_err(|e| {
                format!(
                    "wrk output: {e}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })?;
            Ok((r.req_per_sec, r.p50_us, r.p99_us, r.requests, r.errors))
        }
        Kind::Echo => {
            let out = command_on(load_client, load_cpus)
                .args([
                    "--addr".to_string(),
                    addr.to_string(),
                    "--connections".to_string(),
                    conns.to_string(),
                    "--size".to_string(),
                    size.to_string(),
                    "--duration".to_string(),
                    secs.to_string(),
                    // One thread, as `wrk -t1` drives the HTTP runs: the load side then takes
                    // one core's worth of CPU, not a share of both cores.
                    "--workers".to_string(),
                    "1".to_string(),
                ])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("load client: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let r = parse_load_line(&text).map_err(|e| {
                format!(
                    "load client output: {e}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })?;
            let requests = r.requests.unwrap_or((r.req_per_sec * secs).round() as u64);
            Ok((
                r.req_per_sec,
                r.p50_us,
                r.p99_us,
                requests,
                r.errors.unwrap_or(0),
            ))
        }
    }
}

fn measure(
    p: &Peer,
    server: &mut Server,
    conns: usize,
    opts: &Opts,
    wrk: Option<&Path>,
    load_client: &Path,
    hz: f64,
) -> Result<Row, String> {
    let pid = server.pid();
    let before = read_proc_stat(pid).map_err(|e| format!("server gone: {e}"))?;
    let (rps, p50, p99, requests, errors) = drive(
        p.kind,
        &server.addr,
        conns,
        opts.secs,
        wrk,
        load_client,
        opts,
    )?;
    let after = read_proc_stat(pid).map_err(|e| format!("server gone: {e}"))?;
    if let Ok(Some(st)) = server.child.try_wait() {
        return Err(format!("server exited during the run ({st})"));
    }
    Ok(Row {
        bench: p.kind,
        peer: p.name.clone(),
        standin: p.standin,
        connections: conns,
        req_per_sec: rps,
        p50_us: p50,
        p99_us: p99,
        cpu_us_per_req: cpu_us_per_request(before, after, hz, requests),
        requests,
        errors,
    })
}

fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a.is_finite() => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn print_table(kind: Kind, rows: &[Row], opts: &Opts) {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.bench == kind).collect();
    if rows.is_empty() {
        return;
    }
    let driver = match kind {
        Kind::Http => "wrk -t1, GET / hello".to_string(),
        Kind::Echo => format!("load client, {} B messages", opts.size),
    };
    section(&format!(
        "{} ({driver}, {} s per run, {} server threads)",
        kind.name().to_uppercase(),
        opts.secs,
        opts.workers
    ));
    println!(
        "{:<23} {:>5} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "peer",
        "conns",
        "req/s",
        "p50",
        "p99",
        "CPU/req",
        "vs tokio",
        "vs ceil",
        "CPU/ceil",
        "errors"
    );
    println!("{}", "-".repeat(104));
    for &c in &opts.conns {
        let at: Vec<&&Row> = rows.iter().filter(|r| r.connections == c).collect();
        let find = |name: &str| at.iter().find(|r| r.peer == name).map(|r| **r);
        let tokio = find(TOKIO);
        let tokio_hyper = find(TOKIO_HYPER);
        let ceil = find(CEILING);
        for r in &at {
            // The hyper pair is compared with each other: same server code on both runtimes.
            let tokio = if r.peer == ZSYNC_HYPER || r.peer == TOKIO_HYPER {
                tokio_hyper
            } else {
                tokio
            };
            println!(
                "{:<23} {:>5} {:>10.0} {:>9} {:>9} {:>6.2} µs {:>8} {:>8} {:>8} {:>7}",
                format!("{}{}", r.peer, if r.standin { "*" } else { "" }),
                c,
                r.req_per_sec,
                fmt_us(r.p50_us),
                fmt_us(r.p99_us),
                r.cpu_us_per_req,
                ratio(r.req_per_sec, tokio.map(|t| t.req_per_sec)),
                ratio(r.req_per_sec, ceil.map(|t| t.req_per_sec)),
                ratio(r.cpu_us_per_req, ceil.map(|t| t.cpu_us_per_req)),
                r.errors
            );
        }
        if !at.is_empty() {
            println!();
        }
    }
}

mod chart {
    use super::micro::{self, MicroRow};
    use super::{Kind, Row};
    use plotters::prelude::*;
    use std::path::Path;

    struct Panel {
        title: &'static str,
        kind: Kind,
        y_label: &'static str,
        value: fn(&Row) -> f64,
    }

    /// One color per peer, the same in every chart; zsync drawn thicker.
    fn style(name: &str, i: usize) -> (RGBAColor, u32) {
        let rgb = match name {
            "zsync green/io_uring" => RGBColor(214, 39, 40),
            "zsync green/epoll" => RGBColor(255, 127, 14),
            super::ZSYNC_ONE_WORKER => RGBColor(255, 152, 150),
            super::ZSYNC_PEER_HANDLER => RGBColor(127, 0, 0),
            "zsync threaded" => RGBColor(140, 86, 75),
            "zsync blocking" => RGBColor(227, 119, 194),
            "tokio" => RGBColor(31, 119, 180),
            super::ZSYNC_HYPER => RGBColor(188, 189, 34),
            super::TOKIO_HYPER => RGBColor(158, 218, 229),
            "may" => RGBColor(44, 160, 44),
            "go net/http" | "go net" => RGBColor(23, 190, 207),
            "node http" | "node net" => RGBColor(148, 103, 189),
            "ceiling io_uring" => RGBColor(0, 0, 0),
            _ => return (Palette99::pick(i).to_rgba(), 2),
        };
        (rgb.to_rgba(), if name.starts_with("zsync") { 3 } else { 2 })
    }

    /// Three panels side by side: HTTP req/s, HTTP CPU µs per request, echo req/s; one line
    /// per peer over the connection counts (log scale).
    pub fn draw(
        path: &Path,
        rows: &[Row],
        conns: &[usize],
        secs: f64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let panels = [
            Panel {
                title: "HTTP hello: requests/s",
                kind: Kind::Http,
                y_label: "req/s (thousands)",
                value: |r| r.req_per_sec / 1000.0,
            },
            Panel {
                title: "HTTP hello: server CPU per request",
                kind: Kind::Http,
                y_label: "µs of CPU (user+sys) per request",
                value: |r| r.cpu_us_per_req,
            },
            Panel {
                title: "TCP echo: round trips/s",
                kind: Kind::Echo,
                y_label: "round trips/s (thousands)",
                value: |r| r.req_per_sec / 1000.0,
            },
        ];
        let root = SVGBackend::new(path, (1500, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(
            format!(
                "zsync vs Tokio, may, Go, Node and a runtime-free io_uring ceiling — loopback, wrk/load client and server share the machine, {secs} s per point"
            ),
            (20, 12),
            ("sans-serif", 16).into_font(),
        ))?;
        let (plots, legend) = body.split_horizontally(1500 - 190);
        let areas = plots.split_evenly((1, panels.len()));
        // Connection counts as equally spaced categories (16, 64, 256, 1024 are a log scale).
        let slot = |c: usize| conns.iter().position(|&x| x == c).map(|i| i as i32);
        let (x0, x1) = (-1i32, conns.len() as i32);
        let mut names: Vec<String> = Vec::new();
        for r in rows {
            if !names.contains(&r.peer) {
                names.push(r.peer.clone());
            }
        }
        for (area, panel) in areas.iter().zip(&panels) {
            let pts: Vec<&Row> = rows.iter().filter(|r| r.bench == panel.kind).collect();
            let ymax = pts
                .iter()
                .map(|r| (panel.value)(r))
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::max)
                * 1.15;
            let ymax = if ymax > 0.0 { ymax } else { 1.0 };
            let mut chart = ChartBuilder::on(area)
                .caption(panel.title, ("sans-serif", 17))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, 0.0..ymax)?;
            chart
                .configure_mesh()
                .x_desc("connections")
                .y_desc(panel.y_label)
                .x_labels(conns.len() + 2)
                .x_label_formatter(&|x: &i32| {
                    usize::try_from(*x)
                        .ok()
                        .and_then(|i| conns.get(i))
                        .map(|c| c.to_string())
                        .unwrap_or_default()
                })
                .disable_x_mesh()
                .max_light_lines(0)
                .bold_line_style(BLACK.mix(0.08))
                .draw()?;
            for (i, name) in names.iter().enumerate() {
                let mut series: Vec<(i32, f64)> = pts
                    .iter()
                    .filter(|r| &r.peer == name)
                    .filter_map(|r| Some((slot(r.connections)?, (panel.value)(r))))
                    .filter(|(_, y)| y.is_finite())
                    .collect();
                if series.is_empty() {
                    continue;
                }
                series.sort_by_key(|p| p.0);
                let (color, width) = style(name, i);
                chart.draw_series(LineSeries::new(series.clone(), color.stroke_width(width)))?;
                chart.draw_series(
                    series
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )?;
            }
        }
        for (i, name) in names.iter().enumerate() {
            let (color, width) = style(name, i);
            let y = 70 + 24 * i as i32;
            legend.draw(&PathElement::new(
                vec![(8, y), (34, y)],
                color.stroke_width(width + 1),
            ))?;
            legend.draw(&Text::new(
                name.clone(),
                (42, y - 7),
                ("sans-serif", 13).into_font(),
            ))?;
        }
        root.present()?;
        Ok(())
    }

    /// The micro-benchmarks as grouped bars: per benchmark, each runtime's figure divided by
    /// Tokio's (Tokio = 1, lower is better; bars above 3× are clipped and labelled), and RSS per
    /// parked task in KiB on its own axis (Tokio's stackless tasks make a ratio meaningless).
    pub fn draw_micro(path: &Path, rows: &[MicroRow]) -> Result<(), Box<dyn std::error::Error>> {
        let mut benches: Vec<&str> = Vec::new();
        let mut runtimes: Vec<&str> = Vec::new();
        for r in rows {
            if !benches.contains(&r.bench.as_str()) {
                benches.push(&r.bench);
            }
            if !runtimes.contains(&r.runtime.as_str()) {
                runtimes.push(&r.runtime);
            }
        }
        let (kib, ratios): (Vec<&str>, Vec<&str>) =
            benches.iter().partition(|b| **b == "rss_parked");
        // About 200 px per group of ratio bars, the KiB panel and the legend beside them.
        let left_width = 200 * ratios.len().max(2) as u32 + 10;
        let width = left_width + 300 + 190;
        let root = SVGBackend::new(path, (width, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(
            "zsync micro-benchmarks vs Tokio, may, Go and Node (2 workers each, Node 1 thread) — lower is better",
            (20, 12),
            ("sans-serif", 16).into_font(),
        ))?;
        let (plots, legend) = body.split_horizontally(width - 190);
        let (left, right) = plots.split_horizontally(left_width);
        let value = |bench: &str, rt: &str| {
            rows.iter()
                .find(|r| r.bench == bench && r.runtime == rt)
                .and_then(MicroRow::value)
        };
        let panels: [(&_, &[&str], &str, f64, bool); 2] = [
            (&left, &ratios, "figure ÷ Tokio's", 3.0, true),
            (&right, &kib, "KiB of RSS per parked task", 10.0, false),
        ];
        for (area, benches, y_desc, top, vs_tokio) in panels {
            if benches.is_empty() {
                continue;
            }
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..benches.len() as f64, 0.0..top * 1.1)?;
            chart
                .configure_mesh()
                .y_desc(y_desc)
                .x_labels(0)
                .disable_x_mesh()
                .max_light_lines(0)
                .bold_line_style(BLACK.mix(0.08))
                .draw()?;
            let width = 0.8 / runtimes.len().max(1) as f64;
            for (bi, bench) in benches.iter().enumerate() {
                chart.draw_series(std::iter::once(Text::new(
                    micro::label(bench).to_string(),
                    (bi as f64 + 0.1, -top * 0.04),
                    ("sans-serif", 13).into_font(),
                )))?;
                let tokio = value(bench, "tokio");
                for (ri, rt) in runtimes.iter().enumerate() {
                    let y = match (value(bench, rt), tokio) {
                        (Some(v), _) if !vs_tokio => v,
                        (Some(v), Some(t)) if t > 0.0 => v / t,
                        _ => continue,
                    };
                    let x0 = bi as f64 + 0.1 + ri as f64 * width;
                    let (color, _) = micro_style(rt, ri);
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x0 + width * 0.9, y.min(top))],
                        color.filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{y:.2}"),
                        (x0, y.min(top) + top * 0.03),
                        ("sans-serif", 10).into_font(),
                    )))?;
                }
            }
        }
        for (i, rt) in runtimes.iter().enumerate() {
            let (color, _) = micro_style(rt, i);
            let y = 70 + 24 * i as i32;
            legend.draw(&Rectangle::new([(8, y - 6), (34, y + 6)], color.filled()))?;
            legend.draw(&Text::new(
                rt.to_string(),
                (42, y - 7),
                ("sans-serif", 13).into_font(),
            ))?;
        }
        root.present()?;
        Ok(())
    }

    /// The micro chart's colors: the HTTP chart's peer colors where the runtime is the same.
    fn micro_style(runtime: &str, i: usize) -> (RGBAColor, u32) {
        let peer = match runtime {
            "zsync green" => "zsync green/io_uring",
            "go" => "go net/http",
            "node" => "node http",
            other => other,
        };
        style(peer, i)
    }
}

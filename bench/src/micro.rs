//! The runner's micro-benchmarks: spawn+join, yield, ping-pong (on one worker or forced across
//! workers), 4P/4C MPMC throughput, 100k sleeps and RSS per parked task, for zsync (Green and
//! Threaded), Tokio, may and crossbeam-channel (on OS threads, for the channel workloads) — measured by zsync's own
//! `benches/green.rs` in `--child` mode, so the runner and `cargo bench --bench green` run the
//! very same code — and for Go (goroutines, `bench/peers/go-micro`) and Node (promises,
//! `bench/peers/node/micro.js`). The `stackless_*` benchmarks run the same async code on zsync
//! Green's future tasks (`io.spawn_future`) and on Tokio's tasks, and only there.
//!
//! Every (runtime, benchmark) pair runs in a fresh child process that prints
//! `RESULT cold warm...`; a child that crashes or outlives [`CHILD_TIMEOUT`] is reported as such
//! (may crashes or crawls at 100k parked coroutines here) and the others go on.

use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zsync_bench::{parse_micro_result, MicroFigures};

/// A child running longer than this is killed and reported as a hang.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// What a benchmark's zsync figure is held to.
#[derive(Clone, Copy)]
pub enum Target {
    /// At most this ratio of Tokio's figure.
    VsTokio(f64),
    /// At most this ratio of the figure in another column (crossbeam-channel for MPMC).
    Vs(&'static str, f64),
    /// At most this many KiB.
    Kib(f64),
}

/// One micro-benchmark: the name the children know it by, a label, its unit, issue 4's target.
pub struct Bench {
    name: &'static str,
    label: &'static str,
    unit: &'static str,
    target: Target,
    /// Warm iterations after the cold one (full run; `--quick` caps them at 3).
    warm: usize,
}

/// The benchmarks, in table order. Lower is better for all of them.
pub const BENCHES: &[Bench] = &[
    Bench {
        name: "spawn_join",
        label: "spawn+join 200k",
        unit: "ns/task",
        target: Target::VsTokio(0.35),
        warm: 7,
    },
    Bench {
        name: "spawn_join_each",
        label: "spawn→join loop",
        unit: "ns/task",
        target: Target::VsTokio(0.35),
        warm: 7,
    },
    Bench {
        name: "yield",
        label: "1000 tasks×200 yields",
        unit: "ns/yield",
        target: Target::VsTokio(0.5),
        warm: 7,
    },
    Bench {
        name: "ping_pong",
        label: "channel ping-pong",
        unit: "ns/rt",
        target: Target::VsTokio(0.5),
        warm: 7,
    },
    Bench {
        name: "sleeps",
        label: "100k × sleep 10 ms",
        unit: "ms total",
        target: Target::VsTokio(0.8),
        warm: 5,
    },
    Bench {
        name: "xping_pong",
        label: "x-worker ping-pong",
        unit: "ns/rt",
        target: Target::VsTokio(1.5),
        warm: 7,
    },
    Bench {
        name: "mpmc",
        label: "4P/4C MPMC 100k",
        unit: "ms total",
        target: Target::Vs(CROSSBEAM, 1.5),
        warm: 7,
    },
    Bench {
        name: "rss_parked",
        label: "RSS per parked task",
        unit: "KiB/task",
        target: Target::Kib(4.5),
        warm: 0,
    },
    // Stackless: zsync's future tasks (`io.spawn_future`) on Green against Tokio's tasks, the
    // same async code on both sides (issue 13's target: at most 0.7× Tokio each).
    Bench {
        name: "stackless_spawn_join",
        label: "async spawn→join loop",
        unit: "ns/task",
        target: Target::VsTokio(0.7),
        warm: 7,
    },
    Bench {
        name: "stackless_yield",
        label: "async 1000×200 yields",
        unit: "ns/yield",
        target: Target::VsTokio(0.7),
        warm: 7,
    },
    Bench {
        name: "stackless_ping_pong",
        label: "async ping-pong",
        unit: "ns/rt",
        target: Target::VsTokio(0.7),
        warm: 7,
    },
    Bench {
        name: "stackless_sleeps",
        label: "async 100k × sleep 10 ms",
        unit: "ms total",
        target: Target::VsTokio(0.7),
        warm: 5,
    },
];

/// The column of the zsync Green figures, the one the targets are about.
pub const ZSYNC: &str = "zsync green";
const TOKIO: &str = "tokio";
/// crossbeam-channel on OS threads: the MPMC reference.
const CROSSBEAM: &str = "crossbeam";

/// How one runtime's children are started.
enum Source {
    /// zsync's `benches/green.rs` binary with `--child NAME BENCH`.
    GreenBench(PathBuf, &'static str),
    /// A prebuilt program with `BENCH WARM` (the Go peer).
    Program(PathBuf, Vec<(String, String)>),
    /// `node micro.js BENCH WARM`.
    Script(PathBuf, PathBuf),
}

/// One figure of the micro table, as written to the results file.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MicroRow {
    /// Benchmark name (`spawn_join`, ...).
    pub bench: String,
    /// Runtime column (`zsync green`, `tokio`, ...).
    pub runtime: String,
    /// Unit of `cold` and `warm`.
    pub unit: String,
    /// First iteration in a fresh process.
    pub cold: Option<f64>,
    /// Median of the later iterations.
    pub warm: Option<f64>,
    /// Why there is no figure (crash, hang, not applicable).
    pub error: Option<String>,
}

impl MicroRow {
    /// The figure the table shows: warm where there is one, else cold (RSS has only cold).
    pub fn value(&self) -> Option<f64> {
        self.warm.or(self.cold)
    }
}

/// Where the micro children come from, resolved once by [`prepare`].
pub struct Suite {
    runtimes: Vec<(&'static str, Source)>,
    benches: Vec<&'static Bench>,
    quick: bool,
}

/// Builds zsync's green bench binary and the Go peer, finds node; runtimes whose toolchain is
/// missing are left out with a note through `skip`.
pub fn prepare(
    root: &Path,
    target: &Path,
    cargo: &std::ffi::OsStr,
    go: Option<&Path>,
    node: Option<&Path>,
    quick: bool,
    skip: &mut dyn FnMut(&str, &str),
) -> Option<Suite> {
    let green = match build_bench(root, cargo, "green") {
        Ok(p) => p,
        Err(e) => {
            skip("micro-benchmarks", &e);
            return None;
        }
    };
    let mut runtimes: Vec<(&'static str, Source)> = [
        (ZSYNC, "zsync"),
        ("zsync threaded", "threaded"),
        (TOKIO, "tokio"),
        ("may", "may"),
        (CROSSBEAM, "crossbeam"),
    ]
    .into_iter()
    .map(|(column, child)| (column, Source::GreenBench(green.clone(), child)))
    .collect();
    match go.map(|go| super::go_build(go, root, target, "go-micro", "go-micro")) {
        Some(Some(bin)) => runtimes.push((
            "go",
            Source::Program(bin, vec![("GOMAXPROCS".into(), "2".into())]),
        )),
        Some(None) => skip(
            "go micro-benchmarks",
            "go build of bench/peers/go-micro failed",
        ),
        None => skip("go micro-benchmarks", "go not installed"),
    }
    match node {
        Some(node) => runtimes.push((
            "node",
            Source::Script(node.to_path_buf(), root.join("bench/peers/node/micro.js")),
        )),
        None => skip("node micro-benchmarks", "node not installed"),
    }
    Some(Suite {
        runtimes,
        benches: BENCHES.iter().collect(),
        quick,
    })
}

impl Suite {
    /// Keeps only the runtimes whose name contains one of `only` (all when empty).
    pub fn retain(&mut self, only: &[String]) {
        if !only.is_empty() {
            self.runtimes
                .retain(|(n, _)| only.iter().any(|o| n.contains(o.as_str())));
        }
    }

    /// Keeps only the benchmarks whose name contains one of `only` (all when empty).
    pub fn retain_benches(&mut self, only: &[String]) {
        if !only.is_empty() {
            self.benches
                .retain(|b| only.iter().any(|o| b.name.contains(o.as_str())));
        }
    }

    /// Number of children [`run`](Suite::run) starts.
    pub fn len(&self) -> usize {
        self.benches
            .iter()
            .map(|b| {
                self.runtimes
                    .iter()
                    .filter(|(n, _)| applicable(n, b.name))
                    .count()
            })
            .sum()
    }

    /// Runs every benchmark on every runtime, printing a progress line per child.
    pub fn run(&self) -> Vec<MicroRow> {
        let total = self.len();
        let mut done = 0;
        let mut rows = Vec::new();
        for b in &self.benches {
            let warm = if self.quick { b.warm.min(3) } else { b.warm };
            for (name, source) in &self.runtimes {
                let mut row = MicroRow {
                    bench: b.name.to_string(),
                    runtime: name.to_string(),
                    unit: b.unit.to_string(),
                    cold: None,
                    warm: None,
                    error: None,
                };
                if !applicable(name, b.name) {
                    row.error = Some("not applicable".into());
                    rows.push(row);
                    continue;
                }
                done += 1;
                print!("[{done:>2}/{total}] micro {:<25} {:<15} ", b.label, name);
                let _ = std::io::Write::flush(&mut std::io::stdout());
                let t = Instant::now();
                match run_child(source, b.name, warm) {
                    Ok(MicroFigures { cold, warm }) => {
                        row.cold = Some(cold);
                        row.warm = warm;
                        println!(
                            "{:>10} {:<8} ({:.1} s)",
                            fmt(row.value()),
                            b.unit,
                            t.elapsed().as_secs_f64()
                        );
                    }
                    Err(e) => {
                        println!("{e}");
                        row.error = Some(e);
                    }
                }
                rows.push(row);
            }
        }
        rows
    }
}

/// Threaded runs a task per OS-thread pool slot: 100k sleepers or parked tasks and its
/// OS-thread yield are not what the benchmarks are about. The stackless (`stackless_*`)
/// workloads compare zsync Green's future tasks with Tokio's only.
/// crossbeam-channel runs only the two channel workloads that involve OS threads anyway, and
/// Node (one thread) neither of them.
fn applicable(runtime: &str, bench: &str) -> bool {
    if bench.starts_with("stackless_") {
        return runtime == ZSYNC || runtime == TOKIO;
    }
    let threads = matches!(bench, "xping_pong" | "mpmc");
    if runtime == CROSSBEAM {
        return threads;
    }
    if runtime == "node" && threads {
        return false;
    }
    runtime != "zsync threaded"
        || threads
        || matches!(bench, "spawn_join" | "spawn_join_each" | "ping_pong")
}

/// Builds zsync's `benches/NAME.rs` (release, through `cargo bench --no-run`) and returns the
/// executable's path.
pub fn build_bench(root: &Path, cargo: &std::ffi::OsStr, name: &str) -> Result<PathBuf, String> {
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "zsync-io",
            "--bench",
            name,
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo bench --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!("building benches/{name}.rs failed"));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == name)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .or_else(|| newest_built(root, name))
        .ok_or_else(|| format!("cargo did not report the {name} bench executable"))
}

/// The most recently built `target/release/deps/NAME-HASH` executable: the bench binary when
/// `CARGO` is something that builds nothing (`CARGO=/bin/true`, to run prebuilt binaries
/// while other builds hold cargo's lock).
fn newest_built(root: &Path, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("{name}-");
    std::fs::read_dir(root.join("target/release/deps"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let file = e.file_name();
            let file = file.to_string_lossy();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let executable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
            executable.then_some((meta.modified().ok()?, e.path()))
        })
        .max()
        .map(|(_, path)| path)
}

fn run_child(source: &Source, bench: &str, warm: usize) -> Result<MicroFigures, String> {
    let mut cmd = match source {
        Source::GreenBench(exe, rt) => {
            let mut c = Command::new(exe);
            c.args(["--child", rt, bench])
                .env("GB_ITERS", warm.to_string());
            c
        }
        Source::Program(p, env) => {
            let mut c = Command::new(p);
            c.args([bench, &warm.to_string()]).envs(env.iter().cloned());
            c
        }
        Source::Script(node, script) => {
            let mut c = Command::new(node);
            c.arg(script).args([bench, &warm.to_string()]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start: {e}"))?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if t.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hang (killed after {} s)", CHILD_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    parse_micro_result(&out).map_err(|_| {
        let why = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        if why.starts_with("not yet") {
            // A workload whose zsync side needs API not merged yet (benches/green.rs: PENDING).
            return why.to_string();
        }
        format!("crash ({status}): {why}")
    })
}

fn fmt(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x >= 1000.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// Prints the micro table: one line per benchmark, one column per runtime, zsync Green's ratio
/// to Tokio, may, Go and Node, and whether issue 4's target is met.
pub fn print_table(rows: &[MicroRow]) {
    if rows.is_empty() {
        return;
    }
    let mut runtimes: Vec<&str> = Vec::new();
    for r in rows {
        if !runtimes.contains(&r.runtime.as_str()) {
            runtimes.push(&r.runtime);
        }
    }
    println!(
        "\n==== MICRO (2 workers each, Node 1 thread; warm medians, RSS cold; lower is better)"
    );
    print!("{:<25} {:<9}", "bench", "unit");
    for rt in &runtimes {
        print!(" {:>14}", rt);
    }
    println!(" {:>9} {:>11} {:>4}", "vs tokio", "target", "met");
    for b in BENCHES
        .iter()
        .filter(|b| rows.iter().any(|r| r.bench == b.name))
    {
        let get = |rt: &str| rows.iter().find(|r| r.bench == b.name && r.runtime == rt);
        print!("{:<25} {:<9}", b.label, b.unit);
        for rt in &runtimes {
            let cell = match get(rt) {
                Some(r) if r.error.as_deref() == Some("not applicable") => "n/a".to_string(),
                Some(r) if r.error.as_deref().is_some_and(|e| e.starts_with("not yet")) => {
                    "not yet".to_string()
                }
                Some(r) if r.error.is_some() => r
                    .error
                    .as_deref()
                    .and_then(|e| e.split_whitespace().next())
                    .unwrap_or("error")
                    .to_string(),
                Some(r) => fmt(r.value()),
                None => "-".into(),
            };
            print!(" {:>14}", cell);
        }
        let z = get(ZSYNC).and_then(MicroRow::value);
        let ratio_to = |peer: &str| match (z, get(peer).and_then(MicroRow::value)) {
            (Some(z), Some(t)) if t > 0.0 => Some(z / t),
            _ => None,
        };
        let ratio = ratio_to(TOKIO);
        let (target, met) = match b.target {
            Target::VsTokio(x) => (format!("≤{x}× tokio"), ratio.is_some_and(|r| r <= x)),
            Target::Vs(peer, x) => (
                format!("≤{x}× {peer}"),
                ratio_to(peer).is_some_and(|r| r <= x),
            ),
            Target::Kib(k) => (format!("≤{k} KiB"), z.is_some_and(|z| z <= k)),
        };
        println!(
            " {:>9} {:>11} {:>4}",
            ratio.map(|r| format!("{r:.2}x")).unwrap_or("-".into()),
            target,
            if met { "yes" } else { "NO" }
        );
    }
}

/// Label of a benchmark for charts.
pub fn label(bench: &str) -> &'static str {
    BENCHES
        .iter()
        .find(|b| b.name == bench)
        .map(|b| b.label)
        .unwrap_or("?")
}

//! The runner's application section (issue 16): each example application under `examples/`
//! measured against the same application on its Tokio (or thread-pool) peer.
//!
//! Every application has a module here with a `run(&Ctx) -> Vec<AppRow>`, listed in [`APPS`].
//! A module builds and starts what it needs (the example binary, the peer in `bench/peers/`,
//! a database), drives it, and returns one row per contender and metric. The runner prints
//! the rows as one table, writes them to the results JSON (`apps`), and `--apps NAME,...` runs
//! only the applications whose name contains one of the names; `--no-apps` skips the section.

mod db_pool;
mod file_pipeline;
mod h3;
mod microservices;
mod pool;
mod ws_chat;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod tls;

/// What an application's benchmark gets from the runner.
pub struct Ctx {
    /// The workspace root (the zsync checkout).
    pub root: PathBuf,
    /// `--quick`: shorter runs.
    pub quick: bool,
    /// `--workers`: threads each server may use.
    pub workers: usize,
}

impl Ctx {
    /// A release binary of the workspace's `target/release/`, by name.
    pub fn release_bin(&self, name: &str) -> PathBuf {
        self.root.join("target/release").join(name)
    }

    /// A release example binary (`target/release/examples/NAME`).
    pub fn example_bin(&self, name: &str) -> PathBuf {
        self.root.join("target/release/examples").join(name)
    }

    /// Builds the release example `name` of zsync with `features` (cargo's `--features`,
    /// empty for none) and returns its binary; `None`, with a note, if the build fails or
    /// leaves no binary. The runner builds the server examples it shares between sections;
    /// an application builds its own example here.
    pub fn built_example(&self, name: &str, features: &str) -> Option<PathBuf> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(&self.root).args([
            "build",
            "--release",
            "-p",
            "zsync-io",
            "--example",
            name,
        ]);
        if !features.is_empty() {
            cmd.args(["--features", features]);
        }
        let command = format!(
            "cargo build --release{}{} --example {name}",
            if features.is_empty() {
                ""
            } else {
                " --features "
            },
            features
        );
        if !cmd.status().is_ok_and(|s| s.success()) {
            println!("note: `{command}` failed: {name} skipped");
            return None;
        }
        let bin = self.example_bin(name);
        need(&bin, &command).then_some(bin)
    }

    /// A peer binary of the bench crate (`bench/peers/`), built by the runner before the
    /// applications run; `None`, with a note, if it is missing.
    pub fn peer(&self, name: &str) -> Option<PathBuf> {
        let bin = self.release_bin(name);
        need(&bin, "cargo build --release -p zsync-bench --bins").then_some(bin)
    }
}

/// One figure of one contender of one application.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppRow {
    /// The application: "db_pool", "ws_chat", ...
    pub app: String,
    /// Who ran it: "zsync green", "tokio + deadpool-postgres", ...
    pub contender: String,
    /// `true` for zsync's rows.
    pub zsync: bool,
    /// What was measured: "queries/s", "p99 delivery µs", ...
    pub metric: String,
    /// The figure (best of the rounds run, unless `metric` says otherwise).
    pub value: f64,
    /// Whether a higher value is better (throughput) or a lower one (latency, time).
    pub higher_is_better: bool,
    /// For zsync rows: this row against the peer's row of the same metric, oriented so that
    /// above 1 means zsync is better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_peer: Option<f64>,
    /// Worst of the rounds, if several were run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<f64>,
    /// Anything a reader needs to read the figure (corpus size, clients, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// An application's benchmark: its name and entry point.
pub type App = (&'static str, fn(&Ctx) -> Vec<AppRow>);

/// Every application the runner knows, in the order they run.
pub const APPS: &[App] = &[
    // One line per application.
    ("pool", pool::run),
    ("file_pipeline", file_pipeline::run),
    ("db_pool", db_pool::run),
    ("ws_chat", ws_chat::run),
    ("microservices", microservices::run),
    ("tls", tls::run),
    ("h3", h3::run),
];

/// Runs the applications whose name contains one of `only` (all when empty).
pub fn run(ctx: &Ctx, only: &[String]) -> Vec<AppRow> {
    let mut rows = Vec::new();
    for (name, run) in APPS {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        println!("\n==== application: {name}");
        rows.extend(run(ctx));
    }
    rows
}

/// Fills `vs_peer` of every zsync row from the peer row (`zsync == false`) of the same
/// application and metric; with several peer rows, the best of them.
pub fn compare(rows: &mut [AppRow]) {
    let peers: Vec<(String, String, f64, bool)> = rows
        .iter()
        .filter(|r| !r.zsync)
        .map(|r| (r.app.clone(), r.metric.clone(), r.value, r.higher_is_better))
        .collect();
    for r in rows.iter_mut().filter(|r| r.zsync) {
        let best = peers
            .iter()
            .filter(|(a, m, _, _)| *a == r.app && *m == r.metric)
            .map(|(_, _, v, _)| *v)
            .reduce(|a, b| {
                if r.higher_is_better {
                    a.max(b)
                } else {
                    a.min(b)
                }
            });
        r.vs_peer = best.filter(|b| *b > 0.0 && r.value > 0.0).map(|b| {
            if r.higher_is_better {
                r.value / b
            } else {
                b / r.value
            }
        });
    }
}

/// Prints the rows as one table, grouped by application.
pub fn print_table(rows: &[AppRow]) {
    if rows.is_empty() {
        return;
    }
    println!("\napplications (vs peer: above 1.00x is zsync ahead)");
    println!(
        "{:<12} {:<36} {:<24} {:>12} {:>12} {:>8}  note",
        "app", "contender", "metric", "best", "worst", "vs peer"
    );
    for r in rows {
        println!(
            "{:<12} {:<36} {:<24} {:>12.1} {:>12} {:>8}  {}",
            r.app,
            r.contender,
            r.metric,
            r.value,
            r.worst.map(|w| format!("{w:.1}")).unwrap_or_default(),
            r.vs_peer.map(|v| format!("{v:.2}x")).unwrap_or_default(),
            r.note
        );
    }
}

/// Whether `path` exists, else a note saying what to build.
pub fn need(path: &Path, build: &str) -> bool {
    if path.exists() {
        return true;
    }
    println!("note: {} is missing: run `{build}` first", path.display());
    false
}

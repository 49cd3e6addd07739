//! db_pool: the bank on PostgreSQL (`examples/db_pool`, tokio-postgres over zsync sockets
//! behind `zsync::pool`) against the same program on Tokio + deadpool-postgres
//! (`peers/tokio_db_pool.rs`).
//!
//! Both run against one private server started by `examples/db_pool/pg.sh` (stopped again
//! afterwards if this run started it), with the same pool size, client tasks, statements and
//! random choices, and each prints one `RESULT ... per_sec=N` line. Two workloads: `select`
//! (one prepared point query per checkout: queries/s) and `transfer` (one transaction of two
//! UPDATEs and an INSERT per checkout: transactions/s). The contenders alternate within each
//! round, so a drift of the machine's load hits them alike.

use std::path::Path;
use std::process::Command;

use super::{AppRow, Ctx};

/// Clients (tasks) and pool size, the same for every contender.
const CLIENTS: usize = 64;
const POOL: usize = 16;
const ACCOUNTS: usize = 1000;

/// Runs both workloads on zsync (Green and Threaded) and on the peer.
pub fn run(ctx: &Ctx) -> Vec<AppRow> {
    let (Some(example), Some(peer)) = (
        ctx.built_example("db_pool", "tokio-io"),
        ctx.peer("tokio-db-pool"),
    ) else {
        return Vec::new();
    };
    let pg = ctx.root.join("examples/db_pool/pg.sh");
    let was_running = pg_sh(&pg, "status");
    if !was_running && !pg_sh(&pg, "start") {
        println!(
            "note: db_pool skipped: examples/db_pool/pg.sh start failed (is PostgreSQL installed?)"
        );
        return Vec::new();
    }

    let (rounds, seconds) = if ctx.quick { (1, 2) } else { (3, 3) };
    let workers = ctx.workers.to_string();
    let common = |workload: &str| -> Vec<String> {
        [
            "--workload",
            workload,
            "--clients",
            &CLIENTS.to_string(),
            "--pool",
            &POOL.to_string(),
            "--seconds",
            &seconds.to_string(),
            "--accounts",
            &ACCOUNTS.to_string(),
            "--workers",
            &workers,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let contenders: [(&str, bool, &Path, &[&str]); 3] = [
        (
            "zsync green",
            true,
            &example,
            &["--mode", "bench", "--model", "green"],
        ),
        (
            "zsync threaded",
            true,
            &example,
            &["--mode", "bench", "--model", "threaded"],
        ),
        ("tokio + deadpool-postgres", false, &peer, &[]),
    ];
    let mut rows = Vec::new();
    for (workload, metric) in [("select", "queries/s"), ("transfer", "transactions/s")] {
        let mut figures: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
        for round in 0..rounds {
            for (i, (name, _, bin, extra)) in contenders.iter().enumerate() {
                let out = Command::new(bin)
                    .args(*extra)
                    .args(common(workload))
                    .output();
                match out {
                    Ok(out) if out.status.success() => {
                        let text = String::from_utf8_lossy(&out.stdout);
                        match per_sec(&text) {
                            Some(v) => {
                                println!("db_pool {workload} round {round}: {name:<28} {v:>10.1} {metric}");
                                figures[i].push(v);
                            }
                            None => {
                                println!("db_pool {workload}: {name}: no RESULT line in {text:?}")
                            }
                        }
                    }
                    Ok(out) => println!(
                        "db_pool {workload}: {name} failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                    Err(e) => println!("db_pool {workload}: cannot run {name}: {e}"),
                }
            }
        }
        for ((name, zsync, _, _), values) in contenders.iter().zip(figures) {
            let Some(best) = values.iter().copied().reduce(f64::max) else {
                continue;
            };
            let worst = values.iter().copied().reduce(f64::min);
            rows.push(AppRow {
                app: "db_pool".into(),
                contender: name.to_string(),
                zsync: *zsync,
                metric: metric.into(),
                value: best,
                higher_is_better: true,
                vs_peer: None,
                worst: worst.filter(|_| values.len() > 1),
                note: format!("{workload}, {CLIENTS} clients, pool {POOL}, {seconds} s x {rounds}"),
            });
        }
    }
    if !was_running {
        pg_sh(&pg, "stop");
    }
    rows
}

/// Runs `pg.sh ACTION`; whether it succeeded.
fn pg_sh(script: &Path, action: &str) -> bool {
    Command::new(script)
        .arg(action)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The `per_sec=` figure of a `RESULT` line.
fn per_sec(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .filter(|l| l.starts_with("RESULT "))
        .flat_map(|l| l.split_whitespace())
        .find_map(|kv| kv.strip_prefix("per_sec="))
        .and_then(|v| v.parse().ok())
}

//! `zsync::pool` against deadpool (on Tokio) and r2d2 (on threads): a get+drop uncontended, and
//! 64 tasks sharing a pool of 8. The figures come from zsync's `benches/pool.rs` in `--child`
//! mode (the code `cargo bench --bench pool` times), each contender and workload in a fresh
//! process: best, median and worst of its rounds, in ns per checkout.

use std::process::Command;

use super::{AppRow, Ctx};

/// `(child name, row label, zsync?)`.
const CONTENDERS: [(&str, &str, bool); 4] = [
    ("zsync_green", "zsync green", true),
    ("zsync_threaded", "zsync threaded", true),
    ("deadpool_tokio", "deadpool (tokio)", false),
    ("r2d2_threads", "r2d2 (threads)", false),
];

/// `(child name, metric)`.
const WORKLOADS: [(&str, &str); 2] = [
    ("uncontended", "ns/get uncontended"),
    ("contended_64", "ns/get 64 tasks, 8 conns"),
];

pub fn run(ctx: &Ctx) -> Vec<AppRow> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let exe = match crate::micro::build_bench(&ctx.root, &cargo, "pool") {
        Ok(exe) => exe,
        Err(e) => {
            println!("note: skipping the pool rows: {e}");
            return Vec::new();
        }
    };
    let rounds = if ctx.quick { "5" } else { "11" };
    let mut rows = Vec::new();
    for (workload, metric) in WORKLOADS {
        for (child, label, zsync) in CONTENDERS {
            let out = Command::new(&exe)
                .args(["--child", child, workload])
                .env("POOL_ROUNDS", rounds)
                .output();
            let figures = out.ok().and_then(|o| {
                String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                    let v: Vec<f64> = l
                        .strip_prefix("RESULT ")?
                        .split(' ')
                        .filter_map(|x| x.parse().ok())
                        .collect();
                    (v.len() == 3).then(|| (v[0], v[1], v[2]))
                })
            });
            let Some((best, median, worst)) = figures else {
                println!("note: pool {child} {workload}: no result");
                continue;
            };
            println!("  {label:<18} {metric:<26} best {best:>8.1} median {median:>8.1} worst {worst:>8.1}");
            rows.push(AppRow {
                app: "pool".into(),
                contender: label.into(),
                zsync,
                metric: metric.into(),
                value: best,
                higher_is_better: false,
                vs_peer: None,
                worst: Some(worst),
                note: format!("median {median:.1}, {rounds} rounds"),
            });
        }
    }
    rows
}

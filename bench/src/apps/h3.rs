//! HTTP/3 and QUIC (`examples/h3`, issue 16 item 7) against the same benchmarks on quinn's
//! Tokio runtime (`peers/tokio_h3.rs`): one 1 GiB response body over HTTP/3, one 1 GiB raw
//! QUIC stream, and full handshakes per second. Each side runs server and client in one
//! process with `--workers` threads; the certificate, TLS and transport settings and the body
//! pattern are the example's own files on both sides. Rounds alternate the contenders; the
//! best and worst round are reported. Beside each figure, the CPU time the process used
//! (user + sys, from `getrusage(RUSAGE_CHILDREN)` around it) per GiB or per 1000 handshakes:
//! on a shared machine, wall-clock throughput swings with the neighbours' load, CPU cost less.

use std::process::Command;

use super::{AppRow, Ctx};

const APP: &str = "h3";

/// The benchmark modes: `--bench` value, the metric's name, the `RESULT` name.
const MODES: &[(&str, &str, &str)] = &[
    ("h3", "h3 body MiB/s", "h3_stream"),
    ("raw", "raw stream MiB/s", "raw_stream"),
    ("handshakes", "handshakes/s", "handshakes"),
];

/// The CPU metric of a mode (each its own name: rows compare by metric).
fn cpu_metric(mode: &str) -> &'static str {
    match mode {
        "h3" => "h3 body CPU s/GiB",
        "raw" => "raw stream CPU s/GiB",
        _ => "CPU s/1k handshakes",
    }
}

/// Runs the benchmarks; builds the example (feature `quinn`) first.
pub fn run(ctx: &Ctx) -> Vec<AppRow> {
    let (Some(zsync_bin), Some(tokio_bin)) =
        (ctx.built_example("h3", "quinn"), ctx.peer("tokio-h3"))
    else {
        return Vec::new();
    };
    let (bytes, handshakes, rounds) = if ctx.quick {
        (256u64 << 20, 500u64, 2)
    } else {
        (1u64 << 30, 2000u64, 3)
    };
    let workers = ctx.workers.to_string();
    let contenders = [
        ("zsync green (quinn + h3)", true, zsync_bin),
        ("tokio (quinn + h3)", false, tokio_bin),
    ];
    let mut rows = Vec::new();
    for (mode, metric, result) in MODES {
        let mut figures: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
        for round in 0..rounds {
            for (i, (name, _, bin)) in contenders.iter().enumerate() {
                let cpu_before = children_cpu_secs();
                let out = Command::new(bin)
                    .args(["--bench", mode, "--workers", &workers])
                    .args(["--bytes", &bytes.to_string()])
                    .args(["--handshakes", &handshakes.to_string()])
                    .output();
                let cpu_secs = children_cpu_secs() - cpu_before;
                let value = out.ok().and_then(|o| {
                    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
                    if !o.status.success() {
                        println!(
                            "note: {name} --bench {mode} failed: {}",
                            String::from_utf8_lossy(&o.stderr).trim()
                        );
                    }
                    parse_result(&stdout, result)
                });
                match value {
                    Some(v) => {
                        let per = if *mode == "handshakes" {
                            cpu_secs * 1000.0 / handshakes as f64
                        } else {
                            cpu_secs * (1u64 << 30) as f64 / bytes as f64
                        };
                        println!(
                            "{APP} {metric:<18} round {round}: {name:<28} {v:>10.1}  (CPU {per:.2} s per {})",
                            cpu_unit(mode)
                        );
                        figures[i].push(v);
                        cpu[i].push(per);
                    }
                    None => println!("note: {name} --bench {mode}: no figure"),
                }
            }
        }
        for (((name, zsync, _), values), cpu) in contenders.iter().zip(&figures).zip(&cpu) {
            if values.is_empty() {
                continue;
            }
            let least = cpu.iter().cloned().fold(f64::MAX, f64::min);
            let most = cpu.iter().cloned().fold(f64::MIN, f64::max);
            rows.push(AppRow {
                app: APP.into(),
                contender: (*name).into(),
                zsync: *zsync,
                metric: cpu_metric(mode).into(),
                value: least,
                higher_is_better: false,
                vs_peer: None,
                worst: (cpu.len() > 1).then_some(most),
                note: "user+sys of server and client".into(),
            });
            let best = values.iter().cloned().fold(f64::MIN, f64::max);
            let worst = values.iter().cloned().fold(f64::MAX, f64::min);
            rows.push(AppRow {
                app: APP.into(),
                contender: (*name).into(),
                zsync: *zsync,
                metric: (*metric).into(),
                value: best,
                higher_is_better: true,
                vs_peer: None,
                worst: (values.len() > 1).then_some(worst),
                note: match *mode {
                    "handshakes" => format!("{handshakes} conns, 8 in flight"),
                    _ => format!("one stream of {} MiB", bytes >> 20),
                },
            });
        }
    }
    rows
}

/// What the CPU time of a mode is counted per.
fn cpu_unit(mode: &str) -> &'static str {
    if mode == "handshakes" {
        "1000 handshakes"
    } else {
        "GiB"
    }
}

/// User + sys seconds of every child waited for so far.
fn children_cpu_secs() -> f64 {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed struct we pass and keeps no
    // pointer to it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The value of the `RESULT <name> <value> <unit>` line.
fn parse_result(stdout: &str, name: &str) -> Option<f64> {
    stdout.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("RESULT") && words.next() == Some(name))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

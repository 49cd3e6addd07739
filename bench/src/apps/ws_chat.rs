//! `examples/ws_chat` against the same chat server on tokio-tungstenite
//! (`bench/peers/tokio_ws_chat.rs`): the same load client (the example's `--client` mode, a
//! separate process on zsync) drives each server with the same rooms, clients and message rate;
//! it reports delivered messages per second and the p99 delivery latency (send time carried in
//! each payload, wall clock, same machine).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{AppRow, Ctx};

/// One load: (clients, rooms, messages per second per client).
const LOADS: &[(usize, usize, u32)] = &[(1000, 20, 2), (200, 10, 50)];

/// Starts a server binary with `args` plus `--addr 127.0.0.1:0`-style port 0 replaced by a
/// fixed port, and waits for its "listening on" line.
fn start(bin: &std::path::Path, args: &[String]) -> Option<Child> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut()?)
        .read_line(&mut line)
        .ok()?;
    if !line.starts_with("listening on") {
        let _ = child.kill();
        return None;
    }
    Some(child)
}

/// A field `name=value` of the client's RESULT line.
fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// Runs the load client once against `port`; (delivered/s, p99 µs).
fn drive(
    ctx: &Ctx,
    port: u16,
    clients: usize,
    rooms: usize,
    rate: u32,
    secs: f64,
) -> Option<(f64, f64)> {
    let out = Command::new(ctx.example_bin("ws_chat"))
        .args([
            "--client".to_string(),
            "--addr".into(),
            format!("127.0.0.1:{port}"),
            "--clients".into(),
            clients.to_string(),
            "--rooms".into(),
            rooms.to_string(),
            "--rate".into(),
            rate.to_string(),
            "--duration".into(),
            secs.to_string(),
            "--workers".into(),
            "1".into(),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("RESULT"))?;
    println!("  {line}");
    if field(line, "errors").unwrap_or(1.0) > 0.0 {
        return None;
    }
    Some((field(line, "delivered_per_sec")?, field(line, "p99_us")?))
}

/// Runs the ws_chat comparison.
pub fn run(ctx: &Ctx) -> Vec<AppRow> {
    let (Some(zsync_bin), Some(tokio_bin)) =
        (ctx.built_example("ws_chat", ""), ctx.peer("tokio-ws-chat"))
    else {
        return Vec::new();
    };
    zsync_bench::raise_nofile(65_536);
    let (rounds, secs) = if ctx.quick { (1, 2.0) } else { (3, 5.0) };
    let workers = ctx.workers.to_string();
    let mut rows = Vec::new();
    for &(clients, rooms, rate) in LOADS {
        let note = format!("{clients} clients, {rooms} rooms, {rate} msg/s each, 64 B");
        let contenders: [(&str, bool, &std::path::Path, Vec<String>); 2] = [
            (
                "zsync green + tungstenite",
                true,
                &zsync_bin,
                vec![
                    "--model".into(),
                    "green".into(),
                    "--workers".into(),
                    workers.clone(),
                ],
            ),
            (
                "tokio + tokio-tungstenite",
                false,
                &tokio_bin,
                vec!["--workers".into(), workers.clone()],
            ),
        ];
        for (i, (name, is_zsync, bin, extra)) in contenders.into_iter().enumerate() {
            let port = 19_300 + i as u16;
            let mut args = vec![
                "--addr".to_string(),
                format!("127.0.0.1:{port}"),
                "--queue".into(),
                "256".into(),
            ];
            args.extend(extra);
            let Some(mut server) = start(bin, &args) else {
                println!("note: {name} did not start");
                continue;
            };
            println!("{name}: {note}");
            let results: Vec<(f64, f64)> = (0..rounds)
                .filter_map(|_| drive(ctx, port, clients, rooms, rate, secs))
                .collect();
            let _ = server.kill();
            let _ = server.wait();
            std::thread::sleep(Duration::from_millis(200));
            if results.is_empty() {
                println!("note: {name}: no successful round");
                continue;
            }
            let best_rate = results.iter().map(|r| r.0).fold(f64::MIN, f64::max);
            let worst_rate = results.iter().map(|r| r.0).fold(f64::MAX, f64::min);
            let best_p99 = results.iter().map(|r| r.1).fold(f64::MAX, f64::min);
            let worst_p99 = results.iter().map(|r| r.1).fold(f64::MIN, f64::max);
            let many = results.len() > 1;
            rows.push(AppRow {
                app: "ws_chat".into(),
                contender: name.into(),
                zsync: is_zsync,
                metric: format!("delivered/s ({clients}c)"),
                value: best_rate,
                higher_is_better: true,
                vs_peer: None,
                worst: many.then_some(worst_rate),
                note: note.clone(),
            });
            rows.push(AppRow {
                app: "ws_chat".into(),
                contender: name.into(),
                zsync: is_zsync,
                metric: format!("p99 delivery µs ({clients}c)"),
                value: best_p99,
                higher_is_better: false,
                vs_peer: None,
                worst: many.then_some(worst_p99),
                note: note.clone(),
            });
        }
    }
    rows
}

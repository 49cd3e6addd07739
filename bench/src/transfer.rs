//! The runner's transfer section (issue 15, item 5): serving a file over loopback TCP with
//! `zsync::transfer::send_file` in every run mode against the best of the runtime-free ways
//! (`sendfile(2)`, `splice(2)` through a pipe, a `read`/`write` loop, `std::io::copy`), and
//! large socket writes with and without `IORING_OP_SEND_ZC`.
//!
//! The serving and measuring code is zsync's `benches/transfer/serve.rs`, compiled here through
//! `#[path]`, so the runner and `cargo bench --bench transfer` run the very same contenders and
//! timing (see that file for what is timed). The server and the client run on different CPUs
//! when there are two, as in that bench's first table. The rows carry the best and median time
//! and, for zsync, the ratio of the best peer's best time to its own (≥ 0.95 is issue 15's
//! target) and the median of that ratio within each round. Stackless has no `send_file` of its
//! own (a future task would block its worker in `sendfile`), so it has no row.

#[path = "../../benches/transfer/serve.rs"]
mod serve;

use serde::{Deserialize, Serialize};
use std::net::TcpListener;
use std::path::Path;

use zsync::Backend;

/// One contender's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferRow {
    /// "serve" (a file to a socket) or "write" (`write_all` of buffers of `write_size`).
    pub table: String,
    pub contender: String,
    pub zsync: bool,
    pub bytes: u64,
    /// Buffer size of a "write" row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_size: Option<usize>,
    pub rounds: usize,
    pub best_ms: f64,
    pub median_ms: f64,
    pub best_gib_s: f64,
    /// zsync rows: the best peer's best time ÷ this row's best time (higher is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_best_peer: Option<f64>,
    /// zsync rows: the median over rounds of the best peer's time ÷ this row's time in the round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_peer_per_round: Option<f64>,
}

/// Runs the section: serving `serve_mib` MiB in every mode, then `write_all` of 1 MiB buffers
/// with and without zero-copy sends. `quick` runs fewer rounds.
pub fn run(serve_mib: u64, quick: bool) -> Vec<TransferRow> {
    let rounds = if quick { 7 } else { 21 };
    let dir = std::env::temp_dir().join(format!("zsync-runner-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("served");
    let bytes = serve_mib << 20;
    serve::write_source(&src, bytes);
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    let uring = Backend::IoUring.resolve().is_ok();
    let at = serve::Placement::apart();
    let mut c = serve::serve_contenders(&listener, &src, bytes, at, false, uring);
    let mut rows = to_rows("serve", bytes, None, serve::measure(bytes, rounds, &mut c));
    drop(c);
    if uring {
        let size = 1 << 20;
        let buf: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let (total, mut c) = serve::write_contenders(&listener, &buf, bytes, at);
        let measured = serve::measure(total, rounds, &mut c);
        rows.extend(to_rows("write", total, Some(size), measured));
    }
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

fn to_rows(
    table: &str,
    bytes: u64,
    write_size: Option<usize>,
    measured: Vec<serve::Row>,
) -> Vec<TransferRow> {
    measured
        .into_iter()
        .map(|r| TransferRow {
            table: table.to_string(),
            contender: r.contender,
            zsync: r.zsync,
            bytes,
            write_size,
            rounds: r.rounds,
            best_ms: r.best_ms,
            median_ms: r.median_ms,
            best_gib_s: r.best_gib_s,
            vs_best_peer: r.vs_best_peer,
            vs_peer_per_round: r.vs_peer_per_round,
        })
        .collect()
}

/// Prints the section's table.
pub fn print_table(rows: &[TransferRow]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\ntransfers over loopback (best of {} rounds)",
        rows[0].rounds
    );
    println!(
        "{:<44} {:>9} {:>9} {:>7} {:>12} {:>13}",
        "contender", "best", "median", "GiB/s", "vs best peer", "per-round med"
    );
    let mut table = "";
    for r in rows {
        if r.table != table {
            table = &r.table;
            match r.write_size {
                Some(s) => println!(
                    "-- write_all of {} KiB buffers, {} MiB",
                    s >> 10,
                    r.bytes >> 20
                ),
                None => println!("-- serving a {} MiB file", r.bytes >> 20),
            }
        }
        let x = |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_default();
        println!(
            "{:<44} {:>7.1}ms {:>7.1}ms {:>7.2} {:>12} {:>13}",
            r.contender,
            r.best_ms,
            r.median_ms,
            r.best_gib_s,
            x(r.vs_best_peer),
            x(r.vs_peer_per_round)
        );
    }
}

/// Bars of GiB/s (best round), one per row, labelled inside; zsync red, peers grey.
pub fn draw(path: &Path, rows: &[TransferRow]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1100, 120 + 26 * rows.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.draw(&Text::new(
        "zsync transfers over loopback vs sendfile/splice/read-write — GiB/s, best round, higher is better",
        (20, 12),
        ("sans-serif", 16).into_font(),
    ))?;
    let top = rows.iter().map(|r| r.best_gib_s).fold(0.0, f64::max) * 1.25;
    let mut chart = ChartBuilder::on(&body)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..top.max(0.1), 0.0..rows.len() as f64)?;
    chart
        .configure_mesh()
        .x_desc("GiB/s")
        .y_labels(0)
        .disable_y_mesh()
        .draw()?;
    for (i, r) in rows.iter().enumerate() {
        let y = (rows.len() - 1 - i) as f64;
        let color = if r.zsync {
            RGBColor(255, 152, 150)
        } else {
            RGBColor(199, 199, 199)
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y + 0.15), (r.best_gib_s, y + 0.85)],
            color.filled(),
        )))?;
        let what = match r.write_size {
            Some(s) => format!("{} ({} KiB writes)", r.contender, s >> 10),
            None => r.contender.clone(),
        };
        chart.draw_series(std::iter::once(Text::new(
            what,
            (top * 0.005, y + 0.65),
            ("sans-serif", 12).into_font(),
        )))?;
        let vs = r
            .vs_best_peer
            .map(|v| format!("  {v:.2}x best peer"))
            .unwrap_or_default();
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.2}{vs}", r.best_gib_s),
            (r.best_gib_s + top * 0.01, y + 0.7),
            ("sans-serif", 11).into_font(),
        )))?;
    }
    root.present()?;
    Ok(())
}

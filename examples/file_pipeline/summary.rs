//! The summary printed at the end of a run, for people and (with `--json`) for the runner.

use crate::pipeline::Summary;

/// `n` bytes as `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The human-readable summary.
pub fn render(s: &Summary, model: &str) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let ratio = if s.bytes_in == 0 {
        1.0
    } else {
        s.bytes_out as f64 / s.bytes_in as f64
    };
    let mut text = format!(
        "{} files ({} skipped) on {model}: {} in, {} out (ratio {:.3}), {:.2} s, {:.0} files/s, {:.1} MB/s",
        s.files,
        s.skipped,
        human_bytes(s.bytes_in),
        human_bytes(s.bytes_out),
        ratio,
        secs,
        s.files as f64 / secs,
        s.bytes_in as f64 / 1e6 / secs,
    );
    text.push_str(&format!(
        "\n  at most {} files in flight (bound {}), {} of file data buffered between stages (bound {})",
        s.peak_in_flight,
        s.in_flight_bound,
        human_bytes(s.peak_buffered),
        human_bytes(s.buffered_bound)
    ));
    text
}

/// The summary as one JSON line.
pub fn json(s: &Summary, model: &str) -> String {
    serde_json::json!({
        "model": model,
        "files": s.files,
        "skipped": s.skipped,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "seconds": s.elapsed.as_secs_f64(),
        "peak_in_flight": s.peak_in_flight,
        "peak_buffered": s.peak_buffered,
    })
    .to_string()
}

//! The progress bar: a plain thread outside the runtime that samples [`Stats`] ten times a
//! second and draws with `indicatif`, so no terminal write ever runs on an I/O worker.
//! Hidden when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::Stats;
use crate::summary::human_bytes;

/// A running progress bar (or nothing, when hidden).
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing `stats` on stderr, unless `quiet` or stderr is not a terminal.
    pub fn start(stats: Arc<Stats>, quiet: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet || !std::io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || draw(&stats, &flag))
            .expect("a thread for the progress bar");
        Progress {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and clears the bar.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn draw(stats: &Stats, stop: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}")
            .expect("a valid template"),
    );
    let start = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let bytes_in = Stats::get(&stats.bytes_in);
        let rate = bytes_in as f64 / start.elapsed().as_secs_f64().max(1e-3);
        bar.set_length(Stats::get(&stats.files_found));
        bar.set_position(Stats::get(&stats.files_done));
        bar.set_message(format!(
            "{} read, {} written, {}/s",
            human_bytes(bytes_in),
            human_bytes(Stats::get(&stats.bytes_out)),
            human_bytes(rate as u64)
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

//! Shared helpers of the conformance suite: the model list, the per-model expansion macro, a
//! watchdog so a hang fails instead of stalling CI, and small utilities.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::{ConcurrencyUnavailable, Io, Model, Runnable, Runtime};

/// A user-defined model: one OS thread per task. Proves the public `Runtime` trait carries the
/// whole suite.
pub struct ThreadPerTask;

impl Runtime for ThreadPerTask {
    fn name(&self) -> &'static str {
        "ThreadPerTask"
    }
    fn spawn(&self, task: Runnable) {
        std::thread::spawn(move || task.run());
    }
    fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
        self.spawn(task);
        Ok(())
    }
}

/// Every model the suite runs on, by module name. Adding a model: one line here and one in
/// `conformance!`.
pub fn models() -> Vec<(&'static str, Model)> {
    vec![
        ("blocking", Model::Blocking),
        ("threaded", Model::Threaded),
        ("custom", Model::Custom(Arc::new(ThreadPerTask))),
    ]
}

/// How long one test may take before the watchdog aborts the process.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body` on a fresh runtime of `model`, aborting the whole test process if it hangs.
pub fn run_on(model: Model, name: &'static str, body: fn(&Io)) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let model_name = model.name();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < WATCHDOG {
            std::thread::sleep(Duration::from_millis(100));
            if flag.load(Ordering::Acquire) {
                return;
            }
        }
        eprintln!("conformance test {name} on {model_name} hung for {WATCHDOG:?}: aborting");
        std::process::abort();
    });
    zsync::Builder::new(model).worker_threads(2).run(body);
    done.store(true, Ordering::Release);
}

/// Expands test bodies `fn name(io: &Io)` into one `#[test]` per model, plus `ALL`, the list
/// the fd-leak check walks.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        pub const ALL: &[(&str, fn(&zsync::Io))] = &[$((stringify!($name), $name)),*];

        mod blocking {
            $(#[test] fn $name() { $crate::support::run_on(zsync::Model::Blocking, stringify!($name), super::$name) })*
        }
        mod threaded {
            $(#[test] fn $name() { $crate::support::run_on(zsync::Model::Threaded, stringify!($name), super::$name) })*
        }
        mod custom {
            $(#[test] fn $name() {
                $crate::support::run_on(
                    zsync::Model::Custom(std::sync::Arc::new($crate::support::ThreadPerTask)),
                    stringify!($name),
                    super::$name,
                )
            })*
        }
    };
}

/// Starts `f` concurrently, or asserts that the model (Blocking) refuses with
/// `ConcurrencyUnavailable` and returns `None`: the test then checks what it can inline.
pub fn concurrent_or_refused<T: Send + 'static>(
    io: &Io,
    f: impl FnOnce(&Io) -> T + Send + 'static,
) -> Option<zsync::Task<T>> {
    match io.concurrent(f) {
        Ok(task) => {
            assert!(io.supports_concurrency());
            Some(task)
        }
        Err(e) => {
            assert!(
                !io.supports_concurrency(),
                "{} refused concurrency: {e}",
                io.model_name()
            );
            let err: std::io::Error = e.into();
            assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
            None
        }
    }
}

/// Asserts `r` is the Canceled error.
#[track_caller]
pub fn assert_canceled<T: std::fmt::Debug>(r: std::io::Result<T>) {
    match r {
        Err(e) => assert!(zsync::is_canceled(&e), "expected Canceled, got {e:?}"),
        Ok(v) => panic!("expected Canceled, got Ok({v:?})"),
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "zsync-test-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

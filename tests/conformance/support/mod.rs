//! Shared helpers of the conformance suite: the model list, the per-model expansion macro, a
//! watchdog so a hang fails instead of stalling CI, and small utilities.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::{Backend, Builder, ConcurrencyUnavailable, CustomModel, Io, Model, Runnable};

/// A user-defined model: one OS thread per task, joined at shutdown. Proves the public
/// `CustomModel` trait carries the whole suite.
#[derive(Default)]
pub struct ThreadPerTask {
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl CustomModel for ThreadPerTask {
    fn name(&self) -> &'static str {
        "ThreadPerTask"
    }
    fn spawn(&self, task: Runnable) {
        let handle = std::thread::spawn(move || task.run());
        let mut threads = self.threads.lock().unwrap();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
    fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
        self.spawn(task);
        Ok(())
    }
    fn shutdown(&self) {
        // Join without holding the lock: a thread that just queued a future task's next poll
        // may still be on its way to recording that poll's thread (it takes the lock).
        loop {
            let threads = std::mem::take(&mut *self.threads.lock().unwrap());
            if threads.is_empty() {
                break;
            }
            for t in threads {
                t.join().unwrap();
            }
        }
    }
}

/// Makes the builder of one model of the suite.
pub type MakeBuilder = fn() -> Builder;

/// Every model the suite runs on, by module name, as a function making its builder. Adding a
/// model: one line here and one in `conformance!`.
///
/// Where io_uring is unavailable, `green_uring` is left out (with a note).
pub fn models() -> Vec<(&'static str, MakeBuilder)> {
    let mut models: Vec<(&'static str, MakeBuilder)> = vec![
        ("blocking", blocking),
        ("threaded", threaded),
        ("green_epoll", green_epoll),
        ("green_uring", green_uring),
        ("custom", custom),
    ];
    if skip_without_io_uring("the green_uring model") {
        models.retain(|(name, _)| *name != "green_uring");
    }
    models
}

/// The Blocking model.
pub fn blocking() -> Builder {
    Builder::new(Model::Blocking)
}

/// The Threaded model.
pub fn threaded() -> Builder {
    Builder::new(Model::Threaded)
}

/// Green on epoll, forced, so that it is covered whatever `Backend::Auto` picks here.
pub fn green_epoll() -> Builder {
    Builder::new(Model::Green).backend(Backend::Epoll)
}

/// Green on io_uring, forced. Where the kernel refuses io_uring (see
/// [`io_uring_unavailable`]), the suite skips these tests with a note instead.
pub fn green_uring() -> Builder {
    Builder::new(Model::Green).backend(Backend::IoUring)
}

/// Why io_uring cannot be used now (`kernel.io_uring_disabled`, a seccomp filter such as
/// Docker's default profile, an old kernel), or `None` where it can. Asked at each call, not
/// once per process: the setting can be switched while the suite runs (it was, by another
/// session on a shared machine, and every later io_uring test failed instead of skipping).
pub fn io_uring_unavailable() -> Option<String> {
    Backend::IoUring.resolve().err().map(|e| e.to_string())
}

/// Where io_uring is unavailable, writes `skipped: io_uring unavailable: <reason>` for `what`
/// to the real stderr (past the test harness's capture, so it shows in every run) and returns
/// true: the caller skips its io_uring-forced test.
pub fn skip_without_io_uring(what: &str) -> bool {
    use std::io::Write;
    match io_uring_unavailable() {
        Some(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "{what}: skipped: io_uring unavailable: {why}"
            );
            true
        }
        None => false,
    }
}

/// [`run_on`] with [`green_uring`], or a skip note where io_uring is unavailable.
pub fn run_on_uring(name: &'static str, body: fn(&Io)) {
    if !skip_without_io_uring(&format!("conformance test {name} on green_uring")) {
        run_on(green_uring, name, body);
    }
}

/// A user-defined model ([`ThreadPerTask`]).
pub fn custom() -> Builder {
    Builder::new(Model::Custom(Arc::new(ThreadPerTask::default())))
}

/// How long one test may take before the watchdog aborts the process: a hang detector, so
/// generous (a contended test runs ~100x slower with CPU hogs on a loaded 2-core machine).
const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `body` on a fresh runtime made by `builder` with two workers, aborting the whole test
/// process if it hangs.
pub fn run_on(builder: MakeBuilder, name: &'static str, body: fn(&Io)) {
    run_on_workers(builder, name, body, 2);
}

/// [`run_on`] with `workers` worker threads (Threaded and Green; the other models ignore it).
pub fn run_on_workers(builder: MakeBuilder, name: &'static str, body: fn(&Io), workers: usize) {
    let _watchdog = Watchdog::start(name, &format!("{:?}", builder()));
    builder().worker_threads(workers).run(body);
}

/// Aborts the whole test process if it is not dropped within [`WATCHDOG`]: a hang fails the
/// suite instead of stalling CI. Dropped on a panic too (the test then fails as usual).
pub struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    /// Starts watching test `name` on `model`.
    pub fn start(name: &'static str, model: &str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let model = model.to_owned();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < WATCHDOG {
                std::thread::sleep(Duration::from_millis(100));
                if flag.load(Ordering::Acquire) {
                    return;
                }
            }
            eprintln!("conformance test {name} on {model} hung for {WATCHDOG:?}: aborting");
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `body` under a deterministic simulation ([`zsync::sim::Sim`]) with a seed of its own
/// (from its name), twice: the second run must make the same event log as the first.
pub fn run_on_sim(name: &'static str, body: fn(&Io)) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let seed = h.finish();
    let sim = zsync::sim::Sim::new(seed);
    let _watchdog = Watchdog::start(name, "the simulation");
    let first = sim
        .try_run(body)
        .unwrap_or_else(|failure| panic!("conformance test {name}: {failure}"));
    let second = sim
        .try_run(body)
        .unwrap_or_else(|failure| panic!("conformance test {name}, run again: {failure}"));
    assert_eq!(
        first.log.fingerprint(),
        second.log.fingerprint(),
        "conformance test {name}: seed {seed} made two different runs"
    );
}

/// Expands test bodies `fn name(io: &Io)` into one `#[test]` per model, plus `ALL`, the list
/// the fd-leak check walks. `conformance! { a, b }` runs them on every real model;
/// `conformance! { on sim: a; not on sim: b }` runs `a` on the simulation too (see
/// [`run_on_sim`]): the second list is what a simulation cannot do.
#[macro_export]
macro_rules! conformance {
    // Bodies of which the first list also runs on the simulation (`mod sim`), the second not:
    // it needs what a simulation refuses (real I/O, `io.blocking`) or has no part in (threads
    // of the test's own, std blocking calls that stall the simulation's one thread).
    (on sim: $($sim:ident),* $(,)? ; not on sim: $($other:ident),* $(,)?) => {
        conformance!(@models $($sim,)* $($other),*);
        mod sim {
            $(#[test] fn $sim() { $crate::support::run_on_sim(stringify!($sim), super::$sim) })*
        }
    };
    (@models $($name:ident),* $(,)?) => {
        #[allow(dead_code)] // read by tests/leaks.rs, not by the per-model tests
        pub const ALL: &[(&str, fn(&zsync::Io))] = &[$((stringify!($name), $name)),*];

        mod blocking {
            $(#[test] fn $name() { $crate::support::run_on($crate::support::blocking, stringify!($name), super::$name) })*
        }
        mod threaded {
            $(#[test] fn $name() { $crate::support::run_on($crate::support::threaded, stringify!($name), super::$name) })*
        }
        mod green_epoll {
            $(#[test] fn $name() { $crate::support::run_on($crate::support::green_epoll, stringify!($name), super::$name) })*
        }
        mod green_uring {
            $(#[test] fn $name() { $crate::support::run_on_uring(stringify!($name), super::$name) })*
        }
        mod custom {
            $(#[test] fn $name() { $crate::support::run_on($crate::support::custom, stringify!($name), super::$name) })*
        }
    };
    // Bodies about real I/O (sockets, files, pipes, processes, signals): every model but the
    // simulation, which refuses real I/O.
    ($($name:ident),* $(,)?) => {
        conformance!(@models $($name),*);
    };
}

/// Items that only the conformance binary compiles (tests with a runtime of their own); the
/// leak-check binary defines this macro to drop them.
#[macro_export]
macro_rules! standalone {
    ($($item:item)*) => { $($item)* };
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

/// For tests that need real concurrency: true if the model has it; otherwise asserts that the
/// model refuses `concurrent` with `ConcurrencyUnavailable` (and the test returns early).
pub fn has_concurrency(io: &Io) -> bool {
    concurrent_or_refused(io, |_| ())
        .map(|t| t.join().unwrap())
        .is_some()
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
    /// Creates a unique directory under the system temp dir, named after `tag`.
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

    /// The directory's path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `len` bytes of a pattern that never repeats with a short period, so an off-by-one anywhere
/// shows.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Waits (bounded) until `cond` holds, yielding the thread; fails the test after 10 s.
#[track_caller]
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = now();
    while !cond() {
        assert!(
            elapsed(start) < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        match simulation() {
            // One thread runs every task: let the others run, and time pass.
            Some(io) => {
                let _ = io.sleep(Duration::from_millis(1));
            }
            None => std::thread::yield_now(),
        }
    }
}

/// Lets a task that announced it is about to block actually block. Tests are correct whether
/// or not it did; this only makes the "interrupted mid-wait" path the likely one.
pub fn let_it_block() {
    match simulation() {
        Some(io) => {
            let _ = io.sleep(Duration::from_millis(20));
        }
        None => std::thread::sleep(Duration::from_millis(20)),
    }
}

/// The running task's `Io` when it runs in a simulation ([`run_on_sim`]).
pub fn simulation() -> Option<Io> {
    Io::current().filter(|io| io.model() == zsync::ModelKind::Simulation)
}

/// The time on the running task's clock: simulated in a simulation, real elsewhere (tests read
/// time here, never with `Instant::now()`, so that they hold on every model).
pub fn now() -> std::time::Instant {
    match Io::current() {
        Some(io) => io.now(),
        None => std::time::Instant::now(),
    }
}

/// Time since `since` on the running task's clock (see [`now`]).
pub fn elapsed(since: std::time::Instant) -> Duration {
    now().saturating_duration_since(since)
}

/// Asserts `r` is the TimedOut error.
#[track_caller]
pub fn assert_timed_out<T: std::fmt::Debug>(r: std::io::Result<T>) {
    match r {
        Err(e) => assert!(zsync::is_timed_out(&e), "expected TimedOut, got {e:?}"),
        Ok(v) => panic!("expected TimedOut, got Ok({v:?})"),
    }
}

/// Counts the values of a type made and dropped: a test checks that every value made (by `new`
/// or `clone`) is dropped exactly once.
#[derive(Debug, Default)]
pub struct Census {
    /// Values made (by `new` or `clone`).
    pub made: std::sync::atomic::AtomicUsize,
    /// Values dropped.
    pub dropped: std::sync::atomic::AtomicUsize,
}

impl Census {
    /// (made, dropped) now.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.made.load(Ordering::SeqCst),
            self.dropped.load(Ordering::SeqCst),
        )
    }
}

/// A value counted by a [`Census`]; its `clone` panics when `poisoned`.
#[derive(Debug)]
pub struct Counted {
    /// Which value this is (a clone keeps it).
    pub id: u64,
    /// Whether `clone` panics.
    pub poisoned: bool,
    census: Arc<Census>,
}

impl Counted {
    /// A value counted by `census`.
    pub fn new(census: &Arc<Census>, id: u64) -> Counted {
        census.made.fetch_add(1, Ordering::SeqCst);
        Counted {
            id,
            poisoned: false,
            census: census.clone(),
        }
    }

    /// A value whose `clone` panics.
    pub fn poisoned(census: &Arc<Census>, id: u64) -> Counted {
        let mut c = Counted::new(census, id);
        c.poisoned = true;
        c
    }
}

impl Clone for Counted {
    fn clone(&self) -> Counted {
        assert!(!self.poisoned, "Counted {} refuses to be cloned", self.id);
        Counted::new(&self.census, self.id)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.census.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// The descriptors this process has open, as `fd -> target`, sorted: what a leak check compares.
pub fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    fds.sort();
    fds
}

/// How many threads this process has.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The thread count once it has stopped falling (unchanged for 200 ms, or after 10 s): a
/// baseline taken right after a runtime shut down would otherwise count its joined threads
/// that `/proc/self/task` still lists (see [`settled_thread_count`]).
pub fn quiescent_thread_count() -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = thread_count();
    let mut since = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = thread_count();
        if now != n {
            n = now;
            since = std::time::Instant::now();
        } else if since.elapsed() >= Duration::from_millis(200)
            || std::time::Instant::now() >= deadline
        {
            return n;
        }
    }
}

/// The thread count once it has dropped to `expected`, or after 10 s. A joined thread may still
/// be listed in `/proc/self/task` for a moment: `pthread_join` returns when the kernel clears
/// the thread's tid, before the exiting task is unlisted (longer if it is preempted in between
/// on a loaded machine). A thread really left running stays.
pub fn settled_thread_count(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = thread_count();
        if n <= expected || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

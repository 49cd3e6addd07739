//! zsync Green side by side with Tokio (multi-thread) and may (stackful coroutines), 2 workers
//! each, plus zsync Threaded where the benchmark makes sense on OS threads.
//!
//! Run with `cargo bench --bench green`. Each (runtime, benchmark) pair runs in a fresh child
//! process (the bench binary re-executed with `--child RUNTIME BENCH`), so that a crash (may at
//! 100k parked coroutines hits `vm.max_map_count`) or a global configuration (may's worker
//! count) cannot disturb the others, and so that "cold" really is the first iteration of a fresh
//! process. The parent prints the medians of the warm iterations and the cold (first) figures.
//!
//! Benchmarks:
//!
//! - `spawn_join`: from inside the runtime, spawn N tasks returning a number, then join them all.
//! - `spawn_join_each`: spawn one task and join it at once, N times.
//! - `yield`: 1000 tasks x 200 `yield_now()`.
//! - `ping_pong`: two tasks, two channels of capacity 1, R round trips.
//! - `sleeps`: 100k tasks each sleeping 10 ms, spawn all then join all; total ms.
//! - `rss_parked`: 100k tasks parked on a semaphore with no permits: RSS growth per task.
//! - `xping_pong`: `ping_pong` with the two zsync fibers on *different* workers (the echo is
//!   started with `concurrent` and restarted until it lands on the other worker's thread), so
//!   every message crosses workers; Tokio, may and Go run their ordinary ping-pong (they place
//!   tasks themselves), crossbeam-channel its bounded(1) channels between two OS threads.
//! - `mpmc`: 4 producers and 4 consumers move 100k messages through one bounded(1024) channel;
//!   total ms. zsync's eight tasks start with `concurrent` (fibers spread over both workers),
//!   crossbeam-channel runs eight OS threads (the target is ≤ 1.5× its figure), Tokio shares the
//!   one `mpsc::Receiver` among its consumers behind a `tokio::sync::Mutex` (it has no MPMC
//!   channel), may uses its `mpmc` channel.
//!
//! The stackless workloads run zsync's future tasks (`io.spawn_future`, polled by the Green
//! workers without a fiber) against Tokio's tasks, with the same async code on both sides, from
//! inside a future task; only zsync Green and Tokio run them:
//!
//! - `stackless_spawn_join`: spawn a trivial async task and await it, N times.
//! - `stackless_yield`: 1000 tasks x 200 `yield_now().await`.
//! - `stackless_ping_pong`: two future tasks, two channels of capacity 1, R round trips, with
//!   `recv_event().await` / `send_event(v).await` (zsync) and `tokio::sync::mpsc` (Tokio).
//! - `stackless_sleeps`: 100k future tasks each awaiting a 10 ms sleep (`zsync::time::sleep`,
//!   `tokio::time::sleep`); total ms.
//!
//! Useful for profiling one pair: `target/release/deps/green-* --child zsync spawn_join`;
//! `GB_SCALE=0.05` scales iteration counts down (for callgrind), `GB_ITERS=n` sets the number of
//! warm iterations.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `mpmc` workload, shared with `benches/channels.rs`.
#[path = "shared/mpmc.rs"]
mod mpmc;

const WORKERS: usize = 2;
/// A child that takes longer is killed and reported as `hang` (may deadlocks or crawls with
/// 100k+ live coroutines here).
const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

const BENCHES: &[(&str, &str, &str, f64)] = &[
    // name, label, unit, target ratio zsync/tokio (0 = absolute KiB target below)
    ("spawn_join", "spawn+join", "ns/task", 0.35),
    ("spawn_join_each", "spawn→join loop", "ns/task", 0.35),
    ("yield", "yield", "ns/yield", 0.5),
    ("ping_pong", "ping-pong", "ns/rt", 0.5),
    ("sleeps", "sleeps 100k×10ms", "ms total", 0.8),
    ("rss_parked", "RSS/parked", "KiB/task", 0.0),
    ("xping_pong", "x-worker ping-pong", "ns/rt", 1.5),
    ("mpmc", "4P/4C MPMC 100k", "ms total", 1.5),
    ("stackless_spawn_join", "async spawn→join", "ns/task", 0.7),
    ("stackless_yield", "async yield", "ns/yield", 0.7),
    ("stackless_ping_pong", "async ping-pong", "ns/rt", 0.7),
    ("stackless_sleeps", "async 100k×10ms", "ms total", 0.7),
];
const RSS_TARGET_KIB: f64 = 4.5;
const RUNTIMES: &[&str] = &["zsync", "threaded", "tokio", "may", "crossbeam"];

/// The column a benchmark's target ratio refers to: crossbeam-channel on OS threads for the
/// MPMC throughput, Tokio for the rest.
fn reference(bench: &str) -> usize {
    if bench == "mpmc" {
        4
    } else {
        2
    }
}

fn scale() -> f64 {
    std::env::var("GB_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(1)
}

fn warm_iters(bench: &str) -> usize {
    if let Some(n) = std::env::var("GB_ITERS").ok().and_then(|s| s.parse().ok()) {
        return n;
    }
    match bench {
        "rss_parked" => 0,
        "sleeps" | "stackless_sleeps" => 5,
        _ => 7,
    }
}

fn spawn_n() -> usize {
    scaled(200_000)
}
fn yield_tasks() -> usize {
    scaled(1000)
}
const YIELDS: usize = 200;
fn round_trips() -> usize {
    scaled(100_000)
}
fn sleepers() -> usize {
    scaled(100_000)
}
fn parked() -> usize {
    scaled(100_000)
}
/// Messages of the MPMC benchmark, split evenly over its producers.
fn mpmc_messages() -> usize {
    scaled(100_000) / mpmc::SIDES * mpmc::SIDES
}

fn rss_kib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4.0
}

// ---------------------------------------------------------------------------------------------
// zsync (Green or Threaded)

fn zsync_run(model: zsync::Model, bench: &str, iters: usize) -> Vec<f64> {
    let bench = bench.to_string();
    zsync::Builder::new(model)
        .worker_threads(WORKERS)
        .run(move |io| (0..iters).map(|_| zsync_once(io, &bench)).collect())
}

fn zsync_once(io: &zsync::Io, bench: &str) -> f64 {
    if bench.starts_with("stackless_") {
        // From inside a future task, as Tokio's side runs inside `tokio::spawn`.
        return io
            .spawn_future(zsync_stackless(io.clone(), bench.to_string()))
            .join()
            .unwrap();
    }
    match bench {
        "spawn_join" => {
            let n = spawn_n();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n).map(|i| io.spawn(move |_| i)).collect();
            let mut sum = 0usize;
            for task in tasks {
                sum += task.join().unwrap();
            }
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed().as_nanos() as f64 / n as f64
        }
        "spawn_join_each" => {
            let n = spawn_n();
            let t = Instant::now();
            let mut sum = 0usize;
            for i in 0..n {
                sum += io.spawn(move |_| i).join().unwrap();
            }
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed().as_nanos() as f64 / n as f64
        }
        "yield" => {
            let n = yield_tasks();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    io.spawn(|io| {
                        for _ in 0..YIELDS {
                            io.yield_now();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.join().unwrap();
            }
            t.elapsed().as_nanos() as f64 / (n * YIELDS) as f64
        }
        "ping_pong" => {
            let n = round_trips();
            let (ping_tx, ping_rx) = zsync::channel::bounded::<usize>(1);
            let (pong_tx, pong_rx) = zsync::channel::bounded::<usize>(1);
            let echo = io.spawn(move |_| {
                while let Ok(v) = ping_rx.recv() {
                    pong_tx.send(v).unwrap();
                }
            });
            let pinger = io.spawn(move |_| {
                let t = Instant::now();
                for i in 0..n {
                    ping_tx.send(i).unwrap();
                    assert_eq!(pong_rx.recv().unwrap(), i);
                }
                t.elapsed()
            });
            let took = pinger.join().unwrap();
            echo.join().unwrap();
            took.as_nanos() as f64 / n as f64
        }
        "xping_pong" => {
            let n = round_trips();
            let (ping_tx, ping_rx) = zsync::channel::bounded::<usize>(1);
            let (pong_tx, pong_rx) = zsync::channel::bounded::<usize>(1);
            let echo = zsync_other_worker(io, move || {
                while let Ok(v) = ping_rx.recv() {
                    pong_tx.send(v).unwrap();
                }
            });
            let per_rt =
                time_round_trips(n, |i| ping_tx.send(i).unwrap(), || pong_rx.recv().unwrap());
            drop(ping_tx);
            echo.join().unwrap();
            per_rt
        }
        "mpmc" => mpmc::zsync(io, mpmc_messages()).as_secs_f64() * 1e3,
        "sleeps" => {
            let n = sleepers();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| io.spawn(|io| io.sleep(Duration::from_millis(10)).unwrap()))
                .collect();
            for task in tasks {
                task.join().unwrap();
            }
            t.elapsed().as_secs_f64() * 1e3
        }
        "rss_parked" => {
            let n = parked();
            let sem = Arc::new(zsync::sync::Semaphore::new(0));
            let started = Arc::new(AtomicUsize::new(0));
            let before = rss_kib();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let sem = sem.clone();
                    let started = started.clone();
                    io.spawn(move |_| {
                        started.fetch_add(1, Ordering::Relaxed);
                        sem.acquire().unwrap().forget();
                    })
                })
                .collect();
            while started.load(Ordering::Relaxed) < n {
                io.sleep(Duration::from_millis(1)).unwrap();
            }
            io.sleep(Duration::from_millis(20)).unwrap();
            let after = rss_kib();
            sem.add_permits(n);
            for task in tasks {
                task.join().unwrap();
            }
            (after - before) / n as f64
        }
        _ => unreachable!(),
    }
}

/// Times `n` round trips of the cross-thread ping-pong (`send(i)`, then `recv()` must answer
/// `i`) and returns the nanoseconds per round trip (zsync's and crossbeam's `xping_pong`).
fn time_round_trips(n: usize, mut send: impl FnMut(usize), mut recv: impl FnMut() -> usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        send(i);
        assert_eq!(recv(), i);
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Starts `body` as a `concurrent` task on another worker than the caller's. A task that
/// starts on the caller's own thread is kept waiting (so that it occupies the caller's worker,
/// and placement offers the next task to the other one), another is started, and the strays
/// are told to return without running `body` once one landed elsewhere.
fn zsync_other_worker(io: &zsync::Io, body: impl FnOnce() + Send + 'static) -> zsync::Task<()> {
    let me = std::thread::current().id();
    let body = Arc::new(std::sync::Mutex::new(Some(body)));
    let mut strays: Vec<(zsync::channel::Sender<bool>, zsync::Task<()>)> = Vec::new();
    for _ in 0..100 {
        let (here_tx, here_rx) = zsync::channel::bounded(1);
        let (go_tx, go_rx) = zsync::channel::bounded::<bool>(1);
        let body = body.clone();
        let task = io
            .concurrent(move |_| {
                here_tx.send(std::thread::current().id()).unwrap();
                if go_rx.recv() == Ok(true) {
                    let body = body.lock().unwrap().take().unwrap();
                    body();
                }
            })
            .unwrap();
        let there = here_rx.recv().unwrap();
        if there != me {
            go_tx.send(true).unwrap();
            for (go, stray) in strays {
                drop(go);
                stray.join().unwrap();
            }
            return task;
        }
        strays.push((go_tx, task));
    }
    panic!("no task of 100 started on another worker");
}

/// The stackless workloads on zsync: the async code of `tokio_once`'s arms, on zsync's futures.
async fn zsync_stackless(io: zsync::Io, bench: String) -> f64 {
    match bench.as_str() {
        "stackless_spawn_join" => {
            let n = spawn_n();
            let t = Instant::now();
            let mut sum = 0usize;
            for i in 0..n {
                sum += io.spawn_future(async move { i }).await.unwrap();
            }
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed().as_nanos() as f64 / n as f64
        }
        "stackless_yield" => {
            let n = yield_tasks();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    io.spawn_future(async {
                        for _ in 0..YIELDS {
                            zsync::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            t.elapsed().as_nanos() as f64 / (n * YIELDS) as f64
        }
        "stackless_ping_pong" => {
            let n = round_trips();
            let (ping_tx, ping_rx) = zsync::channel::bounded::<usize>(1);
            let (pong_tx, pong_rx) = zsync::channel::bounded::<usize>(1);
            let echo = io.spawn_future(async move {
                while let Ok(v) = ping_rx.recv_event().await {
                    pong_tx.send_event(v).await.unwrap();
                }
            });
            let pinger = io.spawn_future(async move {
                let t = Instant::now();
                for i in 0..n {
                    ping_tx.send_event(i).await.unwrap();
                    assert_eq!(pong_rx.recv_event().await.unwrap(), i);
                }
                t.elapsed()
            });
            let took = pinger.await.unwrap();
            echo.await.unwrap();
            took.as_nanos() as f64 / n as f64
        }
        "stackless_sleeps" => {
            let n = sleepers();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| io.spawn_future(zsync::time::sleep(Duration::from_millis(10))))
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            t.elapsed().as_secs_f64() * 1e3
        }
        _ => unreachable!(),
    }
}

/// Workloads whose zsync side needs API that is not on main yet.
const PENDING: &[&str] = &[];

/// What the zsync side of a workload that needs unmerged API reports.
const NOT_YET: &str = "not yet: needs zsync::time::sleep (the async driver)";

// ---------------------------------------------------------------------------------------------
// Tokio

fn tokio_run(bench: &str, iters: usize) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    let bench = bench.to_string();
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut v = Vec::new();
            for _ in 0..iters {
                v.push(tokio_once(&bench).await);
            }
            v
        })
        .await
        .unwrap()
    })
}

async fn tokio_once(bench: &str) -> f64 {
    match bench {
        "spawn_join" => {
            let n = spawn_n();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
            let mut sum = 0usize;
            for task in tasks {
                sum += task.await.unwrap();
            }
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed().as_nanos() as f64 / n as f64
        }
        "spawn_join_each" | "stackless_spawn_join" => {
            let n = spawn_n();
            let t = Instant::now();
            let mut sum = 0usize;
            for i in 0..n {
                sum += tokio::spawn(async move { i }).await.unwrap();
            }
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed().as_nanos() as f64 / n as f64
        }
        "yield" | "stackless_yield" => {
            let n = yield_tasks();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    tokio::spawn(async {
                        for _ in 0..YIELDS {
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            t.elapsed().as_nanos() as f64 / (n * YIELDS) as f64
        }
        "ping_pong" | "stackless_ping_pong" | "xping_pong" => {
            let n = round_trips();
            let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<usize>(1);
            let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<usize>(1);
            let echo = tokio::spawn(async move {
                while let Some(v) = ping_rx.recv().await {
                    pong_tx.send(v).await.unwrap();
                }
            });
            let pinger = tokio::spawn(async move {
                let t = Instant::now();
                for i in 0..n {
                    ping_tx.send(i).await.unwrap();
                    assert_eq!(pong_rx.recv().await.unwrap(), i);
                }
                t.elapsed()
            });
            let took = pinger.await.unwrap();
            echo.await.unwrap();
            took.as_nanos() as f64 / n as f64
        }
        "mpmc" => mpmc::tokio(mpmc_messages()).await.as_secs_f64() * 1e3,
        "sleeps" | "stackless_sleeps" => {
            let n = sleepers();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_millis(10))))
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            t.elapsed().as_secs_f64() * 1e3
        }
        "rss_parked" => {
            let n = parked();
            let sem = Arc::new(tokio::sync::Semaphore::new(0));
            let started = Arc::new(AtomicUsize::new(0));
            let before = rss_kib();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let sem = sem.clone();
                    let started = started.clone();
                    tokio::spawn(async move {
                        started.fetch_add(1, Ordering::Relaxed);
                        sem.acquire().await.unwrap().forget();
                    })
                })
                .collect();
            while started.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let after = rss_kib();
            sem.add_permits(n);
            for task in tasks {
                task.await.unwrap();
            }
            (after - before) / n as f64
        }
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// may

fn may_run(bench: &str, iters: usize) -> Vec<f64> {
    may::config().set_workers(WORKERS);
    let bench = bench.to_string();
    may::go!(move || (0..iters).map(|_| may_once(&bench)).collect::<Vec<f64>>())
        .join()
        .unwrap()
}

fn may_once(bench: &str) -> f64 {
    match bench {
        "spawn_join" => {
            let n = spawn_n();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n).map(|i| may::go!(move || i)).collect();
            let mut sum = 0usize;
            for task in tasks {
                sum += task.join().unwrap();
            }
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed().as_nanos() as f64 / n as f64
        }
        "spawn_join_each" => {
            let n = spawn_n();
            let t = Instant::now();
            let mut sum = 0usize;
            for i in 0..n {
                sum += may::go!(move || i).join().unwrap();
            }
            assert_eq!(sum, n * (n - 1) / 2);
            t.elapsed().as_nanos() as f64 / n as f64
        }
        "yield" => {
            let n = yield_tasks();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    may::go!(|| {
                        for _ in 0..YIELDS {
                            may::coroutine::yield_now();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.join().unwrap();
            }
            t.elapsed().as_nanos() as f64 / (n * YIELDS) as f64
        }
        "ping_pong" | "xping_pong" => {
            let n = round_trips();
            let (ping_tx, ping_rx) = may::sync::mpsc::channel::<usize>();
            let (pong_tx, pong_rx) = may::sync::mpsc::channel::<usize>();
            let echo = may::go!(move || {
                while let Ok(v) = ping_rx.recv() {
                    pong_tx.send(v).unwrap();
                }
            });
            let pinger = may::go!(move || {
                let t = Instant::now();
                for i in 0..n {
                    ping_tx.send(i).unwrap();
                    assert_eq!(pong_rx.recv().unwrap(), i);
                }
                t.elapsed()
            });
            let took = pinger.join().unwrap();
            echo.join().unwrap();
            took.as_nanos() as f64 / n as f64
        }
        "mpmc" => {
            // may's channels are unbounded: the bound is what the others pay for, so may
            // would measure something easier; its mpmc channel is used as it is.
            let n = mpmc_messages();
            let per = n / mpmc::SIDES;
            let t = Instant::now();
            let (tx, rx) = may::sync::mpmc::channel::<usize>();
            let producers: Vec<_> = (0..mpmc::SIDES)
                .map(|_| {
                    let tx = tx.clone();
                    may::go!(move || {
                        for i in 0..per {
                            tx.send(i).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let consumers: Vec<_> = (0..mpmc::SIDES)
                .map(|_| {
                    let rx = rx.clone();
                    may::go!(move || {
                        let mut got = 0usize;
                        while rx.recv().is_ok() {
                            got += 1;
                        }
                        got
                    })
                })
                .collect();
            drop(rx);
            producers.into_iter().for_each(|p| p.join().unwrap());
            let got: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
            assert_eq!(got, n);
            t.elapsed().as_secs_f64() * 1e3
        }
        "sleeps" => {
            let n = sleepers();
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| may::go!(|| may::coroutine::sleep(Duration::from_millis(10))))
                .collect();
            for task in tasks {
                task.join().unwrap();
            }
            t.elapsed().as_secs_f64() * 1e3
        }
        "rss_parked" => {
            let n = parked();
            let sem = Arc::new(may::sync::Semphore::new(0));
            let started = Arc::new(AtomicUsize::new(0));
            let before = rss_kib();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let sem = sem.clone();
                    let started = started.clone();
                    may::go!(move || {
                        started.fetch_add(1, Ordering::Relaxed);
                        sem.wait();
                    })
                })
                .collect();
            while started.load(Ordering::Relaxed) < n {
                may::coroutine::sleep(Duration::from_millis(1));
            }
            may::coroutine::sleep(Duration::from_millis(20));
            let after = rss_kib();
            for _ in 0..n {
                sem.post();
            }
            for task in tasks {
                task.join().unwrap();
            }
            (after - before) / n as f64
        }
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// crossbeam-channel on OS threads (the MPMC reference, and ping-pong between two threads)

fn crossbeam_run(bench: &str, iters: usize) -> Vec<f64> {
    (0..iters).map(|_| crossbeam_once(bench)).collect()
}

fn crossbeam_once(bench: &str) -> f64 {
    match bench {
        "xping_pong" => {
            let n = round_trips();
            let (ping_tx, ping_rx) = crossbeam_channel::bounded::<usize>(1);
            let (pong_tx, pong_rx) = crossbeam_channel::bounded::<usize>(1);
            let echo = std::thread::spawn(move || {
                for v in ping_rx.iter() {
                    pong_tx.send(v).unwrap();
                }
            });
            let per_rt =
                time_round_trips(n, |i| ping_tx.send(i).unwrap(), || pong_rx.recv().unwrap());
            drop(ping_tx);
            echo.join().unwrap();
            per_rt
        }
        "mpmc" => mpmc::crossbeam(mpmc_messages()).as_secs_f64() * 1e3,
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// Driver

/// Whether `runtime` runs `bench` at all (Threaded cannot run 100k sleepers or parked tasks on
/// two workers; its yield is an OS-thread yield). The stackless workloads compare zsync Green's
/// future tasks with Tokio's only.
fn applicable(runtime: &str, bench: &str) -> bool {
    if bench.starts_with("stackless_") {
        return matches!(runtime, "zsync" | "tokio");
    }
    if runtime == "crossbeam" {
        return matches!(bench, "xping_pong" | "mpmc");
    }
    runtime != "threaded"
        || matches!(
            bench,
            "spawn_join" | "spawn_join_each" | "ping_pong" | "xping_pong" | "mpmc"
        )
}

fn child(runtime: &str, bench: &str) {
    if runtime == "zsync" && PENDING.contains(&bench) {
        // The last line of stderr is what the parents (this file's, the runner's) report.
        eprintln!("{NOT_YET}");
        std::process::exit(2);
    }
    let iters = 1 + warm_iters(bench);
    let v = match runtime {
        "zsync" => zsync_run(zsync::Model::Green, bench, iters),
        "threaded" => zsync_run(zsync::Model::Threaded, bench, iters),
        "tokio" => tokio_run(bench, iters),
        "may" => may_run(bench, iters),
        "crossbeam" => crossbeam_run(bench, iters),
        other => panic!("unknown runtime {other}"),
    };
    let s: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
    println!("RESULT {}", s.join(" "));
}

#[derive(Clone, Default)]
struct Cell {
    cold: Option<f64>,
    warm: Option<f64>,
    err: Option<String>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(v[v.len() / 2])
}

fn measure(runtime: &str, bench: &str) -> Cell {
    let exe = std::env::current_exe().unwrap();
    let mut proc = Command::new(exe)
        .args(["--child", runtime, bench])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-exec the bench binary");
    // Drain the pipes on threads so that a chatty child cannot block on a full pipe.
    let mut so = proc.stdout.take().unwrap();
    let mut se = proc.stderr.take().unwrap();
    let so = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let se = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = proc.try_wait().unwrap() {
            break Some(st);
        }
        if t0.elapsed() > CHILD_TIMEOUT {
            let _ = proc.kill();
            let _ = proc.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "  {runtime:<8} {bench:<16} {:>6.1} s",
        t0.elapsed().as_secs_f64()
    );
    let Some(status) = status else {
        return Cell {
            err: Some(format!("timed out after {CHILD_TIMEOUT:?}")),
            ..Cell::default()
        };
    };
    struct Out {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        status: std::process::ExitStatus,
    }
    let out = Out {
        stdout: so.join().unwrap().into_bytes(),
        stderr: se.join().unwrap().into_bytes(),
        status,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        return Cell {
            err: Some(format!("failed ({}): {}", out.status, why)),
            ..Cell::default()
        };
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    Cell {
        cold: v.first().copied(),
        warm: median(v[1..].to_vec()),
        err: None,
    }
}

fn fmt(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x >= 1000.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    // `cargo bench --bench green [FILTER]`: cargo passes `--bench`; a free argument filters.
    let filter: Option<&String> = args[1..].iter().find(|a| !a.starts_with("--"));
    let started = Instant::now();
    let mut rows = Vec::new();
    for &(bench, label, unit, target) in BENCHES {
        if filter.is_some_and(|f| !bench.contains(f.as_str())) {
            continue;
        }
        let mut cells = Vec::new();
        for &rt in RUNTIMES {
            let cell = if applicable(rt, bench) {
                measure(rt, bench)
            } else {
                Cell::default()
            };
            if let Some(e) = &cell.err {
                eprintln!("{rt} {bench}: {e}");
            }
            cells.push(cell);
        }
        eprintln!("{label}: done ({:.1} s)", started.elapsed().as_secs_f64());
        rows.push((bench, label, unit, target, cells));
    }

    for (title, pick) in [
        (
            "warm (median of the iterations after the first, each runtime in a fresh process)",
            0,
        ),
        ("cold (first iteration in a fresh process)", 1),
    ] {
        println!("\n{title}");
        println!(
            "{:<18} {:<9} {:>12} {:>11} {:>9} {:>9} {:>9} {:>11} {:>10} {:>8} {:>6}",
            "bench",
            "unit",
            "zsync-green",
            "zsync-thr",
            "tokio",
            "may",
            "crossbeam",
            "zsync/tokio",
            "zsync/may",
            "target",
            "ok"
        );
        for (bench, label, unit, target, cells) in &rows {
            let get = |c: &Cell| {
                if c.err.is_some() {
                    None
                } else if pick == 0 && *bench != "rss_parked" {
                    c.warm
                } else {
                    c.cold
                }
            };
            let show = |c: &Cell| {
                if let Some(e) = &c.err {
                    if e.contains("not yet") {
                        "not yet".to_string()
                    } else if e.starts_with("timed out") {
                        "hang".to_string()
                    } else {
                        "crash".to_string()
                    }
                } else {
                    fmt(get(c))
                }
            };
            let z = get(&cells[0]);
            let (target_s, ok) = if *target > 0.0 {
                let r = reference(bench);
                let ok = match (z, get(&cells[r])) {
                    (Some(z), Some(t)) => z / t <= *target,
                    _ => false,
                };
                let who = if r == 2 { "T" } else { "CB" };
                (format!("≤{target}×{who}"), ok)
            } else {
                (
                    format!("≤{RSS_TARGET_KIB}KiB"),
                    z.is_some_and(|z| z <= RSS_TARGET_KIB),
                )
            };
            println!(
                "{:<18} {:<9} {:>12} {:>11} {:>9} {:>9} {:>9} {:>11} {:>10} {:>8} {:>6}",
                label,
                unit,
                show(&cells[0]),
                show(&cells[1]),
                show(&cells[2]),
                show(&cells[3]),
                show(&cells[4]),
                ratio(z, get(&cells[2])),
                ratio(z, get(&cells[3])),
                target_s,
                if ok { "yes" } else { "NO" }
            );
        }
    }
    println!(
        "\n{} workers per runtime; total {:.1} s",
        WORKERS,
        started.elapsed().as_secs_f64()
    );
}

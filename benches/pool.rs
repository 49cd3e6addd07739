//! Connection pools side by side: `zsync::pool` (Threaded and Green, 2 workers each) vs deadpool
//! (managed, on a 2-worker Tokio runtime) vs r2d2 (std threads).
//!
//! The "connection" is a number, so what is measured is the pool: checkout and return.
//!
//! - `uncontended`: one task gets a connection and drops it, in a loop (pool of 8, one idle).
//! - `contended_64`: 64 tasks each get and drop a connection `ROUNDS` times on a pool of 8, so
//!   most checkouts queue for a slot. Per element = one get + drop.
//!
//! Run with `cargo bench --bench pool`. The runner's pool rows (`bench/src/apps/pool.rs`) run
//! this binary with `--child CONTENDER WORKLOAD`, the very same code.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};

/// Pool size of every benchmark.
const MAX: usize = 8;
/// Tasks of the contended group.
const TASKS: usize = 64;
/// Checkouts per task in the contended group.
const ROUNDS: usize = 200;

struct ZManager;

impl zsync::pool::Manager for ZManager {
    type Conn = u64;
    type Error = Infallible;
    fn connect(&self, _io: &zsync::Io) -> Result<u64, Infallible> {
        Ok(0)
    }
}

struct DManager;

impl deadpool::managed::Manager for DManager {
    type Type = u64;
    type Error = Infallible;
    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn recycle(
        &self,
        _conn: &mut u64,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

struct RManager;

impl r2d2::ManageConnection for RManager {
    type Connection = u64;
    type Error = std::io::Error;
    fn connect(&self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn is_valid(&self, _conn: &mut u64) -> std::io::Result<()> {
        Ok(())
    }
    fn has_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}

/// The contenders, as the criterion ids and `--child` names know them.
const CONTENDERS: [&str; 4] = [
    "zsync_threaded",
    "zsync_green",
    "deadpool_tokio",
    "r2d2_threads",
];

/// The workloads: `uncontended` (one get+drop per iteration) and `contended_64` (all
/// `TASKS × ROUNDS` checkouts per iteration).
const WORKLOADS: [&str; 2] = ["uncontended", "contended_64"];

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn deadpool_pool() -> deadpool::managed::Pool<DManager> {
    deadpool::managed::Pool::builder(DManager)
        .max_size(MAX)
        .build()
        .unwrap()
}

fn r2d2_pool() -> r2d2::Pool<RManager> {
    r2d2::Pool::builder()
        .max_size(MAX as u32)
        .connection_timeout(Duration::from_secs(60))
        .build(RManager)
        .unwrap()
}

/// Runs `f` with a timing function for `contender`: given a workload and an iteration count,
/// it returns the time those iterations took. The pool (and runtime) is built once.
/// Times `iters` iterations of a workload on a built pool.
type Timer<'a> = &'a mut dyn FnMut(&str, u64) -> Duration;

fn with_contender(contender: &str, f: &mut dyn FnMut(Timer<'_>)) {
    match contender {
        "zsync_threaded" | "zsync_green" => {
            let model = if contender == "zsync_green" {
                zsync::Model::Green
            } else {
                zsync::Model::Threaded
            };
            zsync::Builder::new(model).worker_threads(2).run(|io| {
                let pool = zsync::pool::Pool::builder(ZManager)
                    .max_size(MAX)
                    .acquire_timeout(None)
                    .build(io)
                    .unwrap();
                f(&mut |workload, iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        if workload == "uncontended" {
                            black_box(*pool.get(io).unwrap());
                            continue;
                        }
                        let tasks: Vec<_> = (0..TASKS)
                            .map(|_| {
                                let pool = pool.clone();
                                io.concurrent(move |io| {
                                    for _ in 0..ROUNDS {
                                        black_box(*pool.get(io).unwrap());
                                    }
                                })
                                .unwrap()
                            })
                            .collect();
                        for t in tasks {
                            t.join().unwrap();
                        }
                    }
                    start.elapsed()
                })
            });
        }
        "deadpool_tokio" => {
            let rt = tokio_rt();
            let pool = deadpool_pool();
            f(&mut |workload, iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        if workload == "uncontended" {
                            black_box(*pool.get().await.unwrap());
                            continue;
                        }
                        let tasks: Vec<_> = (0..TASKS)
                            .map(|_| {
                                let pool = pool.clone();
                                tokio::spawn(async move {
                                    for _ in 0..ROUNDS {
                                        black_box(*pool.get().await.unwrap());
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                    start.elapsed()
                })
            })
        }
        "r2d2_threads" => {
            let pool = r2d2_pool();
            f(&mut |workload, iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    if workload == "uncontended" {
                        black_box(*pool.get().unwrap());
                        continue;
                    }
                    std::thread::scope(|s| {
                        for _ in 0..TASKS {
                            s.spawn(|| {
                                for _ in 0..ROUNDS {
                                    black_box(*pool.get().unwrap());
                                }
                            });
                        }
                    })
                }
                start.elapsed()
            })
        }
        other => panic!("unknown contender {other}"),
    }
}

/// Checkouts per iteration of `workload`.
fn per_iter(workload: &str) -> u64 {
    if workload == "uncontended" {
        1
    } else {
        (TASKS * ROUNDS) as u64
    }
}

fn criterion_benches(c: &mut Criterion) {
    for workload in WORKLOADS {
        let mut g = c.benchmark_group(format!("pool_{workload}"));
        g.measurement_time(Duration::from_secs(if workload == "uncontended" {
            3
        } else {
            5
        }))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(if workload == "uncontended" { 20 } else { 10 })
        .throughput(Throughput::Elements(per_iter(workload)));
        for contender in CONTENDERS {
            with_contender(contender, &mut |time| {
                g.bench_function(contender, |b| b.iter_custom(|iters| time(workload, iters)));
            });
        }
        g.finish();
    }
}

/// `--child CONTENDER WORKLOAD` (the runner's pool rows): `POOL_ROUNDS` rounds (default 11) of
/// about 0.2 s each after a warm-up, printing `RESULT best median worst` in ns per checkout.
fn child(contender: &str, workload: &str) {
    let rounds: usize = std::env::var("POOL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    with_contender(contender, &mut |time| {
        // Size a round to about 0.2 s from a short calibration run.
        let probe = if workload == "uncontended" { 10_000 } else { 2 };
        let took = time(workload, probe).max(Duration::from_micros(1));
        let iters = ((0.2 / took.as_secs_f64()) * probe as f64).max(1.0) as u64;
        let mut ns: Vec<f64> = (0..rounds)
            .map(|_| time(workload, iters).as_nanos() as f64 / (iters * per_iter(workload)) as f64)
            .collect();
        ns.sort_by(f64::total_cmp);
        println!(
            "RESULT {:.1} {:.1} {:.1}",
            ns[0],
            ns[ns.len() / 2],
            ns[ns.len() - 1]
        );
    });
}

criterion_group!(benches, criterion_benches);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

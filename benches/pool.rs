//! Connection pools side by side: `zsync::pool` (Threaded and Green, 2 workers each) vs deadpool
//! (managed, on a 2-worker Tokio runtime) vs r2d2 (std threads).
//!
//! The "connection" is a number, so what is measured is the pool: checkout and return.
//!
//! - `uncontended`: one task gets a connection and drops it, in a loop (pool of 8, one idle).
//! - `contended_64`: 64 tasks each get and drop a connection `ROUNDS` times on a pool of 8, so
//!   most checkouts queue for a slot. Per element = one get + drop.
//!
//! Run with `cargo bench --bench pool`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

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

fn zsync_models() -> [(&'static str, zsync::Model); 2] {
    [
        ("zsync_threaded", zsync::Model::Threaded),
        ("zsync_green", zsync::Model::Green),
    ]
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_uncontended");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .throughput(Throughput::Elements(1));
    for (name, model) in zsync_models() {
        zsync::Builder::new(model).worker_threads(2).run(|io| {
            let pool = zsync::pool::Pool::builder(ZManager)
                .max_size(MAX)
                .build(io)
                .unwrap();
            g.bench_function(name, |b| b.iter(|| black_box(*pool.get(io).unwrap())));
        });
    }
    let rt = tokio_rt();
    let pool: deadpool::managed::Pool<DManager> = deadpool::managed::Pool::builder(DManager)
        .max_size(MAX)
        .build()
        .unwrap();
    g.bench_function("deadpool_tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(*pool.get().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let pool = r2d2::Pool::builder()
        .max_size(MAX as u32)
        .build(RManager)
        .unwrap();
    g.bench_function("r2d2_threads", |b| {
        b.iter(|| black_box(*pool.get().unwrap()))
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_contended_64");
    g.measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10)
        .throughput(Throughput::Elements((TASKS * ROUNDS) as u64));
    for (name, model) in zsync_models() {
        zsync::Builder::new(model).worker_threads(2).run(|io| {
            let pool = zsync::pool::Pool::builder(ZManager)
                .max_size(MAX)
                .acquire_timeout(None)
                .build(io)
                .unwrap();
            g.bench_function(name, |b| {
                b.iter(|| {
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
                })
            });
        });
    }
    let rt = tokio_rt();
    let pool: deadpool::managed::Pool<DManager> = deadpool::managed::Pool::builder(DManager)
        .max_size(MAX)
        .build()
        .unwrap();
    g.bench_function("deadpool_tokio", |b| {
        b.iter(|| {
            rt.block_on(async {
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
            })
        })
    });
    let pool = r2d2::Pool::builder()
        .max_size(MAX as u32)
        .connection_timeout(Duration::from_secs(60))
        .build(RManager)
        .unwrap();
    g.bench_function("r2d2_threads", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..TASKS {
                    s.spawn(|| {
                        for _ in 0..ROUNDS {
                            black_box(*pool.get().unwrap());
                        }
                    });
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);

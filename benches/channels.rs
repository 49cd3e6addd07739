//! Channels side by side: zsync (Threaded and Green, 2 workers each) vs Tokio (multi-thread, 2
//! workers) vs crossbeam-channel (std threads).
//!
//! - `ping_pong`: one round trip between two tasks over two channels of capacity 1.
//!   `zsync_green_1w` runs both fibers on one worker: no cross-core hand-off, so it measures the
//!   channel, park and wake path alone.
//! - `mpmc_4x4`: 4 producers and 4 consumers move 100 000 messages through a bounded(1024)
//!   channel. Tokio has no MPMC channel: its 4 consumers share the `mpsc::Receiver` behind a
//!   `tokio::sync::Mutex` (the usual workaround).
//!
//! Run with `cargo bench --bench channels`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Messages of the `mpmc_4x4` group.
const MESSAGES: usize = 100_000;

/// The `mpmc_4x4` workload, shared with `benches/green.rs`.
#[path = "shared/mpmc.rs"]
mod mpmc;

/// The zsync models measured, with their benchmark names. Tasks start with `io.concurrent`: an
/// elastic thread each on Threaded, a fiber on Green.
fn zsync_models() -> [(&'static str, zsync::Model); 2] {
    [
        ("zsync_threaded", zsync::Model::Threaded),
        ("zsync_green", zsync::Model::Green),
    ]
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);

    let configs = zsync_models()
        .into_iter()
        .map(|(name, model)| (name, model, 2))
        .chain([("zsync_green_1w", zsync::Model::Green, 1)]);
    for (name, model, workers) in configs {
        zsync::Builder::new(model)
            .worker_threads(workers)
            .run(|io| {
                let (ping_tx, ping_rx) = zsync::channel::bounded::<u64>(1);
                let (pong_tx, pong_rx) = zsync::channel::bounded::<u64>(1);
                let echo = io
                    .concurrent(move |_| {
                        for v in ping_rx.iter() {
                            pong_tx.send(v).unwrap();
                        }
                    })
                    .unwrap();
                g.bench_function(name, |b| {
                    b.iter(|| {
                        ping_tx.send(1).unwrap();
                        pong_rx.recv().unwrap()
                    })
                });
                drop(ping_tx);
                echo.join().unwrap();
            });
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    g.bench_function("tokio_mt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let echo = tokio::spawn(async move {
                    while let Some(v) = ping_rx.recv().await {
                        pong_tx.send(v).await.unwrap();
                    }
                });
                let pinger = tokio::spawn(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        ping_tx.send(i).await.unwrap();
                        pong_rx.recv().await.unwrap();
                    }
                    start.elapsed()
                });
                let took = pinger.await.unwrap();
                echo.await.unwrap();
                took
            })
        })
    });
    drop(rt);

    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u64>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u64>(1);
    let echo = std::thread::spawn(move || {
        for v in ping_rx.iter() {
            pong_tx.send(v).unwrap();
        }
    });
    g.bench_function("crossbeam_threads", |b| {
        b.iter(|| {
            ping_tx.send(1).unwrap();
            pong_rx.recv().unwrap()
        })
    });
    drop(ping_tx);
    echo.join().unwrap();
    g.finish();
}

fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc_4x4");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10)
        .throughput(Throughput::Elements(MESSAGES as u64));

    for (name, model) in zsync_models() {
        zsync::Builder::new(model).worker_threads(2).run(|io| {
            g.bench_function(name, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| mpmc::zsync(io, MESSAGES)).sum())
            });
        });
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    g.bench_function("tokio_mt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += mpmc::tokio(MESSAGES).await;
                }
                total
            })
        })
    });
    drop(rt);

    g.bench_function("crossbeam_threads", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| mpmc::crossbeam(MESSAGES)).sum())
    });
    g.finish();
}

criterion_group!(benches, ping_pong, mpmc);
criterion_main!(benches);

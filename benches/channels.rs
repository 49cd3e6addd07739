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

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MESSAGES: u64 = 100_000;
const SIDES: u64 = 4;
const CAP: usize = 1024;

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
        .throughput(Throughput::Elements(MESSAGES));
    let per = MESSAGES / SIDES;

    for (name, model) in zsync_models() {
        zsync::Builder::new(model).worker_threads(2).run(|io| {
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let (tx, rx) = zsync::channel::bounded::<u64>(CAP);
                        let producers: Vec<_> = (0..SIDES)
                            .map(|_| {
                                let tx = tx.clone();
                                io.concurrent(move |_| {
                                    for i in 0..per {
                                        tx.send(i).unwrap();
                                    }
                                })
                                .unwrap()
                            })
                            .collect();
                        drop(tx);
                        let consumers: Vec<_> = (0..SIDES)
                            .map(|_| {
                                let rx = rx.clone();
                                io.concurrent(move |_| rx.iter().count() as u64).unwrap()
                            })
                            .collect();
                        drop(rx);
                        producers.into_iter().for_each(|p| p.join().unwrap());
                        let n: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
                        total += start.elapsed();
                        assert_eq!(n, MESSAGES);
                    }
                    total
                })
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
                    let start = Instant::now();
                    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(CAP);
                    let rx = Arc::new(tokio::sync::Mutex::new(rx));
                    let producers: Vec<_> = (0..SIDES)
                        .map(|_| {
                            let tx = tx.clone();
                            tokio::spawn(async move {
                                for i in 0..per {
                                    tx.send(i).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    drop(tx);
                    let consumers: Vec<_> = (0..SIDES)
                        .map(|_| {
                            let rx = rx.clone();
                            tokio::spawn(async move {
                                let mut n = 0u64;
                                while rx.lock().await.recv().await.is_some() {
                                    n += 1;
                                }
                                n
                            })
                        })
                        .collect();
                    for p in producers {
                        p.await.unwrap();
                    }
                    let mut n = 0;
                    for c in consumers {
                        n += c.await.unwrap();
                    }
                    total += start.elapsed();
                    assert_eq!(n, MESSAGES);
                }
                total
            })
        })
    });
    drop(rt);

    g.bench_function("crossbeam_threads", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let (tx, rx) = crossbeam_channel::bounded::<u64>(CAP);
                let producers: Vec<_> = (0..SIDES)
                    .map(|_| {
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            for i in 0..per {
                                tx.send(i).unwrap();
                            }
                        })
                    })
                    .collect();
                drop(tx);
                let consumers: Vec<_> = (0..SIDES)
                    .map(|_| {
                        let rx = rx.clone();
                        std::thread::spawn(move || rx.iter().count() as u64)
                    })
                    .collect();
                drop(rx);
                producers.into_iter().for_each(|p| p.join().unwrap());
                let n: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
                total += start.elapsed();
                assert_eq!(n, MESSAGES);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, ping_pong, mpmc);
criterion_main!(benches);

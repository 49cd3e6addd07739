//! The simulation's speed (issue 17, item 7): how many seeds of a 100-task scenario a minute.
//!
//! The scenario: 100 tasks each sleep (simulated time) and send ten messages through a bounded
//! channel to one consumer, and bump a counter behind a `zsync::sync::Mutex`: about 1,100
//! wake-ups, 2,000 scheduling events and 1,000 clock jumps per seed.
//!
//! - `sim/seed_100_tasks`: one whole simulated run (runtime start, the scenario, shutdown).
//! - `sim/green_1w_100_tasks`: the same scenario on a real Green runtime with one worker,
//!   sleeps of zero (a real sleep would measure the clock): what the simulation costs beside
//!   the plain fibers.
//! - `sim/seed_100_tcp_clients`: the networked scenario: an echo server on a host of its own,
//!   100 client tasks on the scenario's host, each connecting and making ten round trips of
//!   64 bytes over simulated TCP with 1–5 ms of latency and 1 % loss: about 1,100 connections
//!   and segments' worth of network events per seed.
//! - Then `Sim::run_seeds` over 1,000 seeds of each on every core, timed once and printed as
//!   seeds per minute (the figure the issue asks for).
//!
//! Run with `cargo bench --bench sim`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, Criterion};
use zsync::net::{TcpListener, TcpStream};
use zsync::sim::{NetFaults, Sim};
use zsync::Io;

/// Tasks in the scenario.
const TASKS: u64 = 100;
/// Messages each task sends.
const ROUNDS: u64 = 10;

/// The 100-task scenario; `tick` scales the sleeps (zero on a real runtime).
fn scenario(io: &Io, tick: Duration) {
    let (tx, rx) = zsync::channel::bounded::<u64>(16);
    let counter = Arc::new(zsync::sync::Mutex::new(0u64));
    let senders: Vec<_> = (0..TASKS)
        .map(|i| {
            let tx = tx.clone();
            let counter = counter.clone();
            io.spawn(move |io| {
                for k in 0..ROUNDS {
                    io.sleep(tick * u32::try_from((i * 7 + k * 13) % 10).unwrap())
                        .unwrap();
                    tx.send(i * ROUNDS + k).unwrap();
                }
                *counter.lock().unwrap() += 1;
            })
        })
        .collect();
    drop(tx);
    let consumer = io.spawn(move |_| rx.iter().count() as u64);
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), TASKS * ROUNDS);
    assert_eq!(*counter.lock().unwrap(), TASKS);
}

/// The echo server of the networked scenario.
fn echo(io: &Io) -> std::io::Result<()> {
    let listener = TcpListener::bind(io, "0.0.0.0:7")?;
    loop {
        let (mut s, _) = listener.accept()?;
        io.spawn(move |_| std::io::copy(&mut s.try_clone()?, &mut s))
            .detach();
    }
}

/// The networked scenario's simulation: the echo host, latency and loss.
fn networked(seed: u64) -> Sim {
    let faults = NetFaults::default()
        .latency(Duration::from_millis(1), Duration::from_millis(5))
        .loss(0.01);
    Sim::new(seed).network(faults).host("echo", echo)
}

/// 100 clients, ten round trips each.
fn clients(io: &Io) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            io.spawn(move |io| {
                let mut c = TcpStream::connect(io, "echo:7").unwrap();
                let msg = [i as u8; 64];
                let mut back = [0; 64];
                for _ in 0..ROUNDS {
                    c.write_all(&msg).unwrap();
                    c.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg);
                }
            })
        })
        .collect();
    for t in tasks {
        t.join().unwrap();
    }
}

fn sim(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    let mut seed = 0u64;
    g.bench_function("seed_100_tasks", |b| {
        b.iter(|| {
            seed += 1;
            Sim::new(seed).run(|io| scenario(io, Duration::from_millis(1)))
        })
    });
    g.bench_function("seed_100_tcp_clients", |b| {
        b.iter(|| {
            seed += 1;
            networked(seed).run(clients)
        })
    });
    g.bench_function("green_1w_100_tasks", |b| {
        b.iter(|| {
            zsync::Builder::new(zsync::Model::Green)
                .worker_threads(1)
                .run(|io| scenario(io, Duration::ZERO))
        })
    });
    g.finish();

    let seeds = 1000;
    let started = Instant::now();
    let report = Sim::default()
        .run_seeds(0..seeds, |io| scenario(io, Duration::from_millis(1)))
        .unwrap_or_else(|failure| panic!("{failure}"));
    let wall = started.elapsed();
    println!(
        "sim/run_seeds: {seeds} seeds of the 100-task scenario in {:.2} s on {} threads: \
         {:.0} seeds/min ({} events, {:.1} s simulated in all)",
        wall.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        seeds as f64 / wall.as_secs_f64() * 60.0,
        report.events,
        report.simulated.as_secs_f64()
    );

    let started = Instant::now();
    let report = networked(0)
        .run_seeds(0..seeds, clients)
        .unwrap_or_else(|failure| panic!("{failure}"));
    let wall = started.elapsed();
    println!(
        "sim/run_seeds: {seeds} seeds of the 100-client TCP scenario in {:.2} s on {} threads: \
         {:.0} seeds/min ({} events, {:.1} s simulated in all)",
        wall.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        seeds as f64 / wall.as_secs_f64() * 60.0,
        report.events,
        report.simulated.as_secs_f64()
    );
}

criterion_group!(benches, sim);
criterion_main!(benches);

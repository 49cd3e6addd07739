//! The 4-producer / 4-consumer MPMC workload, one copy shared by `benches/channels.rs` (Criterion)
//! and `benches/green.rs` (the child-process comparison), through `#[path]` modules.
//!
//! Each function moves `n` messages (a multiple of [`SIDES`]) through one `bounded(CAP)` channel
//! from [`SIDES`] producers to [`SIDES`] consumers, checks that all arrived, and returns the time
//! from creating the channel to the last join.

#![allow(dead_code)] // each bench uses only the runtimes it compares

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Producers, and consumers.
pub const SIDES: usize = 4;
/// The channel's capacity.
pub const CAP: usize = 1024;

/// zsync, on the runtime `io` belongs to: the eight tasks start with `concurrent`.
pub fn zsync(io: &zsync::Io, n: usize) -> Duration {
    let per = n / SIDES;
    let t = Instant::now();
    let (tx, rx) = zsync::channel::bounded::<usize>(CAP);
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
            io.concurrent(move |_| rx.iter().count()).unwrap()
        })
        .collect();
    drop(rx);
    producers.into_iter().for_each(|p| p.join().unwrap());
    let got: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    let took = t.elapsed();
    assert_eq!(got, per * SIDES);
    took
}

/// Tokio, from inside a multi-thread runtime. Tokio has no MPMC channel: the consumers share the
/// `mpsc::Receiver` behind a `tokio::sync::Mutex` (the usual workaround).
pub async fn tokio(n: usize) -> Duration {
    let per = n / SIDES;
    let t = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel::<usize>(CAP);
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
                let mut got = 0usize;
                while rx.lock().await.recv().await.is_some() {
                    got += 1;
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let mut got = 0;
    for c in consumers {
        got += c.await.unwrap();
    }
    let took = t.elapsed();
    assert_eq!(got, per * SIDES);
    took
}

/// crossbeam-channel between eight OS threads.
pub fn crossbeam(n: usize) -> Duration {
    let per = n / SIDES;
    let t = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded::<usize>(CAP);
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
            std::thread::spawn(move || rx.iter().count())
        })
        .collect();
    drop(rx);
    producers.into_iter().for_each(|p| p.join().unwrap());
    let got: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    let took = t.elapsed();
    assert_eq!(got, per * SIDES);
    took
}

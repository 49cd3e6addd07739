//! Fibers and futures in one program, on one runtime: a pipeline whose stages are colorblind
//! closure tasks (fibers on Green) and future tasks, joined by one zsync channel, an
//! `async-channel` channel (a crate that knows nothing of zsync) and `Task`s awaited both ways.
//!
//! ```sh
//! cargo run --release --example mixed            # Green, then Threaded
//! cargo run --release --example mixed -- 100000  # messages per run
//! ```
//!
//! The stages:
//! 1. a closure task (`io.concurrent`) sends `0..n` into a bounded zsync channel, blocking when it is full;
//! 2. a future task receives them (`recv_event().await`: zsync events are futures) and sends
//!    each squared into a bounded `async-channel`;
//! 3. a second future task sums what arrives there, with `zsync::time::timeout` guarding
//!    every receive;
//! 4. the root, plain blocking-style code, waits for the future task's sum with `join` and
//!    for an async block with `io.block_on`.

use std::time::{Duration, Instant};

use zsync::{channel, Io, Model};

/// Runs the pipeline for `n` messages and returns the sum of their squares.
fn pipeline(io: &Io, n: u64) -> std::io::Result<u64> {
    let (tx, rx) = channel::bounded::<u64>(64);
    let (sq_tx, sq_rx) = async_channel::bounded::<u64>(64);

    // 1. Colorblind: a plain closure with blocking sends (a fiber on Green). `concurrent`, not
    //    `spawn`: a stage that blocks until another runs must not wait for a pool thread.
    let producer = io
        .concurrent(move |_| {
            for i in 0..n {
                tx.send(i).expect("the squarer is alive");
            }
        })
        .expect("Green and Threaded run tasks concurrently");
    // 2. Async: a future task awaiting the zsync channel, feeding the async-channel.
    let squarer = io.spawn_future(async move {
        while let Ok(v) = rx.recv_event().await {
            sq_tx.send(v * v).await.expect("the summer is alive");
        }
    });
    // 3. Async: a future task summing, each receive under a deadline.
    let summer = io.spawn_future(async move {
        let mut sum = 0u64;
        loop {
            match zsync::time::timeout(Duration::from_secs(10), sq_rx.recv()).await {
                Ok(Ok(v)) => sum += v,
                Ok(Err(_closed)) => return Ok(sum),
                Err(timed_out) => return Err(timed_out),
            }
        }
    });
    // 4. Colorblind again: join a closure task, then wait for futures with block_on (a `Task`
    //    is a future too).
    producer.join()?;
    let sum = io.block_on(async move {
        squarer.await?;
        summer.await?
    })??;
    Ok(sum)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("messages: a number"))
        .unwrap_or(10_000);
    let expected: u64 = (0..n).map(|i| i * i).sum();
    for (name, model) in [("Green", Model::Green), ("Threaded", Model::Threaded)] {
        let started = Instant::now();
        let sum = zsync::run(model, |io| pipeline(io, n)).expect("the pipeline ran");
        assert_eq!(sum, expected);
        println!(
            "{name}: {n} messages through a fiber, two future tasks and two kinds of channel \
             in {:.1} ms (sum of squares {sum})",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

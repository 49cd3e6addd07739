//! Hot paths for an instruction count (`valgrind --tool=callgrind target/release/examples/hot_paths <spawn|pingpong|yield|sleep0|sleepers|ayield|tokio_ayield|tokio_sleepers> <n>`,
//! two values of n, the difference divided): spawn+join, channel ping-pong (park/wake), yield,
//! a 1 ns sleep, on one Green epoll worker (valgrind does not run io_uring); `ayield` is four
//! future tasks each awaiting `yield_now` n times, and `tokio_ayield` the same on a one-worker
//! Tokio runtime; `sleepers` spawns n tasks that each sleep 1 ms, then joins them (the sleeps
//! benchmark's work per task: a fiber start, a timer, a wake, a finish and a join), and
//! `tokio_sleepers` the same with Tokio tasks. See docs/ARCHITECTURE.md, "Task dumps",
//! "Stackless" and "Green micro-benchmarks against Tokio", for the figures.
use zsync::{Backend, Builder, Model};

/// Future tasks in `ayield` / `tokio_ayield`: enough that a yield requeues behind others.
const YIELDERS: u64 = 4;

/// The sleep of each task in `sleepers` / `tokio_sleepers`.
const SLEEP: std::time::Duration = std::time::Duration::from_millis(1);

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap();
    let n: u64 = args.next().unwrap().parse().unwrap();
    if what == "tokio_ayield" || what == "tokio_sleepers" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            if what == "tokio_sleepers" {
                let tasks: Vec<_> = (0..n)
                    .map(|_| tokio::spawn(tokio::time::sleep(SLEEP)))
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                return;
            }
            let tasks: Vec<_> = (0..YIELDERS)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..n {
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        return;
    }
    Builder::new(Model::Green)
        .backend(Backend::Epoll)
        .worker_threads(1)
        .run(|io| match what.as_str() {
            "spawn" => {
                for i in 0..n {
                    assert_eq!(io.spawn(move |_| i).join().unwrap(), i);
                }
            }
            "pingpong" => {
                let (tx, rx) = zsync::channel::bounded::<u64>(0);
                let (tx2, rx2) = zsync::channel::bounded::<u64>(0);
                let t = io.spawn(move |_| {
                    for _ in 0..n {
                        let v = rx.recv().unwrap();
                        tx2.send(v).unwrap();
                    }
                });
                for i in 0..n {
                    tx.send(i).unwrap();
                    rx2.recv().unwrap();
                }
                t.join().unwrap();
            }
            "yield" => {
                let t = io.spawn(move |io| {
                    for _ in 0..n {
                        io.yield_now();
                    }
                });
                for _ in 0..n {
                    io.yield_now();
                }
                t.join().unwrap();
            }
            "ayield" => {
                let tasks: Vec<_> = (0..YIELDERS)
                    .map(|_| {
                        io.spawn_future(async move {
                            for _ in 0..n {
                                zsync::task::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.join().unwrap();
                }
            }
            "sleepers" => {
                let tasks: Vec<_> = (0..n)
                    .map(|_| io.spawn(|io| io.sleep(SLEEP).unwrap()))
                    .collect();
                for t in tasks {
                    t.join().unwrap();
                }
            }
            "sleep0" => {
                for _ in 0..n {
                    io.sleep(std::time::Duration::from_nanos(1)).unwrap();
                }
            }
            _ => panic!(),
        });
}

//! `zsync::sim`: deterministic simulation of unchanged colorblind code.
//!
//! What is checked: the same seed gives the same results and the same event log (a busy
//! scenario hashed over 100 runs), different seeds explore different interleavings; simulated
//! time jumps to the next timer (an hour of sleeps, timeouts, deadlines, intervals, channel
//! timeouts), future tasks take part; real I/O and `io.blocking` are refused with a clear
//! error; a deadlock and a panic come back as a `SimFailure` with the seed and the log;
//! `run_seeds` finds a planted lost-update race, whose seed reproduces it exactly; files live on
//! the simulated disk (positions, append, create_new), a power loss keeps what was synced and
//! tears the rest, a full disk, failing syncs, short writes and latency come from the seed; and
//! `run_seeds` finds a planted acknowledged-but-unsynced write that a power loss takes, while
//! the fixed store survives every seed, failing syncs included.
//!
//! Nothing here measures real time: the only real-time bound is a generous watchdog.

use crate::watchdog::watchdog;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::sim::{EventKind, Sim};
use zsync::{Io, ModelKind};

/// A scenario with many interleavings: workers that sleep random-looking amounts, pass
/// messages through a bounded channel, and record the order in which they got through.
fn busy(io: &Io) -> Vec<u32> {
    let (tx, rx) = zsync::channel::bounded::<u32>(4);
    let producers: Vec<_> = (0..8u32)
        .map(|i| {
            let tx = tx.clone();
            io.spawn(move |io| {
                for k in 0..5u32 {
                    io.sleep(Duration::from_millis(u64::from((i * 7 + k * 3) % 5)))
                        .unwrap();
                    tx.send(i * 100 + k).unwrap();
                    io.yield_now();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = io.spawn(move |_| {
        let mut seen = Vec::new();
        while let Ok(v) = rx.recv() {
            seen.push(v);
        }
        seen
    });
    for p in producers {
        p.join().unwrap();
    }
    consumer.join().unwrap()
}

#[test]
fn same_seed_same_results_and_log_across_100_runs() {
    watchdog(|| {
        let first = Sim::new(1234).run(busy);
        assert_eq!(first.value.len(), 40);
        assert!(first.log.len() > 40, "{} events", first.log.len());
        for _ in 0..100 {
            let again = Sim::new(1234).run(busy);
            assert_eq!(again.value, first.value);
            assert_eq!(again.log.fingerprint(), first.log.fingerprint());
            assert_eq!(again.elapsed, first.elapsed);
        }
    });
}

#[test]
fn different_seeds_explore_different_interleavings() {
    watchdog(|| {
        let orders: std::collections::HashSet<Vec<u32>> =
            (0..20).map(|seed| Sim::new(seed).run(busy).value).collect();
        assert!(orders.len() > 1, "20 seeds, one interleaving");
    });
}

#[test]
fn the_model_says_it_is_a_simulation() {
    let run = Sim::new(0).run(|io| (io.model(), io.model_name()));
    assert_eq!(run.value, (ModelKind::Simulation, "Simulation"));
}

#[test]
fn an_hour_of_sleeps_passes_in_simulated_time() {
    watchdog(|| {
        let run = Sim::new(9).run(|io| {
            let start = io.now();
            let sleepers: Vec<_> = (1..=60u64)
                .map(|m| io.spawn(move |io| io.sleep(Duration::from_secs(60 * m)).unwrap()))
                .collect();
            for s in sleepers {
                s.join().unwrap();
            }
            io.now() - start
        });
        assert_eq!(run.value, Duration::from_secs(3600));
        assert_eq!(run.elapsed, Duration::from_secs(3600));
        let advances = run
            .log
            .events()
            .iter()
            .filter(|e| e.kind == EventKind::Advance)
            .count();
        assert_eq!(advances, 60, "one jump of the clock per distinct deadline");
    });
}

#[test]
fn timeouts_and_deadlines_fire_in_simulated_time() {
    watchdog(|| {
        let run = Sim::new(5).run(|io| {
            let start = io.now();
            // A task's deadline cuts a long sleep short.
            let cut = io.timeout(Duration::from_secs(30), |io| {
                io.sleep(Duration::from_secs(3600))
            });
            assert_eq!(cut.unwrap_err().kind(), ErrorKind::TimedOut);
            assert_eq!(io.now() - start, Duration::from_secs(30));
            // A channel receive with a timeout.
            let (_tx, rx) = zsync::channel::bounded::<u8>(1);
            let err = rx.recv_timeout(Duration::from_secs(10)).unwrap_err();
            assert!(err.is_timed_out(), "{err:?}");
            assert_eq!(io.now() - start, Duration::from_secs(40));
            // An interval ticks on the simulated clock.
            let mut every_minute = io.interval(Duration::from_secs(60));
            for _ in 0..5 {
                every_minute.tick().unwrap();
            }
            io.now() - start
        });
        assert_eq!(run.value, Duration::from_secs(40 + 4 * 60));
    });
}

#[test]
fn the_wall_clock_is_simulated_too() {
    let run = Sim::new(2).run(|io| {
        let before = io.wall_clock();
        io.sleep(Duration::from_secs(86_400)).unwrap();
        io.wall_clock().duration_since(before).unwrap()
    });
    assert_eq!(run.value, Duration::from_secs(86_400));
}

#[test]
fn future_tasks_run_in_the_simulation() {
    watchdog(|| {
        let run = Sim::new(11).run(|io| {
            let futures: Vec<_> = (0..10u64)
                .map(|i| {
                    io.spawn_future(async move {
                        zsync::time::sleep(Duration::from_secs(i)).await;
                        i
                    })
                })
                .collect();
            let sum: u64 = futures
                .into_iter()
                .map(|f| io.block_on(f).unwrap().unwrap())
                .sum();
            (sum, io.now())
        });
        assert_eq!(run.value.0, 45);
        assert_eq!(run.elapsed, Duration::from_secs(9));
        assert!(run
            .log
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::Poll { .. })));
    });
}

#[test]
fn real_io_and_blocking_calls_are_refused_with_a_clear_error() {
    Sim::new(8).run(|io| {
        // TCP and UDP are simulated (see `net.rs`): nothing listens here.
        let err = zsync::net::TcpStream::connect(io, "127.0.0.1:9").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert!(err.to_string().contains("simulation"), "{err}");
        // Unix sockets are not simulated: refused.
        let err = zsync::net::UnixListener::bind(io, "/tmp/zsync-sim.sock").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("simulation"), "{err}");
        // The simulated disk starts empty: the real files are not there.
        let err = zsync::fs::read(io, "Cargo.toml").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let err = io.blocking(|| 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("io.blocking"), "{err}");
    });
}

#[test]
fn a_deadlock_is_a_failure_with_the_seed_and_the_log() {
    watchdog(|| {
        let out = Collect::default();
        let failure = Sim::new(21)
            .diagnostics(out.clone())
            .try_run(|io| {
                let (tx, rx) = zsync::channel::bounded::<u8>(1);
                let stuck = io.spawn(move |_| rx.recv());
                io.sleep(Duration::from_secs(1)).unwrap();
                let _ = stuck.join();
                drop(tx);
            })
            .unwrap_err();
        assert_eq!(failure.seed, 21);
        assert!(failure.error.contains("deadlock"), "{failure}");
        assert!(failure
            .log
            .events()
            .iter()
            .any(|e| e.kind == EventKind::Deadlock));
        assert!(failure.to_string().contains("Sim::new(21)"), "{failure}");
        let report = out.text();
        assert!(
            report.contains("deadlock") && report.contains("tests/sim/determinism.rs"),
            "{report}"
        );
    });
}

/// A planted bug: two tasks each add to a shared balance by reading it, yielding (an
/// `await` point in disguise: a log write, a lock released too early), and writing back the
/// sum. Only some interleavings lose an update.
fn lost_update(io: &Io) {
    let balance = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let balance = balance.clone();
            io.spawn(move |io| {
                let read = balance.load(Ordering::SeqCst);
                io.yield_now();
                balance.store(read + 10, Ordering::SeqCst);
            })
        })
        .collect();
    for t in tasks {
        t.join().unwrap();
    }
    assert_eq!(balance.load(Ordering::SeqCst), 20, "an update was lost");
}

#[test]
fn run_seeds_finds_a_planted_race_and_its_seed_reproduces_it() {
    watchdog(|| {
        let failure = Sim::default().run_seeds(0..1000, lost_update).unwrap_err();
        eprintln!("the lost update: found at seed {}", failure.seed);
        assert!(failure.error.contains("an update was lost"), "{failure}");
        // The reported seed is the lowest failing one, and fails again, the same way.
        for seed in 0..failure.seed {
            assert!(Sim::new(seed).try_run(lost_update).is_ok(), "seed {seed}");
        }
        let again = Sim::new(failure.seed).try_run(lost_update).unwrap_err();
        assert_eq!(again.error, failure.error);
        assert_eq!(again.log.fingerprint(), failure.log.fingerprint());
    });
}

#[test]
fn run_seeds_reports_every_seed_of_a_correct_scenario() {
    watchdog(|| {
        let report = Sim::default()
            .run_seeds(0..200, |io| {
                let v = busy(io);
                assert_eq!(v.len(), 40);
            })
            .unwrap();
        assert_eq!(report.seeds, 200);
        assert!(report.events > 200 * 40);
    });
}

#[test]
fn a_task_that_blocks_the_simulations_thread_is_named() {
    // Not a hang without a word: the monitor names the task holding the one thread in a call
    // that is not zsync's.
    watchdog(|| {
        let out = Collect::default();
        let run = Sim::new(4).diagnostics(out.clone()).run(|io| {
            io.spawn(|_| std::thread::sleep(Duration::from_millis(300)))
                .join()
                .unwrap()
        });
        assert_eq!(
            run.elapsed,
            Duration::ZERO,
            "real time is not simulated time"
        );
        let text = out.text();
        assert!(
            text.contains("the simulation has been held for")
                && text.contains("tests/sim/determinism.rs"),
            "{text}"
        );
    });
}

/// Collects what a run reports.
#[derive(Clone, Default)]
struct Collect(Arc<std::sync::Mutex<Vec<u8>>>);

impl Collect {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Collect {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---- the simulated disk ------------------------------------------------------------------------

use std::io::{Read, Seek, SeekFrom, Write};
use zsync::sim::{power_loss, DiskFaults};

#[test]
fn files_live_on_the_simulated_disk() {
    let run = Sim::new(31).run(|io| -> std::io::Result<Vec<u8>> {
        zsync::fs::write(io, "/data/log", b"hello ")?;
        let mut f = zsync::fs::OpenOptions::new()
            .append(true)
            .open(io, "/data/log")?;
        f.write_all(b"world")?;
        let mut r = zsync::fs::File::open(io, "/data/log")?;
        r.seek(SeekFrom::Start(6))?;
        let mut tail = String::new();
        r.read_to_string(&mut tail)?;
        assert_eq!(tail, "world");
        assert_eq!(r.metadata()?.len(), 11);
        // Two opens have positions of their own.
        let mut a = zsync::fs::File::open(io, "/data/log")?;
        let mut b = zsync::fs::File::open(io, "/data/log")?;
        let (mut x, mut y) = ([0u8; 5], [0u8; 3]);
        a.read_exact(&mut x)?;
        b.read_exact(&mut y)?;
        assert_eq!((&x, &y), (b"hello", b"hel"));
        let err = zsync::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(io, "/data/log")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        zsync::fs::read(io, "/data/log")
    });
    assert_eq!(run.value.unwrap(), b"hello world");
}

#[test]
fn a_power_loss_keeps_what_was_synced_and_tears_the_rest() {
    // Without torn writes: exactly the synced bytes survive.
    let run = Sim::new(32).run(|io| -> std::io::Result<Vec<u8>> {
        let mut f = zsync::fs::File::create(io, "/wal")?;
        f.write_all(b"committed;")?;
        f.sync_data()?;
        f.write_all(b"in flight;")?;
        power_loss(io)?;
        zsync::fs::read(io, "/wal")
    });
    assert_eq!(run.value.unwrap(), b"committed;");
    // With torn writes: the synced bytes and a prefix of the rest, varying with the seed.
    let kept: std::collections::HashSet<usize> = (0..40)
        .map(|seed| {
            Sim::new(seed)
                .disk(DiskFaults::default().torn_writes(true))
                .run(|io| -> std::io::Result<Vec<u8>> {
                    let mut f = zsync::fs::File::create(io, "/wal")?;
                    f.write_all(b"committed;")?;
                    f.sync_all()?;
                    f.write_all(b"in flight;")?;
                    power_loss(io)?;
                    zsync::fs::read(io, "/wal")
                })
                .value
                .unwrap()
        })
        .map(|bytes| {
            assert!(b"committed;in flight;".starts_with(&bytes), "{bytes:?}");
            assert!(bytes.len() >= 10);
            bytes.len()
        })
        .collect();
    assert!(kept.len() > 2, "torn lengths seen: {kept:?}");
}

#[test]
fn a_full_disk_fails_writes_with_storage_full() {
    let run = Sim::new(33)
        .disk(DiskFaults::default().capacity(100))
        .run(|io| {
            let mut f = zsync::fs::File::create(io, "/big").unwrap();
            let err = f.write_all(&[7u8; 200]).unwrap_err();
            (err.kind(), zsync::fs::read(io, "/big").unwrap().len())
        });
    assert_eq!(run.value, (ErrorKind::StorageFull, 100));
}

#[test]
fn failing_syncs_and_short_writes_come_from_the_seed() {
    let run = Sim::new(34)
        .disk(DiskFaults::default().failing_syncs(1.0))
        .run(|io| {
            let f = zsync::fs::File::create(io, "/x").unwrap();
            f.sync_all().unwrap_err().raw_os_error()
        });
    assert_eq!(run.value, Some(libc_eio()));
    // Short writes: `write` takes part of the buffer, `write_all` still writes it whole.
    let run = Sim::new(35)
        .disk(DiskFaults::default().short_writes(1.0))
        .run(|io| {
            let mut f = zsync::fs::File::create(io, "/y").unwrap();
            let first = f.write(&[1u8; 64]).unwrap();
            f.write_all(&[2u8; 64]).unwrap();
            (first, zsync::fs::read(io, "/y").unwrap().len())
        });
    let (first, len) = run.value;
    assert!((1..64).contains(&first), "{first}");
    assert_eq!(len, first + 64);
}

/// `EIO`, without a libc dependency in the tests.
fn libc_eio() -> i32 {
    5
}

#[test]
fn disk_latency_is_simulated_time_and_deterministic() {
    let scenario = |io: &Io| -> (Vec<u8>, Duration) {
        let start = io.now();
        let writers: Vec<_> = (0..4u8)
            .map(|i| {
                io.spawn(move |io| {
                    let mut f = zsync::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(io, "/shared")
                        .unwrap();
                    for _ in 0..5 {
                        f.write_all(&[i]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        (zsync::fs::read(io, "/shared").unwrap(), io.now() - start)
    };
    let faults = DiskFaults::default().latency(Duration::from_millis(1), Duration::from_millis(9));
    let a = Sim::new(36).disk(faults.clone()).run(scenario);
    let b = Sim::new(36).disk(faults.clone()).run(scenario);
    assert_eq!(a.value, b.value);
    assert_eq!(a.log.fingerprint(), b.log.fingerprint());
    assert_eq!(a.value.0.len(), 20);
    assert!(a.value.1 >= Duration::from_millis(5), "{:?}", a.value.1);
    let orders: std::collections::HashSet<Vec<u8>> = (0..20)
        .map(|seed| Sim::new(seed).disk(faults.clone()).run(scenario).value.0)
        .collect();
    assert!(
        orders.len() > 1,
        "the latency and the seed interleave the appends"
    );
}

/// A planted bug: a store that acknowledges a record before syncing it. Under power loss at a
/// seed-chosen moment, some seed finds an acknowledged record gone.
fn acknowledged_records_survive(io: &Io, sync_before_ack: bool) {
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let acked = acked.clone();
        io.spawn(move |io| {
            let mut f = zsync::fs::File::create(io, "/store").unwrap();
            for _ in 0..50 {
                if f.write_all(b"r").is_err() {
                    return;
                }
                if sync_before_ack && f.sync_data().is_err() {
                    return; // not acknowledged: the caller retries elsewhere
                }
                acked.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The power goes out after a while, taking the writer down with it; how far the writer
    // got depends on the seed (the disk's latency, the interleaving).
    io.sleep(Duration::from_millis(20)).unwrap();
    let _ = writer.cancel();
    power_loss(io).unwrap();
    let acknowledged = acked.load(Ordering::SeqCst);
    let on_disk = zsync::fs::read(io, "/store").unwrap().len() as u64;
    assert!(
        on_disk >= acknowledged,
        "acknowledged {acknowledged} records, {on_disk} survived the power loss"
    );
}

#[test]
fn run_seeds_finds_an_acknowledged_write_lost_without_a_sync() {
    watchdog(|| {
        let faults = DiskFaults::default()
            .latency(Duration::from_micros(100), Duration::from_millis(1))
            .torn_writes(true);
        let find = |sync: bool| {
            Sim::default()
                .disk(faults.clone())
                .run_seeds(0..300, move |io| acknowledged_records_survive(io, sync))
                .err()
        };
        let failure = find(false).expect("no seed lost an acknowledged record");
        eprintln!(
            "the lost acknowledged write: found at seed {}",
            failure.seed
        );
        assert!(
            failure.error.contains("survived the power loss"),
            "{failure}"
        );
        let again = Sim::new(failure.seed)
            .disk(faults.clone())
            .try_run(|io| acknowledged_records_survive(io, false))
            .unwrap_err();
        assert_eq!(again.log.fingerprint(), failure.log.fingerprint());
        // Syncing before acknowledging survives every seed, failing syncs included.
        assert!(find(true).is_none());
        let with_failing_syncs = faults.clone().failing_syncs(0.2);
        for seed in 0..300 {
            Sim::new(seed)
                .disk(with_failing_syncs.clone())
                .try_run(|io| acknowledged_records_survive(io, true))
                .unwrap_or_else(|f| panic!("{f}"));
        }
    });
}

#[test]
fn paths_on_the_simulated_disk_rename_remove_and_stat_and_a_rename_needs_synced_bytes() {
    use std::io::Write;
    use zsync::sim::power_loss;
    /// Replaces `/db/current` atomically: a temporary file, then a rename over it; with
    /// `sync`, the temporary's bytes are synced before the rename (the correct protocol).
    fn replace(io: &Io, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        zsync::fs::create_dir_all(io, "/db")?;
        let mut tmp = zsync::fs::File::create(io, "/db/current.tmp")?;
        tmp.write_all(bytes)?;
        if sync {
            tmp.sync_all()?;
        }
        zsync::fs::rename(io, "/db/current.tmp", "/db/current")
    }
    let run = Sim::new(31).run(|io| -> std::io::Result<_> {
        replace(io, b"v1", true)?;
        assert_eq!(zsync::fs::metadata(io, "/db/current")?.len(), 2);
        assert!(zsync::fs::metadata(io, "/db/current")?.is_file());
        assert!(!zsync::fs::exists(io, "/db/current.tmp")?);
        // The correct protocol survives a power loss.
        replace(io, b"v2", true)?;
        power_loss(io)?;
        let after_synced = zsync::fs::read(io, "/db/current")?;
        // Without the sync, the rename is durable but the bytes are not: the classic bug.
        replace(io, b"v3", false)?;
        power_loss(io)?;
        let after_unsynced = zsync::fs::read(io, "/db/current")?;
        // Removal, and a descriptor open on a removed file still works.
        let mut f = zsync::fs::File::create(io, "/db/scratch")?;
        zsync::fs::remove_file(io, "/db/scratch")?;
        f.write_all(b"still writable")?;
        let e = zsync::fs::remove_file(io, "/db/scratch").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = zsync::fs::rename(io, "/db/none", "/db/x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        Ok((after_synced, after_unsynced))
    });
    let (synced, unsynced) = run.value.unwrap();
    assert_eq!(synced, b"v2");
    assert_eq!(unsynced, b"");
}

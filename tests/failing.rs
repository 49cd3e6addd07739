//! Error paths under injected failures, after Zig's `Io.failing` and
//! `std.testing.checkAllAllocationFailures`: a custom model ([`Failing`]) whose `operate` fails
//! exactly the Nth I/O operation runs each scenario once per N, for every operation the scenario
//! performs. Every run must end cleanly — the scenario's own result (the injected error, or
//! whatever error it caused downstream, or success where the failure was survivable), no panic,
//! no hang, and no descriptor or thread left behind.
//!
//! This is also the proof that every operation goes through the model: a scenario whose
//! operations bypassed `CustomModel::operate` would never see its failure injected.
//!
//! One test, run serially, so the descriptor counts are this test's alone.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zsync::fs::File;

use zsync::net::{TcpListener, TcpStream, UdpSocket};
use zsync::{Completion, ConcurrencyUnavailable, CustomModel, Io, Model, Operation, Runnable};

/// Fails the `fail_at`th I/O operation (1-based; 0: none) with an error saying so. Clock reads
/// pass through uncounted: they cannot fail (see `Io::now`). One OS thread per task.
struct Failing {
    fail_at: usize,
    seen: AtomicUsize,
    injected: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Failing {
    fn new(fail_at: usize) -> Failing {
        Failing {
            fail_at,
            seen: AtomicUsize::new(0),
            injected: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        }
    }
}

impl CustomModel for Failing {
    fn name(&self) -> &'static str {
        "Failing"
    }
    fn spawn(&self, task: Runnable) {
        let handle = std::thread::spawn(move || task.run());
        self.threads.lock().unwrap().push(handle);
    }
    fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
        self.spawn(task);
        Ok(())
    }
    fn shutdown(&self) {
        for t in std::mem::take(&mut *self.threads.lock().unwrap()) {
            t.join().unwrap();
        }
    }
    fn operate(&self, op: Operation<'_, '_>) -> io::Result<Completion> {
        if matches!(op, Operation::Now | Operation::WallClock) {
            return op.perform();
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.fail_at {
            self.injected.store(true, Ordering::Relaxed);
            return Err(io::Error::other(format!(
                "injected failure of `{}` (operation #{n})",
                op.name()
            )));
        }
        op.perform()
    }
}

#[path = "conformance/support/mod.rs"]
#[allow(unused_macros)]
mod support;

use support::open_fds;

type Scenario = fn(&Io, &std::path::Path) -> io::Result<()>;

/// A TCP echo: listen, connect, accept in a task, a round trip, both ends closed.
fn tcp_echo(io: &Io, _: &std::path::Path) -> io::Result<()> {
    let listener = TcpListener::bind(io, "127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = io.spawn(move |_| -> io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = [0; 5];
        conn.read_exact(&mut buf)?;
        conn.write_all(&buf)
    });
    let mut client = TcpStream::connect(io, addr)?;
    client.write_all(b"hello")?;
    let mut reply = [0; 5];
    client.read_exact(&mut reply)?;
    server.join().unwrap()?;
    assert_eq!(&reply, b"hello");
    Ok(())
}

/// A file written, synced, read back, renamed, inspected and removed.
fn file_round_trip(io: &Io, dir: &std::path::Path) -> io::Result<()> {
    let path = dir.join("a");
    let mut f = File::create(io, &path)?;
    f.write_all(b"payload")?;
    f.sync_all()?;
    drop(f);
    let back = zsync::fs::read(io, &path)?;
    assert_eq!(back, b"payload");
    let moved = dir.join("b");
    zsync::fs::rename(io, &path, &moved)?;
    assert_eq!(zsync::fs::metadata(io, &moved)?.len(), 7);
    zsync::fs::remove_file(io, &moved)
}

/// A datagram each way between two UDP sockets.
fn udp_exchange(io: &Io, _: &std::path::Path) -> io::Result<()> {
    let a = UdpSocket::bind(io, "127.0.0.1:0")?;
    let b = UdpSocket::bind(io, "127.0.0.1:0")?;
    a.send_to(b"ping", b.local_addr()?)?;
    let mut buf = [0; 8];
    let (n, from) = b.recv_from(&mut buf)?;
    assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
    b.send_to(b"pong", from)?;
    let (n, _) = a.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"pong");
    Ok(())
}

/// Bytes through a pipe, and a file copied into another with `zsync::copy`.
fn pipe_and_copy(io: &Io, dir: &std::path::Path) -> io::Result<()> {
    let (mut r, mut w) = zsync::pipe(io)?;
    w.write_all(b"through")?;
    drop(w);
    let mut got = Vec::new();
    r.read_to_end(&mut got)?;
    assert_eq!(got, b"through");
    let src_path = dir.join("src");
    zsync::fs::write(io, &src_path, vec![7u8; 100_000])?;
    let src = File::open(io, &src_path)?;
    let dst = File::create(io, dir.join("dst"))?;
    assert_eq!(zsync::copy(&src, &dst)?, 100_000);
    Ok(())
}

/// Sleeps, and a deadline that expires.
fn sleeps(io: &Io, _: &std::path::Path) -> io::Result<()> {
    io.sleep(Duration::from_millis(1))?;
    match io.timeout(Duration::from_millis(1), |io| {
        io.sleep(Duration::from_secs(60))
    }) {
        Err(e) if zsync::is_timed_out(&e) => Ok(()),
        Err(e) => Err(e),
        Ok(()) => panic!("slept through its deadline"),
    }
}

/// Runs `scenario` on `model` from a thread of its own, as libtest would: thread-local state
/// (a thread's wake-up eventfd) goes with the thread, as it does in real programs.
fn on_fresh_thread(
    model: &Arc<Failing>,
    scenario: Scenario,
    dir: &std::path::Path,
) -> io::Result<()> {
    let model = model.clone();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || zsync::run(Model::Custom(model), |io| scenario(io, &dir)))
        .join()
        .unwrap()
}

/// Runs `scenario` on a fresh `Failing(fail_at)`; returns its result and whether the failure
/// was injected.
fn run_failing(
    scenario: Scenario,
    fail_at: usize,
    dir: &std::path::Path,
) -> (io::Result<()>, bool) {
    let model = Arc::new(Failing::new(fail_at));
    let result = on_fresh_thread(&model, scenario, dir);
    (result, model.injected.load(Ordering::Relaxed))
}

/// How many operations `scenario` performs when none fails (it must succeed then).
fn count_operations(scenario: Scenario, dir: &std::path::Path) -> usize {
    let model = Arc::new(Failing::new(0));
    on_fresh_thread(&model, scenario, dir)
        .unwrap_or_else(|e| panic!("the scenario fails without injected failures: {e}"));
    model.seen.load(Ordering::Relaxed)
}

#[test]
fn every_operation_failing_in_turn_ends_cleanly() {
    let watchdog_done = Arc::new(AtomicBool::new(false));
    let flag = watchdog_done.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(300) {
            std::thread::sleep(Duration::from_millis(100));
            if flag.load(Ordering::Acquire) {
                return;
            }
        }
        eprintln!("every_operation_failing_in_turn_ends_cleanly hung for 300 s: aborting");
        std::process::abort();
    });
    let scenarios: &[(&str, Scenario)] = &[
        ("tcp_echo", tcp_echo),
        ("file_round_trip", file_round_trip),
        ("udp_exchange", udp_exchange),
        ("pipe_and_copy", pipe_and_copy),
        ("sleeps", sleeps),
    ];
    let base = std::env::temp_dir().join(format!("zsync-failing-{}", std::process::id()));
    for (name, scenario) in scenarios {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let fds = open_fds();
        let total = count_operations(*scenario, &dir);
        assert!(total > 0, "{name}: no operation reached the model");
        let mut injected_errors = 0;
        for fail_at in 1..=total {
            let (result, injected) = run_failing(*scenario, fail_at, &dir);
            assert!(
                injected,
                "{name}: operation #{fail_at} of {total} never happened"
            );
            if let Err(e) = &result {
                if e.to_string().contains("injected failure") {
                    injected_errors += 1;
                }
            }
            assert_eq!(
                open_fds(),
                fds,
                "{name}: a descriptor outlived the run that failed operation #{fail_at} ({result:?})"
            );
            // Leave the directory as a fresh run expects it.
            std::fs::remove_dir_all(&dir).unwrap();
            std::fs::create_dir_all(&dir).unwrap();
        }
        eprintln!(
            "{name}: {total} operations, each failed in turn; {injected_errors} runs returned the \
             injected error itself"
        );
        assert!(
            injected_errors > 0,
            "{name}: no run reported the injected failure"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    watchdog_done.store(true, Ordering::Release);
}

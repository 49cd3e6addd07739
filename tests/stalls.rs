//! Stall and deadlock detection (issue 14, item 2): the deadlock report and error, the
//! blocked-worker warning, the starved-queue warnings, and their absence where nothing is wrong.
//!
//! `harness = false`: a deadlock is reported only when the process has no thread besides the
//! runtime's (see `Builder::deadlock_detection`), and libtest runs every test on a thread of
//! its own while its main thread waits. So each deadlock scenario runs in a child process (this
//! binary again, with `ZSYNC_STALLS_CHILD=<scenario>@<model>`: a Green backend, `blocking` or
//! `threaded`) whose main thread is the run's root; `ZSYNC_STALLS_HOG=1` makes a child that
//! only burns a CPU, for the scenarios run on a loaded machine. The
//! warnings need no such care: they are captured with `Builder::diagnostics` in this process.
//!
//! Assertions are about what is printed and returned, never about timing: the sleeps that make
//! a worker stuck (300 ms and more) are far above the 100 ms threshold so that a loaded machine
//! only delays a warning, and watchdogs are generous.

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zsync::{Backend, Builder, Io, Model};

const CHILD_ENV: &str = "ZSYNC_STALLS_CHILD";

/// A writer whose bytes the test reads back.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The Green backends to test on: epoll always, io_uring where the kernel allows it (else a
/// visible note).
fn green_backends() -> Vec<(&'static str, Backend)> {
    let mut v = vec![("epoll", Backend::Epoll)];
    match Backend::IoUring.resolve() {
        Ok(_) => v.push(("io_uring", Backend::IoUring)),
        Err(e) => println!("note: io_uring cases skipped: {e}"),
    }
    v
}

fn backend_named(name: &str) -> Backend {
    match name {
        "io_uring" => Backend::IoUring,
        _ => Backend::Epoll,
    }
}

// ---------------------------------------------------------------------------------------------
// Child scenarios: each is the root of a run on this process's main thread (the model after
// `@` in the scenario's name), which prints its outcome as `child: outcome <...>` on stdout.

/// A child scenario: a run's root, returning what the child prints as its outcome.
type Scenario = fn(&Io) -> String;

/// Two tasks, each waiting for the other's message; the root joins them.
fn two_tasks_wait_on_each_other(io: &Io) -> String {
    let (tx_a, rx_a) = zsync::channel::bounded::<u8>(1);
    let (tx_b, rx_b) = zsync::channel::bounded::<u8>(1);
    let a = io.task().name("waits-for-b").spawn(move |_| {
        let got = rx_b.recv();
        let _ = tx_a.send(1);
        got.is_ok()
    });
    let b = io.task().name("waits-for-a").spawn(move |_| {
        let got = rx_a.recv();
        let _ = tx_b.send(2);
        got.is_ok()
    });
    let _ = a.join();
    let _ = b.join();
    "ok".into()
}

/// The root holds a mutex and joins a task that waits for that mutex.
fn join_a_task_waiting_for_my_mutex(io: &Io) -> String {
    let m = Arc::new(zsync::sync::Mutex::new(0u32));
    let guard = m.lock().unwrap();
    let m2 = m.clone();
    let t = io.task().name("wants-the-lock").spawn(move |_| {
        let g = m2.lock();
        g.is_ok()
    });
    let _ = t.join();
    drop(guard);
    "ok".into()
}

/// A task waits, shielded from cancellation, for a message nobody sends: canceling every task
/// cannot end this deadlock.
fn shielded_wait_nobody_can_end(io: &Io) -> String {
    let (tx, rx) = zsync::channel::bounded::<u8>(1);
    let t = io.spawn(move |io| io.shielded(|| rx.recv().is_ok()));
    let _ = t.join();
    drop(tx);
    "ok".into()
}

/// Sends `v` on `tx` after a while (from the calling thread).
fn send_later(tx: zsync::channel::Sender<u32>, v: u32) {
    std::thread::sleep(Duration::from_millis(300));
    tx.send(v).unwrap();
}

/// A task waits for the message `send` delivers, after a while: not a deadlock.
fn task_receives(io: &Io, send: impl FnOnce(&Io, zsync::channel::Sender<u32>)) -> String {
    let (tx, rx) = zsync::channel::bounded::<u32>(1);
    let t = io.spawn(move |_| rx.recv().unwrap());
    send(io, tx);
    format!("ok {}", t.join().unwrap())
}

/// The message comes from a plain `std::thread` started after the task.
fn sender_on_a_std_thread(io: &Io) -> String {
    task_receives(io, |_, tx| {
        drop(std::thread::spawn(move || send_later(tx, 7)))
    })
}

/// The root waits for a message a plain `std::thread`, started first, sends after a while: not
/// a deadlock (on every model, Blocking included).
fn sender_thread_started_first(_io: &Io) -> String {
    let (tx, rx) = zsync::channel::bounded::<u32>(1);
    drop(std::thread::spawn(move || send_later(tx, 8)));
    format!("ok {}", rx.recv().unwrap())
}

/// The root sleeps (a timer) before it sends.
fn pending_sleep(io: &Io) -> String {
    task_receives(io, |io, tx| {
        io.sleep(Duration::from_millis(300)).unwrap();
        tx.send(9).unwrap();
    })
}

/// The message comes from an `io.blocking` call.
fn sender_in_a_blocking_call(io: &Io) -> String {
    task_receives(io, |io, tx| {
        io.spawn(move |io| io.blocking(move || send_later(tx, 5)).unwrap())
            .join()
            .unwrap()
    })
}

/// Many parks and wake-ups, and moments where every thread waits: tasks pass a token around
/// a ring of channels while others contend for a mutex; the root joins them. Never a deadlock.
fn ping_pong(io: &Io) -> String {
    const ROUNDS: u32 = 3_000;
    const RING: usize = 2;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..RING).map(|_| zsync::channel::bounded::<u32>(1)).unzip();
    let mut rxs: Vec<_> = rxs.into_iter().map(Some).collect();
    let lock = Arc::new(zsync::sync::Mutex::new(0u64));
    let mut tasks = Vec::new();
    for i in 0..RING {
        let rx = rxs[i].take().unwrap();
        let tx = txs[(i + 1) % RING].clone();
        let lock = lock.clone();
        tasks.push(io.spawn(move |_| {
            while let Ok(n) = rx.recv() {
                // Long enough that the peer stops spinning and parks for good meanwhile.
                std::thread::sleep(Duration::from_micros(200));
                *lock.lock().unwrap() += 1;
                if n >= ROUNDS || tx.send(n + 1).is_err() {
                    break;
                }
            }
        }));
    }
    txs[0].send(0).unwrap();
    drop(txs);
    for t in tasks {
        t.join().unwrap();
    }
    let passes = *lock.lock().unwrap();
    format!("ok {}", passes <= u64::from(ROUNDS) + 1)
}

/// The scenarios by name. `<name>_off@<model>` runs `<name>` with deadlock detection off.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("mutual", two_tasks_wait_on_each_other),
    ("mutex", join_a_task_waiting_for_my_mutex),
    ("shielded", shielded_wait_nobody_can_end),
    ("std_sender", sender_on_a_std_thread),
    ("std_sender_first", sender_thread_started_first),
    ("sleep", pending_sleep),
    ("blocking_sender", sender_in_a_blocking_call),
    ("ping_pong", ping_pong),
];

fn child(scenario: &str) -> ! {
    let (name, model) = scenario.split_once('@').unwrap_or((scenario, "epoll"));
    let (name, detect) = match name.strip_suffix("_off") {
        Some(name) => (name, false), // the run hangs: the parent kills it
        None => (name, true),
    };
    let builder = match model {
        "blocking" => Builder::new(Model::Blocking),
        "threaded" => Builder::new(Model::Threaded).worker_threads(2),
        _ => Builder::new(Model::Green)
            .worker_threads(2)
            .backend(backend_named(model)),
    };
    let (_, root) = SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("unknown scenario {name}"));
    match builder.deadlock_detection(detect).try_run(root) {
        Ok(v) => println!("child: outcome {v}"),
        Err(e) if zsync::is_deadlock(&e) => println!("child: outcome deadlock ({e})"),
        Err(e) => println!("child: outcome error {e}"),
    }
    std::process::exit(0);
}

/// This test binary again, as a child process with `key=value` in its environment.
fn this_binary(key: &str, value: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(key, value);
    cmd
}

/// Starts `scenario` in a child process, its output piped.
fn spawn_child(scenario: &str) -> std::process::Child {
    this_binary(CHILD_ENV, scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A child's output as text.
fn texts(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `scenario` in a child process for at most `wait`: its exit status if it ended by
/// itself (else it is killed), its stdout and its stderr.
fn run_for(scenario: &str, wait: Duration) -> (Option<ExitStatus>, String, String) {
    let mut child = spawn_child(scenario);
    let until = Instant::now() + wait;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > until {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = texts(&child.wait_with_output().unwrap());
    (status, stdout, stderr)
}

/// Runs `scenario` in a child process that must succeed (a watchdog kills it after a minute);
/// returns its stdout and stderr.
fn run_child(scenario: &str) -> (String, String) {
    let (status, stdout, stderr) = run_for(scenario, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "scenario {scenario}: {status:?} (None: hung)\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// Runs `scenario` in a child process that must still be running after `wait`; kills it and
/// returns its stderr.
fn run_child_expecting_a_hang(scenario: &str, wait: Duration) -> String {
    let (status, stdout, stderr) = run_for(scenario, wait);
    assert!(
        status.is_none(),
        "scenario {scenario} ended ({status:?}); stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stderr
}

const HOG_ENV: &str = "ZSYNC_STALLS_HOG";

/// Processes that keep a CPU busy each until dropped: a loaded machine.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn start(n: usize) -> Hogs {
        Hogs(
            (0..n)
                .map(|_| this_binary(HOG_ENV, "1").spawn().unwrap())
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

fn outcome(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("child: outcome "))
        .unwrap_or_else(|| panic!("no outcome in:\n{stdout}"))
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// The models (Green by backend) a child scenario can name after `@`: the Green backends to
/// test, then `also`.
fn models(also: &[&'static str]) -> Vec<&'static str> {
    let mut v: Vec<&str> = green_backends().into_iter().map(|(n, _)| n).collect();
    v.extend_from_slice(also);
    v
}

fn deadlocks_are_reported_and_fail_the_run() {
    for backend in models(&["blocking", "threaded"]) {
        for scenario in ["mutual", "mutex"] {
            let (stdout, stderr) = run_child(&format!("{scenario}@{backend}"));
            assert!(
                outcome(&stdout).starts_with("deadlock (all tasks are asleep: deadlock)"),
                "{scenario}@{backend}: {stdout}\n{stderr}"
            );
            assert!(
                stderr.contains("zsync: all tasks are asleep: deadlock"),
                "{scenario}@{backend}: {stderr}"
            );
            assert_eq!(
                stderr.matches("all tasks are asleep").count(),
                1,
                "one report: {stderr}"
            );
            // The report carries the task dump: who waits, on what, where.
            let (task, wait) = match scenario {
                "mutual" => ("'waits-for-b'", "waiting in channel recv"),
                _ => ("'wants-the-lock'", "waiting in mutex lock"),
            };
            assert!(
                stderr.contains(task) && stderr.contains(wait),
                "{scenario}@{backend}: {stderr}"
            );
            assert!(
                !stderr.contains("has been held for"),
                "the report's own work is no blocked worker: {stderr}"
            );
        }
    }
}

fn a_deadlock_that_cancellation_cannot_end_aborts_the_process() {
    for backend in models(&["blocking", "threaded"]) {
        let out = this_binary(CHILD_ENV, &format!("shielded@{backend}"))
            .output()
            .unwrap();
        let (_, stderr) = texts(&out);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{backend}: {:?}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains("all tasks are asleep: deadlock")
                && stderr.contains("after every task was canceled")
                && stderr.contains("aborting"),
            "{backend}: {stderr}"
        );
    }
}

fn no_deadlock_is_reported_while_something_can_still_wake_a_task() {
    let mut cases: Vec<(&str, &str, &str)> = Vec::new();
    for backend in models(&["threaded"]) {
        for (scenario, expected) in [
            ("std_sender", "ok 7"),
            ("std_sender_first", "ok 8"),
            ("sleep", "ok 9"),
            ("blocking_sender", "ok 5"),
        ] {
            cases.push((backend, scenario, expected));
        }
    }
    // On Blocking a spawned task runs inline, so only a thread started before the wait can
    // wake it (a task that waits for a thread started after it is a true deadlock there).
    cases.push(("blocking", "std_sender_first", "ok 8"));
    // Many parks and wake-ups while two other processes keep both CPUs busy: a thread woken
    // but not yet scheduled must never be taken for asleep.
    cases.push(("threaded", "ping_pong", "ok true"));
    let _hogs = Hogs::start(2);
    for (backend, scenario, expected) in cases {
        let (stdout, stderr) = run_child(&format!("{scenario}@{backend}"));
        assert_eq!(outcome(&stdout), expected, "{scenario}@{backend}: {stderr}");
        assert!(!stderr.contains("asleep"), "{scenario}@{backend}: {stderr}");
    }
}

fn detection_can_be_turned_off() {
    // The same scenario is reported within milliseconds with the check on (above); off, the
    // run is still hung, silently, a second and a half later.
    for backend in ["epoll", "blocking", "threaded"] {
        let stderr = run_child_expecting_a_hang(
            &format!("mutual_off@{backend}"),
            Duration::from_millis(1500),
        );
        assert!(!stderr.contains("asleep"), "{backend}: {stderr}");
    }
}

fn a_deadlock_with_another_thread_alive_is_not_reported() {
    // This process has the harness's own threads (this one included): a deadlocked run here
    // must not be reported, since another thread could wake it. A thread of ours ends it.
    let (tx, rx) = zsync::channel::bounded::<u8>(1);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        tx.send(1).unwrap();
    });
    let log = Capture::default();
    let got = green(Backend::Auto, &log)
        .try_run(move |io| io.spawn(move |_| rx.recv().unwrap()).join().unwrap())
        .unwrap();
    release.join().unwrap();
    assert_eq!(got, 1);
    assert!(!log.text().contains("asleep"), "{}", log.text());
}

/// The line of `text` that contains `needle`; it must name the spawn site at `line` of this
/// file.
fn line_naming(text: &str, needle: &str, line: u32, case: &str) -> String {
    let found = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{case}: no {needle} in:\n{text}"));
    let site = format!("tests/stalls.rs:{line}");
    assert!(found.contains(&site), "{case}: {site} not in {found}");
    found.to_string()
}

/// A Green builder with two workers on `backend`, reporting to `log`.
fn green(backend: Backend, log: &Capture) -> Builder {
    Builder::new(Model::Green)
        .worker_threads(2)
        .backend(backend)
        .diagnostics(log.clone())
}

/// The line of the `spawn` call that the caller makes next.
macro_rules! next_line {
    () => {
        line!() + 1
    };
}

/// A user function that blocks its worker's thread in a call that is not zsync's.
#[inline(never)]
fn user_code_that_sleeps_in_std() {
    // Used after the call: the call is no tail call, so this frame stays on the stack.
    let d = std::hint::black_box(Duration::from_millis(300));
    std::thread::sleep(d);
    std::hint::black_box(d);
}

fn a_fiber_in_std_sleep_is_reported_with_its_spawn_site() {
    for (backend, b) in green_backends() {
        let log = Capture::default();
        let line = green(b, &log).run(|io| {
            let task = io.task().name("sleepy");
            let line = next_line!();
            let t = task.spawn(|_| user_code_that_sleeps_in_std());
            t.join().unwrap();
            line
        });
        let text = log.text();
        let warning = line_naming(&text, "has been held for", line, backend);
        assert!(warning.contains("'sleepy'"), "{backend}: {warning}");
        assert!(
            text.contains("user_code_that_sleeps_in_std"),
            "{backend}: the stack names the user's function:\n{text}"
        );
        assert!(
            warning.contains("blocked in the kernel"),
            "{backend}: {warning}"
        );
        assert!(text.contains("io.blocking"), "{backend}: {text}");
        assert_eq!(
            text.matches("has been held for").count(),
            1,
            "{backend}: one warning per incident:\n{text}"
        );
    }
}

fn zsync_waits_produce_no_warning() {
    for (backend, b) in green_backends() {
        let log = Capture::default();
        green(b, &log).run(|io| {
            let (tx, rx) = zsync::channel::bounded::<u8>(1);
            let sleeper = io.spawn(|io| io.sleep(Duration::from_millis(300)).unwrap());
            let waiter = io.spawn(move |_| rx.recv().unwrap());
            let m = Arc::new(zsync::sync::Mutex::new(()));
            let g = m.lock().unwrap();
            let m2 = m.clone();
            let locker = io.spawn(move |_| drop(m2.lock().unwrap()));
            io.sleep(Duration::from_millis(300)).unwrap();
            drop(g);
            tx.send(1).unwrap();
            sleeper.join().unwrap();
            waiter.join().unwrap();
            locker.join().unwrap();
        });
        assert_eq!(log.text(), "", "{backend}");
    }
}

fn the_threshold_can_be_turned_off() {
    let log = Capture::default();
    green(Backend::Auto, &log).stall_threshold(None).run(|io| {
        io.spawn(|_| std::thread::sleep(Duration::from_millis(300)))
            .join()
            .unwrap()
    });
    assert_eq!(log.text(), "");
}

fn green_starved_queue_names_the_waiting_task() {
    for (backend, b) in green_backends() {
        let log = Capture::default();
        let line = green(b, &log).run(|io| {
            // Both workers held: the root on worker 0, a task on the other.
            let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
            let holder = io.concurrent(move |_| {
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(600));
            });
            let holder = holder.unwrap_or_else(|e| panic!("{e}"));
            started_rx.recv().unwrap();
            let line = next_line!();
            let waiting = io.task().name("starved").spawn(|_| 1);
            // Hold worker 0 too, without giving it back to its loop.
            std::thread::sleep(Duration::from_millis(600));
            holder.join().unwrap();
            assert_eq!(waiting.join().unwrap(), 1);
            line
        });
        let text = log.text();
        assert!(
            text.contains("waited to start"),
            "{backend}: no starved-queue warning in:\n{text}"
        );
        line_naming(&text, "'starved'", line, backend);
    }
}

fn threaded_starved_queue_names_the_queued_task() {
    let log = Capture::default();
    let line = Builder::new(Model::Threaded)
        .worker_threads(2)
        .diagnostics(log.clone())
        .run(|io| {
            // Each worker runs a "connection" that waits for a handler spawned behind it: the
            // spawn-per-connection hang, rescued by the monitor.
            let (tx, rx) = zsync::channel::bounded::<()>(0);
            let rx = Arc::new(rx);
            let conns: Vec<_> = (0..2)
                .map(|_| {
                    let rx = rx.clone();
                    io.spawn(move |_| rx.recv().unwrap())
                })
                .collect();
            // Let both workers take a connection first.
            std::thread::sleep(Duration::from_millis(100));
            let line = next_line!();
            let handler = io.task().name("handler").spawn(move |_| {
                tx.send(()).unwrap();
                tx.send(()).unwrap();
            });
            for c in conns {
                c.join().unwrap();
            }
            handler.join().unwrap();
            line
        });
    line_naming(&log.text(), "'handler'", line, "threaded");
}

/// `[(name, test)]` for each test function named.
macro_rules! tests {
    ($($test:ident),* $(,)?) => {
        &[$((stringify!($test), $test as fn())),*]
    };
}

fn main() {
    if std::env::var_os(HOG_ENV).is_some() {
        // Spin until killed (a watchdog ends an orphan).
        let until = Instant::now() + Duration::from_secs(300);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        return;
    }
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        child(&scenario);
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: &[(&str, fn())] = tests![
        deadlocks_are_reported_and_fail_the_run,
        a_deadlock_that_cancellation_cannot_end_aborts_the_process,
        no_deadlock_is_reported_while_something_can_still_wake_a_task,
        detection_can_be_turned_off,
        a_deadlock_with_another_thread_alive_is_not_reported,
        a_fiber_in_std_sleep_is_reported_with_its_spawn_site,
        zsync_waits_produce_no_warning,
        the_threshold_can_be_turned_off,
        green_starved_queue_names_the_waiting_task,
        threaded_starved_queue_names_the_queued_task,
    ];
    let mut ran = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        test();
        println!("ok");
        ran += 1;
    }
    println!("test result: ok. {ran} passed");
}

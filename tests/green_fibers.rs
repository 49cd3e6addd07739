//! Green-model fiber tests: what only a stackful M:N model has to get right (stack memory at
//! scale, overflow reports, `!Send` state across blocking calls, stealing, cross-worker wakes,
//! mass cancellation). Not part of the conformance macro: they hold on Green only.
//!
//! Every test holds [`SERIAL`] (they measure process-wide RSS and memory maps) and a
//! [`Watchdog`] that aborts the process if the test hangs. Run them in release too:
//! `cargo test --release --test green_fibers -- --nocapture` prints the figures.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::panic::Location;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use zsync::channel::{self, Receiver, Sender};
use zsync::net::{TcpListener, TcpStream};
use zsync::sync::ResetEvent;
use zsync::{Builder, Io, Model, Task};

// ---- support ---------------------------------------------------------------------------------

/// Serialises the tests of this file: they read process-wide RSS and map counts.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`], ignoring poisoning by a failed test.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long one test may take before the watchdog aborts the process.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Aborts the process if not dropped within [`WATCHDOG`]: a hang fails instead of stalling CI.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(name: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < WATCHDOG {
                thread::sleep(Duration::from_millis(100));
                if flag.load(Ordering::Acquire) {
                    return;
                }
            }
            eprintln!("green_fibers test {name} hung for {WATCHDOG:?}: aborting");
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A Green runtime with 2 workers (the calling thread is worker 0).
fn green() -> Builder {
    Builder::new(Model::Green).worker_threads(2)
}

/// The page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096)
}

/// Resident set size in bytes, from `/proc/self/statm`.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * page_size()
}

/// Page-table memory of this process (`VmPTE` in `/proc/self/status`), in bytes: not part of
/// RSS, but it grows with the address range the fiber stacks span.
fn page_table_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPTE:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib * 1024
}

/// Memory areas of this process (lines of `/proc/self/maps`).
fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// An address on the caller's stack (a local of this non-inlined frame): which fiber stack the
/// caller runs on.
#[inline(never)]
fn stack_marker() -> usize {
    let local = 0u8;
    black_box(&local) as *const u8 as usize
}

// ---- 100k parked fibers ----------------------------------------------------------------------

/// 100,000 tasks parked at once on 2 workers: within the default `vm.max_map_count` (guards do
/// not cost memory areas), a few KiB of RSS each, all released and joined.
#[test]
fn hundred_thousand_parked_fibers() {
    const N: usize = 100_000;
    let _serial = serial();
    let _watchdog = Watchdog::new("hundred_thousand_parked_fibers");
    /// What every task shares (one `Arc` per task, as a typical task captures little).
    #[derive(Default)]
    struct Shared {
        parked: AtomicUsize,
        all_parked: ResetEvent,
        gate: ResetEvent,
        finished: AtomicUsize,
    }
    let shared = Arc::new(Shared::default());
    let sh = shared.clone();
    green().run(move |io| {
        let Shared {
            parked,
            all_parked,
            gate,
            ..
        } = &*sh;
        let mut tasks: Vec<Task<()>> = Vec::with_capacity(N);
        let (maps_before, rss_before) = (map_count(), rss_bytes());
        let pte_before = page_table_bytes();
        let start = Instant::now();
        for _ in 0..N {
            let sh = sh.clone();
            tasks.push(io.spawn(move |_| {
                if sh.parked.fetch_add(1, Ordering::AcqRel) + 1 == N {
                    sh.all_parked.set();
                }
                sh.gate.wait().unwrap();
                sh.finished.fetch_add(1, Ordering::Relaxed);
            }));
        }
        all_parked.wait().unwrap();
        let to_park = start.elapsed();
        let (maps_parked, rss_parked) = (map_count(), rss_bytes());
        let pte_per_task = page_table_bytes().saturating_sub(pte_before) as f64 / N as f64;
        let start = Instant::now();
        gate.set();
        for t in tasks {
            t.join().unwrap();
        }
        let to_join = start.elapsed();
        let per_task_kib = rss_parked.saturating_sub(rss_before) as f64 / N as f64 / 1024.0;
        let new_maps = maps_parked.saturating_sub(maps_before);
        println!(
            "{N} parked fibers (default stacks): RSS +{:.1} MiB = {per_task_kib:.2} KiB per parked \
             task, memory areas {maps_before} -> {maps_parked} (+{new_maps}); spawn until all \
             parked {:.0} ms ({:.2} us/task), release + join {:.0} ms; page tables (not in \
             RSS) {:.2} KiB per parked task",
            rss_parked.saturating_sub(rss_before) as f64 / (1024.0 * 1024.0),
            to_park.as_secs_f64() * 1e3,
            to_park.as_secs_f64() * 1e6 / N as f64,
            to_join.as_secs_f64() * 1e3,
            pte_per_task / 1024.0,
        );
        assert_eq!(parked.load(Ordering::Acquire), N);
        assert!(
            new_maps < 1000,
            "{new_maps} new memory areas for {N} fibers"
        );
        // Release builds keep a parked task near one touched stack page; in debug builds the
        // frames from the fiber's entry to its switch span two. (Measured here: 4.39 KiB in
        // release, 8.4 KiB in debug, whatever the stack size.)
        // The `tracing` and `profile` features add a pointer to each task cell (its
        // diagnostics, see src/diag/hooks.rs), which can move the cell up a malloc size class.
        let diag = if cfg!(any(feature = "tracing", feature = "profile")) {
            0.05
        } else {
            0.0
        };
        let bound = diag + if cfg!(debug_assertions) { 9.0 } else { 4.5 };
        // Under AddressSanitizer (ci/asan.sh) shadow memory, redzones and the allocator's
        // quarantine add their own RSS per task: the figure is printed, not bounded.
        assert!(
            cfg!(zsync_asan) || per_task_kib <= bound,
            "{per_task_kib:.2} KiB per parked task (bound {bound} KiB)"
        );
    });
    assert_eq!(shared.finished.load(Ordering::Relaxed), N);
}

// ---- default stack size ----------------------------------------------------------------------

/// JSON nested `depth` deep: objects (`{"a":{"a":...}}`) or arrays (`[[...]]`).
fn nested_json(depth: usize, objects: bool) -> String {
    if objects {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// Parses and drops (both recurse once per level) JSON nested `depth` deep, read through
/// `std::io::Read` as a client's request body would be.
fn parse_nested_json(depth: usize, objects: bool) {
    let json = nested_json(depth, objects);
    let value: serde_json::Value = serde_json::from_reader(json.as_bytes()).unwrap();
    assert!(value.is_object() == objects && value.is_array() != objects);
    drop(black_box(value));
}

/// `serde_json::from_reader` of JSON nested 100 deep, and up to serde_json's own limit (128),
/// on Green fibers with the default stack size, in debug builds too (`cargo test --test
/// green_fibers serde_json`): a debug build used to abort at 48 levels on the 64 KiB default, a
/// release build at 127 levels of objects.
#[test]
fn serde_json_nested_100_deep_fits_the_default_fiber_stack() {
    let _serial = serial();
    let _watchdog = Watchdog::new("serde_json_nested_100_deep_fits_the_default_fiber_stack");
    green().run(|io| {
        for depth in [100, 127] {
            for objects in [false, true] {
                // On the root fiber, and on a task's fiber of its own.
                parse_nested_json(depth, objects);
                let (tx, rx) = channel::bounded(1);
                let task = io.spawn(move |_| {
                    tx.send(()).unwrap();
                    parse_nested_json(depth, objects)
                });
                rx.recv().unwrap(); // started on its own fiber, not inline in the join
                task.join().unwrap();
            }
        }
        // Past serde_json's limit it is an error, not a deeper recursion.
        let too_deep = nested_json(129, false);
        let err = serde_json::from_reader::<_, serde_json::Value>(too_deep.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    });
}

// ---- memory after a spike ------------------------------------------------------------------

/// 100,000 tasks parked at once, then released and joined: within a generous watchdog, RSS
/// comes back to within 10 MiB of its level before the spike while the runtime keeps running
/// (the workers give idle stacks' pages back when they idle). It used to stay ~400 MiB up until
/// `run` returned: every finished stack was kept with its pages committed.
#[test]
fn rss_returns_to_its_pre_spike_level_after_100k_parked_tasks_finish() {
    const N: usize = 100_000;
    const SLACK: usize = 10 << 20;
    const GIVE_UP: Duration = Duration::from_secs(if cfg!(zsync_asan) { 2 } else { 30 });
    let _serial = serial();
    let _watchdog =
        Watchdog::new("rss_returns_to_its_pre_spike_level_after_100k_parked_tasks_finish");
    green().run(|io| {
        // Warm up the runtime (its first stacks, the workers' queues) and let it settle.
        let warm: Vec<Task<()>> = (0..64)
            .map(|_| io.spawn(|io| io.sleep(Duration::from_millis(1)).unwrap()))
            .collect();
        warm.into_iter().for_each(|t| t.join().unwrap());
        io.sleep(Duration::from_millis(100)).unwrap();
        let before = rss_bytes();
        let parked = Arc::new(AtomicUsize::new(0));
        let all_parked = Arc::new(ResetEvent::new());
        let gate = Arc::new(ResetEvent::new());
        let tasks: Vec<Task<()>> = (0..N)
            .map(|_| {
                let (parked, all_parked, gate) = (parked.clone(), all_parked.clone(), gate.clone());
                io.spawn(move |_| {
                    if parked.fetch_add(1, Ordering::AcqRel) + 1 == N {
                        all_parked.set();
                    }
                    gate.wait().unwrap();
                })
            })
            .collect();
        all_parked.wait().unwrap();
        let peak = rss_bytes();
        gate.set();
        for t in tasks {
            t.join().unwrap();
        }
        // The gate's wait list has room for N waiters: the test's memory, not the runtime's.
        drop((gate, all_parked, parked));
        let finished = Instant::now();
        let mut after = rss_bytes();
        while after > before + SLACK && finished.elapsed() < GIVE_UP {
            io.sleep(Duration::from_millis(20)).unwrap();
            after = rss_bytes();
        }
        let took = finished.elapsed();
        let mib = |b: usize| b as f64 / 1048576.0;
        println!(
            "RSS before the spike {:.1} MiB, with {N} tasks parked {:.1} MiB, {:.1} MiB {:.2} s \
             after they finished",
            mib(before),
            mib(peak),
            mib(after),
            took.as_secs_f64()
        );
        // Under AddressSanitizer (ci/asan.sh) its allocator's quarantine holds freed memory
        // back: the trim runs (and is checked for memory errors), the figure is not bounded.
        assert!(
            cfg!(zsync_asan) || after <= before + SLACK,
            "RSS {:.1} MiB {:.0} s after the spike, {:.1} MiB before it",
            mib(after),
            took.as_secs_f64(),
            mib(before)
        );
    });
}

// ---- stack overflow report -------------------------------------------------------------------

/// Env var telling a re-executed test binary which child scenario to run.
const CHILD_ENV: &str = "ZSYNC_GREEN_FIBERS_CHILD";

/// Recurses without bound (each frame writes half a KiB), until the stack runs out.
fn recurse_forever(n: usize) -> usize {
    let mut buf = [n as u8; 512];
    black_box(&mut buf);
    if n == usize::MAX {
        return 0;
    }
    recurse_forever(n + 1) + usize::from(buf[n % 512])
}

/// Spawns the runaway task, printing the spawn location (the caller's) for the parent to find
/// in the report. The task sends on `started` (if any) before it recurses.
/// `named`: the task is named `runaway` (an owned name: the report reads it from the task's
/// cell), and its id is printed too.
#[track_caller]
fn spawn_runaway(io: &Io, started: Option<Sender<()>>, named: bool) -> Task<usize> {
    let site = Location::caller();
    eprintln!("child: spawn site {}:{}", site.file(), site.line());
    let body = move |_: &Io| {
        if let Some(started) = started {
            started.send(()).unwrap();
        }
        recurse_forever(0)
    };
    if named {
        let task = io.task().name(String::from("runaway")).spawn(body);
        eprintln!("child: task id {}", task.id());
        task
    } else {
        io.spawn(body)
    }
}

/// Child body: a Green task overflows its 32 KiB stack; the process must abort with a report.
/// `fiber`: the task runs on a fiber of its own (the root waits until it started before
/// joining). `inline`: on one worker, the root joins the unstarted task at once, so the task
/// runs inline on the root's fiber and must still be named after its own spawn site.
fn child_overflow(scenario: &str) -> ! {
    let workers = if scenario == "inline" { 1 } else { 2 };
    Builder::new(Model::Green)
        .worker_threads(workers)
        .stack_size(32 * 1024)
        .run(|io| {
            let task = if scenario == "inline" {
                spawn_runaway(io, None, false)
            } else {
                let (tx, rx) = channel::bounded(1);
                let task = spawn_runaway(io, Some(tx), scenario == "named");
                rx.recv().unwrap();
                task
            };
            let result = task.join();
            eprintln!("child: the runaway task returned: {:?}", result.is_ok());
        });
    std::process::exit(3);
}

/// Re-executes this test binary on `test` with [`CHILD_ENV`]`=scenario` and asserts the child
/// died by `SIGABRT` with a report naming the runaway task's spawn site and its 32 KiB stack.
fn assert_child_reports_overflow(test: &str, scenario: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("child stderr ({scenario}):\n{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "status {:?}, stderr:\n{stderr}",
        out.status
    );
    let site = stderr
        .lines()
        .find_map(|l| l.strip_prefix("child: spawn site "))
        .unwrap_or_else(|| panic!("no spawn site in stderr:\n{stderr}"));
    let line = site
        .strip_prefix("tests/green_fibers.rs:")
        .unwrap_or_else(|| panic!("{site}"));
    assert!(line.parse::<u32>().is_ok(), "{site}");
    let expected = match stderr
        .lines()
        .find_map(|l| l.strip_prefix("child: task id "))
    {
        Some(id) => format!(
            "zsync: fiber task 'runaway' ({id}, spawned at {site}) overflowed its stack of 32 KiB \
             (fault at 0x"
        ),
        None => format!("zsync: fiber task '{site}' overflowed its stack of 32 KiB (fault at 0x"),
    };
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert!(
        stderr.contains("raise the stack size with Builder::stack_size"),
        "{stderr}"
    );
}

/// A Green task that recurses without bound on its own fiber dies by `SIGABRT` with a report
/// naming its spawn location and its stack size.
#[test]
fn stack_overflow_is_reported_with_the_task_location() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        child_overflow(&scenario);
    }
    let _serial = serial();
    let _watchdog = Watchdog::new("stack_overflow_is_reported_with_the_task_location");
    assert_child_reports_overflow("stack_overflow_is_reported_with_the_task_location", "fiber");
}

/// Same when the task runs inline on its joiner's fiber (the root's): the report names the
/// task, not the root.
#[test]
fn stack_overflow_of_an_inline_task_names_that_task() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        child_overflow(&scenario);
    }
    let _serial = serial();
    let _watchdog = Watchdog::new("stack_overflow_of_an_inline_task_names_that_task");
    assert_child_reports_overflow("stack_overflow_of_an_inline_task_names_that_task", "inline");
}

/// A named task's overflow report gives its name and id besides its spawn location.
#[test]
fn stack_overflow_of_a_named_task_gives_its_name_and_id() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        child_overflow(&scenario);
    }
    let _serial = serial();
    let _watchdog = Watchdog::new("stack_overflow_of_a_named_task_gives_its_name_and_id");
    assert_child_reports_overflow(
        "stack_overflow_of_a_named_task_gives_its_name_and_id",
        "named",
    );
}

// ---- !Send state across blocking calls -------------------------------------------------------

thread_local! {
    /// Touched by fibers holding a reference into it across blocking calls.
    static TLS_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Asserts the fiber still runs on `thread` with the thread-local at `tls`.
#[track_caller]
fn assert_not_migrated(thread: ThreadId, tls: *const Cell<usize>, after: &str) {
    assert_eq!(
        thread::current().id(),
        thread,
        "thread changed after {after}"
    );
    assert_eq!(
        TLS_SLOT.with(|s| s as *const Cell<usize>),
        tls,
        "thread-local moved after {after}"
    );
}

/// 200 tasks hold an `Rc<RefCell<..>>` borrow and a reference into a thread-local across a
/// sleep, a channel receive and a TCP read: each resumes on its own thread every time.
#[test]
fn non_send_state_survives_blocking_calls() {
    const TASKS: usize = 200;
    let _serial = serial();
    let _watchdog = Watchdog::new("non_send_state_survives_blocking_calls");
    green().run(|io| {
        let listener = TcpListener::bind(io, "127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Echo server: one task per connection, each answering one byte.
        let server = io.spawn(move |io| {
            let mut handlers = Vec::with_capacity(TASKS);
            for _ in 0..TASKS {
                let (mut conn, _) = listener.accept().unwrap();
                handlers.push(io.spawn(move |_| {
                    let mut b = [0u8; 1];
                    conn.read_exact(&mut b).unwrap();
                    conn.write_all(&b).unwrap();
                }));
            }
            for h in handlers {
                h.join().unwrap();
            }
        });
        let tasks: Vec<Task<(ThreadId, usize)>> = (0..TASKS)
            .map(|i| {
                io.spawn(move |io| {
                    let thread = thread::current().id();
                    let (tx, rx) = channel::bounded::<usize>(1);
                    let sender = io.spawn(move |io| {
                        io.sleep(Duration::from_millis(1)).unwrap();
                        tx.send(i).unwrap();
                    });
                    let mut conn = TcpStream::connect(io, addr).unwrap();
                    let state = Rc::new(RefCell::new(Vec::new()));
                    let seen = TLS_SLOT.with(|slot| {
                        let tls = slot as *const Cell<usize>;
                        let mut held = state.borrow_mut();
                        held.push(i);
                        slot.set(slot.get() + 1);

                        io.sleep(Duration::from_millis(1)).unwrap();
                        assert_not_migrated(thread, tls, "io.sleep");
                        held.push(i + 1);

                        assert_eq!(rx.recv().unwrap(), i);
                        assert_not_migrated(thread, tls, "rx.recv");
                        held.push(i + 2);

                        conn.write_all(&[i as u8]).unwrap();
                        let mut b = [0u8; 1];
                        conn.read_exact(&mut b).unwrap();
                        assert_eq!(b[0], i as u8);
                        assert_not_migrated(thread, tls, "a TCP read");
                        held.push(i + 3);
                        slot.set(slot.get() + 1);
                        held.len()
                    });
                    assert_eq!(*state.borrow(), [i, i + 1, i + 2, i + 3]);
                    sender.join().unwrap();
                    (thread, seen)
                })
            })
            .collect();
        let mut per_thread: HashMap<ThreadId, usize> = HashMap::new();
        for t in tasks {
            let (thread, seen) = t.join().unwrap();
            assert_eq!(seen, 4);
            *per_thread.entry(thread).or_default() += 1;
        }
        server.join().unwrap();
        assert_eq!(per_thread.values().sum::<usize>(), TASKS);
        println!("tasks per worker thread: {:?}", per_thread.values());
    });
}

// ---- stealing --------------------------------------------------------------------------------

/// 1000 CPU-bound tasks spawned from one task: the idle worker steals some of them. Each task
/// computes (without yielding its worker) until tasks have run on both workers, so the test
/// does not depend on the other worker getting a CPU within the few milliseconds the tasks
/// would otherwise take (it used to give each task 50 µs of work and hope).
#[test]
fn unstarted_tasks_are_stolen() {
    const TASKS: usize = 1000;
    let _serial = serial();
    let _watchdog = Watchdog::new("unstarted_tasks_are_stolen");
    green().run(|io| {
        let counts = io
            .spawn(|io| {
                let seen = Arc::new(Mutex::new(HashSet::new()));
                let tasks: Vec<Task<ThreadId>> = (0..TASKS)
                    .map(|_| {
                        let seen = seen.clone();
                        io.spawn(move |_| {
                            let me = thread::current().id();
                            seen.lock().unwrap().insert(me);
                            while seen.lock().unwrap().len() < 2 {
                                std::hint::spin_loop();
                            }
                            me
                        })
                    })
                    .collect();
                let mut counts: HashMap<ThreadId, usize> = HashMap::new();
                for t in tasks {
                    *counts.entry(t.join().unwrap()).or_default() += 1;
                }
                counts
            })
            .join()
            .unwrap();
        println!("tasks per worker thread: {:?}", counts.values());
        assert_eq!(counts.values().sum::<usize>(), TASKS);
        assert_eq!(counts.len(), 2, "both workers ran tasks: {counts:?}");
    });
}

/// Starts 64 long-lived tasks in a burst from the root (an accept loop's connections) and
/// returns how many started on each worker thread.
fn burst_of_long_lived_tasks(io: &Io) -> HashMap<ThreadId, usize> {
    const TASKS: usize = 64;
    let release = Arc::new(ResetEvent::new());
    let placed = Arc::new(Mutex::new(HashMap::<ThreadId, usize>::new()));
    let all_placed = Arc::new(ResetEvent::new());
    let tasks: Vec<Task<()>> = (0..TASKS)
        .map(|_| {
            let (release, placed, all_placed) =
                (release.clone(), placed.clone(), all_placed.clone());
            let task = io
                .concurrent(move |_| {
                    let mut placed = placed.lock().unwrap();
                    *placed.entry(thread::current().id()).or_default() += 1;
                    if placed.values().sum::<usize>() == TASKS {
                        all_placed.set();
                    }
                    drop(placed);
                    release.wait().unwrap();
                })
                .unwrap();
            // As an accept loop does between connections.
            io.yield_now();
            task
        })
        .collect();
    all_placed.wait().unwrap();
    let counts = placed.lock().unwrap().clone();
    release.set();
    tasks.into_iter().for_each(|t| t.join().unwrap());
    counts
}

/// Asserts that both workers started a fair share of the burst.
#[track_caller]
fn assert_fair_split(counts: &HashMap<ThreadId, usize>) {
    let total: usize = counts.values().sum();
    assert_eq!(counts.len(), 2, "both workers serve some: {counts:?}");
    assert!(
        counts.values().all(|&n| n >= total / 4),
        "a fair share each: {counts:?}"
    );
}

/// 64 long-lived tasks started in a burst by one task (an accept loop's connections): both
/// workers serve a fair share, as placement keeps their live fibers even. Left to timing, one
/// worker could start all of them and serve them alone for life (fibers never migrate).
#[test]
fn long_lived_tasks_started_in_a_burst_spread_over_the_workers() {
    let _serial = serial();
    let _watchdog = Watchdog::new("long_lived_tasks_started_in_a_burst_spread_over_the_workers");
    let counts = green().run(burst_of_long_lived_tasks);
    println!("long-lived tasks per worker thread: {:?}", counts.values());
    assert_fair_split(&counts);
}

/// The CPU set of the calling thread.
fn affinity() -> libc::cpu_set_t {
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size passed is the set's own; the kernel writes only within it.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(
        r,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    set
}

/// Restricts the calling thread (and the threads it starts from now on) to `set`.
fn set_affinity(set: &libc::cpu_set_t) {
    // SAFETY: the size passed is the set's own; the kernel only reads it.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) };
    assert_eq!(
        r,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// What a loaded machine does to placement, made certain: both workers and a thread that
/// never sleeps share one CPU, so a worker woken to take offered tasks waits for that CPU,
/// often longer than a millisecond. The burst must still split fairly: an offer to a worker
/// that waits for a CPU stands until it runs (it used to expire after 1 ms, and the owner
/// started the whole burst itself).
#[test]
fn a_burst_spreads_over_workers_that_share_one_busy_cpu() {
    let _serial = serial();
    let _watchdog = Watchdog::new("a_burst_spreads_over_workers_that_share_one_busy_cpu");
    let all = affinity();
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let cpu = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is below `CPU_SETSIZE`: a bit of the set.
        .find(|&c| unsafe { libc::CPU_ISSET(c, &all) })
        .unwrap();
    // SAFETY: `cpu` is below `CPU_SETSIZE`: a bit of the set.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    set_affinity(&one);
    let stop = Arc::new(AtomicBool::new(false));
    let hog = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    let counts = green().run(burst_of_long_lived_tasks);
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    set_affinity(&all);
    println!(
        "long-lived tasks per worker thread on one busy CPU: {:?}",
        counts.values()
    );
    assert_fair_split(&counts);
}

/// How the lighter worker's thread is held up after it queues a fresh task.
#[derive(Clone, Copy, Debug)]
enum HeldUp {
    /// Blocked in a call outside zsync (a std channel receive).
    Blocked,
    /// Computing without yielding.
    Computing,
}

/// Placement's progress guarantee: a fresh task queued on the lighter worker while that worker
/// is held up (`how`) is started by the heavier worker, which otherwise leaves the lighter
/// worker's tasks alone. The lighter worker stays held up until the task has started: if
/// the heavier worker never took it, the watchdog would fail the test.
fn fresh_task_on_a_held_up_lighter_worker_starts_elsewhere(how: HeldUp) {
    const PARKED: usize = 24;
    green().run(|io| {
        let root_thread = thread::current().id();
        /// A long-lived task parked on its own event, and the thread it runs on.
        struct Parked {
            release: Arc<ResetEvent>,
            on: Arc<Mutex<Option<ThreadId>>>,
            task: Task<()>,
        }
        impl Parked {
            fn finish(self) {
                self.release.set();
                self.task.join().unwrap();
            }
        }
        let parked: Vec<Parked> = (0..PARKED)
            .map(|_| {
                let (release, on) = (Arc::new(ResetEvent::new()), Arc::new(Mutex::new(None)));
                let (r, o) = (release.clone(), on.clone());
                let task = io
                    .concurrent(move |_| {
                        *o.lock().unwrap() = Some(thread::current().id());
                        r.wait().unwrap();
                    })
                    .unwrap();
                io.yield_now();
                Parked { release, on, task }
            })
            .collect();
        while parked.iter().any(|p| p.on.lock().unwrap().is_none()) {
            io.yield_now();
        }
        // Finish the ones on the root's worker: it becomes the lighter one.
        let (here, elsewhere): (Vec<_>, Vec<_>) = parked
            .into_iter()
            .partition(|p| *p.on.lock().unwrap() == Some(root_thread));
        assert!(
            elsewhere.len() >= 3,
            "placement put at most 2 of {PARKED} tasks on the other worker"
        );
        here.into_iter().for_each(Parked::finish);
        // Queue a task here, then hold this worker's thread up until the task has started.
        let queued_at = Instant::now();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let fresh = io
            .concurrent(move |_| {
                s.store(true, Ordering::Release);
                started_tx
                    .send((thread::current().id(), queued_at.elapsed()))
                    .unwrap();
            })
            .unwrap();
        match how {
            HeldUp::Blocked => {}
            HeldUp::Computing => {
                while !started.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            }
        }
        let (on, waited) = started_rx.recv().unwrap();
        println!("{how:?}: the fresh task started after {waited:?}");
        assert_ne!(on, root_thread, "the fresh task ran on its held-up worker");
        fresh.join().unwrap();
        elsewhere.into_iter().for_each(Parked::finish);
    });
}

/// The progress guarantee when the lighter worker's thread is blocked outside zsync.
#[test]
fn a_task_queued_on_a_blocked_lighter_worker_is_started_by_the_heavier_one() {
    let _serial = serial();
    let _watchdog =
        Watchdog::new("a_task_queued_on_a_blocked_lighter_worker_is_started_by_the_heavier_one");
    fresh_task_on_a_held_up_lighter_worker_starts_elsewhere(HeldUp::Blocked);
}

/// The progress guarantee when a fiber of the lighter worker computes without yielding.
#[test]
fn a_task_queued_on_a_computing_lighter_worker_is_started_by_the_heavier_one() {
    let _serial = serial();
    let _watchdog =
        Watchdog::new("a_task_queued_on_a_computing_lighter_worker_is_started_by_the_heavier_one");
    fresh_task_on_a_held_up_lighter_worker_starts_elsewhere(HeldUp::Computing);
}

/// A task started with `concurrent` runs while its spawner only yields, even with one worker:
/// the worker used to start fresh tasks only when no fiber was ready, so the spawner, always
/// ready again after a yield, held the task back for ever.
#[test]
fn a_concurrent_task_starts_while_its_spawner_only_yields() {
    let _serial = serial();
    let _watchdog = Watchdog::new("a_concurrent_task_starts_while_its_spawner_only_yields");
    for workers in [1, 2] {
        Builder::new(Model::Green)
            .worker_threads(workers)
            .run(|io| {
                let started = Arc::new(AtomicBool::new(false));
                let s = started.clone();
                let task = io
                    .concurrent(move |_| s.store(true, Ordering::Release))
                    .unwrap();
                while !started.load(Ordering::Acquire) {
                    io.yield_now();
                }
                task.join().unwrap();
            });
    }
}

// ---- cross-worker wake storms ----------------------------------------------------------------

/// One side of a ping-pong pair: `rounds` messages each way over `bounded(1)` channels.
struct Side {
    tx: Sender<u32>,
    rx: Receiver<u32>,
    /// Sends first (the pinger) or answers (the ponger).
    serves: bool,
}

/// Plays `side` for `rounds` rounds; returns the thread it ran on and the messages received.
fn play(side: Side, rounds: u32) -> (ThreadId, u32) {
    let mut received = 0;
    for k in 0..rounds {
        if side.serves {
            side.tx.send(k).unwrap();
            assert_eq!(side.rx.recv().unwrap(), k);
        } else {
            assert_eq!(side.rx.recv().unwrap(), k);
            side.tx.send(k).unwrap();
        }
        received += 1;
    }
    (thread::current().id(), received)
}

/// An anchor task: pinned to its worker once started, it spawns one side of every pair there.
/// It first spins (without yielding its worker) until the other anchor has started too, so the
/// two anchors necessarily run on different workers.
fn anchor(
    io: &Io,
    started: &Mutex<HashSet<ThreadId>>,
    sides: Receiver<Vec<Side>>,
    rounds: u32,
) -> Vec<(ThreadId, u32)> {
    started.lock().unwrap().insert(thread::current().id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the other worker never started an anchor"
        );
        std::hint::spin_loop();
    }
    let sides = sides.recv().unwrap();
    let tasks: Vec<Task<(ThreadId, u32)>> = sides
        .into_iter()
        .map(|side| io.spawn(move |_| play(side, rounds)))
        .collect();
    tasks.into_iter().map(|t| t.join().unwrap()).collect()
}

/// 1000 ping-pong pairs, each pair's sides spawned from anchors on different workers, 100
/// messages each way: every message arrives, in order, well within the time bound.
#[test]
fn cross_worker_wake_storm() {
    const PAIRS: usize = 1000;
    const ROUNDS: u32 = 100;
    let _serial = serial();
    let _watchdog = Watchdog::new("cross_worker_wake_storm");
    green().run(|io| {
        let started = Arc::new(Mutex::new(HashSet::new()));
        let (to_a, for_a) = channel::bounded(1);
        let (to_b, for_b) = channel::bounded(1);
        let anchors: Vec<Task<Vec<(ThreadId, u32)>>> = [for_a, for_b]
            .into_iter()
            .map(|sides| {
                let started = started.clone();
                io.spawn(move |io| anchor(io, &started, sides, ROUNDS))
            })
            .collect();
        let (mut pings, mut pongs) = (Vec::new(), Vec::new());
        for _ in 0..PAIRS {
            let (ping_tx, ping_rx) = channel::bounded(1);
            let (pong_tx, pong_rx) = channel::bounded(1);
            pings.push(Side {
                tx: ping_tx,
                rx: pong_rx,
                serves: true,
            });
            pongs.push(Side {
                tx: pong_tx,
                rx: ping_rx,
                serves: false,
            });
        }
        let start = Instant::now();
        to_a.send(pings).unwrap();
        to_b.send(pongs).unwrap();
        let mut results = anchors.into_iter().map(|a| a.join().unwrap());
        let (a, b) = (results.next().unwrap(), results.next().unwrap());
        let elapsed = start.elapsed();
        assert_eq!(started.lock().unwrap().len(), 2);
        assert_eq!((a.len(), b.len()), (PAIRS, PAIRS));
        let mut cross = 0;
        for ((ta, na), (tb, nb)) in a.iter().zip(&b) {
            assert_eq!((*na, *nb), (ROUNDS, ROUNDS));
            cross += usize::from(ta != tb);
        }
        println!(
            "{PAIRS} pairs x {ROUNDS} round trips in {:.0} ms ({:.2} us per round trip); {cross} \
             pairs ran across workers",
            elapsed.as_secs_f64() * 1e3,
            elapsed.as_secs_f64() * 1e6 / (PAIRS as f64 * f64::from(ROUNDS)),
        );
        assert!(cross > 0, "no pair ran across workers");
        assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    });
}

// ---- cancel storm ----------------------------------------------------------------------------

/// 10,000 tasks parked in a 60 s sleep are canceled by dropping their handles: all return
/// promptly. Then 10,000 more spawn and join on recycled stacks: every one of them runs on a
/// stack slot the first wave used (the pools did not grow) and RSS does not double.
#[test]
fn cancel_storm_then_recycled_stacks() {
    const N: usize = 10_000;
    let _serial = serial();
    let _watchdog = Watchdog::new("cancel_storm_then_recycled_stacks");
    green().run(|io| {
        let root_marker = stack_marker();
        let parked = Arc::new(AtomicUsize::new(0));
        let all_parked = Arc::new(ResetEvent::new());
        let canceled = Arc::new(AtomicUsize::new(0));
        let first_wave = Arc::new(Mutex::new(Vec::with_capacity(N + 1)));
        first_wave.lock().unwrap().push(root_marker);
        let rss_before = rss_bytes();
        let tasks: Vec<Task<()>> = (0..N)
            .map(|_| {
                let (parked, all_parked, canceled, first_wave) = (
                    parked.clone(),
                    all_parked.clone(),
                    canceled.clone(),
                    first_wave.clone(),
                );
                io.spawn(move |io| {
                    first_wave.lock().unwrap().push(stack_marker());
                    if parked.fetch_add(1, Ordering::AcqRel) + 1 == N {
                        all_parked.set();
                    }
                    let r = io.sleep(Duration::from_secs(60));
                    assert!(r.as_ref().is_err_and(zsync::is_canceled), "{r:?}");
                    canceled.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        all_parked.wait().unwrap();
        let rss_parked = rss_bytes();
        let maps_parked = map_count();
        let start = Instant::now();
        drop(tasks);
        let cancel_time = start.elapsed();
        assert_eq!(canceled.load(Ordering::Relaxed), N);
        assert!(
            cancel_time < Duration::from_secs(5),
            "cancel took {cancel_time:?}"
        );

        let start = Instant::now();
        let second: Vec<Task<usize>> = (0..N).map(|_| io.spawn(|_| stack_marker())).collect();
        let second: Vec<usize> = second.into_iter().map(|t| t.join().unwrap()).collect();
        let second_time = start.elapsed();
        let rss_after = rss_bytes();
        let maps_after = map_count();

        // A marker lies a few KiB below the top of its stack; distinct slots are a whole stack
        // (the default size, at least 256 KiB, + guard) apart. So a marker within 32 KiB of a
        // first-wave one ran on the same slot.
        let mut first: Vec<usize> = first_wave.lock().unwrap().clone();
        first.sort_unstable();
        let fresh = second
            .iter()
            .filter(|&&m| {
                let i = first.partition_point(|&f| f < m);
                let near = |j: usize| first.get(j).is_some_and(|&f| f.abs_diff(m) < 32 * 1024);
                !(near(i) || (i > 0 && near(i - 1)))
            })
            .count();
        println!(
            "{N} parked sleepers canceled in {:.1} ms; {N} spawn+join on recycled stacks in \
             {:.1} ms; RSS {:.1} -> {:.1} (parked) -> {:.1} MiB (after); memory areas \
             {maps_parked} -> {maps_after}; {fresh} second-wave tasks on fresh stacks",
            cancel_time.as_secs_f64() * 1e3,
            second_time.as_secs_f64() * 1e3,
            rss_before as f64 / 1048576.0,
            rss_parked as f64 / 1048576.0,
            rss_after as f64 / 1048576.0,
        );
        assert_eq!(
            fresh, 0,
            "second-wave tasks ran on stacks the first wave never used"
        );
        assert!(
            rss_after.saturating_sub(rss_before) < 2 * rss_parked.saturating_sub(rss_before),
            "RSS grew from {rss_parked} to {rss_after} bytes"
        );
        assert!(
            maps_after <= maps_parked + 16,
            "memory areas {maps_parked} -> {maps_after}"
        );
    });
}

// ---- start-up failures ------------------------------------------------------------------------

/// Child body: for descriptor limits from the lowest free descriptor up, a Green runtime of 4
/// workers either runs or fails `run` with a message; either way no thread is left behind. The
/// child prints one line per limit.
/// The (tid, name) of every thread of this process.
fn thread_names() -> Vec<(String, String)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|entry| {
            let tid = entry.ok()?.file_name().into_string().ok()?;
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            Some((tid, name.trim().to_string()))
        })
        .collect()
}

fn child_without_descriptors() -> ! {
    // Open everything the test harness and std need first, then cap the table just above.
    let probe = std::fs::File::open("/dev/null").unwrap();
    let lowest_free = probe.as_raw_fd() as libc::rlim_t;
    drop(probe);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes the struct it is given, which lives on this frame.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0);
    let original = limit.rlim_cur;
    // Prime the process-wide lazies (the io_uring probe) with descriptors to spare.
    Builder::new(Model::Green).worker_threads(1).run(|_| ());
    for spare in 0..16 {
        let threads_before = thread_names();
        limit.rlim_cur = lowest_free + spare;
        // SAFETY: `setrlimit` reads the struct it is given, which lives on this frame.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let result =
            std::panic::catch_unwind(|| Builder::new(Model::Green).worker_threads(4).run(|_| ()));
        limit.rlim_cur = original;
        // SAFETY: as above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let outcome = match result {
            Ok(()) => "ran".to_string(),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        };
        // A joined thread may still be listed for a moment: `pthread_join` returns when the
        // kernel clears the thread's tid, before the exiting task is unlisted (longer on a
        // loaded machine). A thread really left running is still there after the 10 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let extra: Vec<String> = loop {
            let extra: Vec<String> = thread_names()
                .into_iter()
                .filter(|t| !threads_before.contains(t))
                .map(|(_, name)| name)
                .collect();
            if extra.is_empty() || std::time::Instant::now() >= deadline {
                break extra;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        eprintln!(
            "child: spare {spare}: {outcome}; extra threads: {} {extra:?}",
            extra.len()
        );
    }
    std::process::exit(0);
}

/// A Green runtime whose workers cannot get descriptors (`EMFILE` at start-up) makes `run` fail
/// with a message naming the worker and the cause, and leaves no worker thread running. (A
/// worker thread used to panic on its own, and `run` went on without it.)
#[test]
fn green_start_without_descriptors_fails_run_and_leaves_no_thread() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("emfile") {
        child_without_descriptors();
    }
    let _serial = serial();
    let _watchdog = Watchdog::new("green_start_without_descriptors_fails_run_and_leaves_no_thread");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "green_start_without_descriptors_fails_run_and_leaves_no_thread",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "emfile")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}:\n{stderr}", out.status);
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("child: spare "))
        .collect();
    assert_eq!(lines.len(), 16, "{stderr}");
    for line in &lines {
        assert!(
            line.contains("; extra threads: 0 "),
            "a thread outlived run: {line}"
        );
        assert!(
            line.contains(": ran;") || line.contains(": zsync: cannot "),
            "an unclear failure: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("zsync: cannot start Green worker") && l.contains("open files")),
        "no limit hit a worker's start-up: {stderr}"
    );
    assert!(lines.last().unwrap().contains(": ran;"), "{stderr}");
}

// ---- future tasks ----------------------------------------------------------------------------

/// A future that records the thread of each poll and reports it, then waits for the next go.
/// Returns after `rounds` wake-ups.
async fn report_each_poll(
    go: Receiver<()>,
    report: std::sync::mpsc::Sender<ThreadId>,
    rounds: usize,
) {
    for _ in 0..rounds {
        report.send(thread::current().id()).unwrap();
        go.recv_event().await.unwrap();
    }
    report.send(thread::current().id()).unwrap();
}

/// A `Send` future task may move between workers at every poll (unlike a fiber): woken from the
/// root fiber, it is queued on the root's worker, whose thread the fiber then blocks in a call
/// outside zsync until the task reports its next poll. Only the other worker can poll it then,
/// by stealing it; if futures could not move, the test would hang (the watchdog names it).
#[test]
fn a_future_task_moves_to_the_other_worker_while_its_own_is_blocked() {
    let _serial = serial();
    let _watchdog =
        Watchdog::new("a_future_task_moves_to_the_other_worker_while_its_own_is_blocked");
    green().run(|io| {
        let here = thread::current().id();
        for _ in 0..3 {
            let (go_tx, go_rx) = channel::bounded::<()>(1);
            let (report_tx, report_rx) = std::sync::mpsc::channel();
            let task = io.spawn_future(report_each_poll(go_rx, report_tx, 1));
            // The first poll, on either worker. Park the fiber (not the thread) meanwhile, so
            // this worker can poll the task too.
            while report_rx.try_recv().is_err() {
                io.yield_now();
            }
            // A wake from a fiber queues the task on the fiber's worker, wherever its first poll
            // ran (a debug build's slower loop lets the other worker steal every fresh task
            // first). Block this worker's thread outside zsync: only the other worker can poll
            // the task now.
            go_tx.send(()).unwrap();
            let second = report_rx.recv().unwrap();
            assert_ne!(second, here, "polled on a blocked worker");
            task.join().unwrap();
        }
    });
}

/// A `!Send` future task (`spawn_local_future`) never leaves its worker: while that worker's
/// thread is blocked after waking it, no other worker polls it; it runs once the thread is free.
#[test]
fn a_local_future_task_stays_on_its_worker_even_when_it_is_blocked() {
    let _serial = serial();
    let _watchdog =
        Watchdog::new("a_local_future_task_stays_on_its_worker_even_when_it_is_blocked");
    green().run(|io| {
        let here = thread::current().id();
        let (go_tx, go_rx) = channel::bounded::<()>(1);
        let (report_tx, report_rx) = std::sync::mpsc::channel();
        let not_send = Rc::new(());
        let task = io.spawn_local_future(async move {
            let _pinned = not_send;
            report_each_poll(go_rx, report_tx, 3).await;
        });
        for round in 0..4 {
            // Wait with the fiber parked, so the task can run on this worker.
            let polled_on = loop {
                match report_rx.try_recv() {
                    Ok(t) => break t,
                    Err(_) => io.yield_now(),
                }
            };
            assert_eq!(polled_on, here, "round {round}: polled on another worker");
            if round == 3 {
                break;
            }
            go_tx.send(()).unwrap();
            // Block this worker's thread for a while: the other worker must leave the task be.
            // (A pass does not depend on timing: a slow machine only makes the check weaker.)
            match report_rx.recv_timeout(Duration::from_millis(50)) {
                Err(_) => {}
                Ok(t) => panic!("round {round}: polled on {t:?} while its worker was blocked"),
            }
        }
        task.join().unwrap();
    });
}

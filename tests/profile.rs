//! Profiles (feature `profile`): the figures a profiled runtime reports, per model.
//!
//! Times are asserted from below only (a task that sleeps 100 ms was blocked at least that
//! long); upper bounds are generous watchdogs, so a loaded machine cannot fail them. Lock
//! contention is asserted by counts.

use std::sync::Arc;
use std::time::Duration;

use zsync::sync::Mutex;
use zsync::{Backend, Builder, Io, Model};

mod common;

/// Every model that profiles.
use common::all_builders as builders;

const SLEEP: Duration = Duration::from_millis(100);
/// A watchdog, not a measurement: far above what the sleep takes even on a loaded machine.
const WATCHDOG: Duration = Duration::from_secs(20);

fn sleeper(io: &Io) {
    io.sleep(SLEEP).unwrap();
}

#[test]
fn a_task_that_sleeps_shows_its_sleep_as_blocked_time() {
    for (name, builder) in builders() {
        builder.profile(true).run(|io| {
            let line = line!() + 1;
            let task = io.task().name("sleeper").spawn(sleeper);
            let id = task.id();
            task.join().unwrap();
            let profile = io.profile();
            let site = profile
                .site_at(file!(), line)
                .unwrap_or_else(|| panic!("{name}: no figures for the sleeper's site:\n{profile}"));
            assert_eq!(site.tasks, 1, "{name}");
            assert_eq!(site.finished, 1, "{name}");
            // The 100 ms from the sleep's start to its deadline are spent blocked in it, or
            // running: a wait is timed from the park, which comes a few microseconds after the
            // deadline was set (and, on an OS thread, after a short spin of yields, which on a
            // loaded machine can take a while). So: at least 100 ms in all, most of it blocked
            // in `sleep`, and below a watchdog.
            let blocked = site.blocked_on("sleep");
            assert!(
                blocked + site.running >= SLEEP && blocked >= SLEEP / 2 && blocked < WATCHDOG,
                "{name}: blocked on sleep {blocked:?}, running {:?}\n{profile}",
                site.running
            );
            // It hardly ran: the sleep is not counted as running.
            assert!(
                site.running < SLEEP,
                "{name}: running {:?}\n{profile}",
                site.running
            );
            let task = profile.task(id).expect("the task's own figures");
            assert_eq!(task.name.as_deref(), Some("sleeper"));
            assert!(task.finished);
            assert!(
                task.blocked_on("sleep") + task.running >= SLEEP,
                "{name}\n{profile}"
            );
            // The renderings carry the site.
            let text = profile.to_string();
            assert!(text.contains(&site.name()), "{name}: {text}");
            assert!(text.contains("sleep"), "{name}: {text}");
            let folded = profile.folded();
            assert!(
                folded
                    .lines()
                    .any(|l| l.starts_with(&format!("{};blocked:sleep ", site.name()))),
                "{name}: {folded}"
            );
            let json = profile.to_json();
            assert!(json.contains("\"sleep\":{\"us\":"), "{name}: {json}");
        });
    }
}

#[test]
fn a_busy_task_shows_running_time() {
    for (name, builder) in builders() {
        builder.profile(true).run(|io| {
            let line = line!() + 1;
            let task = io.spawn(|_| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(30) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            });
            task.join().unwrap();
            let profile = io.profile();
            let site = profile
                .site_at(file!(), line)
                .expect("the busy task's site");
            assert!(
                site.running >= Duration::from_millis(30),
                "{name}: running {:?}\n{profile}",
                site.running
            );
        });
    }
}

#[test]
fn a_contended_mutex_shows_its_waits() {
    const TASKS: usize = 4;
    const ROUNDS: usize = 5;
    for (name, builder) in builders() {
        builder.profile(true).run(|io| {
            let mutex = Arc::new(Mutex::new(0u32));
            // Held while the others start, where they run concurrently: each of them must
            // wait at least once. (Blocking runs each task inline, to its end: holding the
            // lock there would deadlock.)
            let guard = io.supports_concurrency().then(|| mutex.lock().unwrap());
            let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let lock_line = line!() + 8;
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let mutex = mutex.clone();
                    let arrived = arrived.clone();
                    io.spawn(move |io| {
                        arrived.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        for _ in 0..ROUNDS {
                            let mut g = mutex.lock().unwrap();
                            *g += 1;
                            io.sleep(Duration::from_millis(1)).unwrap();
                        }
                    })
                })
                .collect();
            if io.supports_concurrency() {
                // Let them reach the lock (a pool with fewer threads than tasks starts the
                // rest later: they contend among themselves then, each holding the lock
                // across a sleep).
                let watchdog = std::time::Instant::now();
                while arrived.load(std::sync::atomic::Ordering::Relaxed) < TASKS
                    && watchdog.elapsed() < Duration::from_secs(2)
                {
                    io.sleep(Duration::from_millis(1)).unwrap();
                }
                io.sleep(Duration::from_millis(50)).unwrap();
            }
            drop(guard);
            for t in tasks {
                t.join().unwrap();
            }
            assert_eq!(*mutex.lock().unwrap(), (TASKS * ROUNDS) as u32);
            let profile = io.profile();
            let waits: u64 = profile
                .locks
                .iter()
                .filter(|l| l.location.line() == lock_line && l.location.file() == file!())
                .map(|l| {
                    assert_eq!(l.kind, "Mutex::lock");
                    assert!(l.max_wait <= l.total_wait);
                    l.waits
                })
                .sum();
            if io.supports_concurrency() {
                // Every task found the mutex held by the root at least once.
                assert!(waits >= TASKS as u64, "{name}: {waits} waits\n{profile}");
            } else {
                assert_eq!(waits, 0, "{name}: nobody else held the lock\n{profile}");
            }
        });
    }
}

/// Uses at least `depth` × 4 KiB of stack.
#[inline(never)]
fn deep(depth: usize) -> u64 {
    let mut frame = [0u8; 4096];
    frame[depth % 4096] = depth as u8 | 1;
    let frame = std::hint::black_box(frame);
    if depth == 0 {
        frame.iter().map(|&b| b as u64).sum()
    } else {
        deep(depth - 1) + frame[depth % 4096] as u64
    }
}

#[test]
fn fiber_stack_high_water_marks_per_spawn_site_with_hints() {
    const STACK: usize = 256 << 10;
    for (name, backend) in [("green_epoll", Backend::Epoll), ("green", Backend::Auto)] {
        Builder::new(Model::Green)
            .worker_threads(2)
            .backend(backend)
            .stack_size(STACK)
            .profile(true)
            .run(|io| {
                let deep_line = line!() + 1;
                let deep_tasks: Vec<_> = (0..4).map(|_| io.spawn(|_| deep(8))).collect();
                let shallow_line = line!() + 1;
                let shallow: Vec<_> = (0..4).map(|_| io.spawn(|_| 1u64)).collect();
                // Let the workers start them on fibers of their own (a task joined before it
                // started would run inline on the joiner's fiber, and not be measured).
                let tasks: Vec<_> = deep_tasks.into_iter().chain(shallow).collect();
                let watchdog = std::time::Instant::now();
                while !tasks.iter().all(|t| t.is_finished()) && watchdog.elapsed() < WATCHDOG {
                    io.sleep(Duration::from_millis(5)).unwrap();
                }
                for t in tasks {
                    t.join().unwrap();
                }
                let profile = io.profile();
                let deep = profile.site_at(file!(), deep_line).expect("deep site");
                let shallow = profile
                    .site_at(file!(), shallow_line)
                    .expect("shallow site");
                let st = deep.stack.expect("the deep tasks' stacks");
                assert_eq!(st.fibers, 4, "{name}: {st:?}");
                assert!(st.max_used >= 32 << 10, "{name}: {st:?}\n{profile}");
                assert!(st.max_used < STACK, "{name}: {st:?}");
                assert_eq!(st.size, STACK, "{name}: {st:?}");
                let st = shallow.stack.expect("the shallow tasks' stacks");
                assert!(st.max_used < 32 << 10, "{name}: {st:?}\n{profile}");
                assert!(
                    profile.to_string().contains("could be smaller"),
                    "{name}: no hint for a site using little of its stack\n{profile}"
                );
            });
    }
}

#[test]
fn profiling_can_be_turned_on_and_reset_while_running() {
    for (name, builder) in builders() {
        builder.run(|io| {
            let off_line = line!() + 1;
            io.spawn(|io| io.sleep(Duration::from_millis(5)).unwrap())
                .join()
                .unwrap();
            let profile = io.profile();
            assert!(
                profile.site_at(file!(), off_line).is_none(),
                "{name}: recorded while off\n{profile}"
            );
            io.set_profiling(true);
            let on_line = line!() + 1;
            io.spawn(|io| io.sleep(Duration::from_millis(5)).unwrap())
                .join()
                .unwrap();
            let profile = io.profile();
            let site = profile.site_at(file!(), on_line).expect("recorded once on");
            assert!(
                site.blocked_on("sleep") + site.running >= Duration::from_millis(5),
                "{name}\n{profile}"
            );
            io.reset_profile();
            assert!(
                io.profile().site_at(file!(), on_line).is_none(),
                "{name}: reset"
            );
            io.set_profiling(false);
        });
    }
}

#[test]
fn a_future_task_shows_its_polls_and_waits() {
    for (name, builder) in builders() {
        builder.profile(true).run(|io| {
            let line = line!() + 1;
            let task = io.spawn_future(async {
                zsync::time::sleep(SLEEP).await;
            });
            task.join().unwrap();
            let profile = io.profile();
            let site = profile.site_at(file!(), line).expect("the future's site");
            assert_eq!(site.tasks, 1, "{name}\n{profile}");
            assert_eq!(site.finished, 1, "{name}\n{profile}");
            // Between its polls it waited (on Blocking, `block_on` sleeps inside one run).
            assert!(
                site.blocked_total() + site.running >= SLEEP,
                "{name}\n{profile}"
            );
            assert!(site.blocked_total() < WATCHDOG, "{name}\n{profile}");
        });
    }
}

#[test]
fn json_parses_and_the_flame_graph_renders() {
    Builder::new(Model::Green)
        .worker_threads(2)
        .profile(true)
        .run(|io| {
            let mutex = Arc::new(Mutex::new(()));
            let guard = mutex.lock().unwrap();
            let m = mutex.clone();
            let waiter = io.task().name("a \"quoted\" name").spawn(move |_| {
                drop(m.lock().unwrap());
            });
            io.sleep(Duration::from_millis(10)).unwrap();
            drop(guard);
            waiter.join().unwrap();
            let profile = io.profile();
            let json: serde_json::Value =
                serde_json::from_str(&profile.to_json()).expect("valid JSON");
            assert!(json["sites"].as_array().is_some_and(|s| !s.is_empty()));
            assert!(json["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "a \"quoted\" name"));
            let lock = &json["locks"][0];
            assert_eq!(lock["kind"], "Mutex::lock");
            assert!(lock["waits"].as_u64() >= Some(1), "{json}");
            let mut svg = Vec::new();
            profile.write_flamegraph(&mut svg).unwrap();
            let svg = String::from_utf8(svg).unwrap();
            assert!(svg.contains("<svg"), "{svg}");
            assert!(svg.contains("blocked:mutex lock"), "{svg}");
            let mut running = Vec::new();
            profile
                .running_only()
                .write_flamegraph(&mut running)
                .unwrap();
            let running = String::from_utf8(running).unwrap();
            assert!(!running.contains("blocked:"), "{running}");
        });
}

//! `zsync::Runtime` and `Handle` on every model. These tests start runtimes of their own, so
//! they are plain `#[test]`s looping over `support::models()` rather than `conformance!` bodies
//! (which run inside `run`). The thread and descriptor leak checks live in
//! `tests/runtime_leaks.rs`, a binary of their own: other tests running in parallel here would
//! change the counts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use zsync::{Builder, Io, Runtime, ShutdownStatus};

use crate::support;

/// Aborts the process if the test takes longer than this: a hang detector only.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Aborts the test process if not dropped within [`WATCHDOG`].
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(name: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            let start = crate::support::now();
            while crate::support::elapsed(start) < WATCHDOG {
                std::thread::sleep(Duration::from_millis(100));
                if flag.load(Ordering::Acquire) {
                    return;
                }
            }
            eprintln!("runtime test {name} hung for {WATCHDOG:?}: aborting");
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

/// Each model of the suite with two workers, by name.
fn builders() -> Vec<(&'static str, Builder)> {
    support::models()
        .into_iter()
        .map(|(name, make)| (name, make().worker_threads(2)))
        .collect()
}

/// Sets a flag when dropped: proves a task's captures were dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn block_on_from_several_foreign_threads_at_once() {
    let _watchdog = Watchdog::new("block_on_from_several_foreign_threads_at_once");
    for (name, builder) in builders() {
        let rt = builder.build().unwrap();
        const THREADS: usize = 4;
        // Every call waits for all the others: they run at the same time, each on its thread.
        let together = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for i in 0..THREADS {
                let (rt, together) = (&rt, &together);
                s.spawn(move || {
                    let caller = std::thread::current().id();
                    let v = rt.block_on(|io| {
                        assert_eq!(std::thread::current().id(), caller, "{name}");
                        assert!(Io::current().is_some(), "{name}: no task context");
                        together.wait();
                        io.sleep(Duration::from_millis(1)).unwrap();
                        let a = io.spawn(move |_| i * 10);
                        let b = io.spawn(move |io| {
                            io.sleep(Duration::from_millis(1)).unwrap();
                            i
                        });
                        a.join().unwrap() + b.join().unwrap()
                    });
                    assert_eq!(v, i * 11, "{name}");
                });
            }
        });
        assert!(rt.shutdown().is_complete(), "{name}");
    }
}

#[test]
fn spawn_from_a_foreign_thread_and_join_there() {
    let _watchdog = Watchdog::new("spawn_from_a_foreign_thread_and_join_there");
    for (name, builder) in builders() {
        let rt = builder.build().unwrap();
        let handle = rt.handle();
        let model = rt.io().model_name();
        let ran_on = std::thread::spawn(move || {
            let me = std::thread::current().name().map(str::to_string);
            // Joined at once: on Green the task may not have been started by a worker yet, and
            // the join must wait for one rather than run it here, off the workers.
            let task = handle.spawn(|io| {
                let sleep = io.sleep(Duration::from_millis(1));
                (
                    std::thread::current().name().map(str::to_string),
                    Io::current().is_some(),
                    sleep.is_ok(),
                )
            });
            let (ran_on, in_task, slept) = task.join().unwrap();
            assert!(in_task && slept, "{name}");
            // Spawned and left to run, then joined once finished: placed by the model.
            let task = handle.spawn(|_| std::thread::current().name().map(str::to_string));
            let start = crate::support::now();
            while !task.is_finished() && crate::support::elapsed(start) < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
            (me, ran_on, task.join().unwrap())
        })
        .join()
        .unwrap();
        let (foreign, joined_at_once, left_to_run) = ran_on;
        match model {
            "Green" => {
                for ran_on in [&joined_at_once, &left_to_run] {
                    let ran_on = ran_on.as_deref().unwrap_or("");
                    assert!(ran_on.starts_with("zsync-green-"), "{name} ran on {ran_on}");
                }
            }
            "Threaded" => {
                let ran_on = left_to_run.as_deref().unwrap_or("");
                assert!(
                    ran_on.starts_with("zsync-worker-"),
                    "{name} ran on {ran_on}"
                );
            }
            // Spawn runs inline.
            "Blocking" => {
                assert_eq!(joined_at_once, foreign, "{name}");
                assert_eq!(left_to_run, foreign, "{name}");
            }
            _ => {}
        }
        assert!(rt.shutdown().is_complete(), "{name}");
    }
}

#[test]
fn a_task_still_running_at_drop_is_canceled_and_waited_for() {
    let _watchdog = Watchdog::new("a_task_still_running_at_drop_is_canceled_and_waited_for");
    for (name, builder) in builders() {
        let rt = builder.build().unwrap();
        let dropped = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(None));
        let (started_tx, started_rx) = mpsc::channel();
        // A detached task (where the model runs tasks concurrently) and a `block_on` in progress
        // on another thread, both sleeping "forever".
        let detached = rt.io().supports_concurrency().then(|| {
            let (dropped, outcome, started) =
                (dropped.clone(), outcome.clone(), started_tx.clone());
            rt.spawn(move |io| {
                let _guard = SetOnDrop(dropped);
                started.send(()).unwrap();
                let r = io.sleep(Duration::from_secs(3600));
                *outcome.lock().unwrap() = Some(r.map_err(|e| zsync::is_canceled(&e)));
            })
            .detach();
        });
        let in_block_on = Arc::new(AtomicBool::new(false));
        let foreign = {
            let (handle, flag) = (rt.handle(), in_block_on.clone());
            std::thread::spawn(move || {
                handle.block_on(|io| {
                    let _guard = SetOnDrop(flag);
                    started_tx.send(()).unwrap();
                    io.sleep(Duration::from_secs(3600))
                })
            })
        };
        for _ in 0..1 + detached.iter().count() {
            started_rx.recv().unwrap();
        }
        drop(rt);
        // Both finished before `drop` returned.
        assert!(
            in_block_on.load(Ordering::SeqCst),
            "{name}: block_on not waited for"
        );
        if detached.is_some() {
            assert!(
                dropped.load(Ordering::SeqCst),
                "{name}: task not waited for"
            );
            assert_eq!(*outcome.lock().unwrap(), Some(Err(true)), "{name}");
        }
        support::assert_canceled(foreign.join().unwrap());
    }
}

#[test]
fn block_on_inside_a_task_of_the_same_runtime_is_a_plain_call() {
    let _watchdog = Watchdog::new("block_on_inside_a_task_of_the_same_runtime_is_a_plain_call");
    // One worker: a nested block_on that blocked its worker would deadlock the runtime.
    for (name, make) in support::models() {
        let rt = make().worker_threads(1).build().unwrap();
        let handle = rt.handle();
        let v = rt.block_on(|io| {
            let inner = handle.clone();
            let task = io.spawn(move |_| {
                let caller = std::thread::current().id();
                inner.block_on(|nested| {
                    assert_eq!(std::thread::current().id(), caller);
                    // Waits of the model: a worker runs this sibling meanwhile.
                    let sibling = nested.spawn(|io| {
                        io.sleep(Duration::from_millis(1)).unwrap();
                        20
                    });
                    nested.sleep(Duration::from_millis(1)).unwrap();
                    sibling.join().unwrap() + 1
                })
            });
            task.join().unwrap() + handle.block_on(|_| 21)
        });
        assert_eq!(v, 42, "{name}");
        // The calling task's cancellation reaches a nested block_on.
        if rt.io().supports_concurrency() {
            let inner = rt.handle();
            let task = rt.spawn(move |_| inner.block_on(|io| io.sleep(Duration::from_secs(3600))));
            support::assert_canceled(task.cancel().unwrap());
        }
        assert!(rt.shutdown().is_complete(), "{name}");
    }
}

#[test]
fn shutdown_reports_a_detached_panic() {
    let _watchdog = Watchdog::new("shutdown_reports_a_detached_panic");
    for (name, make) in support::models() {
        let rt = make().worker_threads(2).build().unwrap();
        rt.spawn(|_| -> () { panic!("detached boom") }).detach();
        match rt.shutdown() {
            ShutdownStatus::Panicked(payload) => {
                assert_eq!(payload.downcast_ref(), Some(&"detached boom"), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        // Printed, not raised, when the runtime is dropped instead.
        let rt = make().worker_threads(2).build().unwrap();
        rt.spawn(|_| -> () { panic!("printed, not raised") })
            .detach();
        drop(rt);
    }
}

#[test]
fn shutdown_timeout_gives_up_on_a_task_that_ignores_cancellation() {
    let _watchdog = Watchdog::new("shutdown_timeout_gives_up_on_a_task_that_ignores_cancellation");
    for (name, builder) in builders() {
        let rt = builder.build().unwrap();
        if !rt.io().supports_concurrency() {
            continue;
        }
        let release = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        {
            let (release, finished) = (release.clone(), finished.clone());
            rt.concurrent(move |io| {
                started_tx.send(()).unwrap();
                // Computes without a cancellation point until released.
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let _ = io;
                finished.store(true, Ordering::SeqCst);
            })
            .unwrap()
            .detach();
        }
        started_rx.recv().unwrap();
        let status = rt.shutdown_timeout(Duration::from_millis(50));
        assert!(!status.is_complete(), "{name}: {status:?}");
        assert!(!finished.load(Ordering::SeqCst));
        // The runtime's threads finish the shutdown in the background once the task ends.
        release.store(true, Ordering::SeqCst);
        let start = crate::support::now();
        while !finished.load(Ordering::SeqCst)
            && crate::support::elapsed(start) < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(finished.load(Ordering::SeqCst), "{name}");
    }
}

#[test]
fn after_shutdown_a_handle_runs_closures_canceled() {
    let _watchdog = Watchdog::new("after_shutdown_a_handle_runs_closures_canceled");
    for (name, builder) in builders() {
        let rt = builder.build().unwrap();
        let handle = rt.handle();
        assert!(rt.shutdown().is_complete(), "{name}");
        support::assert_canceled(handle.block_on(|io| io.sleep(Duration::from_secs(3600))));
        if name != "custom" {
            // A built-in model runs it inline; a custom model decides for itself.
            let t = handle.spawn(|io| io.sleep(Duration::from_secs(3600)));
            support::assert_canceled(t.join().unwrap());
        }
    }
}

#[test]
fn runtime_and_handle_are_send_and_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Runtime>();
    is_send_sync::<zsync::Handle>();
    let counter = AtomicUsize::new(0);
    let rt = Runtime::new(zsync::Model::Blocking).unwrap();
    assert!(zsync::Handle::current().is_none());
    rt.block_on(|_| {
        assert!(zsync::Handle::current().is_some());
        counter.fetch_add(1, Ordering::SeqCst)
    });
    assert_eq!(counter.load(Ordering::SeqCst), 1);
    assert!(format!("{rt:?}").contains("Blocking"));
}

/// A detached task whose parent (here a `block_on`) finished before it blocked is still woken
/// by the shutdown: a finished node stays in its parent's children while registered children
/// of its own live (src/cancel.rs, "Finishing").
#[test]
fn a_task_detached_inside_a_finished_block_on_is_woken_by_the_shutdown() {
    let _watchdog = Watchdog::new("a_task_detached_inside_a_finished_block_on");
    for (name, builder) in builders() {
        let rt = builder.build().unwrap();
        if !rt.io().supports_concurrency() {
            continue;
        }
        let (started_tx, started_rx) = mpsc::channel();
        rt.block_on(|io| {
            io.spawn(move |io| {
                started_tx.send(()).unwrap();
                io.sleep(Duration::from_secs(60))
            })
            .detach()
        });
        started_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(10)); // let it block
        let start = crate::support::now();
        drop(rt);
        assert!(
            crate::support::elapsed(start) < Duration::from_secs(30),
            "{name}: waited for the sleep"
        );
    }
}

#[test]
fn shutdown_from_one_of_its_own_tasks_cancels_and_returns_incomplete() {
    let _watchdog = Watchdog::new("shutdown_from_one_of_its_own_tasks");
    for (name, builder) in builders() {
        let rt = builder.build().unwrap();
        let handle = rt.handle();
        // The task owns the runtime: its shutdown cannot wait for the task itself.
        let task = handle.spawn(move |io| {
            let status = rt.shutdown();
            (status.is_complete(), io.is_cancel_requested())
        });
        assert_eq!(task.join().unwrap(), (false, true), "{name}");
        // The host finishes the shutdown once that task has ended: later closures run canceled.
        support::assert_canceled(handle.block_on(|io| io.sleep(Duration::from_secs(3600))));
    }
}

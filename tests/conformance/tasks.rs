//! Conformance tests: tasks, groups, cancellation, time.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use zsync::{Group, GroupPolicy, Io};

use crate::support::{assert_canceled, concurrent_or_refused, has_concurrency};

// ---- spawn / join ----------------------------------------------------------------------------

fn spawn_join_returns_value(io: &Io) {
    let t = io.spawn(|_| 41 + 1);
    assert_eq!(t.join().unwrap(), 42);
}

fn spawn_closure_receives_an_io_of_the_same_model(io: &Io) {
    let name = io.model_name();
    let t = io.spawn(move |inner| (inner.model_name(), Io::current().map(|c| c.model_name())));
    assert_eq!(t.join().unwrap(), (name, Some(name)));
}

fn model_kind_names_the_model_and_is_seen_by_tasks(io: &Io) {
    use zsync::ModelKind;
    let kind = io.model();
    match kind {
        ModelKind::Custom => assert_eq!(io.model_name(), "ThreadPerTask"),
        _ => assert_eq!(kind.to_string(), io.model_name()),
    }
    assert_eq!(io.supports_concurrency(), kind != ModelKind::Blocking);
    let t = io.spawn(|inner| (inner.model(), Io::current().map(|c| c.model())));
    assert_eq!(t.join().unwrap(), (kind, Some(kind)));
}

fn current_io_is_set_in_root(io: &Io) {
    assert_eq!(Io::current().unwrap().model_name(), io.model_name());
}

fn blocking_spawn_runs_eagerly_others_eventually(io: &Io) {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let t = io.spawn(move |_| r.fetch_add(1, Ordering::SeqCst));
    if !io.supports_concurrency() {
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "Blocking runs spawn inline, at once"
        );
        assert!(t.is_finished());
    }
    t.join().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

fn many_spawns_each_run_exactly_once(io: &Io) {
    let count = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..2000)
        .map(|i| {
            let c = count.clone();
            io.spawn(move |_| {
                c.fetch_add(1, Ordering::Relaxed);
                i * 2
            })
        })
        .collect();
    let sum: usize = tasks.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, (0..2000).map(|i| i * 2).sum());
    assert_eq!(count.load(Ordering::Relaxed), 2000);
}

fn nested_fork_join_does_not_deadlock(io: &Io) {
    fn fib(io: &Io, n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let a = io.spawn(move |io| fib(io, n - 1));
        let b = fib(io, n - 2);
        a.join().unwrap() + b
    }
    assert_eq!(fib(io, 18), 2584);
}

fn join_of_unstarted_task_runs_inline_on_saturated_pool(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    // Occupy both workers with tasks that wait for a signal the root sends only after joining a
    // task queued behind them: the join must run it inline instead of waiting for a worker.
    // On Green the root's fiber itself occupies one of the two workers (blocking that worker's
    // thread would block the root too), so one blocker saturates the pool there; it is started
    // with `concurrent`, whose wake-up is not deferred until the (spinning) root suspends. With
    // two blockers on Green, the second waited on the root's worker until the first one's
    // 10 s receive timed out, and the test passed only thanks to that timeout.
    let green = io.model() == zsync::ModelKind::Green;
    let blockers = if green { 1 } else { 2 };
    let started = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let blockers: Vec<_> = (0..blockers)
        .map(|_| {
            let (rx, started) = (rx.clone(), started.clone());
            let body = move |_: &Io| {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(60));
            };
            if green {
                io.concurrent(body).unwrap()
            } else {
                io.spawn(body)
            }
        })
        .collect();
    while started.load(Ordering::SeqCst) < blockers.len() {
        std::thread::yield_now();
    }
    let start = crate::support::now();
    let queued = io.spawn(|_| 7);
    assert_eq!(queued.join().unwrap(), 7);
    assert!(crate::support::elapsed(start) < Duration::from_secs(30));
    for _ in 0..blockers.len() {
        tx.send(()).unwrap();
    }
    for b in blockers {
        b.join().unwrap();
    }
}

fn concurrent_runs_concurrently_or_is_refused(io: &Io) {
    let (tx, rx) = mpsc::channel();
    let task = concurrent_or_refused(io, move |_| {
        rx.recv_timeout(Duration::from_secs(10)).unwrap() + 1
    });
    if let Some(task) = task {
        // The task blocks until we send: only true concurrency lets both sides progress.
        tx.send(41).unwrap();
        assert_eq!(task.join().unwrap(), 42);
    }
}

fn concurrent_tasks_blocking_on_each_other_do_not_deadlock(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    // A chain of 32 concurrent tasks (far more than the 2 workers), each waiting for the next.
    let n = 32;
    let (first_tx, mut rx) = mpsc::channel::<usize>();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (tx, next_rx) = mpsc::channel::<usize>();
        let my_rx = std::mem::replace(&mut rx, next_rx);
        tasks.push(
            io.concurrent(move |_| {
                let v = my_rx.recv_timeout(Duration::from_secs(10)).unwrap();
                tx.send(v + 1).unwrap();
            })
            .unwrap(),
        );
    }
    first_tx.send(0).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), n);
    for t in tasks {
        t.join().unwrap();
    }
}

/// How many spawned tasks block at once in the tests below: more than the suite's 2 workers, so
/// on Threaded the ones beyond the workers start only on the monitor's rescue workers.
const BLOCKERS: usize = 4;

/// Spawned tasks that block every worker waiting for a task spawned after them must not hang the
/// pool: `spawn` promises no concurrency, but a silent hang is worse than a late start. On
/// Threaded the waiters beyond the workers, and the feeder, run because the pool's monitor
/// notices every worker blocked with tasks queued and starts rescue workers.
fn spawned_waiters_blocking_every_worker_still_let_the_queued_feeder_run(io: &Io) {
    if !io.supports_concurrency() {
        return; // Blocking runs `spawn` inline: the first waiter would wait forever.
    }
    let (started_tx, started_rx) = zsync::channel::unbounded::<()>();
    let (go_tx, go_rx) = zsync::channel::unbounded::<usize>();
    let waiters: Vec<_> = (0..BLOCKERS)
        .map(|_| {
            let (started_tx, go_rx) = (started_tx.clone(), go_rx.clone());
            io.spawn(move |_| {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap()
            })
        })
        .collect();
    // Every waiter has started (and blocks, or is about to) before the feeder is queued.
    for _ in 0..BLOCKERS {
        started_rx.recv().unwrap();
    }
    let feeder = io.spawn(move |_| {
        for i in 0..BLOCKERS {
            go_tx.send(i).unwrap();
        }
    });
    // The waiters first: joining the feeder first would run it inline.
    let mut got: Vec<usize> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    feeder.join().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..BLOCKERS).collect::<Vec<_>>());
}

fn spawn_storm_from_many_tasks_counts_exactly(io: &Io) {
    let total = Arc::new(AtomicUsize::new(0));
    let mut group = Group::new(io);
    for _ in 0..8 {
        let total = total.clone();
        group.spawn(move |io| {
            let tasks: Vec<_> = (0..500)
                .map(|i| {
                    let total = total.clone();
                    io.spawn(move |_| {
                        total.fetch_add(1, Ordering::Relaxed);
                        i
                    })
                })
                .collect();
            tasks.into_iter().map(|t| t.join().unwrap()).sum::<usize>()
        });
    }
    let sums = group.join_all().unwrap();
    assert!(sums.iter().all(|&s| s == (0..500).sum::<usize>()));
    assert_eq!(total.load(Ordering::Relaxed), 8 * 500);
}

fn cancel_storm_leaves_nothing_running(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let canceled = Arc::new(AtomicUsize::new(0));
    let start = crate::support::now();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let canceled = canceled.clone();
            let body = move |io: &Io| {
                if io
                    .sleep(Duration::from_secs(30))
                    .is_err_and(|e| zsync::is_canceled(&e))
                {
                    canceled.fetch_add(1, Ordering::SeqCst);
                }
            };
            if i % 3 == 0 {
                io.concurrent(body).unwrap()
            } else {
                io.spawn(body)
            }
        })
        .collect();
    drop(tasks);
    assert_eq!(canceled.load(Ordering::SeqCst), 300);
    assert!(
        crate::support::elapsed(start) < Duration::from_secs(10),
        "took {:?}",
        crate::support::elapsed(start)
    );
}

fn is_finished_reports_completion(io: &Io) {
    let t = io.spawn(|_| ());
    let deadline = crate::support::now() + Duration::from_secs(5);
    while !t.is_finished() && crate::support::now() < deadline {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    assert!(t.is_finished());
    t.join().unwrap();
}

// ---- panics ----------------------------------------------------------------------------------

fn panic_in_task_resumes_on_joiner(io: &Io) {
    let t = io.spawn(|_| -> u32 { panic!("boom in task") });
    let err = panic::catch_unwind(AssertUnwindSafe(|| t.join())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in task"));
}

fn panic_in_concurrent_task_resumes_on_joiner(io: &Io) {
    if let Some(t) = concurrent_or_refused(io, |_| -> u32 { panic!("boom concurrent") }) {
        let err = panic::catch_unwind(AssertUnwindSafe(|| t.join())).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom concurrent"));
    }
}

fn panic_in_task_resumes_on_cancel_and_drop(io: &Io) {
    let t = io.spawn(|_| -> u32 { panic!("boom cancel") });
    let err = panic::catch_unwind(AssertUnwindSafe(|| t.cancel().unwrap())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom cancel"));
    let t = io.spawn(|_| -> u32 { panic!("boom drop") });
    let err = panic::catch_unwind(AssertUnwindSafe(|| drop(t))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom drop"));
}

fn panic_in_detached_task_is_reraised_by_run(io: &Io) {
    // A nested runtime of the same kind, so the re-raise is observable here.
    let model = model_of(io);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        zsync::Builder::new(model).worker_threads(2).run(|io| {
            io.spawn(|_| panic!("detached boom")).detach();
        })
    }));
    let err = result.unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"detached boom"));
}

/// The `Model` behind `io`, to start a nested runtime of the same kind.
fn model_of(io: &Io) -> zsync::Model {
    match io.model() {
        zsync::ModelKind::Blocking => zsync::Model::Blocking,
        zsync::ModelKind::Threaded => zsync::Model::Threaded,
        _ => zsync::Model::Custom(Arc::new(crate::support::ThreadPerTask::default())),
    }
}

// ---- cancellation ----------------------------------------------------------------------------

fn cancel_interrupts_a_long_sleep_promptly(io: &Io) {
    let Some(t) = concurrent_or_refused(io, |io| io.sleep(Duration::from_secs(30))) else {
        return;
    };
    io.sleep(Duration::from_millis(20)).unwrap();
    let start = crate::support::now();
    assert_canceled(t.cancel().unwrap());
    assert!(
        crate::support::elapsed(start) < Duration::from_secs(2),
        "cancel took {:?}",
        crate::support::elapsed(start)
    );
}

fn cancel_right_after_spawn_is_never_lost(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    for _ in 0..200 {
        let t = io
            .concurrent(|io| io.sleep(Duration::from_secs(30)))
            .unwrap();
        assert_canceled(t.cancel().unwrap());
    }
    for _ in 0..200 {
        let t = io.spawn(|io| io.sleep(Duration::from_secs(30)));
        assert_canceled(t.cancel().unwrap());
    }
}

fn canceled_task_sees_canceled_at_every_cancellation_point(io: &Io) {
    io.cancel_current();
    assert!(io.is_cancel_requested());
    assert_canceled(io.check_canceled());
    assert_canceled(io.sleep(Duration::from_millis(1)));
    assert_canceled(io.sleep(Duration::ZERO));
    // A shield holds the cancellation back ...
    io.shielded(|| {
        io.check_canceled().unwrap();
        io.sleep(Duration::from_millis(1)).unwrap();
    });
    // ... and it is delivered again right after.
    assert_canceled(io.check_canceled());
}

fn canceled_error_is_not_retried_by_std_helpers(io: &Io) {
    use std::io::Read;
    struct CancelPoint<'a>(&'a Io);
    impl Read for CancelPoint<'_> {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            self.0.check_canceled()?;
            Ok(0)
        }
    }
    io.cancel_current();
    let mut buf = [0u8; 4];
    assert_canceled(CancelPoint(io).read_exact(&mut buf));
    assert_canceled(CancelPoint(io).read_to_end(&mut Vec::new()));
}

fn join_is_a_cancellation_point(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    // The outer task blocks in join on a task that only ends when canceled. The inner task is
    // started by the test (not a child of the outer one, so canceling the outer task does not
    // reach it directly) and is running before the outer task exists (an unstarted task would
    // run inline in its joiner). Canceling the outer task makes its join cancel the inner task,
    // wait for it (nothing leaks) and report Canceled. Deterministic however slowly either task
    // is scheduled: the inner task cannot finish before the outer join gives up on it.
    let (started_tx, started) = mpsc::channel();
    let inner = io
        .concurrent(move |io| {
            started_tx.send(()).unwrap();
            io.sleep(Duration::from_secs(3600))
        })
        .unwrap();
    started.recv().unwrap();
    let outer = io.concurrent(move |_| inner.join()).unwrap();
    io.sleep(Duration::from_millis(20)).unwrap();
    let start = crate::support::now();
    assert_canceled(outer.cancel().unwrap());
    assert!(crate::support::elapsed(start) < Duration::from_secs(2));
}

fn canceling_a_task_cancels_the_tasks_it_started(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let parent = io
        .concurrent(move |io| {
            let child = io
                .concurrent(|io| io.sleep(Duration::from_secs(30)))
                .unwrap();
            child.detach();
            tx.send(()).unwrap();
            io.sleep(Duration::from_secs(30))
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_canceled(parent.cancel().unwrap());
    // The detached child was canceled with its parent; `run` would wait 30 s for it otherwise
    // (the watchdog would catch that).
}

fn dropping_a_handle_cancels_and_waits(io: &Io) {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    if let Some(t) = concurrent_or_refused(io, move |io| {
        let r = io.sleep(Duration::from_secs(30));
        assert!(r.as_ref().is_err_and(zsync::is_canceled));
        f.fetch_add(1, Ordering::SeqCst);
    }) {
        io.sleep(Duration::from_millis(10)).unwrap();
        drop(t);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "drop waits for the task"
        );
    }
}

fn cancel_returns_the_value_of_a_finished_task(io: &Io) {
    let t = io.spawn(|_| 5);
    if io.supports_concurrency() {
        while !t.is_finished() {
            io.sleep(Duration::from_millis(1)).unwrap();
        }
    }
    assert_eq!(t.cancel().unwrap(), 5);
}

fn detached_task_runs_to_completion(io: &Io) {
    let (tx, rx) = mpsc::channel();
    io.spawn(move |_| tx.send(9).unwrap()).detach();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 9);
}

fn detached_tasks_are_canceled_and_awaited_at_shutdown(io: &Io) {
    let model = model_of(io);
    let saw_cancel = Arc::new(AtomicUsize::new(0));
    let s = saw_cancel.clone();
    let start = crate::support::now();
    zsync::Builder::new(model).worker_threads(2).run(move |io| {
        if let Ok(t) = io.concurrent(move |io| {
            if io
                .sleep(Duration::from_secs(30))
                .is_err_and(|e| zsync::is_canceled(&e))
            {
                s.fetch_add(1, Ordering::SeqCst);
            }
        }) {
            t.detach();
        }
    });
    assert!(crate::support::elapsed(start) < Duration::from_secs(5));
    let expected = usize::from(io.supports_concurrency());
    assert_eq!(saw_cancel.load(Ordering::SeqCst), expected);
}

// ---- blocking escape hatch -------------------------------------------------------------------

fn blocking_runs_the_call_and_returns_its_value(io: &Io) {
    let caller = std::thread::current().id();
    let (v, ran_on) = io
        .blocking(move || (6 * 7, std::thread::current().id()))
        .unwrap();
    assert_eq!(v, 42);
    if io.supports_concurrency() && io.model_name() != "ThreadPerTask" {
        assert_ne!(
            ran_on,
            caller,
            "{} runs blocking calls off the task's thread",
            io.model_name()
        );
    }
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        io.blocking(|| -> u8 { panic!("blocking boom") })
    }))
    .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"blocking boom"));
}

fn blocking_call_does_not_stall_other_tasks(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    // While one task sits in a blocking call through `blocking` (a std channel receive that
    // only ends once the quick tasks are done), others keep running: if the call stalled them,
    // the test would hang (the watchdog fails it). It used to sleep 300 ms and require the
    // quick tasks within 250 ms, which a loaded machine could miss.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let slow = io
        .concurrent(move |io| io.blocking(move || gate_rx.recv().is_ok()))
        .unwrap();
    let quick: Vec<_> = (0..4)
        .map(|i| {
            io.concurrent(move |io| {
                io.sleep(Duration::from_millis(10)).unwrap();
                i
            })
            .unwrap()
        })
        .collect();
    let sum: i32 = quick.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, 6);
    gate_tx.send(()).unwrap();
    assert!(
        slow.join().unwrap().unwrap(),
        "the blocking call got the gate's message"
    );
}

fn canceled_blocking_call_returns_at_once(io: &Io) {
    if !has_concurrency(io) {
        io.cancel_current();
        assert_canceled(io.blocking(|| 1));
        return;
    }
    // The blocking call ends only when the gate is dropped, after `cancel` has returned: a
    // cancel that waited for the call would hang (the watchdog fails it). It used to sleep
    // 400 ms and require the cancel within 300 ms.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let t = io
        .concurrent(move |io| io.blocking(move || gate_rx.recv().is_err()))
        .unwrap();
    io.sleep(Duration::from_millis(20)).unwrap();
    assert_canceled(t.cancel().unwrap());
    drop(gate_tx);
}

// ---- time ------------------------------------------------------------------------------------

fn sleep_waits_at_least_the_duration(io: &Io) {
    let start = io.now();
    io.sleep(Duration::from_millis(30)).unwrap();
    assert!(io.now() - start >= Duration::from_millis(30));
    let deadline = io.now() + Duration::from_millis(10);
    io.sleep_until(deadline).unwrap();
    assert!(io.now() >= deadline);
    io.sleep_until(deadline - Duration::from_millis(5)).unwrap(); // past: returns at once
}

fn concurrent_sleeps_overlap(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    // Eight tasks are all in a long sleep at once (a sleep that held its thread or worker
    // would keep the others from getting there, and the test would hang), then all canceled.
    // It used to time eight 100 ms sleeps and require them within 700 ms.
    let asleep = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let asleep = asleep.clone();
            io.concurrent(move |io| {
                asleep.fetch_add(1, Ordering::SeqCst);
                io.sleep(Duration::from_secs(3600))
            })
            .unwrap()
        })
        .collect();
    while asleep.load(Ordering::SeqCst) < 8 {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    for t in tasks {
        assert_canceled(t.cancel().unwrap());
    }
}

fn deadline_stops_a_sleep_with_timed_out(io: &Io) {
    let start = crate::support::now();
    let r = io.timeout_until(crate::support::now() + Duration::from_millis(30), |_| {
        io.sleep(Duration::from_secs(30))
    });
    let err = r.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(!zsync::is_canceled(&err));
    assert!(crate::support::elapsed(start) < Duration::from_secs(2));
    // Outside the deadline, operations work again.
    io.sleep(Duration::from_millis(1)).unwrap();
}

fn wall_clock_is_close_to_system_time(io: &Io) {
    let a = std::time::SystemTime::now();
    let b = io.wall_clock();
    let diff = b.duration_since(a).unwrap_or_default();
    assert!(diff < Duration::from_secs(1));
}

// ---- groups ----------------------------------------------------------------------------------

fn group_joins_all_in_start_order(io: &Io) {
    let mut g = Group::new(io);
    for i in 0..50u32 {
        g.spawn(move |_| i);
    }
    assert_eq!(g.len(), 50);
    assert_eq!(g.join_all().unwrap(), (0..50).collect::<Vec<_>>());
}

fn group_fail_fast_cancels_the_rest_and_reports_first_error(io: &Io) {
    if !io.supports_concurrency() {
        // Inline: the failure cancels tasks started after it.
        let mut g: Group<std::io::Result<u32>> = Group::fail_fast(io);
        g.spawn(|_| Err(std::io::Error::other("first failure")));
        g.spawn(|io| io.sleep(Duration::from_secs(30)).map(|_| 1));
        let err = g.try_join_all().unwrap_err();
        assert_eq!(err.to_string(), "first failure");
        return;
    }
    let start = crate::support::now();
    let mut g: Group<std::io::Result<u32>> = Group::fail_fast(io);
    for _ in 0..4 {
        g.concurrent(|io| io.sleep(Duration::from_secs(30)).map(|_| 1))
            .unwrap();
    }
    g.concurrent(|io| {
        io.sleep(Duration::from_millis(20))?;
        Err(std::io::Error::other("first failure"))
    })
    .unwrap();
    let err = g.try_join_all().unwrap_err();
    assert_eq!(err.to_string(), "first failure");
    assert!(crate::support::elapsed(start) < Duration::from_secs(5));
}

fn group_wait_all_policy_lets_others_finish(io: &Io) {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let mut g: Group<std::io::Result<u32>> = Group::with_policy(io, GroupPolicy::WaitAll);
    g.spawn(|_| Err(std::io::Error::other("bad")));
    g.spawn(move |io| {
        io.sleep(Duration::from_millis(20))?;
        f.fetch_add(1, Ordering::SeqCst);
        Ok(2)
    });
    assert_eq!(g.try_join_all().unwrap_err().to_string(), "bad");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "WaitAll does not cancel the others"
    );
    let mut g: Group<std::io::Result<u32>> = Group::with_policy(io, GroupPolicy::WaitAll);
    g.spawn(|_| Ok(1));
    g.spawn(|io| io.sleep(Duration::from_millis(5)).map(|_| 2));
    assert_eq!(g.try_join_all().unwrap(), vec![1, 2]);
}

fn dropping_a_group_cancels_its_tasks(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let canceled = Arc::new(AtomicUsize::new(0));
    let start = crate::support::now();
    {
        let mut g = Group::new(io);
        for _ in 0..4 {
            let c = canceled.clone();
            g.concurrent(move |io| {
                if io
                    .sleep(Duration::from_secs(30))
                    .is_err_and(|e| zsync::is_canceled(&e))
                {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
        }
        io.sleep(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(canceled.load(Ordering::SeqCst), 4);
    assert!(crate::support::elapsed(start) < Duration::from_secs(2));
}

fn group_cancel_returns_values(io: &Io) {
    // Inline on Blocking (the short sleep finishes), queued elsewhere (the long one is canceled).
    let long = io.supports_concurrency();
    let mut g = Group::new(io);
    g.spawn(move |io| {
        let d = if long {
            Duration::from_secs(30)
        } else {
            Duration::from_millis(1)
        };
        io.sleep(d).is_err_and(|e| zsync::is_canceled(&e))
    });
    assert_eq!(g.cancel(), vec![long]);
}

conformance! {
    on sim:
        spawn_join_returns_value,
        spawn_closure_receives_an_io_of_the_same_model,
        model_kind_names_the_model_and_is_seen_by_tasks,
        current_io_is_set_in_root,
        blocking_spawn_runs_eagerly_others_eventually,
        many_spawns_each_run_exactly_once,
        spawned_waiters_blocking_every_worker_still_let_the_queued_feeder_run,
        nested_fork_join_does_not_deadlock,
        concurrent_runs_concurrently_or_is_refused,
        spawn_storm_from_many_tasks_counts_exactly,
        cancel_storm_leaves_nothing_running,
        is_finished_reports_completion,
        panic_in_task_resumes_on_joiner,
        panic_in_concurrent_task_resumes_on_joiner,
        panic_in_task_resumes_on_cancel_and_drop,
        panic_in_detached_task_is_reraised_by_run,
        cancel_interrupts_a_long_sleep_promptly,
        cancel_right_after_spawn_is_never_lost,
        canceled_task_sees_canceled_at_every_cancellation_point,
        canceled_error_is_not_retried_by_std_helpers,
        dropping_a_handle_cancels_and_waits,
        cancel_returns_the_value_of_a_finished_task,
        detached_tasks_are_canceled_and_awaited_at_shutdown,
        sleep_waits_at_least_the_duration,
        concurrent_sleeps_overlap,
        deadline_stops_a_sleep_with_timed_out,
        wall_clock_is_close_to_system_time,
        group_joins_all_in_start_order,
        group_fail_fast_cancels_the_rest_and_reports_first_error,
        group_wait_all_policy_lets_others_finish,
        dropping_a_group_cancels_its_tasks,
        group_cancel_returns_values,
    ;
    not on sim:
        join_of_unstarted_task_runs_inline_on_saturated_pool,
        concurrent_tasks_blocking_on_each_other_do_not_deadlock,
        join_is_a_cancellation_point,
        canceling_a_task_cancels_the_tasks_it_started,
        detached_task_runs_to_completion,
        blocking_runs_the_call_and_returns_its_value,
        blocking_call_does_not_stall_other_tasks,
        canceled_blocking_call_returns_at_once,
}
standalone! {
    /// A Threaded pool whose every worker is blocked while a spawned task waits says so on
    /// stderr, once, naming the blocked and the waiting tasks' spawn sites and pointing at
    /// `io.concurrent` (and then runs the waiting task: the child returns). Checked in a child
    /// process (this test binary re-run on the ignored child test) to see its stderr.
    #[test]
    fn a_stuck_threaded_pool_is_reported_once_naming_the_tasks() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tasks::stuck_threaded_pool_child", "--nocapture", "--include-ignored"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
        let site = |what: &str| {
            stderr
                .lines()
                .find_map(|l| l.strip_prefix(&format!("child: {what} site ")).map(str::to_owned))
                .unwrap_or_else(|| panic!("no {what} site in:\n{stderr}"))
        };
        let (waiter, feeder) = (site("waiter"), site("feeder"));
        let report = "zsync: every thread of the Threaded pool (2 workers) has been blocked";
        assert_eq!(stderr.matches(report).count(), 1, "{stderr}");
        let line = |label: &str| {
            stderr
                .lines()
                .find_map(|l| l.strip_prefix(&format!("  {label}: ")))
                .unwrap_or_else(|| panic!("no {label:?} line in:\n{stderr}"))
        };
        let blocked = line("blocked in");
        assert!(blocked.starts_with(&waiter) && blocked.ends_with(" (x2)"), "{stderr}");
        assert!(line("waiting").starts_with(&feeder), "{stderr}");
        assert!(stderr.contains("`io.concurrent`"), "{stderr}");
    }

    /// The child of `a_stuck_threaded_pool_is_reported_once_naming_the_tasks`: 2 workers blocked in
    /// spawned waiters, the feeder queued. Prints the spawn sites it expects in the report.
    fn stuck_pool_child(io: &Io) {
        assert_eq!(io.model(), zsync::ModelKind::Threaded);
        let (started_tx, started_rx) = zsync::channel::unbounded::<()>();
        let (go_tx, go_rx) = zsync::channel::unbounded::<()>();
        let waiter_line = line!() + 4;
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (started_tx, go_rx) = (started_tx.clone(), go_rx.clone());
                io.spawn(move |_| {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap()
                })
            })
            .collect();
        for _ in 0..2 {
            started_rx.recv().unwrap();
        }
        let feeder_line = line!() + 1;
        let feeder = io.spawn(move |_| (0..2).for_each(|_| go_tx.send(()).unwrap()));
        eprintln!("child: waiter site {}:{waiter_line}:", file!());
        eprintln!("child: feeder site {}:{feeder_line}:", file!());
        for w in waiters {
            w.join().unwrap();
        }
        feeder.join().unwrap();
    }

    /// Run by `a_stuck_threaded_pool_is_reported_once_naming_the_tasks` only.
    #[test]
    #[ignore = "run in a child process by a_stuck_threaded_pool_is_reported_once_naming_the_tasks"]
    fn stuck_threaded_pool_child() {
        crate::support::run_on(crate::support::threaded, "stuck_threaded_pool_child", stuck_pool_child);
    }
}

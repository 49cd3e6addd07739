//! Panic containment (issue 11): user code that the runtime calls outside a task's own closure
//! — a detached task's value's `Drop`, a joiner's waker, a panic payload's `Drop` — must not
//! unwind scheduler code. Its panic is re-raised by `run` once every task has finished, and the
//! runtime keeps working meanwhile. Every scenario runs on every model.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::time::Duration;

use zsync::{Event, Io};

#[path = "conformance/support/mod.rs"]
#[allow(unused_macros)]
mod support;

use support::MakeBuilder;

/// A value whose `Drop` panics with `"value drop"`.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("value drop");
    }
}

/// A panic payload whose `Drop` panics, unless disarmed (the test disarms the one it gets back).
struct PayloadBomb {
    armed: bool,
}

impl Drop for PayloadBomb {
    fn drop(&mut self) {
        if self.armed {
            panic!("payload drop");
        }
    }
}

/// A waker that panics when woken.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker boom");
    }
}

/// What `run` did with a body.
struct Outcome {
    /// What `run` re-raised, if anything.
    payload: Option<Box<dyn Any + Send>>,
    /// Whether the body returned: a contained panic is re-raised only after that, while an
    /// escaped one unwound the runtime under it.
    body_returned: bool,
}

/// Runs `body` on a runtime of `builder` with `workers` workers and reports what `run` did,
/// aborting the test process if it hangs (a worker killed by an escaped panic used to leave
/// `run` waiting for its task forever).
fn run_catching(builder: MakeBuilder, workers: usize, name: &str, body: fn(&Io)) -> Outcome {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let name = name.to_string();
    std::thread::spawn(move || {
        for _ in 0..600 {
            std::thread::sleep(Duration::from_millis(100));
            if flag.load(Ordering::Acquire) {
                return;
            }
        }
        eprintln!("{name} hung for 60 s: aborting");
        std::process::abort();
    });
    let body_returned = AtomicBool::new(false);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        builder().worker_threads(workers).run(|io| {
            body(io);
            body_returned.store(true, Ordering::SeqCst);
        });
    }));
    done.store(true, Ordering::Release);
    Outcome {
        payload: result.err(),
        body_returned: body_returned.load(Ordering::SeqCst),
    }
}

/// Worker counts each scenario runs with: with one, every task completes on the thread that
/// called `run` (on Green, inside its fibers), which is where a stale current-fiber pointer
/// shows.
const WORKERS: [usize; 2] = [1, 2];

/// The runtime still works on the thread that ran it, with zsync calls that look at the
/// thread's current fiber: on Green a stale current-fiber pointer left by an unwound fiber
/// would make the sleep park a fiber that no longer exists.
fn zsync_still_works_on_this_thread() {
    assert!(Io::current().is_none());
    zsync::run(zsync::Model::Blocking, |io| {
        io.sleep(Duration::from_millis(1)).unwrap();
        assert_eq!(io.spawn(|_| 5).join().unwrap(), 5);
    });
}

/// What a body does after the panicky part: the runtime must keep scheduling tasks.
fn keeps_working(io: &Io) {
    let tasks: Vec<_> = (0..8u32).map(|i| io.spawn(move |_| i * 2)).collect();
    let sum: u32 = tasks.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, 56);
    io.sleep(Duration::from_millis(1)).unwrap();
}

fn assert_str_payload(payload: Option<Box<dyn Any + Send>>, expected: &str) {
    let payload = payload.unwrap_or_else(|| panic!("run returned normally, expected {expected:?}"));
    let got = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    assert_eq!(got, Some(expected));
}

// ---- a detached task's value panics in its `Drop` --------------------------------------------

/// The task finishes after it was detached: its worker drops the value (in `Core::complete`).
fn detached_value_dropped_by_the_worker(io: &Io) {
    let (tx, rx) = zsync::channel::bounded::<()>(1);
    let (ack_tx, ack_rx) = zsync::channel::bounded::<()>(1);
    match support::concurrent_or_refused(io, move |_| {
        rx.recv().unwrap();
        ack_tx.send(()).unwrap();
        PanicsOnDrop
    }) {
        Some(task) => {
            task.detach();
            tx.send(()).unwrap();
            // Until the task has its message, the body must not return: `run` would cancel the
            // task at its `recv` (a loaded machine may not have started it yet).
            ack_rx.recv().unwrap();
        }
        // Blocking: the task ran inline at spawn already.
        None => io.spawn(|_| PanicsOnDrop).detach(),
    }
    keeps_working(io);
}

/// The task finished before it was detached: `detach` drops the value on the caller.
fn detached_value_dropped_by_detach(io: &Io) {
    let task = io.spawn(|_| PanicsOnDrop);
    while !task.is_finished() {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    task.detach();
    keeps_working(io);
}

fn detached_task_whose_value_panics_on_drop(builder: MakeBuilder) {
    for (name, body) in [
        (
            "dropped by the worker",
            detached_value_dropped_by_the_worker as fn(&Io),
        ),
        ("dropped by detach", detached_value_dropped_by_detach),
    ] {
        for workers in WORKERS {
            let outcome = run_catching(builder, workers, name, body);
            assert!(outcome.body_returned, "{name}, {workers} workers");
            assert_str_payload(outcome.payload, "value drop");
            zsync_still_works_on_this_thread();
        }
    }
}

// ---- a joiner's waker panics ------------------------------------------------------------------

fn join_event_waker_panics(io: &Io) {
    let (tx, rx) = zsync::channel::bounded::<()>(1);
    let Some(mut task) = support::concurrent_or_refused(io, move |_| {
        rx.recv().unwrap();
        7
    }) else {
        return; // Blocking: no task can finish after the poll
    };
    let waker = Waker::from(Arc::new(PanickingWaker));
    assert!(task.join_event().poll_event(&waker).is_pending());
    // The task's worker wakes the user's waker when the task completes.
    tx.send(()).unwrap();
    while !task.is_finished() {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    match task.join_event().poll_event(Waker::noop()) {
        Poll::Ready(v) => assert_eq!(v.unwrap(), 7),
        Poll::Pending => panic!("a finished task's join_event is ready"),
    }
    keeps_working(io);
}

fn join_event_waker_that_panics(builder: MakeBuilder) {
    for workers in WORKERS {
        let outcome = run_catching(
            builder,
            workers,
            "join_event waker",
            join_event_waker_panics,
        );
        assert!(outcome.body_returned, "{workers} workers");
        if format!("{:?}", builder()).contains("Blocking") {
            assert!(outcome.payload.is_none());
        } else {
            assert_str_payload(outcome.payload, "waker boom");
        }
        zsync_still_works_on_this_thread();
    }
}

// ---- panic payloads whose `Drop` panics -------------------------------------------------------

/// Two detached tasks panic with a payload whose `Drop` panics: `run` keeps the first and drops
/// the second, which must not unwind the worker that records it.
fn two_detached_payload_bombs(io: &Io) {
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let started = started.clone();
        io.spawn(move |_| {
            started.fetch_add(1, Ordering::SeqCst);
            panic::panic_any(PayloadBomb { armed: true })
        })
        .detach();
    }
    keeps_working(io);
}

/// The root panics too: `run` re-raises the root's panic and drops the detached task's payload,
/// which must not panic while the root's panic unwinds (that would abort).
fn root_panics_after_a_detached_payload_bomb(io: &Io) {
    let task = io.spawn(|_| -> () { panic::panic_any(PayloadBomb { armed: true }) });
    while !task.is_finished() {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    task.detach();
    panic!("root boom");
}

fn panic_payload_whose_drop_panics(builder: MakeBuilder) {
    for workers in WORKERS {
        let outcome = run_catching(
            builder,
            workers,
            "payload bombs",
            two_detached_payload_bombs,
        );
        assert!(outcome.body_returned, "{workers} workers");
        let mut payload = outcome
            .payload
            .expect("run re-raises the detached task's panic")
            .downcast::<PayloadBomb>()
            .unwrap_or_else(|_| panic!("run re-raises the first payload"));
        payload.armed = false;
        zsync_still_works_on_this_thread();

        let outcome = run_catching(
            builder,
            workers,
            "root panic and a payload bomb",
            root_panics_after_a_detached_payload_bomb,
        );
        assert_str_payload(outcome.payload, "root boom");
        zsync_still_works_on_this_thread();
    }
}

// ---- a refused task's closure panics in its `Drop` ---------------------------------------------

/// Threaded with no thread for `concurrent` tasks: every `concurrent` is refused.
fn threaded_refusing_concurrency() -> zsync::Builder {
    zsync::Builder::new(zsync::Model::Threaded).max_concurrent_threads(0)
}

fn refused_closure_panics_on_drop(io: &Io) {
    let bomb = PanicsOnDrop;
    let refused = io.concurrent(move |_| drop(bomb)).map(|_| ()).unwrap_err();
    // The closure comes back unrun, in the error, and the task it was to become is forgotten
    // (not left counted as live: `run` would wait for it). Its captures' `Drop` runs where the
    // caller drops the error, and its panic unwinds there.
    let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(refused)));
    assert_str_payload(dropped.err(), "value drop");
    keeps_working(io);
}

#[test]
fn refused_concurrent_task_whose_closure_panics_on_drop() {
    for workers in WORKERS {
        let outcome = run_catching(
            threaded_refusing_concurrency,
            workers,
            "refused closure",
            refused_closure_panics_on_drop,
        );
        assert!(outcome.body_returned);
        assert!(outcome.payload.is_none());
    }
}

// ---- per model --------------------------------------------------------------------------------

macro_rules! per_model {
    ($($name:ident),* $(,)?) => {
        mod blocking {
            $(#[test] fn $name() { super::$name(super::support::blocking) })*
        }
        mod threaded {
            $(#[test] fn $name() { super::$name(super::support::threaded) })*
        }
        mod green_epoll {
            $(#[test] fn $name() { super::$name(super::support::green_epoll) })*
        }
        mod green_uring {
            $(#[test] fn $name() {
                if !super::support::skip_without_io_uring(concat!("panics test ", stringify!($name), " on green_uring")) {
                    super::$name(super::support::green_uring)
                }
            })*
        }
        mod custom {
            $(#[test] fn $name() { super::$name(super::support::custom) })*
        }
    };
}

per_model! {
    detached_task_whose_value_panics_on_drop,
    join_event_waker_that_panics,
    panic_payload_whose_drop_panics,
}

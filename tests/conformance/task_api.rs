//! Conformance tests: the task API of issue 12 — `try_join`, the closure a refused `concurrent`
//! gives back, task ids and names, `Group::join_next`, task-local storage.

use std::collections::HashSet;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use zsync::channel;
use zsync::task::{self, TaskId};
use zsync::{ConcurrencyUnavailable, Group, Io};

use crate::support::{self, concurrent_or_refused};

// ---- try_join ------------------------------------------------------------------------------

fn try_join_flattens_the_task_error(io: &Io) {
    let ok = io.spawn(|_| Ok::<_, io::Error>(7));
    assert_eq!(ok.try_join().unwrap(), 7);
    let failed = io.spawn(|_| Err::<u8, _>(io::Error::other("task failed")));
    assert_eq!(failed.try_join().unwrap_err().to_string(), "task failed");

    /// An application error that converts from `io::Error`.
    #[derive(Debug, PartialEq)]
    enum AppError {
        Io(String),
        Bad,
    }
    impl From<io::Error> for AppError {
        fn from(e: io::Error) -> AppError {
            AppError::Io(e.to_string())
        }
    }
    let bad = io.spawn(|_| Err::<u8, _>(AppError::Bad));
    assert_eq!(bad.try_join(), Err(AppError::Bad));
    let fine = io.spawn(|_| Ok::<u8, AppError>(1));
    assert_eq!(fine.try_join(), Ok(1));
}

fn try_join_resumes_a_panic_on_the_joiner(io: &Io) {
    let task = io.spawn(|_| -> io::Result<()> { panic!("try_join boom") });
    let payload = panic::catch_unwind(AssertUnwindSafe(|| task.try_join())).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"try_join boom"));
}

fn try_join_of_a_canceled_joiner_is_canceled(io: &Io) {
    let Some(outer) = concurrent_or_refused(io, |io| {
        let inner = io.spawn(|io| io.sleep(std::time::Duration::from_secs(60)));
        io.cancel_current();
        // Canceled either way: the join, or the sleep of the inner task (its child).
        inner.try_join()
    }) else {
        return;
    };
    support::assert_canceled(outer.join().unwrap());
}

// ---- concurrent gives the closure back ------------------------------------------------------

fn refused_concurrent_gives_the_closure_back_unrun(io: &Io) {
    let ran = Arc::new(AtomicUsize::new(0));
    let token = Arc::new(());
    let (r, t) = (ran.clone(), token.clone());
    match io.concurrent(move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        Arc::strong_count(&t)
    }) {
        Ok(task) => {
            assert!(io.supports_concurrency());
            assert!(task.join().unwrap() >= 2);
        }
        Err(refused) => {
            assert!(!io.supports_concurrency());
            assert_eq!(refused.model_name(), io.model_name());
            assert!(refused.to_string().contains("concurrency unavailable"));
            assert!(format!("{refused:?}").contains("ConcurrencyUnavailable"));
            assert_eq!(ran.load(Ordering::SeqCst), 0, "not run");
            assert_eq!(
                Arc::strong_count(&token),
                2,
                "its captures are alive, in the error"
            );
            let closure = refused.into_inner();
            assert!(io.spawn(closure).join().unwrap() >= 2);
        }
    }
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(Arc::strong_count(&token), 1, "dropped once run");
    // `?` into io::Error still works, and drops the closure.
    let via_question_mark = || -> io::Result<()> {
        io.concurrent(|_| ())?.join()?;
        Ok(())
    };
    match via_question_mark() {
        Ok(()) => assert!(io.supports_concurrency()),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::Unsupported),
    }
    // The plain error still converts from the one with a closure.
    if let Err(refused) = io.concurrent(|_| ()) {
        let (plain, _closure): (ConcurrencyUnavailable, _) = refused.into_parts();
        assert_eq!(plain, ConcurrencyUnavailable::new(io.model_name()));
    }
}

fn refused_group_concurrent_gives_the_closure_back(io: &Io) {
    let mut group = Group::new(io);
    for i in 0..3u32 {
        if let Err(refused) = group.concurrent(move |_| i * 10) {
            assert!(!io.supports_concurrency());
            group.spawn(refused.into_inner());
        }
    }
    assert_eq!(group.join_all().unwrap(), [0, 10, 20]);
}

// ---- ids and names ---------------------------------------------------------------------------

fn task_ids_are_unique_and_seen_from_inside(io: &Io) {
    let root = task::current().expect("the root task has an identity").id();
    assert_eq!(task::current().unwrap().name(), None);
    let mut ids = HashSet::new();
    ids.insert(root);
    let tasks: Vec<_> = (0..64)
        .map(|_| io.spawn(|_| task::current().unwrap().id()))
        .collect();
    for t in tasks {
        let id = t.id();
        assert!(ids.insert(id), "{id} given twice");
        assert_eq!(t.join().unwrap(), id, "a task sees its own id");
    }
    assert_eq!(task::current().unwrap().id(), root, "the root's id is back");
    // A task run inline by its joiner has its own identity too.
    let outer = io.spawn(|io| {
        let me = task::current().unwrap().id();
        let inner = io.spawn(|_| task::current().unwrap().id());
        let inner_id = inner.id();
        (
            me,
            inner_id,
            inner.join().unwrap(),
            task::current().unwrap().id(),
        )
    });
    let outer_id = outer.id();
    let (me, inner_id, seen_by_inner, me_after) = outer.join().unwrap();
    assert_eq!((me, me_after), (outer_id, outer_id));
    assert_eq!(seen_by_inner, inner_id);
    assert_ne!(inner_id, outer_id);
    let id: TaskId = root;
    assert_eq!(id.to_string(), format!("#{}", id.as_u64()));
}

fn named_tasks_carry_their_name(io: &Io) {
    let seen = |_: &Io| task::current().unwrap().name().map(str::to_owned);
    let named = io.task().name("conn").spawn(seen);
    assert_eq!(named.name(), Some("conn"));
    assert!(format!("{named:?}").contains("conn"));
    assert_eq!(named.join().unwrap().as_deref(), Some("conn"));
    let owned = io.task().name(format!("conn {}", 7)).spawn(seen);
    assert_eq!(owned.join().unwrap().as_deref(), Some("conn 7"));
    assert_eq!(io.spawn(seen).join().unwrap(), None);
    match io.task().name("worker").concurrent(seen) {
        Ok(task) => {
            assert_eq!(task.name(), Some("worker"));
            assert_eq!(task.join().unwrap().as_deref(), Some("worker"));
        }
        Err(refused) => assert_eq!(io.spawn(refused.into_inner()).join().unwrap(), None),
    }
    let mut group = Group::new(io);
    group.task().name("member").spawn(seen);
    if let Err(refused) = group.task().name("member").concurrent(seen) {
        group.spawn(refused.into_inner());
    }
    let names = group.join_all().unwrap();
    assert_eq!(names[0].as_deref(), Some("member"));
}

// ---- Group::join_next -----------------------------------------------------------------------

/// Three tasks, released in the order 2, 0, 1: `join_next` returns them in that order.
fn join_next_returns_tasks_in_completion_order(io: &Io) {
    let mut group = Group::new(io);
    let mut gates = Vec::new();
    for i in 0..3u32 {
        let (tx, rx) = channel::unbounded::<()>();
        gates.push(tx);
        if let Err(refused) = group.concurrent(move |_| rx.recv().map(|()| i).unwrap_or(99)) {
            // Blocking: each would wait for a release that comes later; check the rest inline.
            drop(refused);
            let mut group = Group::new(io);
            for i in 0..3u32 {
                group.spawn(move |_| i);
            }
            let mut seen: Vec<u32> = std::iter::from_fn(|| group.join_next().unwrap()).collect();
            seen.sort();
            assert_eq!(seen, [0, 1, 2]);
            assert!(group.is_empty());
            assert_eq!(group.join_next().unwrap(), None);
            return;
        }
    }
    assert_eq!(group.len(), 3);
    assert_eq!(group.try_join_next(), None, "none finished yet");
    for i in [2usize, 0, 1] {
        gates[i].send(()).unwrap();
        assert_eq!(group.join_next().unwrap(), Some(i as u32));
    }
    assert!(group.is_empty());
    assert_eq!(group.join_next().unwrap(), None);
}

/// An accept loop's pattern: 10 000 short tasks, reaped as they finish (waiting for one when
/// 64 are in the group). A reaped task's memory is freed at once: its value (holding a token)
/// is gone, so the tokens alive never exceed the tasks in the group.
fn reaping_keeps_a_long_lived_group_small(io: &Io) {
    const TASKS: usize = 10_000;
    const MAX_IN_GROUP: usize = 64;
    let token = Arc::new(());
    let mut group = Group::new(io);
    let mut reaped = 0;
    let mut max_len = 0;
    for _ in 0..TASKS {
        let t = token.clone();
        group.spawn(move |_| t);
        max_len = max_len.max(group.len());
        while let Some(value) = group.try_join_next() {
            drop(value);
            reaped += 1;
        }
        if group.len() >= MAX_IN_GROUP {
            drop(group.join_next().unwrap().expect("a task"));
            reaped += 1;
        }
        assert!(
            Arc::strong_count(&token) - 1 <= group.len(),
            "a reaped task's value was freed"
        );
    }
    assert!(max_len <= MAX_IN_GROUP, "{max_len}");
    while let Some(value) = group.join_next().unwrap() {
        drop(value);
        reaped += 1;
    }
    assert_eq!(reaped, TASKS);
    assert_eq!(Arc::strong_count(&token), 1);
}

fn join_next_resumes_a_panic_and_the_group_goes_on(io: &Io) {
    let mut group = Group::new(io);
    group.spawn(|_| -> u32 { panic!("member boom") });
    group.spawn(|_| 5);
    let mut values = Vec::new();
    let mut panics = 0;
    loop {
        match panic::catch_unwind(AssertUnwindSafe(|| group.join_next())) {
            Ok(Ok(Some(v))) => values.push(v),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("{e}"),
            Err(payload) => {
                assert_eq!(payload.downcast_ref::<&str>(), Some(&"member boom"));
                panics += 1;
            }
        }
    }
    assert_eq!((values, panics), (vec![5], 1));
}

fn join_next_of_a_canceled_caller_is_canceled(io: &Io) {
    let Some(outer) = concurrent_or_refused(io, |io| {
        let mut group = Group::new(io);
        // Dropped before the group (declared after it): the member's wait then ends.
        let (_tx, rx) = channel::unbounded::<()>();
        group.spawn(move |io| io.shielded(|| rx.recv().is_ok()));
        io.cancel_current();
        group.join_next()
    }) else {
        return;
    };
    support::assert_canceled(outer.join().unwrap());
}

// ---- task_local! -----------------------------------------------------------------------------

zsync::task_local! {
    static REQUEST: u32;
    static NAME: String;
}

/// Counts drops of the values it is part of.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

zsync::task_local! {
    static COUNTED: Counted;
}

fn task_local_scopes_nest_and_end(io: &Io) {
    assert!(REQUEST.try_with(|_| ()).is_err());
    let r = REQUEST.scope(1, || {
        assert_eq!(REQUEST.get(), 1);
        REQUEST.scope(2, || assert_eq!(REQUEST.get(), 2));
        NAME.scope("a".to_owned(), || {
            assert_eq!(NAME.with(|n| n.clone()), "a");
            assert_eq!(REQUEST.get(), 1);
        });
        // A task the scope spawns does not see it (also when run inline, as on Blocking).
        let child = io.spawn(|_| REQUEST.try_with(|v| *v).is_err());
        assert!(child.join().unwrap(), "not inherited");
        REQUEST.get() + 1
    });
    assert_eq!(r, 2);
    assert!(REQUEST.try_with(|_| ()).is_err(), "gone after the scope");
    let payload = panic::catch_unwind(|| REQUEST.with(|_| ())).unwrap_err();
    assert!(payload
        .downcast_ref::<&str>()
        .is_some_and(|m| m.contains("task-local")));
}

fn task_local_values_are_dropped_when_the_scope_ends_or_unwinds(io: &Io) {
    let drops = Arc::new(AtomicUsize::new(0));
    COUNTED.scope(Counted(drops.clone()), || {
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let d = drops.clone();
    let task = io.spawn(move |_| {
        COUNTED.scope(Counted(d), || -> () { panic!("scope boom") });
    });
    assert!(panic::catch_unwind(AssertUnwindSafe(|| task.join())).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 2, "dropped by the unwind");
    assert!(COUNTED.try_with(|_| ()).is_err());
}

/// A joiner that runs an unstarted task inline does not lend it its values, and gets them
/// back afterwards.
fn task_local_is_not_seen_by_a_task_run_inline_by_its_joiner(io: &Io) {
    REQUEST.scope(7, || {
        let t = io.spawn(|_| REQUEST.try_with(|v| *v).ok());
        assert_eq!(t.join().unwrap(), None);
        assert_eq!(REQUEST.get(), 7);
    });
}

/// Two tasks interleave (each waits for the other while its scope is open): each sees its own
/// value throughout. Run with one worker below, so that on Green both are fibers of one thread.
fn task_locals_of_interleaved_tasks_stay_apart(io: &Io) {
    let (a_tx, a_rx) = channel::unbounded::<()>();
    let (b_tx, b_rx) = channel::unbounded::<()>();
    let a = move |io: &Io| {
        REQUEST.scope(1, || {
            for _ in 0..20 {
                a_tx.send(()).unwrap();
                b_rx.recv().unwrap();
                io.yield_now();
                assert_eq!(REQUEST.get(), 1);
            }
        })
    };
    let b = move |io: &Io| {
        REQUEST.scope(2, || {
            for _ in 0..20 {
                a_rx.recv().unwrap();
                assert_eq!(REQUEST.get(), 2);
                io.sleep(std::time::Duration::from_micros(50)).unwrap();
                b_tx.send(()).unwrap();
            }
        })
    };
    let Some(a) = concurrent_or_refused(io, a) else {
        // Blocking: no interleaving; two tasks in turn each see their own value.
        let seen: Vec<u32> = [1, 2]
            .map(|v| {
                io.spawn(move |_| REQUEST.scope(v, || REQUEST.get()))
                    .join()
                    .unwrap()
            })
            .to_vec();
        assert_eq!(seen, [1, 2]);
        return;
    };
    let b = io.concurrent(b).unwrap();
    a.join().unwrap();
    b.join().unwrap();
}

fn task_local_works_outside_any_runtime(_io: &Io) {
    let got = std::thread::spawn(|| REQUEST.scope(9, || REQUEST.get()))
        .join()
        .unwrap();
    assert_eq!(got, 9);
}

conformance! {
    on sim:
        try_join_flattens_the_task_error,
        try_join_resumes_a_panic_on_the_joiner,
        try_join_of_a_canceled_joiner_is_canceled,
        refused_concurrent_gives_the_closure_back_unrun,
        refused_group_concurrent_gives_the_closure_back,
        task_ids_are_unique_and_seen_from_inside,
        named_tasks_carry_their_name,
        join_next_returns_tasks_in_completion_order,
        reaping_keeps_a_long_lived_group_small,
        join_next_resumes_a_panic_and_the_group_goes_on,
        join_next_of_a_canceled_caller_is_canceled,
        task_local_scopes_nest_and_end,
        task_local_values_are_dropped_when_the_scope_ends_or_unwinds,
        task_local_is_not_seen_by_a_task_run_inline_by_its_joiner,
        task_locals_of_interleaved_tasks_stay_apart,
        task_local_works_outside_any_runtime,
    ;
    not on sim:
}
standalone! {
    /// The interleaving test with one worker: on Green both tasks are fibers of one thread,
    /// which a `thread_local!` would get wrong.
    #[test]
    fn task_locals_stay_apart_on_one_worker_on_every_model() {
        for (name, builder) in support::models() {
            let _ = name;
            support::run_on_workers(
                builder,
                "task_locals_of_interleaved_tasks_stay_apart (1 worker)",
                task_locals_of_interleaved_tasks_stay_apart,
                1,
            );
        }
    }

    /// Threaded with no thread for `concurrent`: its refusal gives the closure back, for a task
    /// and for a group.
    #[test]
    fn threaded_at_its_limit_gives_the_closure_back() {
        zsync::Builder::new(zsync::Model::Threaded)
            .max_concurrent_threads(0)
            .run(|io| {
                let refused = io.concurrent(|_| 5).unwrap_err();
                assert_eq!(refused.model_name(), "Threaded");
                assert_eq!(io.spawn(refused.into_inner()).join().unwrap(), 5);
                let mut group = Group::new(io);
                let refused = group.concurrent(|_| 6).unwrap_err();
                group.spawn(refused.into_inner());
                assert_eq!(group.join_all().unwrap(), [6]);
            });
    }

    /// A custom model that refuses gets the closure back to the caller, whether it dropped the
    /// `Runnable` or kept it (running a kept one later does nothing: the task was taken back).
    #[test]
    fn a_refusing_custom_model_gives_the_closure_back() {
        use std::sync::Mutex;
        use zsync::{CustomModel, Model, Runnable};
        #[derive(Default)]
        struct Refuses {
            kept: Mutex<Vec<Runnable>>,
        }
        impl CustomModel for Refuses {
            fn name(&self) -> &'static str {
                "Refuses"
            }
            fn spawn(&self, task: Runnable) {
                task.run();
            }
            fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
                let mut kept = self.kept.lock().unwrap();
                if kept.is_empty() {
                    kept.push(task); // keeps the first one
                }
                Err(ConcurrencyUnavailable::new("Refuses"))
            }
        }
        let model = Arc::new(Refuses::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        zsync::run(Model::Custom(model.clone()), move |io| {
            for _ in 0..2 {
                let r = r.clone();
                let refused = io
                    .task()
                    .name("refused")
                    .concurrent(move |_| r.fetch_add(1, Ordering::SeqCst))
                    .unwrap_err();
                assert_eq!(refused.model_name(), "Refuses");
                io.spawn(refused.into_inner()).join().unwrap();
            }
        });
        let kept = std::mem::take(&mut *model.kept.lock().unwrap());
        assert_eq!(kept[0].name(), Some("refused"));
        for runnable in kept {
            runnable.run(); // taken back: does nothing
        }
        assert_eq!(ran.load(Ordering::SeqCst), 2, "each closure ran once, by the caller");
    }

    /// A named task's panic names the task on stderr (once), on every model. Checked in a child
    /// process, whose stderr the test reads.
    #[test]
    fn a_named_task_panic_names_the_task_on_stderr() {
        const CHILD: &str = "ZSYNC_TEST_NAMED_PANIC_CHILD";
        if std::env::var_os(CHILD).is_some() {
            for (_, builder) in support::models() {
                builder().run(|io| {
                    let task = io.task().name("conn-42").spawn(|_| -> () { panic!("named boom") });
                    let id = task.id();
                    assert!(panic::catch_unwind(AssertUnwindSafe(|| task.join())).is_err());
                    eprintln!("child: id was {id}");
                    let unnamed = io.spawn(|_| -> () { panic!("unnamed boom") });
                    assert!(panic::catch_unwind(AssertUnwindSafe(|| unnamed.join())).is_err());
                });
            }
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "task_api::a_named_task_panic_names_the_task_on_stderr",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let models = support::models().len();
        let reports: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("zsync: task '"))
            .collect();
        assert_eq!(reports.len(), models, "one per model, none for unnamed tasks:\n{stderr}");
        for line in stderr.lines().filter(|l| l.starts_with("child: id was ")) {
            let id = &line["child: id was ".len()..];
            let expected = format!("zsync: task 'conn-42' ({id}, spawned at tests/conformance/task_api.rs:");
            assert!(
                reports.iter().any(|r| r.starts_with(&expected) && r.ends_with(") panicked")),
                "{expected}…\n{stderr}"
            );
        }
    }
}

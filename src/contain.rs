//! Panic containment: a panic in user code never unwinds scheduler code.
//!
//! The rule (Tokio's): every call into user code on a scheduler path is contained, and a panic
//! that still reaches the scheduler aborts the process with a message instead of unwinding it.
//!
//! - **User code is caught where it runs.** A task's closure runs inside [`catch`]; so does
//!   everything of the user's that the scheduler calls after it: the `Drop` of a detached task's
//!   value, the wake-up of a joiner's waker (which an [`Event`](crate::Event) poll of
//!   `join_event` may have supplied), the drop of a panic payload the runtime discards
//!   ([`drop_payload`]). What such a call panics with is recorded like a task's panic, so
//!   [`run`](crate::run) re-raises it once every task has finished.
//! - **Scheduler code never unwinds.** A worker loop, an elastic thread, a task's completion and
//!   every wait whose memory someone else may still write into (a ring op's buffer, an offloaded
//!   call's borrows) run under [`AbortOnUnwind`]. Unwinding there would free memory that is still
//!   in use: drop a worker's fibers while the kernel writes into their stacks, unmap a stack the
//!   thread-local current-fiber pointer still points into, run a root fiber's writes after its
//!   results were dropped. The guard's destructor runs before any of that (it is the innermost
//!   frame), prints which part of the scheduler was reached and aborts. On the path that does
//!   not panic the guard is forgotten: it costs nothing.
//! - **A forced unwind is not a panic.** corosensei unwinds a suspended coroutine that is dropped
//!   with a payload of its own. [`catch`] re-raises it rather than storing it as the task's panic:
//!   the coroutine's frames must keep unwinding to its root. zsync never drops a suspended fiber
//!   (a worker with live fibers is never dropped: its loop returns only once none is left, and
//!   a panic in it aborts), so one only reaches zsync code from a coroutine of someone else's;
//!   one that would cross a task's completion or an in-flight op aborts there.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::thread;

/// Runs user code `f` and catches its panic, except a coroutine's forced unwind, which keeps
/// unwinding (see the module docs). Costs nothing when `f` does not panic.
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> thread::Result<R> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(not_forced)
}

/// Passes a caught payload through, or re-raises it if it is a coroutine's forced unwind.
#[cold]
fn not_forced(payload: Box<dyn Any + Send>) -> Box<dyn Any + Send> {
    if is_forced_unwind(&*payload) {
        panic::resume_unwind(payload);
    }
    payload
}

/// Whether `payload` is the one corosensei unwinds a dropped, suspended coroutine with.
pub(crate) fn is_forced_unwind(payload: &(dyn Any + Send)) -> bool {
    let payload: &dyn Any = payload;
    payload.type_id() == forced_unwind_type()
}

/// The type of corosensei's forced-unwind payload. The crate does not export it, so it is
/// learned once, the first time a payload is examined: by dropping a suspended coroutine whose
/// body catches what unwinds it (then lets it go on).
fn forced_unwind_type() -> TypeId {
    static TYPE: OnceLock<TypeId> = OnceLock::new();
    *TYPE.get_or_init(probe_forced_unwind_type)
}

#[cold]
fn probe_forced_unwind_type() -> TypeId {
    use corosensei::{Coroutine, Yielder};
    thread_local! {
        static SEEN: Cell<Option<TypeId>> = const { Cell::new(None) };
    }
    let mut probe = Coroutine::<(), (), ()>::new(|yielder: &Yielder<(), ()>, ()| {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| yielder.suspend(()))) {
            let any: &dyn Any = &*payload;
            SEEN.with(|s| s.set(Some(any.type_id())));
            panic::resume_unwind(payload);
        }
    });
    // Runs the body up to its suspension; dropping it then unwinds it from there.
    let _ = probe.resume(());
    drop(probe);
    SEEN.with(Cell::take)
        .expect("corosensei unwinds a dropped, suspended coroutine")
}

/// Drops a panic payload whose destructor is user code: a panic in that destructor is caught
/// (the panic hook has reported it) and its own payload dropped the same way. A chain of payloads
/// that keep panicking in their destructors is cut after a few and the rest leaked: dropping
/// must end.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    const MAX_NESTED: usize = 8;
    let mut payload = payload;
    for _ in 0..MAX_NESTED {
        match panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(nested) => payload = nested,
        }
    }
    std::mem::forget(payload);
}

/// Wakes every waker of `wakers`, also when one of them panics (a waker may be user code: an
/// [`Event`](crate::Event) polled with the user's own): the rest are still woken, so a
/// panicking waker does not take the others' wake-ups with it. Then the first panic resumes.
pub(crate) fn wake_all(wakers: impl IntoIterator<Item = std::task::Waker>) {
    let mut first: Option<Box<dyn Any + Send>> = None;
    for w in wakers {
        if let Err(payload) = catch(move || w.wake()) {
            match first {
                None => first = Some(payload),
                Some(_) => drop_payload(payload),
            }
        }
    }
    if let Some(payload) = first {
        panic::resume_unwind(payload);
    }
}

/// Aborts the process if dropped, which [`disarm`](Self::disarm) prevents: put it in the
/// innermost frame of scheduler code that must never unwind, and disarm it on every normal
/// exit. Unwinding drops it first, before the frames that own the state an unwind would free.
#[must_use = "a guard that is dropped at once guards nothing"]
pub(crate) struct AbortOnUnwind {
    /// What the guard protects, for the message: "a Green worker's loop".
    what: &'static str,
}

impl AbortOnUnwind {
    /// A guard for `what`.
    #[inline]
    pub(crate) fn new(what: &'static str) -> AbortOnUnwind {
        AbortOnUnwind { what }
    }

    /// The guarded code returned normally.
    #[inline]
    pub(crate) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        abort_unwound_into(self.what);
    }
}

/// Reports that a panic unwound into `what` and aborts: what an [`AbortOnUnwind`] guard does
/// when dropped (a zero-sized guard of a hot path calls it directly).
#[cold]
#[inline(never)]
pub(crate) fn abort_unwound_into(what: &str) -> ! {
    // `eprintln!` panics when stderr is gone; nothing may panic here.
    let _ = writeln!(
        std::io::stderr(),
        "zsync: a panic unwound into {what}, which must not unwind (memory still in use by \
         fibers, helper threads or the kernel would be freed); aborting the process. The \
         panic is reported above."
    );
    std::process::abort();
}

/// Runs `f`, scheduler code, under an [`AbortOnUnwind`] guard for `what`.
#[inline]
pub(crate) fn abort_on_unwind<R>(what: &'static str, f: impl FnOnce() -> R) -> R {
    let guard = AbortOnUnwind::new(what);
    let r = f();
    guard.disarm();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use corosensei::{Coroutine, CoroutineResult, Yielder};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn an_ordinary_panic_is_caught_and_kept() {
        let payload = catch(|| panic!("boom")).unwrap_err();
        assert!(!is_forced_unwind(&*payload));
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(catch(|| 7).unwrap(), 7);
    }

    /// A task suspended inside `catch` on a coroutine that is then dropped: corosensei's
    /// forced unwind must go on to the coroutine's root, not end as the task's "panic" with the
    /// code after `catch` running on a coroutine being torn down.
    #[test]
    fn a_forced_unwind_is_not_swallowed_as_a_task_panic() {
        let after_catch = Arc::new(AtomicBool::new(false));
        let flag = after_catch.clone();
        let mut co = Coroutine::<(), (), ()>::new(move |yielder: &Yielder<(), ()>, ()| {
            let result = catch(|| yielder.suspend(()));
            // Reached only if `catch` swallowed the unwind.
            flag.store(true, Ordering::SeqCst);
            drop(result);
        });
        assert!(matches!(co.resume(()), CoroutineResult::Yield(())));
        drop(co); // forced unwind; corosensei re-raises anything but its own payload
        assert!(!after_catch.load(Ordering::SeqCst));
    }

    #[test]
    fn a_payload_whose_drop_panics_is_dropped_without_unwinding() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        drop_payload(Box::new(Bomb));
    }

    /// A task whose scheduler-side code panics: what a bug in zsync would look like to a
    /// worker (user code is caught before it gets there).
    struct PanicsInRun;

    impl crate::task::Run for PanicsInRun {
        fn run(self: Arc<Self>) {
            panic!("a bug in scheduler code");
        }
        fn location(&self) -> &'static std::panic::Location<'static> {
            std::panic::Location::caller()
        }
    }

    /// Set in the child process to the scenario it runs.
    const CHILD_ENV: &str = "ZSYNC_TEST_ABORT_SCENARIO";

    /// Lets a panic reach the scheduler of one model: the process must abort there.
    fn panic_into_the_scheduler(scenario: &str) {
        use crate::model::ModelImpl;
        use crate::task::Runnable;
        use crate::{Builder, Model};
        let model = match scenario {
            "green" => Model::Green,
            _ => Model::Threaded,
        };
        Builder::new(model).worker_threads(1).run(|io| {
            let task = Runnable::from_arc(Arc::new(PanicsInRun));
            match (&io.inner.model, scenario) {
                (ModelImpl::Green(green), "green") => green.spawn(task, true),
                (ModelImpl::Threaded(pool), "threaded") => pool.spawn(task),
                (ModelImpl::Threaded(pool), "elastic") => pool.blocking(task).unwrap(),
                _ => unreachable!("scenario {scenario}"),
            }
            // The task runs meanwhile (on Green, on this worker while the root sleeps).
            io.sleep(std::time::Duration::from_secs(5)).unwrap();
        });
    }

    /// A panic that reaches a worker's loop (Green, Threaded) or an elastic thread aborts the
    /// process with a message naming where, instead of unwinding the scheduler (on Green:
    /// freeing the stacks of live fibers; on Threaded: killing the worker, so that `run` waited
    /// forever for the task). Each case runs in a child process: this test binary, re-run with
    /// [`CHILD_ENV`] naming the case.
    #[test]
    fn a_panic_reaching_the_scheduler_aborts_with_a_message() {
        use std::os::unix::process::ExitStatusExt;
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        if let Ok(scenario) = std::env::var(CHILD_ENV) {
            panic_into_the_scheduler(&scenario);
            return; // not aborted: the parent sees a normal exit
        }
        for (scenario, place) in [
            ("green", "a Green worker's loop"),
            ("threaded", "a Threaded worker's loop"),
            ("elastic", "an elastic thread's loop"),
        ] {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "contain::tests::a_panic_reaching_the_scheduler_aborts_with_a_message",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, scenario)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let give_up = Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Some(status);
                }
                if Instant::now() > give_up {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            assert_eq!(
                status.and_then(|s| s.signal()),
                Some(libc::SIGABRT),
                "{scenario}: {status:?}, stderr:\n{stderr}"
            );
            let expected = format!("zsync: a panic unwound into {place}");
            assert!(
                stderr.contains("a bug in scheduler code"),
                "{scenario}: {stderr}"
            );
            assert!(stderr.contains(&expected), "{scenario}: {stderr}");
        }
    }

    #[test]
    fn wake_all_wakes_the_others_when_one_waker_panics() {
        use crate::test_waker::{counter, wakes};
        struct Panicky;
        impl std::task::Wake for Panicky {
            fn wake(self: Arc<Self>) {
                panic!("waker boom");
            }
        }
        let (a, wa) = counter();
        let (b, wb) = counter();
        let bad = std::task::Waker::from(Arc::new(Panicky));
        let err = catch(|| wake_all([wa, bad, wb])).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"waker boom"));
        assert_eq!((wakes(&a), wakes(&b)), (1, 1));
    }
}

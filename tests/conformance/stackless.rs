//! Future tasks (`Io::spawn_future` and friends), `Io::block_on` and `Task` as a future: the
//! same bodies on every model.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use zsync::{Io, ModelKind};

use crate::support::{assert_canceled, assert_timed_out, has_concurrency, wait_for};

conformance! {
    on sim:
        future_task_joins_and_awaits_both_kinds_of_task,
        future_task_panic_resumes_at_join_and_await,
        cancel_drops_a_pending_future_at_its_next_poll,
        dropping_a_future_task_handle_cancels_and_waits,
        canceling_a_parent_reaches_its_future_children,
        block_on_runs_a_future_from_colorblind_code,
        block_on_drops_the_future_when_the_caller_is_canceled,
        block_on_honours_the_task_deadline,
        spawn_local_future_keeps_a_non_send_future_on_its_thread,
        concurrent_future_runs_while_the_spawner_waits_or_is_refused,
        many_future_tasks_yielding_all_complete,
        future_task_reports_its_frame_size,
        dropping_a_task_inside_a_future_poll_detaches_it_canceled,
        future_tasks_see_their_own_task_context,
        spawned_tasks_blocked_on_woken_future_tasks_all_finish,
    ;
    not on sim:
        wakers_from_foreign_threads_reach_future_tasks_and_block_on,
        future_task_canceled_by_its_parent_during_its_first_poll,
}
/// Sets its flag when dropped: tells whether a future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A future pending for ever that records its drop.
fn pending_with_flag() -> (impl Future<Output = u32> + Send + 'static, Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(false));
    let guard = DropFlag(flag.clone());
    let fut = async move {
        let _guard = guard;
        std::future::pending::<u32>().await
    };
    (fut, flag)
}

/// A one-shot signal set from any thread: the minimal foreign waker source.
#[derive(Default)]
struct Signal {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Signal {
    fn set(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap();
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn wait(self: &Arc<Self>) -> SignalWait {
        SignalWait(self.clone())
    }
}

struct SignalWait(Arc<Signal>);

impl Future for SignalWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.state.lock().unwrap();
        if s.0 {
            return Poll::Ready(());
        }
        s.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn future_task_joins_and_awaits_both_kinds_of_task(io: &Io) {
    let closure = io.spawn(|_| 20);
    let inner = io.spawn_future(async { 1 });
    let outer = io.spawn_future(async move {
        let a = closure.await.unwrap();
        let b = inner.await.unwrap();
        zsync::task::yield_now().await;
        a + b + 21
    });
    assert_eq!(outer.join().unwrap(), 42);
    // A fiber/thread awaits a future task through block_on as well.
    let t = io.spawn_future(async { "x" });
    assert_eq!(io.block_on(t).unwrap().unwrap(), "x");
}

fn future_task_panic_resumes_at_join_and_await(io: &Io) {
    let t = io.spawn_future(async {
        zsync::task::yield_now().await;
        panic!("boom in a future");
    });
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.join())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in a future"));
    let t = io.spawn_future(async { panic!("awaited boom") });
    let outer = io.spawn_future(async move {
        std::panic::AssertUnwindSafe(t).await.ok();
    });
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| outer.join()));
    assert!(
        err.is_err(),
        "the awaited task's panic resumes in the awaiting future"
    );
    // The runtime keeps working.
    assert_eq!(io.spawn_future(async { 3 }).join().unwrap(), 3);
}

fn cancel_drops_a_pending_future_at_its_next_poll(io: &Io) {
    if io.model() == ModelKind::Blocking {
        return; // runs inline at spawn: a pending future would block for ever
    }
    let (fut, dropped) = pending_with_flag();
    let task = io.spawn_future(fut);
    assert_canceled(task.cancel());
    assert!(dropped.load(Ordering::SeqCst), "canceled future dropped");
    // A finished future task keeps its value through cancel.
    let done = io.spawn_future(async { 9 });
    wait_for("the future task to finish", || done.is_finished());
    assert_eq!(done.cancel().unwrap(), 9);
}

fn dropping_a_future_task_handle_cancels_and_waits(io: &Io) {
    if io.model() == ModelKind::Blocking {
        return;
    }
    let (fut, dropped) = pending_with_flag();
    drop(io.spawn_future(fut));
    assert!(dropped.load(Ordering::SeqCst), "drop = cancel + wait");
}

fn canceling_a_parent_reaches_its_future_children(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (fut, dropped) = pending_with_flag();
    let spawned = Arc::new(AtomicBool::new(false));
    let s = spawned.clone();
    let parent = io
        .concurrent(move |io| {
            let child = io.spawn_future(fut);
            s.store(true, Ordering::SeqCst);
            child.join()
        })
        .unwrap();
    wait_for("the parent to spawn its child", || {
        spawned.load(Ordering::SeqCst)
    });
    let r = parent.cancel().unwrap();
    assert_canceled(r);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the child future was dropped"
    );
}

fn block_on_runs_a_future_from_colorblind_code(io: &Io) {
    assert_eq!(io.block_on(async { 40 + 2 }).unwrap(), 42);
    // A future that is woken by a zsync task.
    let tx = Arc::new(Signal::default());
    let t = tx.clone();
    let setter = io.spawn(move |_| t.set());
    if io.model() == ModelKind::Blocking {
        // Ran inline already.
        assert!(io.block_on(tx.wait()).is_ok());
    } else {
        io.block_on(tx.wait()).unwrap();
    }
    setter.join().unwrap();
}

fn block_on_drops_the_future_when_the_caller_is_canceled(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (fut, dropped) = pending_with_flag();
    let waiting = Arc::new(AtomicBool::new(false));
    let w = waiting.clone();
    let task = io
        .concurrent(move |io| {
            w.store(true, Ordering::SeqCst);
            io.block_on(fut)
        })
        .unwrap();
    wait_for("the task to start waiting", || {
        waiting.load(Ordering::SeqCst)
    });
    assert_canceled(task.cancel().unwrap());
    assert!(dropped.load(Ordering::SeqCst));
}

fn block_on_honours_the_task_deadline(io: &Io) {
    let (fut, dropped) = pending_with_flag();
    let r = io.timeout(Duration::from_millis(20), |io| io.block_on(fut));
    assert_timed_out(r);
    assert!(dropped.load(Ordering::SeqCst));
}

fn wakers_from_foreign_threads_reach_future_tasks_and_block_on(io: &Io) {
    if io.model() == ModelKind::Blocking {
        // block_on only: the foreign thread wakes the calling thread.
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            s.set();
        });
        io.block_on(signal.wait()).unwrap();
        th.join().unwrap();
        return;
    }
    let signals: Vec<Arc<Signal>> = (0..32).map(|_| Arc::new(Signal::default())).collect();
    let tasks: Vec<_> = signals
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let wait = s.wait();
            io.spawn_future(async move {
                wait.await;
                i
            })
        })
        .collect();
    let setters = signals.clone();
    let th = std::thread::spawn(move || {
        for s in setters {
            s.set();
        }
    });
    let sum: usize = tasks.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, (0..32).sum());
    th.join().unwrap();
}

fn spawn_local_future_keeps_a_non_send_future_on_its_thread(io: &Io) {
    let here = std::thread::current().id();
    let shared = Rc::new(std::cell::Cell::new(0));
    let s = shared.clone();
    let task = io.spawn_local_future(async move {
        let mut threads = Vec::new();
        for _ in 0..20 {
            threads.push(std::thread::current().id());
            s.set(s.get() + 1);
            zsync::task::yield_now().await;
        }
        threads
    });
    let threads = task.join().unwrap();
    assert_eq!(shared.get(), 20);
    assert!(threads.iter().all(|t| *t == threads[0]), "never moved");
    if io.model() != ModelKind::Green {
        assert_eq!(threads[0], here, "ran on the spawner's thread");
    }
}

fn concurrent_future_runs_while_the_spawner_waits_or_is_refused(io: &Io) {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    match io.concurrent_future(async move { f.store(true, Ordering::SeqCst) }) {
        Ok(task) => {
            // The spawner waits in a zsync wait (not a join): the task still makes progress.
            while !flag.load(Ordering::SeqCst) {
                io.sleep(Duration::from_millis(1)).unwrap();
            }
            task.join().unwrap();
        }
        Err(refused) => {
            assert_eq!(io.model(), ModelKind::Blocking);
            // The future comes back unrun.
            let fut = refused.into_inner();
            assert!(!flag.load(Ordering::SeqCst));
            io.block_on(fut).unwrap();
            assert!(flag.load(Ordering::SeqCst));
        }
    }
}

fn many_future_tasks_yielding_all_complete(io: &Io) {
    // The test's custom model starts a thread per poll: fewer tasks there.
    let n: u64 = if io.model() == ModelKind::Custom {
        100
    } else {
        2000
    };
    let polls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let polls = polls.clone();
            io.spawn_future(async move {
                for _ in 0..5 {
                    polls.fetch_add(1, Ordering::Relaxed);
                    zsync::task::yield_now().await;
                }
                i
            })
        })
        .collect();
    let sum: u64 = tasks.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(sum, (0..n).sum());
    assert_eq!(polls.load(Ordering::Relaxed), n as usize * 5);
}

fn future_task_reports_its_frame_size(io: &Io) {
    let big = [7u8; 512];
    let t = io.spawn_future(async move {
        zsync::task::yield_now().await;
        big.iter().map(|&b| b as usize).sum::<usize>()
    });
    if io.model() != ModelKind::Blocking {
        let size = t.frame_size().expect("a future task reports its frame");
        assert!(size >= 512, "frame {size}");
        assert!(format!("{t:?}").contains("frame_size"));
    }
    assert_eq!(t.join().unwrap(), 7 * 512);
}

fn dropping_a_task_inside_a_future_poll_detaches_it_canceled(io: &Io) {
    if io.model() == ModelKind::Blocking {
        return;
    }
    let (fut, dropped) = pending_with_flag();
    let outer = io.spawn_future(async move {
        let io = Io::current().expect("inside a task");
        let inner = io.spawn_future(fut);
        zsync::task::yield_now().await;
        drop(inner); // must not block the worker
        5
    });
    assert_eq!(outer.join().unwrap(), 5);
    wait_for("the dropped task's future to be dropped", || {
        dropped.load(Ordering::SeqCst)
    });
}

fn future_tasks_see_their_own_task_context(io: &Io) {
    let t = io.task().name("stackless-ctx").spawn(|io| {
        let inner = io.spawn_future(async {
            let me = zsync::task::current().expect("a current task");
            let io = Io::current().expect("an Io");
            (me.id(), io.model())
        });
        let id = inner.id();
        let (seen, model) = inner.join().unwrap();
        assert_eq!(seen, id);
        model
    });
    assert_eq!(t.join().unwrap(), io.model());
}

/// A future task whose parent is canceled (and finishes) while the task's first poll runs, before
/// the task could register with its ancestors: that cancel's push cannot reach it, and nothing
/// else ever wakes it (it awaits a future that never completes). It must still be dropped, by
/// its own registration seeing the canceled ancestor — not left parked for ever (then `run`
/// would never return).
fn future_task_canceled_by_its_parent_during_its_first_poll(io: &Io) {
    if !io.supports_concurrency() {
        return; // Blocking runs future tasks inline: no concurrent cancel is possible.
    }
    let (polling_tx, polling_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let parent = io.spawn_future(async move {
        let io = Io::current().expect("a future task runs with its Io");
        let child = io.spawn_future(async move {
            let _flag = flag;
            polling_tx.send(()).unwrap();
            // Block this poll (and its thread) until the parent was canceled; bounded, in case
            // the model cannot run the parent's cancellation meanwhile.
            let _ = go_rx.recv_timeout(Duration::from_secs(20));
            std::future::pending::<()>().await;
        });
        child.detach();
        std::future::pending::<()>().await;
    });
    // Cancel from a plain thread: the runtime's workers may be busy with the blocked poll.
    let canceler = std::thread::spawn(move || {
        polling_rx.recv().unwrap();
        let canceled = parent.cancel();
        go_tx.send(()).unwrap();
        canceled
    });
    let deadline = crate::support::now() + Duration::from_secs(60);
    while !dropped.load(Ordering::SeqCst) && crate::support::now() < deadline {
        io.sleep(Duration::from_millis(2)).unwrap();
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the orphaned future task was never dropped"
    );
    let canceled = canceler.join().unwrap();
    assert!(canceled.is_err(), "the parent was dropped by its cancel");
}

/// More spawned tasks than workers, each blocked in `block_on` on a future task that was polled
/// once, parked, and is woken later: every worker blocks, the woken futures queue behind them,
/// and they must still run. On Threaded the monitor rescues the queue with extra threads; it
/// once dropped the woken futures' queue entries as stale (a future task counts as started after
/// its first poll), losing their wake-ups for good: the pool hung.
fn spawned_tasks_blocked_on_woken_future_tasks_all_finish(io: &Io) {
    const N: usize = 8;
    for round in 0..3 {
        let futures: Vec<_> = (0..N)
            .map(|i| {
                io.spawn_future(async move {
                    zsync::time::sleep(Duration::from_millis(20)).await;
                    i
                })
            })
            .collect();
        let blocked: Vec<_> = futures
            .into_iter()
            .map(|f| io.spawn(move |io| io.block_on(f).unwrap().unwrap()))
            .collect();
        let sum: usize = blocked.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sum, (0..N).sum(), "round {round}");
    }
}

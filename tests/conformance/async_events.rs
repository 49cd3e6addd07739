//! Conformance tests: every coordination event is a `Future`, and one primitive connects
//! colorblind tasks (fibers, pool threads, the caller's thread) with futures.
//!
//! The futures here run on executors that know nothing of zsync: `futures::executor::block_on`
//! on a plain thread and `futures`' `ThreadPool`. So every wake-up between the two sides crosses
//! threads: a task's waker woken from a future's thread and a future's waker from a task's.
//! The checks that a dropped future passes its wake-up on are made deterministic with counting
//! wakers: a pass-on happens inside the drop, so it is seen at once.
//!
//! The second half runs the futures as zsync's own future tasks (`Io::spawn_future`,
//! `Io::concurrent_future`) and waits for them with `Io::block_on`, next to closure tasks, on
//! every model; and on a single Green worker, where a blocking poll would stall everything.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use futures::executor::{block_on, ThreadPool};
use futures::task::ArcWake;
use zsync::channel::{self, broadcast, oneshot, watch, Queue, RecvError};
use zsync::sync::{Mutex, Notify, ResetEvent, RwLock, Semaphore, WaitGroup};
use zsync::Io;

use crate::support::{concurrent_or_refused, let_it_block};

conformance! {
    on sim:
        a_future_polled_with_a_new_waker_is_woken_through_it,
        event_futures_are_send,
        future_tasks_and_tasks_share_channels,
        future_tasks_await_every_primitive,
        a_canceled_future_task_leaves_the_primitive_untouched,
        ping_pong_with_a_future_task,
    ;
    not on sim:
        a_future_on_a_thread_receives_what_a_task_sends,
        a_task_receives_what_futures_on_threads_send,
        locks_held_by_a_task_are_awaited_by_futures,
        semaphore_acquire_is_awaitable_and_sees_close,
        wait_group_notify_and_reset_events_are_awaitable,
        broadcast_watch_oneshot_and_queue_events_are_awaitable,
        join_event_is_awaitable_from_a_thread,
        a_dropped_recv_future_passes_its_wake_up_on,
        a_dropped_lock_future_hands_the_lock_on,
        a_dropped_notified_future_passes_notify_one_on,
        futures_on_a_thread_pool_and_tasks_wake_each_other,
        futures_select_over_events_leaves_the_loser_untouched,
        io_block_on_awaits_events_and_leaves_them_on_cancel,
        futures_woken_from_foreign_threads,
        a_pipeline_of_tasks_future_tasks_pool_futures_and_async_channel,
}
/// Messages per channel test.
const N: u32 = 100;

/// A waker that counts its wake-ups.
struct Count(AtomicUsize);

impl ArcWake for Count {
    fn wake_by_ref(arc: &Arc<Self>) {
        arc.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A counting waker and its counter.
fn counting_waker() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count(AtomicUsize::new(0)));
    (count.clone(), futures::task::waker(count))
}

fn wakes(count: &Count) -> usize {
    count.0.load(Ordering::SeqCst)
}

/// One poll of `fut` with `waker`.
fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// Runs `f` on a plain thread, outside any runtime.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    std::thread::Builder::new()
        .name("async-events-test".into())
        .spawn(f)
        .unwrap()
}

/// Joins a plain thread from a task without blocking a Green worker's thread.
fn join_thread<T: Send + 'static>(io: &Io, thread: JoinHandle<T>) -> T {
    match io.blocking(move || thread.join()).unwrap() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A one-way hand-shake between a task and a thread: a zsync channel, so the task's side parks
/// its fiber (not its worker) and the thread's side its thread.
fn signal() -> (channel::Sender<()>, channel::Receiver<()>) {
    channel::unbounded()
}

// ---- One channel, both colours ----------------------------------------------------------------

/// A future awaiting `recv_event` on a plain thread receives, in order, what the task sends, on
/// a rendezvous, a one-slot and a buffered channel, then sees the channel closed.
fn a_future_on_a_thread_receives_what_a_task_sends(io: &Io) {
    for cap in [0, 1, 4] {
        let (tx, rx) = channel::bounded::<u32>(cap);
        let receiver = on_thread(move || {
            block_on(async {
                let mut got = Vec::new();
                for _ in 0..N {
                    got.push(rx.recv_event().await.unwrap());
                }
                assert_eq!(rx.recv_event().await, Err(RecvError::Closed));
                got
            })
        });
        for i in 0..N {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(
            join_thread(io, receiver),
            (0..N).collect::<Vec<_>>(),
            "cap {cap}"
        );
    }
}

/// Futures on two threads send with `send_event` (each waiting for room or, on a rendezvous
/// channel, for the task to take its offer); the task receives everything, then `Closed`.
fn a_task_receives_what_futures_on_threads_send(io: &Io) {
    for cap in [0, 1, 4] {
        let (tx, rx) = channel::bounded::<u32>(cap);
        let senders: Vec<_> = (0..2)
            .map(|k| {
                let tx = tx.clone();
                on_thread(move || {
                    block_on(async {
                        for i in 0..N {
                            tx.send_event(k * N + i).await.unwrap();
                        }
                    })
                })
            })
            .collect();
        drop(tx);
        let mut got: Vec<u32> = rx.iter().collect();
        assert_eq!(rx.recv(), Err(RecvError::Closed));
        for s in senders {
            join_thread(io, s);
        }
        got.sort_unstable();
        assert_eq!(got, (0..2 * N).collect::<Vec<_>>(), "cap {cap}");
    }
}

// ---- Locks -----------------------------------------------------------------------------------

/// The task holds a Mutex (then an RwLock, for writing and for reading) while a future on a
/// thread waits for it; releasing it lets the future in, after the task's update.
fn locks_held_by_a_task_are_awaited_by_futures(io: &Io) {
    let m = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = signal();
    let mut guard = m.lock().unwrap();
    let waiter = on_thread({
        let m = m.clone();
        move || {
            block_on(async {
                let mut ev = m.lock_event();
                assert!(futures::poll!(&mut ev).is_pending(), "the task holds it");
                ready_tx.send(()).unwrap();
                ev.await.push("future");
            })
        }
    });
    ready_rx.recv().unwrap();
    guard.push("task");
    drop(guard);
    join_thread(io, waiter);
    assert_eq!(*m.lock().unwrap(), ["task", "future"]);

    let lock = Arc::new(RwLock::new(0));
    let (ready_tx, ready_rx) = signal();
    let mut write = lock.write().unwrap();
    let reader = on_thread({
        let lock = lock.clone();
        move || {
            block_on(async {
                let mut ev = lock.read_event();
                assert!(futures::poll!(&mut ev).is_pending(), "a writer holds it");
                ready_tx.send(()).unwrap();
                *ev.await
            })
        }
    });
    ready_rx.recv().unwrap();
    *write = 5;
    drop(write);
    assert_eq!(join_thread(io, reader), 5);

    let (ready_tx, ready_rx) = signal();
    let read = lock.read().unwrap();
    let writer = on_thread({
        let lock = lock.clone();
        move || {
            block_on(async {
                let mut ev = lock.write_event();
                assert!(futures::poll!(&mut ev).is_pending(), "a reader holds it");
                ready_tx.send(()).unwrap();
                *ev.await += 1;
            })
        }
    });
    ready_rx.recv().unwrap();
    assert_eq!(*read, 5);
    drop(read);
    join_thread(io, writer);
    assert_eq!(*lock.read().unwrap(), 6);
}

/// A future waiting for two permits gets them when the task adds them; a future waiting on a
/// semaphore that the task closes completes with the closed error.
fn semaphore_acquire_is_awaitable_and_sees_close(io: &Io) {
    let sem = Arc::new(Semaphore::new(1));
    let (ready_tx, ready_rx) = signal();
    let waiter = on_thread({
        let sem = sem.clone();
        move || {
            block_on(async {
                let mut ev = sem.acquire_many_event(2);
                assert!(futures::poll!(&mut ev).is_pending());
                ready_tx.send(()).unwrap();
                ev.await.unwrap().num_permits()
            })
        }
    });
    ready_rx.recv().unwrap();
    sem.add_permits(1);
    assert_eq!(join_thread(io, waiter), 2);
    assert_eq!(sem.available_permits(), 2, "the permits came back on drop");

    let sem = Arc::new(Semaphore::new(0));
    let (ready_tx, ready_rx) = signal();
    let waiter = on_thread({
        let sem = sem.clone();
        move || {
            block_on(async {
                let mut ev = sem.acquire_event();
                assert!(futures::poll!(&mut ev).is_pending());
                ready_tx.send(()).unwrap();
                ev.await.map(drop)
            })
        }
    });
    ready_rx.recv().unwrap();
    sem.close();
    let err = join_thread(io, waiter).unwrap_err();
    assert!(zsync::is_closed(&err), "{err:?}");
}

// ---- Conditions -------------------------------------------------------------------------------

/// `WaitGroup::wait_event`, `Notify::notified_event` and `ResetEvent::wait_event` awaited on a
/// thread complete when the task finishes the group, notifies, sets.
fn wait_group_notify_and_reset_events_are_awaitable(io: &Io) {
    let wg = Arc::new(WaitGroup::new());
    let notify = Arc::new(Notify::new());
    let reset = Arc::new(ResetEvent::new());
    wg.add(1);
    let (ready_tx, ready_rx) = signal();
    let (next_tx, next_rx) = signal();
    let waiter = on_thread({
        let (wg, notify, reset) = (wg.clone(), notify.clone(), reset.clone());
        move || {
            block_on(async {
                let mut ev = wg.wait_event();
                assert!(futures::poll!(&mut ev).is_pending());
                ready_tx.send(()).unwrap();
                ev.await;
                let mut ev = notify.notified_event();
                assert!(futures::poll!(&mut ev).is_pending());
                ready_tx.send(()).unwrap();
                ev.await;
                let mut ev = reset.wait_event();
                assert!(futures::poll!(&mut ev).is_pending());
                ready_tx.send(()).unwrap();
                ev.await;
                // Already set: completes at its first poll.
                reset.wait_event().await;
                next_rx.recv_event().await.unwrap();
            })
        }
    });
    ready_rx.recv().unwrap();
    wg.done();
    ready_rx.recv().unwrap();
    notify.notify_one();
    ready_rx.recv().unwrap();
    reset.set();
    next_tx.send(()).unwrap();
    join_thread(io, waiter);
}

/// The channel family's events: a broadcast receive (then `Closed`), a watch change and a watch
/// sender's `closed`, a oneshot receive, and a `Queue`'s get and put, each awaited on a thread
/// while the task makes it complete.
fn broadcast_watch_oneshot_and_queue_events_are_awaitable(io: &Io) {
    // broadcast
    let (btx, mut brx) = broadcast::channel::<String>(4);
    let (ready_tx, ready_rx) = signal();
    let waiter = on_thread(move || {
        block_on(async {
            let mut ev = brx.recv_event();
            assert!(futures::poll!(&mut ev).is_pending());
            ready_tx.send(()).unwrap();
            let first = ev.await.unwrap();
            let second = brx.recv_event().await.unwrap();
            assert_eq!(brx.recv_event().await, Err(broadcast::RecvError::Closed));
            (first, second)
        })
    });
    ready_rx.recv().unwrap();
    btx.send("one".to_string()).unwrap();
    btx.send("two".to_string()).unwrap();
    drop(btx);
    assert_eq!(join_thread(io, waiter), ("one".into(), "two".into()));

    // watch: a receiver's change.
    let (wtx, mut wrx) = watch::channel(0u32);
    let (ready_tx, ready_rx) = signal();
    let waiter = on_thread(move || {
        block_on(async {
            let mut ev = wrx.changed_event();
            assert!(futures::poll!(&mut ev).is_pending());
            ready_tx.send(()).unwrap();
            ev.await.unwrap();
            let seen = *wrx.borrow_and_update();
            seen
        })
    });
    ready_rx.recv().unwrap();
    wtx.send(3).unwrap();
    assert_eq!(join_thread(io, waiter), 3);

    // watch: the sender's `closed`, when the task drops the last receiver.
    let (wtx, wrx) = watch::channel(0u32);
    let (ready_tx, ready_rx) = signal();
    let waiter = on_thread(move || {
        block_on(async {
            let mut ev = wtx.closed_event();
            assert!(futures::poll!(&mut ev).is_pending());
            ready_tx.send(()).unwrap();
            ev.await;
            assert!(wtx.is_closed());
        })
    });
    ready_rx.recv().unwrap();
    drop(wrx);
    join_thread(io, waiter);

    // oneshot
    let (otx, orx) = oneshot::<&str>();
    let (ready_tx, ready_rx) = signal();
    let waiter = on_thread(move || {
        block_on(async {
            let mut ev = orx.recv_event();
            assert!(futures::poll!(&mut ev).is_pending());
            ready_tx.send(()).unwrap();
            ev.await
        })
    });
    ready_rx.recv().unwrap();
    otx.send("once").unwrap();
    assert_eq!(join_thread(io, waiter), Ok("once"));

    // Queue: a get that waits for an element, then a put that waits for room.
    let queue = Arc::new(Queue::new(1));
    let (ready_tx, ready_rx) = signal();
    let waiter = on_thread({
        let queue = queue.clone();
        move || {
            block_on(async {
                let mut get = queue.get_event();
                assert!(futures::poll!(&mut get).is_pending(), "empty");
                ready_tx.send(()).unwrap();
                let got = get.await.unwrap();
                queue.put_event(10).await.unwrap(); // fills the one slot
                let mut put = queue.put_event(11);
                assert!(futures::poll!(&mut put).is_pending(), "full");
                ready_tx.send(()).unwrap();
                put.await.unwrap();
                got
            })
        }
    });
    ready_rx.recv().unwrap();
    queue.put_one(1).unwrap();
    ready_rx.recv().unwrap();
    assert_eq!(queue.get_one(), Ok(10));
    assert_eq!(join_thread(io, waiter), 1);
    assert_eq!(queue.get_one(), Ok(11));
}

/// `Task::join_event` awaited on a thread completes with the task's value once it finishes.
fn join_event_is_awaitable_from_a_thread(io: &Io) {
    let (go_tx, go_rx) = signal();
    let Some(task) = concurrent_or_refused(io, move |_| {
        go_rx.recv().unwrap();
        42
    }) else {
        // Blocking: a spawned task has run inline; its join_event completes at once.
        let mut task = io.spawn(|_| 42);
        assert_eq!(block_on(task.join_event()).unwrap(), 42);
        return;
    };
    let (ready_tx, ready_rx) = signal();
    let joiner = on_thread(move || {
        block_on(async {
            let mut task = task;
            let mut ev = task.join_event();
            assert!(futures::poll!(&mut ev).is_pending(), "it waits for go");
            ready_tx.send(()).unwrap();
            ev.await
        })
    });
    ready_rx.recv().unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(join_thread(io, joiner).unwrap(), 42);
}

// ---- Dropped futures leave the primitive untouched ---------------------------------------------

/// A receive future notified of a message and then dropped, unpolled, passes the wake-up on to
/// the next waiting receiver (a future), which gets the message; and with a task as the next
/// receiver, the message reaches the task.
fn a_dropped_recv_future_passes_its_wake_up_on(io: &Io) {
    let (tx, rx) = channel::bounded::<u32>(1);
    let (ready_tx, ready_rx) = signal();
    let (sent_tx, sent_rx) = signal();
    let futures_side = on_thread({
        let rx = rx.clone();
        move || {
            let (a_count, a_waker) = counting_waker();
            let (b_count, b_waker) = counting_waker();
            let mut a = rx.recv_event();
            let mut b = rx.recv_event();
            assert!(poll_with(&mut a, &a_waker).is_pending());
            assert!(poll_with(&mut b, &b_waker).is_pending());
            ready_tx.send(()).unwrap();
            sent_rx.recv().unwrap();
            assert_eq!((wakes(&a_count), wakes(&b_count)), (1, 0), "a is first");
            drop(a);
            assert_eq!(wakes(&b_count), 1, "a's unused wake-up went to b");
            assert_eq!(poll_with(&mut b, &b_waker), Poll::Ready(Ok(1)));
        }
    });
    ready_rx.recv().unwrap();
    tx.send(1).unwrap();
    sent_tx.send(()).unwrap();
    join_thread(io, futures_side);

    // The next receiver is a task, parked in `recv` (or about to be) when the future drops.
    let (ready_tx, ready_rx) = signal();
    let (drop_tx, drop_rx) = signal();
    let future_side = on_thread({
        let rx = rx.clone();
        move || {
            let (count, waker) = counting_waker();
            let mut a = rx.recv_event();
            assert!(poll_with(&mut a, &waker).is_pending());
            ready_tx.send(()).unwrap();
            drop_rx.recv().unwrap();
            assert_eq!(wakes(&count), 1, "notified of the message");
            drop(a);
        }
    });
    ready_rx.recv().unwrap();
    let task_rx = rx.clone();
    let Some(task) = concurrent_or_refused(io, move |_| task_rx.recv()) else {
        // Blocking: no task can wait alongside; the message must stay for the next receive.
        tx.send(2).unwrap();
        drop_tx.send(()).unwrap();
        join_thread(io, future_side);
        assert_eq!(rx.try_recv(), Ok(2));
        return;
    };
    let_it_block();
    tx.send(2).unwrap();
    drop_tx.send(()).unwrap();
    join_thread(io, future_side);
    assert_eq!(task.join().unwrap(), Ok(2));
}

/// The lock is handed to the first waiting lock future when the task unlocks; dropped unpolled,
/// that future hands it on to the next waiter (a future, then a task), and the mutex is free
/// once everybody is done.
fn a_dropped_lock_future_hands_the_lock_on(io: &Io) {
    let m = Arc::new(Mutex::new(0u32));
    let (ready_tx, ready_rx) = signal();
    let (unlocked_tx, unlocked_rx) = signal();
    let guard = m.lock().unwrap();
    let futures_side = on_thread({
        let m = m.clone();
        move || {
            let (a_count, a_waker) = counting_waker();
            let (b_count, b_waker) = counting_waker();
            let mut a = m.lock_event();
            let mut b = m.lock_event();
            assert!(poll_with(&mut a, &a_waker).is_pending());
            assert!(poll_with(&mut b, &b_waker).is_pending());
            ready_tx.send(()).unwrap();
            unlocked_rx.recv().unwrap();
            assert_eq!((wakes(&a_count), wakes(&b_count)), (1, 0), "handed to a");
            drop(a);
            assert_eq!(wakes(&b_count), 1, "a handed it on to b");
            match poll_with(&mut b, &b_waker) {
                Poll::Ready(mut g) => *g += 1,
                Poll::Pending => panic!("b was handed the lock"),
            }
        }
    });
    ready_rx.recv().unwrap();
    drop(guard);
    unlocked_tx.send(()).unwrap();
    join_thread(io, futures_side);
    assert_eq!(*m.try_lock().expect("free again"), 1);

    // The next waiter is a task.
    let (ready_tx, ready_rx) = signal();
    let (drop_tx, drop_rx) = signal();
    let guard = m.lock().unwrap();
    let future_side = on_thread({
        let m = m.clone();
        move || {
            let (_, waker) = counting_waker();
            let mut a = m.lock_event();
            assert!(poll_with(&mut a, &waker).is_pending());
            ready_tx.send(()).unwrap();
            drop_rx.recv().unwrap();
            drop(a);
        }
    });
    ready_rx.recv().unwrap();
    let task = {
        let m = m.clone();
        concurrent_or_refused(io, move |_| -> std::io::Result<()> {
            *m.lock()? += 1;
            Ok(())
        })
    };
    let_it_block();
    drop(guard);
    drop_tx.send(()).unwrap();
    join_thread(io, future_side);
    if let Some(task) = task {
        task.join().unwrap().unwrap();
        assert_eq!(*m.try_lock().expect("free again"), 2);
    } else {
        assert_eq!(*m.try_lock().expect("free again"), 1);
    }
}

/// A `notify_one` received by a notified future that is then dropped goes to the next waiting
/// future; with nobody else waiting, it is kept as the stored permit.
fn a_dropped_notified_future_passes_notify_one_on(io: &Io) {
    let notify = Arc::new(Notify::new());
    let (ready_tx, ready_rx) = signal();
    let (sent_tx, sent_rx) = signal();
    let futures_side = on_thread({
        let notify = notify.clone();
        move || {
            let (a_count, a_waker) = counting_waker();
            let (b_count, b_waker) = counting_waker();
            let mut a = notify.notified_event();
            let mut b = notify.notified_event();
            assert!(poll_with(&mut a, &a_waker).is_pending());
            assert!(poll_with(&mut b, &b_waker).is_pending());
            ready_tx.send(()).unwrap();
            sent_rx.recv().unwrap();
            assert_eq!((wakes(&a_count), wakes(&b_count)), (1, 0));
            drop(a);
            assert_eq!(wakes(&b_count), 1, "passed on to b");
            assert_eq!(poll_with(&mut b, &b_waker), Poll::Ready(()));
            // Again with nobody behind: the notification is stored.
            let mut c = notify.notified_event();
            assert!(poll_with(&mut c, &a_waker).is_pending());
            ready_tx.send(()).unwrap();
            sent_rx.recv().unwrap();
            drop(c);
        }
    });
    ready_rx.recv().unwrap();
    notify.notify_one();
    sent_tx.send(()).unwrap();
    ready_rx.recv().unwrap();
    notify.notify_one();
    sent_tx.send(()).unwrap();
    join_thread(io, futures_side);
    // The stored permit: the task's own wait completes at once.
    notify.notified().unwrap();
}

/// A future may be polled by a different task between polls (moved, or polled by a
/// combinator with another waker): the wake-up must reach the waker of the latest poll.
fn a_future_polled_with_a_new_waker_is_woken_through_it(io: &Io) {
    /// Polls `ev` with a first and then a second waker, runs `trigger`, and checks that the
    /// second is woken (at once, or once another task finished: then within a watchdog bound)
    /// and that `ev` is then ready.
    fn check<F: Future + Unpin>(
        io: &Io,
        what: &str,
        mut ev: F,
        trigger: impl FnOnce(),
    ) -> F::Output {
        let (_, first) = counting_waker();
        let (second_count, second) = counting_waker();
        assert!(poll_with(&mut ev, &first).is_pending(), "{what}");
        assert!(poll_with(&mut ev, &second).is_pending(), "{what}");
        trigger();
        let start = crate::support::now();
        while wakes(&second_count) == 0 {
            assert!(
                crate::support::elapsed(start) < std::time::Duration::from_secs(30),
                "{what}: the latest waker was not woken"
            );
            io.sleep(std::time::Duration::from_millis(1)).unwrap();
        }
        match poll_with(&mut ev, &second) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("{what}: still pending after the wake-up"),
        }
    }

    let (tx, rx) = channel::bounded(1);
    assert_eq!(
        check(io, "recv", rx.recv_event(), || tx.send(1).unwrap()),
        Ok(1)
    );
    tx.send(2).unwrap();
    let r = check(io, "send", tx.send_event(3), || {
        assert_eq!(rx.recv(), Ok(2))
    });
    assert!(r.is_ok());
    assert_eq!(rx.recv(), Ok(3));

    let m = Mutex::new(());
    let guard = m.lock().unwrap();
    let _g = check(io, "lock", m.lock_event(), || drop(guard));

    let notify = Notify::new();
    check(io, "notified", notify.notified_event(), || {
        notify.notify_one()
    });

    let wg = WaitGroup::new();
    wg.add(1);
    check(io, "wait group", wg.wait_event(), || wg.done());

    let (btx, mut brx) = broadcast::channel(2);
    let r = check(io, "broadcast", brx.recv_event(), || {
        btx.send(7).unwrap();
    });
    assert_eq!(r, Ok(7));

    let (wtx, mut wrx) = watch::channel(0);
    let r = check(io, "watch", wrx.changed_event(), || wtx.send(1).unwrap());
    assert_eq!(r, Ok(()));

    if let Some(mut task) = concurrent_or_refused(io, move |_| {
        let _ = rx.recv();
        9
    }) {
        assert_eq!(
            check(io, "join", task.join_event(), || tx.send(0).unwrap()).unwrap(),
            9
        );
    }
}

// ---- Wakers crossing threads ------------------------------------------------------------------

/// Futures on a `futures` thread pool (no zsync, no Tokio) and the task wake each other through
/// one rendezvous channel each way: every hand-off wakes a waker of the other side from a
/// thread of its own.
fn futures_on_a_thread_pool_and_tasks_wake_each_other(_io: &Io) {
    let pool = ThreadPool::builder()
        .pool_size(2)
        .name_prefix("async-events-pool-")
        .create()
        .unwrap();
    // Pool futures send; the task receives.
    let (tx, rx) = channel::bounded::<u32>(0);
    pool.spawn_ok(async move {
        for i in 0..N {
            tx.send_event(i).await.unwrap();
        }
    });
    for i in 0..N {
        assert_eq!(rx.recv(), Ok(i));
    }
    assert_eq!(rx.recv(), Err(RecvError::Closed), "the pool future ended");

    // The task sends; a pool future receives and reports the sum through a oneshot.
    let (tx, rx) = channel::bounded::<u32>(0);
    let (sum_tx, sum_rx) = oneshot::<u32>();
    pool.spawn_ok(async move {
        let mut sum = 0;
        while let Ok(v) = rx.recv_event().await {
            sum += v;
        }
        sum_tx.send(sum).unwrap();
    });
    for i in 0..N {
        tx.send(i).unwrap();
    }
    drop(tx);
    assert_eq!(sum_rx.recv(), Ok((0..N).sum()));

    // A Queue and a Semaphore between pool futures and the task.
    let queue = Arc::new(Queue::new(1));
    let sem = Arc::new(Semaphore::new(0));
    let (done_tx, done_rx) = oneshot::<u32>();
    {
        let (queue, sem) = (queue.clone(), sem.clone());
        pool.spawn_ok(async move {
            let mut sum = 0;
            for _ in 0..N {
                sum += queue.get_event().await.unwrap();
                sem.acquire_event().await.unwrap().forget();
            }
            done_tx.send(sum).unwrap();
        });
    }
    for i in 0..N {
        queue.put_one(i).unwrap();
        sem.add_permits(1);
    }
    assert_eq!(done_rx.recv(), Ok((0..N).sum()));
    assert_eq!(sem.available_permits(), 0);
    drop(pool);
}

/// Every event future is `Send` (for a multi-threaded executor) when its data is.
fn event_futures_are_send(io: &Io) {
    fn send<T: Send>(_: &T) {}
    let (tx, rx) = channel::bounded::<u32>(1);
    send(&rx.recv_event());
    send(&tx.send_event(1));
    let m = Mutex::new(0);
    send(&m.lock_event());
    let l = RwLock::new(0);
    send(&l.read_event());
    send(&l.write_event());
    let s = Semaphore::new(1);
    send(&s.acquire_event());
    let wg = WaitGroup::new();
    send(&wg.wait_event());
    let n = Notify::new();
    send(&n.notified_event());
    let r = ResetEvent::new();
    send(&r.wait_event());
    let (btx, mut brx) = broadcast::channel::<u32>(1);
    send(&brx.recv_event());
    let (wtx, mut wrx) = watch::channel(0u32);
    send(&wrx.changed_event());
    send(&wtx.closed_event());
    let (_otx, orx) = oneshot::<u32>();
    send(&orx.recv_event());
    let q = Queue::<u32>::new(1);
    send(&q.get_event());
    send(&q.put_event(1));
    let mut task = io.spawn(|_| 1u32);
    send(&task.join_event());
    drop((btx, task));

    // A send owning a value that must not move once pinned is still an `Unpin` future: it
    // never pins its value.
    fn unpin<T: Unpin>(_: &T) {}
    let (tx, rx) = channel::bounded(1);
    let ev = tx.send_event(std::marker::PhantomPinned);
    unpin(&ev);
    block_on(ev).unwrap();
    assert!(rx.try_recv().is_ok());
}

/// `futures::future::select` over two receive futures (they are `Unpin`, so no pinning is
/// needed): the ready one wins, and the dropped loser leaves its channel untouched; with both
/// ready, exactly one message is taken.
fn futures_select_over_events_leaves_the_loser_untouched(io: &Io) {
    use futures::future::{select, Either};
    let (tx1, rx1) = channel::bounded::<u32>(1);
    let (tx2, rx2) = channel::bounded::<u32>(1);
    let (ready_tx, ready_rx) = signal();
    let selector = on_thread(move || {
        let first = block_on(async {
            let (mut a, mut b) = (rx1.recv_event(), rx2.recv_event());
            assert!(futures::poll!(&mut a).is_pending());
            assert!(futures::poll!(&mut b).is_pending());
            ready_tx.send(()).unwrap();
            match select(a, b).await {
                Either::Left((v, _)) => ("left", v),
                Either::Right((v, _)) => ("right", v),
            }
        });
        (first, rx1, rx2)
    });
    ready_rx.recv().unwrap();
    tx2.send(2).unwrap();
    let (first, rx1, rx2) = join_thread(io, selector);
    assert_eq!(first, ("right", Ok(2)));
    tx1.send(1).unwrap();
    assert_eq!(rx1.try_recv(), Ok(1), "the loser took nothing");

    // Both ready: one wins, the other's message stays.
    tx1.send(10).unwrap();
    tx2.send(20).unwrap();
    let won = match block_on(select(rx1.recv_event(), rx2.recv_event())) {
        Either::Left((v, _)) => v.unwrap(),
        Either::Right((v, _)) => v.unwrap(),
    };
    let left = if won == 10 {
        rx2.try_recv()
    } else {
        rx1.try_recv()
    };
    assert_eq!(won + left.unwrap(), 30);
    assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err());
}

// ---- Future tasks (`Io::spawn_future`, `Io::block_on`) on every model ---------------------------

/// A future task receives what a task sends, and a task receives what a future task sends,
/// through one channel; on the models with concurrency, also through a rendezvous channel.
fn future_tasks_and_tasks_share_channels(io: &Io) {
    // Unbounded: correct even where both sides run inline one after the other (Blocking).
    let (tx, rx) = channel::unbounded::<u32>();
    let producer = io.spawn(move |_| {
        for i in 0..N {
            tx.send(i).unwrap();
        }
    });
    let consumer = io.spawn_future(async move {
        let mut sum = 0;
        while let Ok(v) = rx.recv_event().await {
            sum += v;
        }
        sum
    });
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), (0..N).sum());

    // Rendezvous both ways: each hand-off wakes the other side.
    let (tx, rx) = channel::bounded::<u32>(0);
    let (back_tx, back_rx) = channel::bounded::<u32>(0);
    let echo = io.concurrent_future(async move {
        while let Ok(v) = rx.recv_event().await {
            back_tx.send_event(v * 2).await.unwrap();
        }
    });
    let Ok(echo) = echo else {
        assert!(!io.supports_concurrency());
        return;
    };
    for i in 0..N {
        tx.send(i).unwrap();
        assert_eq!(back_rx.recv(), Ok(i * 2));
    }
    drop(tx);
    echo.join().unwrap();
}

/// Every primitive's event awaited by future tasks while tasks (or plain threads) make it
/// complete: Mutex, RwLock, Semaphore, WaitGroup, Notify, broadcast, watch, oneshot, join.
fn future_tasks_await_every_primitive(io: &Io) {
    let m = Arc::new(Mutex::new(0u32));
    let wg = Arc::new(WaitGroup::new());
    let notify = Arc::new(Notify::new());
    let sem = Arc::new(Semaphore::new(0));
    let (btx, mut brx) = broadcast::channel::<u32>(4);
    let (wtx, mut wrx) = watch::channel(0u32);
    let (otx, orx) = oneshot::<u32>();
    // Everything is made ready before the future task starts where the model runs it inline
    // (Blocking); otherwise after, so that the future really waits.
    let concurrent = io.supports_concurrency();
    let make_ready = move || {
        btx.send(5).unwrap();
        wtx.send(6).unwrap();
        otx.send(7).unwrap();
    };
    let release = {
        let (wg, notify, sem) = (wg.clone(), notify.clone(), sem.clone());
        move |mut guard: zsync::sync::MutexGuard<'_, u32>| {
            *guard += 1;
            drop(guard);
            wg.done();
            notify.notify_one();
            sem.add_permits(2);
            make_ready();
        }
    };
    wg.add(1);
    let guard = m.lock().unwrap();
    let mut later = Some((guard, release));
    if !concurrent {
        let (guard, release) = later.take().unwrap();
        release(guard);
    }
    let inner = io.spawn(|_| 8u32);
    let waiter = {
        let (m, wg, notify, sem) = (m.clone(), wg.clone(), notify.clone(), sem.clone());
        io.spawn_future(async move {
            let mut inner = inner;
            let mut total = *m.lock_event().await;
            wg.wait_event().await;
            notify.notified_event().await;
            total += sem.acquire_many_event(2).await.unwrap().num_permits() as u32;
            total += brx.recv_event().await.unwrap();
            wrx.changed_event().await.unwrap();
            total += *wrx.borrow_and_update();
            total += orx.recv_event().await.unwrap();
            total += inner.join_event().await.unwrap();
            total
        })
    };
    if let Some((guard, release)) = later {
        let_it_block();
        release(guard);
    }
    assert_eq!(waiter.join().unwrap(), 1 + 2 + 5 + 6 + 7 + 8);
}

/// Colorblind code waits for an event future with `Io::block_on` (parking its fiber or its
/// thread), woken by a plain thread; canceled while waiting, it returns `Canceled` and the
/// dropped future took nothing.
fn io_block_on_awaits_events_and_leaves_them_on_cancel(io: &Io) {
    let (tx, rx) = channel::bounded::<u32>(1);
    let sender = on_thread(move || {
        let_it_block();
        tx.send(1).unwrap();
        tx
    });
    assert_eq!(io.block_on(rx.recv_event()).unwrap(), Ok(1));
    let tx = join_thread(io, sender);

    let m = Arc::new(Mutex::new(0));
    let (held_tx, held_rx) = signal();
    let holder = on_thread({
        let m = m.clone();
        move || {
            let mut g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            let_it_block();
            *g += 1;
        }
    });
    held_rx.recv().unwrap();
    assert_eq!(*io.block_on(m.lock_event()).unwrap(), 1);
    join_thread(io, holder);

    let rx = Arc::new(rx);
    let waiter = {
        let rx = rx.clone();
        concurrent_or_refused(io, move |io| io.block_on(rx.recv_event()))
    };
    let Some(waiter) = waiter else { return };
    let_it_block();
    // The task's own value is `block_on`'s result: `Err(Canceled)`.
    crate::support::assert_canceled(waiter.cancel().and_then(|r| r));
    tx.send(2).unwrap();
    assert_eq!(rx.try_recv(), Ok(2), "the canceled wait took nothing");
}

/// A future task canceled while it waits for a message or a lock is dropped, and leaves the
/// channel and the mutex as if it never waited.
fn a_canceled_future_task_leaves_the_primitive_untouched(io: &Io) {
    if !io.supports_concurrency() {
        return; // the waits below would run inline, before anything can make them complete
    }
    let (tx, rx) = channel::bounded::<u32>(1);
    let rx = Arc::new(rx);
    let m = Arc::new(Mutex::new(0));
    let guard = m.lock().unwrap();
    let receiver = {
        let rx = rx.clone();
        io.spawn_future(async move { rx.recv_event().await })
    };
    let locker = {
        let m = m.clone();
        io.spawn_future(async move {
            *m.lock_event().await += 1;
        })
    };
    let_it_block();
    crate::support::assert_canceled(receiver.cancel());
    crate::support::assert_canceled(locker.cancel());
    tx.send(3).unwrap();
    assert_eq!(rx.try_recv(), Ok(3));
    drop(guard);
    assert_eq!(*m.try_lock().expect("nobody holds or waits for it"), 0);
}

/// A future that completes when a flag is set from outside, waking its waker from whatever
/// thread sets it.
#[derive(Clone, Default)]
struct Flag(Arc<FlagState>);

#[derive(Default)]
struct FlagState {
    set: std::sync::atomic::AtomicBool,
    waker: std::sync::Mutex<Option<Waker>>,
}

impl Flag {
    fn set(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        let waker = self.0.waker.lock().unwrap().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for Flag {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.set.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.set.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// `Io::block_on` and a future task wait for a future whose waker is woken from a plain
/// thread and from a `futures` thread pool: the wake-up reaches the fiber, thread or task
/// wherever it runs.
fn futures_woken_from_foreign_threads(io: &Io) {
    const ROUNDS: usize = 50;
    for _ in 0..ROUNDS {
        let flag = Flag::default();
        let setter = on_thread({
            let flag = flag.clone();
            move || flag.set()
        });
        io.block_on(flag).unwrap();
        join_thread(io, setter);
    }
    let pool = ThreadPool::builder().pool_size(2).create().unwrap();
    for _ in 0..ROUNDS {
        let flag = Flag::default();
        {
            let flag = flag.clone();
            pool.spawn_ok(async move { flag.set() });
        }
        let task = io.spawn_future(flag);
        io.block_on(task).unwrap().unwrap();
    }
    // A future task woken by a pool future's send on a zsync channel.
    let (tx, rx) = channel::bounded::<u32>(0);
    pool.spawn_ok(async move {
        for i in 0..N {
            tx.send_event(i).await.unwrap();
        }
    });
    let sum = io.spawn_future(async move {
        let mut sum = 0;
        while let Ok(v) = rx.recv_event().await {
            sum += v;
        }
        sum
    });
    assert_eq!(sum.join().unwrap(), (0..N).sum());
}

/// Round trips between the task and a future task through every kind of wait: a rendezvous
/// channel each way, a Mutex passed back and forth, a Notify and a Semaphore. Run on one Green
/// worker below, where a poll that blocked its thread would stall both sides for good.
fn ping_pong_with_a_future_task(io: &Io) {
    const ROUNDS: u32 = 50;
    let (to_future, from_task) = channel::bounded::<u32>(0);
    let (to_task, from_future) = channel::bounded::<u32>(0);
    let m = Arc::new(Mutex::new(0u32));
    let notify = Arc::new(Notify::new());
    let sem = Arc::new(Semaphore::new(0));
    let peer = {
        let (m, notify, sem) = (m.clone(), notify.clone(), sem.clone());
        io.concurrent_future(async move {
            while let Ok(v) = from_task.recv_event().await {
                *m.lock_event().await += 1;
                notify.notified_event().await;
                sem.acquire_event().await.unwrap().forget();
                to_task.send_event(v + 1).await.unwrap();
            }
        })
    };
    let Ok(peer) = peer else {
        assert!(!io.supports_concurrency());
        return;
    };
    for i in 0..ROUNDS {
        let guard = m.lock().unwrap(); // held while the future reaches its lock
        to_future.send(i).unwrap();
        drop(guard);
        notify.notify_one();
        sem.add_permits(1);
        assert_eq!(from_future.recv(), Ok(i + 1));
    }
    drop(to_future);
    peer.join().unwrap();
    assert_eq!(*m.lock().unwrap(), ROUNDS);
}

standalone! {
    /// [`ping_pong_with_a_future_task`] on Green with a single worker: the fiber and the future
    /// task share one thread, so every event poll must return `Pending` instead of blocking it.
    #[test]
    fn event_polls_never_block_a_single_green_worker() {
        use crate::support::{green_epoll, green_uring, io_uring_unavailable, run_on_workers};
        let name = "ping_pong_with_a_future_task";
        run_on_workers(green_epoll, name, ping_pong_with_a_future_task, 1);
        if io_uring_unavailable().is_none() {
            run_on_workers(green_uring, name, ping_pong_with_a_future_task, 1);
        }
    }
}

/// One pipeline through both worlds and a foreign executor: a task produces into a zsync
/// channel; a future task doubles each value into an `async-channel` (a channel of the smol
/// family, which knows nothing of zsync); a future on a `futures` thread pool moves the values
/// on into a second zsync channel, so its sends wake the consumer from the pool's threads; a
/// task consumes. Every stage ends when its input closes; nothing is lost or duplicated.
fn a_pipeline_of_tasks_future_tasks_pool_futures_and_async_channel(io: &Io) {
    let pool = ThreadPool::builder()
        .pool_size(2)
        .name_prefix("async-events-pipeline-")
        .create()
        .unwrap();
    // Unbounded zsync channels and an unbounded async-channel: correct where the stages run
    // inline one after the other (Blocking). Bounded stages run where tasks are concurrent.
    let bounded = io.supports_concurrency();
    let (src_tx, src_rx) = if bounded {
        channel::bounded::<u32>(4)
    } else {
        channel::unbounded::<u32>()
    };
    let (mid_tx, mid_rx) = if bounded {
        async_channel::bounded::<u32>(2)
    } else {
        async_channel::unbounded::<u32>()
    };
    let (out_tx, out_rx) = if bounded {
        channel::bounded::<u32>(0)
    } else {
        channel::unbounded::<u32>()
    };
    // The two blocking stages get a thread (or fiber) of their own where the model has one: on
    // Threaded, two closures blocked on channels would otherwise hold both pool workers while
    // the future stage waits for one.
    type Stage = Box<dyn FnOnce(&Io) -> Vec<u32> + Send>;
    let stage = |f: Stage| match io.concurrent(f) {
        Ok(task) => task,
        Err(refused) => io.spawn(refused.into_inner()),
    };
    let producer = stage(Box::new(move |_| {
        for i in 0..N {
            src_tx.send(i).unwrap();
        }
        Vec::new()
    }));
    let doubler = io.spawn_future(async move {
        while let Ok(v) = src_rx.recv_event().await {
            mid_tx.send(v * 2).await.unwrap();
        }
        // Dropping `mid_tx` closes the async-channel: the pool stage ends.
    });
    let (pool_done_tx, pool_done_rx) = oneshot::<u32>();
    pool.spawn_ok(async move {
        let mut moved = 0;
        while let Ok(v) = mid_rx.recv().await {
            out_tx.send_event(v + 1).await.unwrap();
            moved += 1;
        }
        pool_done_tx.send(moved).unwrap();
    });
    let consumer = stage(Box::new(move |_| {
        let mut got = Vec::new();
        while let Ok(v) = out_rx.recv() {
            got.push(v);
        }
        got
    }));
    producer.join().unwrap();
    doubler.join().unwrap();
    let got = consumer.join().unwrap();
    assert_eq!(got, (0..N).map(|i| i * 2 + 1).collect::<Vec<_>>());
    assert_eq!(pool_done_rx.recv(), Ok(N));
    drop(pool);
}

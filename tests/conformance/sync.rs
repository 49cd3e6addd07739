//! Conformance tests: `zsync::sync` primitives on every model.

// `ALL` (from `conformance!`) is read only by the leak check, a different binary.

use std::cell::UnsafeCell;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::sync::{
    Barrier, Condvar, Mutex, Notify, OnceCell, ResetEvent, RwLock, Semaphore, TryAcquireError,
    WaitGroup,
};
use zsync::Io;

use crate::support::{assert_canceled, has_concurrency};

/// How long a test lets a task get into its wait before poking it. Correctness never depends on
/// it: a task that has not started waiting yet sees the same outcome at its first poll.
const SETTLE: Duration = Duration::from_millis(20);

#[track_caller]
fn assert_timed_out<T: std::fmt::Debug>(r: std::io::Result<T>) {
    match r {
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::TimedOut,
            "expected TimedOut, got {e:?}"
        ),
        Ok(v) => panic!("expected TimedOut, got Ok({v:?})"),
    }
}

/// Cancels `task` and asserts it reports Canceled within 2 s.
#[track_caller]
fn cancel_promptly<T: std::fmt::Debug>(task: zsync::Task<std::io::Result<T>>) {
    let start = crate::support::now();
    assert_canceled(task.cancel().unwrap());
    assert!(
        crate::support::elapsed(start) < Duration::from_secs(2),
        "cancel took {:?}",
        crate::support::elapsed(start)
    );
}

/// A counter that is deliberately not thread-safe: only a working lock keeps it exact.
struct Racy(UnsafeCell<u64>);
// SAFETY: only touched while holding the mutex under test (the test is what checks that).
unsafe impl Sync for Racy {}

// ---- Mutex -----------------------------------------------------------------------------------

/// Lock acquisitions per task in the contention tests. Each holds the lock across a yield of
/// the thread, so with CPU hogs running every hand-off waits for a CPU: 1000 per task took
/// over 60 s on a loaded 2-core machine.
const CONTENDED_ROUNDS: usize = 250;

fn mutex_excludes_under_contention(io: &Io) {
    let lock = Arc::new(Mutex::new(()));
    let racy = Arc::new(Racy(UnsafeCell::new(0)));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (lock, racy) = (lock.clone(), racy.clone());
            io.spawn(move |_| {
                for _ in 0..CONTENDED_ROUNDS {
                    let _g = lock.lock().unwrap();
                    // SAFETY: the mutex is held; no other task touches the counter now.
                    unsafe {
                        let p = racy.0.get();
                        let v = std::ptr::read_volatile(p);
                        std::thread::yield_now();
                        std::ptr::write_volatile(p, v + 1);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.join().unwrap();
    }
    let _g = lock.lock().unwrap();
    // SAFETY: the mutex is held and every task has finished.
    assert_eq!(unsafe { *racy.0.get() }, 8 * CONTENDED_ROUNDS as u64);
}

fn mutex_try_lock_and_timeout_fail_while_held(io: &Io) {
    let m = Mutex::new(5);
    let g = m.lock().unwrap();
    assert!(m.try_lock().is_none());
    let start = crate::support::now();
    assert_timed_out(m.lock_timeout(Duration::from_millis(30)));
    assert!(crate::support::elapsed(start) >= Duration::from_millis(30));
    drop(g);
    *m.try_lock().unwrap() += 1;
    *m.lock_timeout(Duration::from_millis(30)).unwrap() += 1;
    *io.wait(m.lock_event()).unwrap() += 1;
    let mut m = m;
    *m.get_mut() += 1;
    assert_eq!(m.into_inner(), 9);
}

fn mutex_lock_is_a_cancellation_point(io: &Io) {
    let m = Mutex::new(0);
    io.cancel_current();
    // Even a free mutex: a canceled task stops at the cancellation point.
    assert_canceled(m.lock());
    assert_canceled(m.lock_timeout(Duration::from_millis(10)));
    // try_lock is not a cancellation point, and a shield lets the wait proceed.
    assert!(m.try_lock().is_some());
    io.shielded(|| *m.lock().unwrap() += 1);
    assert_eq!(*m.try_lock().unwrap(), 1);
}

fn mutex_cancel_while_waiting_leaves_it_usable(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let m = Arc::new(Mutex::new(0));
    let g = m.lock().unwrap();
    let m2 = m.clone();
    let waiter = io
        .concurrent(move |_| m2.lock().map(|mut g| *g += 1))
        .unwrap();
    io.sleep(SETTLE).unwrap();
    cancel_promptly(waiter);
    drop(g);
    // The canceled waiter holds nothing and queues nothing: the lock is free at once.
    *m.try_lock()
        .expect("lock free after the canceled waiter left") += 10;
    assert_eq!(*m.lock().unwrap(), 10);
}

fn mutex_panic_while_held_unlocks_no_poison(io: &Io) {
    let m = Arc::new(Mutex::new(1));
    let m2 = m.clone();
    let t = io.spawn(move |_| {
        let _g = m2.lock().unwrap();
        panic!("boom while holding");
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.join()));
    assert!(r.is_err());
    assert_eq!(*m.try_lock().expect("unlocked by the unwinding guard"), 1);
}

// ---- Semaphore -------------------------------------------------------------------------------

fn semaphore_counts_permits_exactly(io: &Io) {
    let sem = Arc::new(Semaphore::new(3));
    let a = sem.acquire().unwrap();
    let b = sem.acquire_many(2).unwrap();
    assert_eq!((a.num_permits(), b.num_permits()), (1, 2));
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    assert_timed_out(sem.acquire_timeout(Duration::from_millis(20)));
    assert_timed_out(sem.acquire_many_timeout(2, Duration::from_millis(5)));
    assert_eq!(
        sem.available_permits(),
        0,
        "timed-out acquires took nothing"
    );
    drop(b);
    assert_eq!(sem.available_permits(), 2);
    let owned = sem.acquire_many_owned(2).unwrap();
    assert_eq!(sem.available_permits(), 0);
    drop(owned);
    a.forget();
    assert_eq!(sem.available_permits(), 2);
    sem.add_permits(3);
    assert_eq!(sem.available_permits(), 5);
    let p = io.wait(sem.acquire_many_event(5)).unwrap().unwrap();
    assert_eq!(sem.available_permits(), 0);
    drop(p);
    let t = sem.try_acquire_owned().unwrap();
    assert_eq!(sem.available_permits(), 4);
    drop(t);
    assert_eq!(sem.available_permits(), 5);
}

fn semaphore_close_fails_waiters_and_newcomers(io: &Io) {
    let sem = Arc::new(Semaphore::new(0));
    if has_concurrency(io) {
        let s = sem.clone();
        let waiter = io.concurrent(move |_| s.acquire().map(|_| ())).unwrap();
        io.sleep(SETTLE).unwrap();
        sem.close();
        let err = waiter.join().unwrap().unwrap_err();
        assert!(zsync::is_closed(&err), "{err:?}");
    } else {
        sem.close();
    }
    assert!(sem.is_closed());
    assert!(zsync::is_closed(&sem.acquire().unwrap_err()));
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
}

fn semaphore_acquire_is_a_cancellation_point(io: &Io) {
    let sem = Semaphore::new(2);
    io.cancel_current();
    assert_canceled(sem.acquire());
    assert_canceled(sem.acquire_many_timeout(2, Duration::from_millis(5)));
    assert_eq!(sem.available_permits(), 2);
    let p = io.shielded(|| sem.acquire_many(2)).unwrap();
    assert_eq!(sem.available_permits(), 0);
    drop(p);
    assert_eq!(sem.available_permits(), 2);
}

fn semaphore_cancel_while_waiting_loses_no_permit(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let sem = Arc::new(Semaphore::new(2));
    let held = sem.acquire().unwrap();
    // A waiter for both permits sits at the head; a small one queues behind it.
    let s = sem.clone();
    let big = io
        .concurrent(move |_| s.acquire_many(2).map(|_| ()))
        .unwrap();
    // It is queued once try_acquire fails although a permit is free (no barging).
    while sem.try_acquire().map(drop).is_ok() {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    assert_eq!(sem.available_permits(), 1);
    let s = sem.clone();
    let small = io
        .concurrent(move |_| s.acquire().map(|p| p.forget()))
        .unwrap();
    io.sleep(SETTLE).unwrap();
    // Canceling the head lets the small one through with the free permit.
    cancel_promptly(big);
    small.join().unwrap().unwrap();
    assert_eq!(sem.available_permits(), 0);
    sem.add_permits(1); // give back what `small` forgot
    drop(held);
    assert_eq!(sem.available_permits(), 2);
    drop(sem.try_acquire_many(2).unwrap());
}

fn semaphore_big_waiter_is_not_starved(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let sem = Arc::new(Semaphore::new(4));
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let smalls: Vec<_> = (0..4)
        .map(|_| {
            let (sem, stop, rounds) = (sem.clone(), stop.clone(), rounds.clone());
            io.concurrent(move |_| {
                while !stop.load(Ordering::SeqCst) {
                    let _p = sem.acquire()?;
                    rounds.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                }
                Ok::<_, std::io::Error>(())
            })
            .unwrap()
        })
        .collect();
    // Let the small acquirers get going, then ask for every permit at once.
    while rounds.load(Ordering::Relaxed) < 100 {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    let start = crate::support::now();
    let all = sem
        .acquire_many_timeout(4, Duration::from_secs(10))
        .expect("a large acquire must not be starved by small ones");
    assert!(crate::support::elapsed(start) < Duration::from_secs(10));
    // While we hold every permit, no small acquirer gets one.
    assert_eq!(sem.available_permits(), 0);
    let frozen = rounds.load(Ordering::SeqCst);
    io.sleep(SETTLE).unwrap();
    assert_eq!(rounds.load(Ordering::SeqCst), frozen);
    stop.store(true, Ordering::SeqCst);
    drop(all);
    for t in smalls {
        t.join().unwrap().unwrap();
    }
    assert_eq!(sem.available_permits(), 4);
}

fn semaphore_limits_concurrency_stress(io: &Io) {
    let sem = Arc::new(Semaphore::new(3));
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (sem, inside, max_inside, done) = (
                sem.clone(),
                inside.clone(),
                max_inside.clone(),
                done.clone(),
            );
            io.spawn(move |_| {
                for _ in 0..CONTENDED_ROUNDS / 4 {
                    let _p = sem.acquire().unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max_inside.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.join().unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), 16 * (CONTENDED_ROUNDS / 4));
    assert!(max_inside.load(Ordering::SeqCst) <= 3);
    assert_eq!(sem.available_permits(), 3);
}

fn semaphore_cancel_storm_keeps_every_permit(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let sem = Arc::new(Semaphore::new(2));
    let acquired = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (sem, acquired) = (sem.clone(), acquired.clone());
            io.concurrent(move |io| -> std::io::Result<()> {
                loop {
                    let _p = sem.acquire_many(1 + i % 2)?;
                    acquired.fetch_add(1, Ordering::Relaxed);
                    io.check_canceled()?;
                }
            })
            .unwrap()
        })
        .collect();
    while acquired.load(Ordering::Relaxed) < 200 {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    for t in tasks {
        assert_canceled(t.cancel().unwrap());
    }
    assert_eq!(sem.available_permits(), 2, "every permit came back");
    drop(sem.try_acquire_many(2).unwrap());
}

// ---- RwLock ----------------------------------------------------------------------------------

fn rwlock_readers_share_writer_excludes(io: &Io) {
    let lock = RwLock::new(1);
    let r1 = lock.read().unwrap();
    let r2 = lock.try_read().unwrap();
    let r3 = io.wait(lock.read_event()).unwrap();
    assert_eq!(*r1 + *r2 + *r3, 3);
    assert!(lock.try_write().is_none());
    assert_timed_out(lock.write_timeout(Duration::from_millis(20)));
    drop((r1, r2, r3));
    let mut w = lock.write().unwrap();
    *w += 1;
    assert!(lock.try_read().is_none());
    assert_timed_out(lock.read_timeout(Duration::from_millis(20)));
    let r = w.downgrade();
    assert_eq!(*r, 2);
    assert!(lock.try_read().is_some());
    assert!(lock.try_write().is_none());
    drop(r);
    *io.wait(lock.write_event()).unwrap() += 1;
    let mut lock = lock;
    *lock.get_mut() += 1;
    assert_eq!(lock.into_inner(), 4);
}

fn rwlock_many_readers_at_once(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    // Four readers meet at a barrier while all holding the read lock: possible only if they
    // hold it at the same time.
    let lock = Arc::new(RwLock::new(7));
    let barrier = Arc::new(Barrier::new(4));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (lock, barrier) = (lock.clone(), barrier.clone());
            io.concurrent(move |_| -> std::io::Result<i32> {
                let g = lock.read()?;
                barrier.wait()?;
                Ok(*g)
            })
            .unwrap()
        })
        .collect();
    let sum: i32 = tasks.into_iter().map(|t| t.join().unwrap().unwrap()).sum();
    assert_eq!(sum, 28);
}

fn rwlock_writers_exclude_stress(io: &Io) {
    let lock = Arc::new(RwLock::new((0u64, 0u64)));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let lock = lock.clone();
            io.spawn(move |_| {
                for _ in 0..CONTENDED_ROUNDS / 2 {
                    if i % 2 == 0 {
                        let mut w = lock.write().unwrap();
                        w.0 += 1;
                        std::thread::yield_now();
                        w.1 += 1;
                    } else {
                        let r = lock.read().unwrap();
                        assert_eq!(r.0, r.1, "a reader saw a half-done write");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.join().unwrap();
    }
    let writes = 4 * (CONTENDED_ROUNDS / 2) as u64;
    assert_eq!(*lock.read().unwrap(), (writes, writes));
}

fn rwlock_cancel_while_waiting(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let lock = Arc::new(RwLock::new(0));
    let r = lock.read().unwrap();
    let l = lock.clone();
    let writer = io.concurrent(move |_| l.write().map(|_| ())).unwrap();
    // Once the writer is queued it blocks new readers (fair, no barging) ...
    while lock.try_read().is_some() {
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    cancel_promptly(writer);
    // ... and once canceled it no longer does.
    assert!(lock.try_read().is_some());
    drop(r);
    let w = lock.write().unwrap();
    let l = lock.clone();
    let reader = io.concurrent(move |_| l.read().map(|_| ())).unwrap();
    io.sleep(SETTLE).unwrap();
    cancel_promptly(reader);
    drop(w);
    assert!(lock.try_write().is_some());
}

// ---- Condvar ---------------------------------------------------------------------------------

fn condvar_producer_consumer(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let shared = Arc::new((
        Mutex::new(std::collections::VecDeque::new()),
        Condvar::new(),
    ));
    let n = 2000u64;
    let s = shared.clone();
    let consumer = io
        .concurrent(move |_| -> std::io::Result<u64> {
            let (queue, cv) = &*s;
            let mut sum = 0;
            for _ in 0..n {
                let mut q = cv.wait_while(queue.lock()?, |q| q.is_empty())?;
                sum += q.pop_front().unwrap();
            }
            Ok(sum)
        })
        .unwrap();
    let (queue, cv) = &*shared;
    for i in 1..=n {
        queue.lock().unwrap().push_back(i);
        cv.notify_one();
    }
    assert_eq!(consumer.join().unwrap().unwrap(), n * (n + 1) / 2);
}

fn condvar_notify_all_wakes_everyone(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let shared = Arc::new((Mutex::new(false), Condvar::new()));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let s = shared.clone();
            io.concurrent(move |_| {
                let (m, cv) = &*s;
                cv.wait_while(m.lock()?, |go| !*go).map(|_| ())
            })
            .unwrap()
        })
        .collect();
    io.sleep(SETTLE).unwrap();
    *shared.0.lock().unwrap() = true;
    shared.1.notify_all();
    for t in tasks {
        t.join().unwrap().unwrap();
    }
}

fn condvar_wait_timeout_relocks_and_reports(io: &Io) {
    let m = Mutex::new(3);
    let cv = Condvar::new();
    let start = crate::support::now();
    let (g, res) = cv
        .wait_timeout(m.lock().unwrap(), Duration::from_millis(30))
        .unwrap();
    assert!(res.timed_out());
    assert!(crate::support::elapsed(start) >= Duration::from_millis(30));
    assert_eq!(*g, 3);
    assert!(m.try_lock().is_none(), "re-locked after the timeout");
    let (g, res) = cv
        .wait_timeout_while(g, Duration::from_millis(10), |v| *v == 3)
        .unwrap();
    assert!(res.timed_out());
    let (g, res) = cv
        .wait_timeout_while(g, Duration::from_millis(10), |v| *v != 3)
        .unwrap();
    assert!(!res.timed_out());
    drop(g);
    // Nobody waits: notifications are not stored and do nothing.
    cv.notify_one();
    cv.notify_all();
    let (_g, res) = cv
        .wait_timeout(m.lock().unwrap(), Duration::from_millis(5))
        .unwrap();
    assert!(res.timed_out());
    drop(_g);
    // Inside a task deadline, the task's deadline is an error and the lock is not held.
    let r = io.timeout_until(crate::support::now() + Duration::from_millis(10), |_| {
        cv.wait(m.lock().unwrap())
    });
    assert_timed_out(r);
    assert!(m.try_lock().is_some());
}

fn condvar_cancel_while_waiting_releases_the_lock(io: &Io) {
    if has_concurrency(io) {
        let shared = Arc::new((Mutex::new(0), Condvar::new()));
        let s = shared.clone();
        let waiter = io
            .concurrent(move |_| {
                let (m, cv) = &*s;
                cv.wait(m.lock()?).map(|_| ())
            })
            .unwrap();
        io.sleep(SETTLE).unwrap();
        cancel_promptly(waiter);
        *shared
            .0
            .try_lock()
            .expect("the canceled waiter does not hold the lock") += 1;
        // A later notify finds no stale waiter, and the condvar still works.
        shared.1.notify_one();
        let (g, res) = shared
            .1
            .wait_timeout(shared.0.lock().unwrap(), Duration::from_millis(5))
            .unwrap();
        assert!(res.timed_out());
        assert_eq!(*g, 1);
    }
    // A pre-canceled wait fails at once and releases the lock it was given.
    let m = Mutex::new(0);
    let cv = Condvar::new();
    let g = m.lock().unwrap();
    io.cancel_current();
    assert_canceled(cv.wait(g));
    assert!(
        m.try_lock().is_some(),
        "pre-canceled wait released the lock"
    );
}

// ---- Barrier ---------------------------------------------------------------------------------

fn barrier_has_exactly_one_leader_per_round(io: &Io) {
    let single = Barrier::new(1);
    assert!(single.wait().unwrap().is_leader());
    assert!(single.wait().unwrap().is_leader());
    if !has_concurrency(io) {
        return;
    }
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let passed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (b, passed) = (barrier.clone(), passed.clone());
            io.concurrent(move |_| -> std::io::Result<usize> {
                let mut leaders = 0;
                for round in 0..20 {
                    // Nobody passes round r before everyone finished round r - 1.
                    assert!(passed.load(Ordering::SeqCst) >= round * n);
                    leaders += usize::from(b.wait()?.is_leader());
                    passed.fetch_add(1, Ordering::SeqCst);
                    b.wait()?;
                }
                Ok(leaders)
            })
            .unwrap()
        })
        .collect();
    let leaders: usize = tasks.into_iter().map(|t| t.join().unwrap().unwrap()).sum();
    assert_eq!(leaders, 20, "one leader per round");
    assert_eq!(passed.load(Ordering::SeqCst), 20 * n);
}

fn barrier_cancel_restores_the_count(io: &Io) {
    if has_concurrency(io) {
        let b = Arc::new(Barrier::new(2));
        let b2 = b.clone();
        let waiter = io.concurrent(move |_| b2.wait().map(|_| ())).unwrap();
        io.sleep(SETTLE).unwrap();
        cancel_promptly(waiter);
        // The canceled arrival was taken back: the next round needs two fresh tasks.
        let b2 = b.clone();
        let other = io
            .concurrent(move |_| b2.wait().map(|r| r.is_leader()))
            .unwrap();
        let me = b.wait().unwrap().is_leader();
        let them = other.join().unwrap().unwrap();
        assert!(me ^ them, "exactly one leader");
    }
    // A pre-canceled task does not arrive at all: it cannot complete a round.
    let b = Barrier::new(1);
    io.cancel_current();
    assert_canceled(b.wait());
    assert!(io.shielded(|| b.wait()).unwrap().is_leader());
}

/// A waiter that times out withdraws its arrival: the round still needs as many tasks as before,
/// the tasks already waiting are neither released nor failed, and the barrier works on.
fn barrier_timeout_withdraws_the_arrival(io: &Io) {
    let b = Barrier::new(2);
    assert_timed_out(b.wait_timeout(Duration::from_millis(10)));
    assert_timed_out(b.wait_until(crate::support::now() + Duration::from_millis(10)));
    assert_timed_out(
        io.timeout_until(crate::support::now() + Duration::from_millis(10), |_| {
            b.wait()
        }),
    );
    let single = Barrier::new(1);
    assert!(
        single.wait_timeout(Duration::ZERO).unwrap().is_leader(),
        "no wait needed"
    );
    assert!(!format!("{b:?}").is_empty());
    if !has_concurrency(io) {
        return;
    }
    let b = Arc::new(Barrier::new(3));
    let arrive = |b: &Arc<Barrier>| {
        let b = b.clone();
        io.concurrent(move |_| b.wait().map(|r| r.is_leader()))
            .unwrap()
    };
    let first = arrive(&b);
    io.sleep(SETTLE).unwrap();
    // Arrives second, gives up: were its arrival kept, the next task would complete the round.
    assert_timed_out(b.wait_timeout(Duration::from_millis(20)));
    let second = arrive(&b);
    io.sleep(SETTLE).unwrap();
    assert!(
        !first.is_finished() && !second.is_finished(),
        "two of three: the round is not complete"
    );
    let third = arrive(&b);
    let leaders = [first, second, third]
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .filter(|&leader| leader)
        .count();
    assert_eq!(leaders, 1);
    // The next round starts from zero.
    assert_timed_out(b.wait_timeout(Duration::from_millis(10)));
}

// ---- WaitGroup -------------------------------------------------------------------------------

fn wait_group_waits_for_every_job(io: &Io) {
    let wg = Arc::new(WaitGroup::new());
    wg.wait().unwrap(); // zero: returns at once
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        wg.add(1);
        let (wg, done) = (wg.clone(), done.clone());
        io.spawn(move |io| {
            io.sleep(Duration::from_millis(1)).unwrap();
            done.fetch_add(1, Ordering::SeqCst);
            wg.done();
        })
        .detach();
    }
    wg.wait().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 50);
    assert_eq!(wg.count(), 0);
    io.wait(wg.wait_event()).unwrap();
    wg.add(1);
    assert_timed_out(wg.wait_timeout(Duration::from_millis(10)));
    io.cancel_current();
    assert_canceled(wg.wait());
    wg.done();
    io.shielded(|| wg.wait()).unwrap();
}

// ---- Notify / ResetEvent ---------------------------------------------------------------------

fn notify_permit_is_not_lost(io: &Io) {
    let n = Notify::new();
    n.notify_one(); // nobody waits: stored
    n.notify_one(); // still one permit
    n.notified().unwrap();
    assert_timed_out(n.notified_timeout(Duration::from_millis(10)));
    n.notify_waiters(); // stores nothing
    assert_timed_out(n.notified_timeout(Duration::from_millis(10)));
    n.notify_one();
    io.wait(n.notified_event()).unwrap();
    io.cancel_current();
    n.notify_one();
    assert_canceled(n.notified());
    // The canceled wait did not consume the permit.
    io.shielded(|| n.notified()).unwrap();
}

fn notify_wakes_waiters(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let n = Arc::new(Notify::new());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let n = n.clone();
            io.concurrent(move |_| n.notified()).unwrap()
        })
        .collect();
    // notify_waiters reaches only tasks already waiting: repeat until all four were reached.
    let start = crate::support::now();
    while !tasks.iter().all(|t| t.is_finished()) {
        assert!(crate::support::elapsed(start) < Duration::from_secs(10));
        n.notify_waiters();
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    for t in tasks {
        t.join().unwrap().unwrap();
    }
    // It stored no permit.
    assert_timed_out(n.notified_timeout(Duration::from_millis(5)));
    // notify_one wakes exactly one of two waiters.
    let woken = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (n, woken) = (n.clone(), woken.clone());
            io.concurrent(move |_| {
                n.notified()?;
                woken.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .unwrap()
        })
        .collect();
    io.sleep(SETTLE).unwrap();
    n.notify_one();
    let start = crate::support::now();
    while woken.load(Ordering::SeqCst) == 0 {
        assert!(crate::support::elapsed(start) < Duration::from_secs(5));
        io.sleep(Duration::from_millis(1)).unwrap();
    }
    io.sleep(SETTLE).unwrap();
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    n.notify_one();
    for t in tasks {
        t.join().unwrap().unwrap();
    }
    assert_eq!(woken.load(Ordering::SeqCst), 2);
}

fn notify_cancel_while_waiting(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let n = Arc::new(Notify::new());
    let n2 = n.clone();
    let waiter = io.concurrent(move |_| n2.notified()).unwrap();
    io.sleep(SETTLE).unwrap();
    cancel_promptly(waiter);
    // The canceled waiter is gone: a notify_one is stored for the next wait, not swallowed.
    n.notify_one();
    n.notified_timeout(Duration::from_secs(5)).unwrap();
}

fn reset_event_set_and_reset(io: &Io) {
    let ev = Arc::new(ResetEvent::new());
    assert!(!ev.is_set());
    assert_timed_out(ev.wait_timeout(Duration::from_millis(10)));
    ev.set();
    ev.wait().unwrap();
    ev.wait().unwrap(); // stays set
    io.wait(ev.wait_event()).unwrap();
    ev.reset();
    assert!(!ev.is_set());
    assert_timed_out(ev.wait_timeout(Duration::from_millis(10)));
    if has_concurrency(io) {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let ev = ev.clone();
                io.concurrent(move |_| ev.wait()).unwrap()
            })
            .collect();
        io.sleep(SETTLE).unwrap();
        ev.set();
        for t in tasks {
            t.join().unwrap().unwrap();
        }
        ev.reset();
        let e2 = ev.clone();
        let waiter = io.concurrent(move |_| e2.wait()).unwrap();
        io.sleep(SETTLE).unwrap();
        cancel_promptly(waiter);
    }
    io.cancel_current();
    ev.set();
    assert_canceled(ev.wait());
}

// ---- OnceCell --------------------------------------------------------------------------------

fn once_cell_initialises_exactly_once(io: &Io) {
    let cell = Arc::new(OnceCell::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (cell, calls) = (cell.clone(), calls.clone());
            io.spawn(move |io| {
                *cell
                    .get_or_init(|| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        io.sleep(Duration::from_millis(5)).unwrap();
                        i
                    })
                    .unwrap()
            })
        })
        .collect();
    let values: Vec<usize> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(values.iter().all(|&v| v == values[0]));
    assert_eq!(cell.get(), Some(&values[0]));
    assert_eq!(cell.set(99), Err(99));
}

fn once_cell_failed_initialiser_lets_another_try(io: &Io) {
    let cell = OnceCell::new();
    let r: Result<&u32, std::io::Error> =
        cell.get_or_try_init(|| Err(std::io::Error::other("nope")));
    assert_eq!(r.unwrap_err().to_string(), "nope");
    assert!(cell.get().is_none());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = cell.get_or_init(|| panic!("init panicked"));
    }));
    assert!(caught.is_err());
    assert!(cell.get().is_none());
    // A canceled initialiser (its body hit a cancellation point) leaves the cell empty too.
    io.cancel_current();
    let r: std::io::Result<&u32> = cell.get_or_try_init(|| {
        io.check_canceled()?;
        Ok(1)
    });
    assert_canceled(r);
    assert_eq!(*io.shielded(|| cell.get_or_init(|| 7)).unwrap(), 7);
    assert_eq!(cell.into_inner(), Some(7));
    let mut c = OnceCell::new();
    assert!(c.set(1).is_ok());
    assert_eq!(c.take(), Some(1));
    assert!(c.get_mut().is_none());
}

fn once_cell_waiting_initialiser_can_be_canceled(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let cell = Arc::new(OnceCell::new());
    let release = Arc::new(ResetEvent::new());
    let entered = Arc::new(ResetEvent::new());
    let (c, r, e) = (cell.clone(), release.clone(), entered.clone());
    let slow = io
        .concurrent(move |_| {
            c.get_or_try_init(|| {
                e.set();
                r.wait()?;
                Ok::<_, std::io::Error>(1)
            })
            .copied()
        })
        .unwrap();
    entered.wait().unwrap(); // `slow` holds the initialiser's turn now
    let c = cell.clone();
    let waiting = io
        .concurrent(move |_| c.get_or_init(|| 2).copied())
        .unwrap();
    io.sleep(SETTLE).unwrap();
    cancel_promptly(waiting);
    release.set();
    assert_eq!(slow.join().unwrap().unwrap(), 1);
    assert_eq!(cell.get(), Some(&1));
}

conformance! {
    on sim:
        mutex_excludes_under_contention,
        mutex_try_lock_and_timeout_fail_while_held,
        mutex_lock_is_a_cancellation_point,
        mutex_cancel_while_waiting_leaves_it_usable,
        mutex_panic_while_held_unlocks_no_poison,
        semaphore_counts_permits_exactly,
        semaphore_close_fails_waiters_and_newcomers,
        semaphore_acquire_is_a_cancellation_point,
        semaphore_cancel_while_waiting_loses_no_permit,
        semaphore_big_waiter_is_not_starved,
        semaphore_limits_concurrency_stress,
        semaphore_cancel_storm_keeps_every_permit,
        rwlock_readers_share_writer_excludes,
        rwlock_many_readers_at_once,
        rwlock_writers_exclude_stress,
        rwlock_cancel_while_waiting,
        condvar_producer_consumer,
        condvar_notify_all_wakes_everyone,
        condvar_wait_timeout_relocks_and_reports,
        condvar_cancel_while_waiting_releases_the_lock,
        barrier_has_exactly_one_leader_per_round,
        barrier_cancel_restores_the_count,
        barrier_timeout_withdraws_the_arrival,
        wait_group_waits_for_every_job,
        notify_permit_is_not_lost,
        notify_wakes_waiters,
        notify_cancel_while_waiting,
        reset_event_set_and_reset,
        once_cell_initialises_exactly_once,
        once_cell_failed_initialiser_lets_another_try,
        once_cell_waiting_initialiser_can_be_canceled,
    ;
    not on sim:
}

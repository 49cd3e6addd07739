//! Conformance tests: the broadcast channel on every model.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::channel::broadcast::{self, RecvError, TryRecvError};
use zsync::channel::SendError;
use zsync::Io;

use crate::support::{has_concurrency, let_it_block, wait_for, Census, Counted};

fn broadcast_every_receiver_gets_every_value(_io: &Io) {
    let (tx, mut rx1) = broadcast::channel(8);
    let mut rx2 = tx.subscribe();
    assert_eq!(tx.receiver_count(), 2);
    assert_eq!(rx1.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(tx.send(1), Ok(2), "send reports the receivers");
    assert_eq!(tx.send(2), Ok(2));
    assert_eq!((rx1.len(), rx1.is_empty()), (2, false));
    // A new receiver sees only what is sent after it subscribed.
    let mut late = rx1.resubscribe();
    tx.send(3).unwrap();
    for rx in [&mut rx1, &mut rx2] {
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.recv(), Ok(3));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }
    assert_eq!(late.recv(), Ok(3));
    assert!(rx1.same_channel(&late) && tx.same_channel(&tx.clone()));
    assert!(!format!("{tx:?} {rx1:?}").is_empty());
    assert!(!format!("{:?}", rx1.recv_event()).is_empty());
    // Senders all gone: the rest is drained, then `Closed`.
    tx.send(4).unwrap();
    let tx2 = tx.clone();
    drop(tx);
    assert!(!rx1.is_closed());
    drop(tx2);
    assert!(rx1.is_closed());
    assert_eq!(rx1.recv(), Ok(4));
    assert_eq!(rx1.recv(), Err(RecvError::Closed));
    assert_eq!(rx1.try_recv(), Err(TryRecvError::Closed));
    let err = rx2.try_recv().and_then(|_| rx2.try_recv()).unwrap_err();
    assert!(err.is_closed());
    assert!(zsync::is_closed(&err.into()));
    // No receiver: the send fails and gives the value back.
    let (tx, rx) = broadcast::channel(1);
    drop(rx);
    assert_eq!(tx.send("v"), Err(SendError::Closed("v")));
    let rx = tx.subscribe();
    assert_eq!(tx.send("w"), Ok(1), "a subscriber reopens it");
    drop(rx);
}

fn broadcast_lagging_receiver_skips_ahead(_io: &Io) {
    let (tx, mut rx) = broadcast::channel(4);
    let mut fast = tx.subscribe();
    for i in 0..10 {
        tx.send(i).unwrap();
        assert_eq!(fast.recv(), Ok(i));
    }
    assert_eq!(rx.len(), 4, "only the last four are kept");
    assert_eq!(rx.recv(), Err(RecvError::Lagged(6)));
    assert_eq!(rx.recv(), Ok(6), "the oldest kept value comes next");
    tx.send(10).unwrap();
    assert_eq!(rx.try_iter_all(), [7, 8, 9, 10]);
    for i in 11..20 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(5)));
    assert_eq!(rx.try_recv(), Ok(16));
    let err: std::io::Error = RecvError::Lagged(3).into();
    assert_eq!(err.kind(), std::io::ErrorKind::Other);
    assert_eq!(RecvError::Lagged(3).lagged(), Some(3));
}

/// `try_recv` until empty.
trait Drain {
    fn try_iter_all(&mut self) -> Vec<i32>;
}

impl Drain for broadcast::Receiver<i32> {
    fn try_iter_all(&mut self) -> Vec<i32> {
        std::iter::from_fn(|| self.try_recv().ok()).collect()
    }
}

/// Four receiver tasks take 1 000 values from a ring large enough for all: each gets every
/// value, in order, then `Closed`.
fn broadcast_many_receivers_across_tasks(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = broadcast::channel(1024);
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let mut rx = rx.resubscribe();
            io.concurrent(move |_| {
                let mut got = Vec::new();
                loop {
                    match rx.recv() {
                        Ok(v) => got.push(v),
                        Err(RecvError::Closed) => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    drop(rx);
    for i in 0..1000u32 {
        assert_eq!(tx.send(i), Ok(4));
    }
    drop(tx);
    for r in receivers {
        assert_eq!(r.join().unwrap(), (0..1000).collect::<Vec<_>>());
    }
}

/// A sender far faster than its receivers, through a ring of 8: each receiver's values increase,
/// each `Lagged(n)` is followed by exactly the value `n` further on, and what it received plus
/// what it was told it missed is everything sent.
fn broadcast_lagging_receivers_account_for_every_value(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    const SENT: u64 = 5_000;
    let (tx, rx) = broadcast::channel(8);
    let receivers: Vec<_> = (0..3)
        .map(|k| {
            let mut rx = rx.resubscribe();
            io.concurrent(move |io| {
                let (mut next, mut received, mut missed) = (0u64, 0u64, 0u64);
                loop {
                    match rx.recv() {
                        Ok(v) => {
                            assert_eq!(v, next, "receiver {k}");
                            next += 1;
                            received += 1;
                            if v % 100 == k {
                                io.yield_now();
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            assert!(n > 0);
                            next += n;
                            missed += n;
                        }
                        Err(RecvError::Closed) => return (received, missed),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    drop(rx);
    for i in 0..SENT {
        tx.send(i).unwrap();
    }
    drop(tx);
    for r in receivers {
        let (received, missed) = r.join().unwrap();
        assert_eq!(received + missed, SENT);
    }
}

fn broadcast_cancel_while_blocked(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = broadcast::channel(4);
    let started = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (mut rx, started) = (rx.resubscribe(), started.clone());
        io.concurrent(move |_| {
            started.store(true, Ordering::SeqCst);
            let r = rx.recv();
            (r, rx)
        })
        .unwrap()
    };
    wait_for("the receiver", || started.load(Ordering::SeqCst));
    let_it_block();
    let start = crate::support::now();
    let (r, mut rx2) = waiter.cancel().unwrap();
    assert_eq!(r, Err(RecvError::Canceled));
    assert!(
        crate::support::elapsed(start) < Duration::from_secs(5),
        "cancel was not prompt"
    );
    tx.send(5).unwrap();
    assert_eq!(rx2.recv(), Ok(5), "nothing was lost by the cancel");
    drop(rx);
}

fn broadcast_deadline_while_blocked(io: &Io) {
    let (tx, mut rx) = broadcast::channel::<u8>(4);
    let r = io.timeout_until(crate::support::now() + Duration::from_millis(20), |_| {
        rx.recv()
    });
    assert_eq!(r, Err(RecvError::TimedOut));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(10)),
        Err(RecvError::TimedOut)
    );
    let soon = crate::support::now() + Duration::from_millis(10);
    assert_eq!(rx.recv_until(soon), Err(RecvError::TimedOut));
    assert!(rx.recv_until(soon).unwrap_err().is_timed_out());
    let deadline = crate::support::now() + Duration::from_millis(10);
    assert!(zsync::is_timed_out(
        &io.wait_until(rx.recv_event(), deadline).unwrap_err()
    ));
    tx.send(1).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(1),
        "nothing taken before"
    );
}

fn broadcast_sender_drop_wakes_receivers(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = broadcast::channel(4);
    let blocked = Arc::new(AtomicUsize::new(0));
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let (mut rx, blocked) = (rx.resubscribe(), blocked.clone());
            io.concurrent(move |_| {
                blocked.fetch_add(1, Ordering::SeqCst);
                (rx.recv(), rx.recv())
            })
            .unwrap()
        })
        .collect();
    drop(rx);
    wait_for("three receivers", || blocked.load(Ordering::SeqCst) == 3);
    let tx2 = tx.clone();
    tx.send(7).unwrap();
    drop(tx);
    let_it_block();
    drop(tx2);
    for r in receivers {
        assert_eq!(r.join().unwrap(), (Ok(7), Err(RecvError::Closed)));
    }
}

/// Every value made — sent, cloned for a receiver — is dropped exactly once: as soon as every
/// receiver has it (or left, or lagged past it), and the rest with the channel.
fn broadcast_values_dropped_exactly_once(io: &Io) {
    let census = Arc::new(Census::default());
    {
        let (tx, mut a) = broadcast::channel(4);
        let mut b = tx.subscribe();
        let c = tx.subscribe();
        for i in 0..3 {
            tx.send(Counted::new(&census, i)).unwrap();
        }
        drop(c); // left without taking anything
        for i in 0..3 {
            assert_eq!(a.recv().unwrap().id, i);
            assert_eq!(b.recv().unwrap().id, i);
        }
        let (made, dropped) = census.counts();
        assert_eq!(made, dropped, "everyone has them: none kept");
        // b lags: the values it misses are dropped when overwritten.
        for i in 3..13 {
            tx.send(Counted::new(&census, i)).unwrap();
            assert_eq!(a.recv().unwrap().id, i);
        }
        assert_eq!(b.recv().unwrap_err(), RecvError::Lagged(6));
        assert_eq!(b.recv().unwrap().id, 9);
        let (made, dropped) = census.counts();
        assert_eq!(made - dropped, 3, "10, 11, 12 wait for b");
        if has_concurrency(io) {
            let t = io.concurrent(move |_| b.recv().map(|v| v.id)).unwrap();
            assert_eq!(t.join().unwrap(), Ok(10));
        } else {
            drop(b);
        }
        tx.send(Counted::new(&census, 13)).unwrap();
        assert_eq!(census.counts().0 - census.counts().1, 1, "13 waits for a");
    }
    let (made, dropped) = census.counts();
    assert_eq!(made, dropped, "the rest went with the channel");
}

/// A panic in a value's `Clone` reaches the receiver that cloned it, which moves past that
/// value; the channel and the other receivers are unaffected.
fn broadcast_panic_in_clone_spares_the_others(io: &Io) {
    let census = Arc::new(Census::default());
    {
        let (tx, mut a) = broadcast::channel(8);
        let mut b = tx.subscribe();
        tx.send(Counted::new(&census, 1)).unwrap();
        tx.send(Counted::poisoned(&census, 2)).unwrap();
        tx.send(Counted::new(&census, 3)).unwrap();
        assert_eq!(a.recv().unwrap().id, 1);
        let r = catch_unwind(AssertUnwindSafe(|| a.recv()));
        assert!(r.is_err(), "a's clone of 2 panicked");
        assert_eq!(a.recv().unwrap().id, 3, "a moved past 2");
        assert_eq!(b.recv().unwrap().id, 1);
        // b is the last to take 2: it gets the value itself, no clone.
        assert_eq!(b.recv().unwrap().id, 2);
        assert_eq!(b.recv().unwrap().id, 3);
        if has_concurrency(io) {
            let t = io.concurrent(move |_| (a.recv().map(|v| v.id), a)).unwrap();
            tx.send(Counted::new(&census, 4)).unwrap();
            let (r, _a) = t.join().unwrap();
            assert_eq!(r, Ok(4));
        } else {
            tx.send(Counted::new(&census, 4)).unwrap();
            assert_eq!(a.recv().unwrap().id, 4);
        }
        assert_eq!(b.recv().unwrap().id, 4);
    }
    let (made, dropped) = census.counts();
    assert_eq!(made, dropped);
}

fn broadcast_recv_event_in_select(io: &Io) {
    use zsync::select::sleep;
    let (tx, mut rx) = broadcast::channel(4);
    let timer_won = zsync::select!(io;
        _ = rx.recv_event() => false,
        _ = sleep(Duration::from_millis(10)) => true,
    )
    .unwrap();
    assert!(timer_won);
    tx.send(9).unwrap();
    assert_eq!(io.wait(rx.recv_event()).unwrap(), Ok(9));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

conformance! {
    on sim:
        broadcast_every_receiver_gets_every_value,
        broadcast_lagging_receiver_skips_ahead,
        broadcast_many_receivers_across_tasks,
        broadcast_lagging_receivers_account_for_every_value,
        broadcast_cancel_while_blocked,
        broadcast_deadline_while_blocked,
        broadcast_sender_drop_wakes_receivers,
        broadcast_values_dropped_exactly_once,
        broadcast_panic_in_clone_spares_the_others,
        broadcast_recv_event_in_select,
    ;
    not on sim:
}

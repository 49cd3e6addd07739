//! Conformance tests: the watch channel on every model.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::channel::{watch, RecvError, SendError};
use zsync::Io;

use crate::support::{assert_timed_out, has_concurrency, let_it_block, wait_for, Census, Counted};

fn watch_send_borrow_and_versions(_io: &Io) {
    let (tx, mut rx) = watch::channel(0);
    assert_eq!(*rx.borrow(), 0);
    assert_eq!(
        rx.has_changed(),
        Ok(false),
        "the initial value counts as seen"
    );
    tx.send(1).unwrap();
    assert_eq!(rx.has_changed(), Ok(true));
    {
        let r = rx.borrow();
        assert!(r.has_changed());
        assert_eq!(*r, 1);
    }
    assert_eq!(rx.has_changed(), Ok(true), "borrow does not mark seen");
    assert!(rx.borrow_and_update().has_changed());
    assert_eq!(rx.has_changed(), Ok(false));
    // Two sends, one change seen: a receiver sees the latest value, not each one.
    tx.send(2).unwrap();
    tx.send(3).unwrap();
    assert_eq!(rx.changed(), Ok(()));
    assert_eq!(*rx.borrow(), 3);
    assert!(!rx.borrow().has_changed(), "changed marked it seen");
    assert_eq!(tx.send_replace(4), 3);
    tx.send_modify(|v| *v += 1);
    assert_eq!(*rx.borrow_and_update(), 5);
    assert!(!tx.send_if_modified(|_| false));
    assert_eq!(
        rx.has_changed(),
        Ok(false),
        "an unmodified value notifies nobody"
    );
    assert!(tx.send_if_modified(|v| {
        *v = 6;
        true
    }));
    assert_eq!(rx.has_changed(), Ok(true));
    rx.mark_unchanged();
    assert_eq!(rx.has_changed(), Ok(false));
    assert_eq!(*tx.borrow(), 6);
    // A clone has seen what the original has; a subscriber has seen the current value.
    tx.send(7).unwrap();
    let rx2 = rx.clone();
    let rx3 = tx.subscribe();
    assert_eq!(
        (rx2.has_changed(), rx3.has_changed()),
        (Ok(true), Ok(false))
    );
    assert_eq!(tx.receiver_count(), 3);
    assert!(rx.same_channel(&rx3) && tx.same_channel(&tx.clone()));
    assert!(!format!("{tx:?} {rx:?} {:?}", rx.borrow()).is_empty());
    // No receiver: `send` fails and stores nothing, `send_replace` stores.
    drop((rx, rx2, rx3));
    assert!(tx.is_closed());
    assert_eq!(tx.send(8), Err(SendError::Closed(8)));
    assert_eq!(*tx.borrow(), 7);
    assert_eq!(tx.send_replace(9), 7);
    let mut rx = tx.subscribe();
    assert_eq!(*rx.borrow_and_update(), 9);
    tx.send(10).unwrap();
    // The last sender's drop closes; the change made before it is still reported once.
    let tx2 = tx.clone();
    drop(tx);
    assert_eq!(rx.has_changed(), Ok(true), "one sender is left");
    drop(tx2);
    assert_eq!(rx.has_changed(), Err(RecvError::Closed));
    assert_eq!(rx.changed(), Ok(()));
    assert_eq!(*rx.borrow(), 10);
    let err = rx.changed().unwrap_err();
    assert!(err.is_closed());
    assert!(zsync::is_closed(&err.into()));
}

fn watch_wait_for_tests_the_current_value_first(io: &Io) {
    let (tx, mut rx) = watch::channel(5);
    assert_eq!(*rx.wait_for(|v| *v == 5).unwrap(), 5);
    if has_concurrency(io) {
        let setter = io
            .concurrent(move |io| {
                for i in 6..=20 {
                    tx.send(i).unwrap();
                    io.sleep(Duration::from_millis(1)).unwrap();
                }
                tx
            })
            .unwrap();
        let got = *rx.wait_for(|v| *v >= 12).unwrap();
        assert!(got >= 12);
        let tx = setter.join().unwrap();
        drop(tx);
    } else {
        drop(tx);
    }
    // Closed: a final value that passes is still returned, one that fails is `Closed`.
    let v = *rx.wait_for(|v| *v >= 5).unwrap();
    assert!(v >= 5);
    assert_eq!(rx.wait_for(|v| *v > 100).unwrap_err(), RecvError::Closed);
}

/// Four receiver tasks follow a sender of 1..=1000: each sees increasing values and ends with
/// the last one, then `Closed`.
fn watch_many_receivers_see_the_latest(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = watch::channel(0u32);
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let mut rx = rx.clone();
            io.concurrent(move |_| {
                let mut last = 0;
                let mut seen = 0;
                loop {
                    match rx.changed() {
                        Ok(()) => {
                            let v = *rx.borrow_and_update();
                            assert!(v > last, "{v} after {last}");
                            last = v;
                            seen += 1;
                        }
                        Err(RecvError::Closed) => return (last, seen),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    drop(rx);
    for i in 1..=1000 {
        tx.send(i).unwrap();
    }
    drop(tx);
    for r in receivers {
        let (last, seen) = r.join().unwrap();
        assert_eq!(last, 1000);
        assert!((1..=1000).contains(&seen));
    }
}

fn watch_cancel_while_blocked(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = watch::channel(0);
    let started = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (mut rx, started) = (rx.clone(), started.clone());
        io.concurrent(move |_| {
            started.store(true, Ordering::SeqCst);
            let r = rx.changed();
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
    tx.send(1).unwrap();
    assert_eq!(rx2.changed(), Ok(()), "the canceled receiver still works");
    assert_eq!(*rx2.borrow(), 1);
    // `Sender::closed` is a cancellation point too.
    let closer = io
        .concurrent(move |_| {
            let r = tx.closed();
            (r, tx)
        })
        .unwrap();
    let_it_block();
    let (r, tx) = closer.cancel().unwrap();
    assert!(zsync::is_canceled(&r.unwrap_err()));
    assert_eq!(tx.receiver_count(), 2);
    drop(rx);
}

fn watch_deadline_while_blocked(io: &Io) {
    let (tx, mut rx) = watch::channel(0);
    let r = io.timeout_until(crate::support::now() + Duration::from_millis(20), |_| {
        rx.changed()
    });
    assert_eq!(r, Err(RecvError::TimedOut));
    assert_eq!(
        rx.changed_timeout(Duration::from_millis(10)),
        Err(RecvError::TimedOut)
    );
    let soon = crate::support::now() + Duration::from_millis(10);
    assert_eq!(rx.changed_until(soon), Err(RecvError::TimedOut));
    assert_eq!(
        rx.wait_for_timeout(Duration::from_millis(10), |v| *v > 0)
            .unwrap_err(),
        RecvError::TimedOut
    );
    assert_timed_out(tx.closed_timeout(Duration::from_millis(10)));
    assert_timed_out(
        io.timeout_until(crate::support::now() + Duration::from_millis(10), |_| {
            tx.closed()
        }),
    );
    // Nothing was marked seen by the failed waits.
    tx.send(1).unwrap();
    assert_eq!(rx.changed_timeout(Duration::from_secs(5)), Ok(()));
    let err: std::io::Error = RecvError::TimedOut.into();
    assert!(zsync::is_timed_out(&err));
}

fn watch_sender_drop_wakes_receivers(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = watch::channel(0);
    let blocked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let (mut rx, blocked) = (rx.clone(), blocked.clone());
            io.concurrent(move |_| {
                blocked.fetch_add(1, Ordering::SeqCst);
                rx.changed()
            })
            .unwrap()
        })
        .collect();
    wait_for("three receivers", || blocked.load(Ordering::SeqCst) == 3);
    let_it_block();
    let tx2 = tx.clone();
    drop(tx);
    let_it_block();
    assert!(
        receivers.iter().all(|r| !r.is_finished()),
        "a sender is left"
    );
    drop(tx2);
    for r in receivers {
        assert_eq!(r.join().unwrap(), Err(RecvError::Closed));
    }
    // And the last receiver's drop wakes `Sender::closed`.
    let (tx, rx) = watch::channel(());
    let closer = io.concurrent(move |_| tx.closed()).unwrap();
    let_it_block();
    drop(rx);
    closer.join().unwrap().unwrap();
}

fn watch_values_dropped_exactly_once(_io: &Io) {
    let census = Arc::new(Census::default());
    {
        let (tx, mut rx) = watch::channel(Counted::new(&census, 0));
        let rx2 = tx.subscribe();
        for i in 1..=10 {
            tx.send(Counted::new(&census, i)).unwrap();
        }
        assert_eq!(census.counts(), (11, 10), "each replaced value dropped");
        let old = tx.send_replace(Counted::new(&census, 11));
        assert_eq!(old.id, 10);
        drop(old);
        tx.send_modify(|v| v.id = 12);
        assert_eq!(rx.borrow_and_update().id, 12);
        drop(rx2);
        drop(rx);
        assert_eq!(
            tx.send(Counted::new(&census, 13))
                .unwrap_err()
                .into_inner()
                .id,
            13
        );
        assert_eq!(census.counts(), (13, 12));
    }
    assert_eq!(
        census.counts(),
        (13, 13),
        "the last value goes with the channel"
    );
}

/// A panic while a borrow is held (a value's `Clone`) or in `send_modify`'s closure releases
/// the lock and leaves the channel usable, for this receiver and the others.
fn watch_panic_leaves_the_channel_usable(io: &Io) {
    let census = Arc::new(Census::default());
    let (tx, mut rx) = watch::channel(Counted::poisoned(&census, 1));
    let rx2 = tx.subscribe();
    let r = catch_unwind(AssertUnwindSafe(|| rx.borrow().clone()));
    assert!(r.is_err(), "the clone panicked");
    // The read lock was released: a send does not wait for ever (on this very thread).
    tx.send(Counted::new(&census, 2)).unwrap();
    assert_eq!(rx.borrow_and_update().id, 2);
    let r = catch_unwind(AssertUnwindSafe(|| {
        tx.send_modify(|v| {
            v.id = 3;
            panic!("modify gives up");
        })
    }));
    assert!(r.is_err());
    assert_eq!(
        rx.has_changed(),
        Ok(false),
        "a panicked modify notifies nobody"
    );
    assert_eq!(rx.borrow().id, 3, "what the closure did stays");
    tx.send(Counted::new(&census, 4)).unwrap();
    assert_eq!(rx2.borrow().id, 4);
    if has_concurrency(io) {
        let mut rx3 = rx2.clone();
        let follower = io
            .concurrent(move |_| rx3.wait_for(|v| v.id == 5).map(|v| v.id))
            .unwrap();
        tx.send(Counted::poisoned(&census, 44)).unwrap();
        assert!(catch_unwind(AssertUnwindSafe(|| rx.borrow().clone())).is_err());
        tx.send(Counted::new(&census, 5)).unwrap();
        assert_eq!(follower.join().unwrap(), Ok(5));
    }
    drop((tx, rx, rx2));
    let (made, dropped) = census.counts();
    assert_eq!(made, dropped);
}

/// A borrow held across a wait does not stall a sender's worker: the sender's task waits
/// (parked) for the borrow to end.
fn watch_borrow_held_across_a_wait(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx, rx) = watch::channel(0);
    let holding = Arc::new(AtomicBool::new(false));
    let holder = {
        let holding = holding.clone();
        io.concurrent(move |io| {
            let r = rx.borrow();
            holding.store(true, Ordering::SeqCst);
            io.sleep(Duration::from_millis(50)).unwrap();
            let v = *r;
            drop(r);
            (v, rx)
        })
        .unwrap()
    };
    wait_for("the borrow", || holding.load(Ordering::SeqCst));
    let sender = io.concurrent(move |_| tx.send(1).map(|()| tx)).unwrap();
    let (v, rx) = holder.join().unwrap();
    assert_eq!(v, 0, "the send waited for the borrow");
    let _tx = sender.join().unwrap();
    assert_eq!(*rx.borrow(), 1);
}

fn watch_changed_event_in_select(io: &Io) {
    use zsync::select::sleep;
    let (tx, mut rx) = watch::channel(0);
    let timer_won = zsync::select!(io;
        _ = rx.changed_event() => false,
        _ = sleep(Duration::from_millis(10)) => true,
    )
    .unwrap();
    assert!(timer_won);
    assert_eq!(rx.has_changed(), Ok(false));
    tx.send(1).unwrap();
    let r = io.wait(rx.changed_event()).unwrap();
    assert_eq!(r, Ok(()));
    assert_eq!(rx.has_changed(), Ok(false), "the event marked it seen");
    let deadline = crate::support::now() + Duration::from_millis(10);
    assert_timed_out(io.wait_until(rx.changed_event(), deadline));
    drop(rx);
    assert_eq!(io.wait(tx.closed_event()).unwrap(), ());
}

conformance! {
    on sim:
        watch_send_borrow_and_versions,
        watch_wait_for_tests_the_current_value_first,
        watch_many_receivers_see_the_latest,
        watch_cancel_while_blocked,
        watch_deadline_while_blocked,
        watch_sender_drop_wakes_receivers,
        watch_values_dropped_exactly_once,
        watch_panic_leaves_the_channel_usable,
        watch_borrow_held_across_a_wait,
        watch_changed_event_in_select,
    ;
    not on sim:
}

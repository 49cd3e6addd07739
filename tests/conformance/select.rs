//! Conformance tests: select!, race, all, try_all, timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zsync::channel::{bounded, oneshot, RecvError, TryRecvError};
use zsync::select::{cancel_requested, sleep, sleep_until};
use zsync::sync::ResetEvent;
use zsync::Io;

use crate::support::{assert_canceled, has_concurrency};

fn select_picks_the_first_ready_event(io: &Io) {
    // The late arm cannot be ready first however loaded the machine: with 200 ms (as this
    // test had), a thread descheduled that long found both ready and picked either.
    let r = zsync::select!(io;
        _ = sleep(Duration::from_secs(60)) => "late",
        _ = sleep(Duration::from_millis(10)) => "early",
    )
    .unwrap();
    assert_eq!(r, "early");
}

fn select_over_a_finished_task_and_a_timer(io: &Io) {
    let mut t = io.spawn(|_| 7);
    if io.supports_concurrency() {
        while !t.is_finished() {
            io.sleep(Duration::from_millis(1)).unwrap();
        }
    }
    let r = zsync::select!(io;
        v = t.join_event() => v.unwrap(),
        _ = sleep(Duration::from_secs(5)) => 0,
    )
    .unwrap();
    assert_eq!(r, 7);
}

fn select_leaves_the_losing_task_untouched(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    // The task finishes only once the select is over (it used to sleep 100 ms: a thread
    // descheduled that long found it finished and the select took it).
    let gate = Arc::new(ResetEvent::new());
    let g = gate.clone();
    let mut slow = io.concurrent(move |_| g.wait().map(|_| 5)).unwrap();
    let r = zsync::select!(io;
        v = slow.join_event() => v.unwrap().unwrap(),
        _ = sleep(Duration::from_millis(5)) => 0,
    )
    .unwrap();
    assert_eq!(r, 0);
    gate.set();
    // The loser still runs to completion and keeps its value.
    assert_eq!(slow.join().unwrap().unwrap(), 5);
}

fn select_is_fair_among_ready_arms(io: &Io) {
    let mut wins = [0u32; 3];
    let past = crate::support::now();
    for _ in 0..3000 {
        let i = zsync::select!(io;
            _ = sleep_until(past) => 0usize,
            _ = sleep_until(past) => 1usize,
            _ = sleep_until(past) => 2usize,
        )
        .unwrap();
        wins[i] += 1;
    }
    for (arm, w) in wins.iter().enumerate() {
        assert!(
            (700..=1300).contains(w),
            "arm {arm} won {w} of 3000: {wins:?}"
        );
    }
}

fn select_reports_cancellation_as_error_or_arm(io: &Io) {
    io.cancel_current();
    let r = zsync::select!(io;
        _ = sleep(Duration::from_secs(5)) => 1,
    );
    assert_canceled(r);
    let r = zsync::select!(io;
        _ = sleep(Duration::from_secs(5)) => "timer",
        _ = cancel_requested() => "canceled",
    )
    .unwrap();
    assert_eq!(r, "canceled");
}

fn select_wakes_on_cancel_while_blocked(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let t = io
        .concurrent(|io| {
            zsync::select!(io;
                _ = sleep(Duration::from_secs(30)) => "timer",
                _ = cancel_requested() => "canceled",
            )
        })
        .unwrap();
    io.sleep(Duration::from_millis(20)).unwrap();
    let start = crate::support::now();
    assert_eq!(t.cancel().unwrap().unwrap(), "canceled");
    assert!(crate::support::elapsed(start) < Duration::from_secs(2));
}

fn select_respects_the_task_deadline(io: &Io) {
    let r = io.timeout(Duration::from_millis(20), |io| {
        zsync::select!(io;
            _ = sleep(Duration::from_secs(5)) => (),
        )
    });
    assert!(zsync::is_timed_out(&r.unwrap_err()));
}

fn race_returns_the_first_result_and_cancels_the_rest(io: &Io) {
    let canceled = Arc::new(AtomicUsize::new(0));
    let c = canceled.clone();
    let start = crate::support::now();
    type Racer = Box<dyn FnOnce(&Io) -> &'static str + Send>;
    let racers: Vec<Racer> = vec![
        Box::new(|io: &Io| {
            io.sleep(Duration::from_millis(10)).ok();
            "fast"
        }),
        Box::new(move |io: &Io| {
            if io
                .sleep(Duration::from_secs(30))
                .is_err_and(|e| zsync::is_canceled(&e))
            {
                c.fetch_add(1, Ordering::SeqCst);
            }
            "slow"
        }),
    ];
    assert_eq!(io.race(racers).unwrap(), "fast");
    assert!(crate::support::elapsed(start) < Duration::from_secs(5));
    // On Blocking the first racer wins inline and the second never starts.
    let expected = usize::from(io.supports_concurrency());
    assert_eq!(canceled.load(Ordering::SeqCst), expected);
}

fn all_returns_every_result_in_order(io: &Io) {
    let values = io.all((0..20u64).map(|i| {
        move |io: &Io| {
            io.sleep(Duration::from_millis(20 - i)).unwrap();
            i * i
        }
    }));
    assert_eq!(
        values.unwrap(),
        (0..20u64).map(|i| i * i).collect::<Vec<_>>()
    );
}

fn try_all_reports_the_first_error_and_cancels_the_rest(io: &Io) {
    let start = crate::support::now();
    type Job = Box<dyn FnOnce(&Io) -> std::io::Result<u32> + Send>;
    let jobs: Vec<Job> = vec![
        Box::new(|io: &Io| io.sleep(Duration::from_secs(30)).map(|_| 1)),
        Box::new(|io: &Io| {
            io.sleep(Duration::from_millis(10))?;
            Err(std::io::Error::other("job 2 failed"))
        }),
    ];
    if io.supports_concurrency() {
        let jobs: Vec<Job> = jobs.into_iter().map(|j| -> Job { j }).collect();
        let err = io.try_all(jobs).unwrap_err();
        assert_eq!(err.to_string(), "job 2 failed");
        assert!(crate::support::elapsed(start) < Duration::from_secs(5));
    } else {
        // Inline, in order: put the failing job first so the sleeper is canceled at once.
        let err = io.try_all(jobs.into_iter().rev()).unwrap_err();
        assert_eq!(err.to_string(), "job 2 failed");
        assert!(crate::support::elapsed(start) < Duration::from_secs(5));
    }
    assert_eq!(
        io.try_all((0..3u32).map(|i| move |_: &Io| Ok::<_, std::io::Error>(i)))
            .unwrap(),
        vec![0, 1, 2]
    );
}

fn timeout_stops_blocking_operations_with_a_distinct_error(io: &Io) {
    let start = crate::support::now();
    let err = io
        .timeout(Duration::from_millis(20), |io| {
            io.sleep(Duration::from_secs(30))
        })
        .unwrap_err();
    assert!(zsync::is_timed_out(&err));
    assert!(!zsync::is_canceled(&err));
    assert!(crate::support::elapsed(start) < Duration::from_secs(2));
    // Within the time limit, the value comes through.
    assert_eq!(
        io.timeout(Duration::from_secs(5), |io| io
            .sleep(Duration::from_millis(1))
            .map(|_| 3))
            .unwrap(),
        3
    );
    // Nested timeouts: the earlier deadline wins.
    let err = io
        .timeout(Duration::from_secs(30), |io| {
            io.timeout(Duration::from_millis(10), |io| {
                io.sleep(Duration::from_secs(30))
            })
        })
        .unwrap_err();
    assert!(zsync::is_timed_out(&err));
}

fn select_over_two_receivers_takes_only_the_ready_one(io: &Io) {
    let (tx_a, rx_a) = bounded::<u32>(4);
    let (tx_b, rx_b) = bounded::<u32>(4);
    tx_b.send(2).unwrap();
    let r = zsync::select!(io;
        v = rx_a.recv_event() => ("a", v),
        v = rx_b.recv_event() => ("b", v),
    )
    .unwrap();
    assert_eq!(r, ("b", Ok(2)));
    // Both ready: exactly one message is taken, the loser's stays in its channel.
    tx_a.send(10).unwrap();
    tx_b.send(20).unwrap();
    let (won, v) = zsync::select!(io;
        v = rx_a.recv_event() => ("a", v.unwrap()),
        v = rx_b.recv_event() => ("b", v.unwrap()),
    )
    .unwrap();
    let loser = if won == "a" { &rx_b } else { &rx_a };
    assert_eq!(v, if won == "a" { 10 } else { 20 });
    assert_eq!(loser.try_recv(), Ok(if won == "a" { 20 } else { 10 }));
    assert_eq!(rx_a.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rx_b.try_recv(), Err(TryRecvError::Empty));
}

fn select_recv_against_a_sleep_times_out_and_leaves_the_channel(io: &Io) {
    let (tx, rx) = bounded::<u32>(1);
    let start = crate::support::now();
    let r = zsync::select!(io;
        v = rx.recv_event() => Some(v),
        _ = sleep(Duration::from_millis(20)) => None,
    )
    .unwrap();
    assert_eq!(r, None);
    let took = crate::support::elapsed(start);
    assert!(took >= Duration::from_millis(20), "woke early: {took:?}");
    assert!(took < Duration::from_secs(2), "woke late: {took:?}");
    // The abandoned receive left no trace: a later message is delivered normally.
    tx.send(5).unwrap();
    assert_eq!(rx.try_recv(), Ok(5));
}

fn select_send_on_a_full_channel_against_a_recv(io: &Io) {
    let (full_tx, full_rx) = bounded::<u32>(1);
    full_tx.send(1).unwrap();
    let (tx, rx) = bounded::<u32>(1);
    tx.send(7).unwrap();
    let r = zsync::select!(io;
        s = full_tx.send_event(2) => Err(s),
        v = rx.recv_event() => Ok(v.unwrap()),
    )
    .unwrap();
    assert_eq!(r, Ok(7));
    // The send lost: its value was never pushed.
    assert_eq!(full_rx.try_recv(), Ok(1));
    assert_eq!(full_rx.try_recv(), Err(TryRecvError::Empty));
    // Once there is room, the send arm wins.
    let r = zsync::select!(io;
        s = full_tx.send_event(3) => s.is_ok(),
        _ = rx.recv_event() => false,
    )
    .unwrap();
    assert!(r);
    assert_eq!(full_rx.try_recv(), Ok(3));
}

fn select_is_fair_between_two_ready_receivers(io: &Io) {
    const ROUNDS: u32 = 2000;
    let (tx_a, rx_a) = bounded::<u32>(1);
    let (tx_b, rx_b) = bounded::<u32>(1);
    let mut a_wins = 0u32;
    for _ in 0..ROUNDS {
        // Keep both always ready: refill whichever was taken.
        let _ = tx_a.try_send(0);
        let _ = tx_b.try_send(1);
        let v = zsync::select!(io;
            v = rx_a.recv_event() => v.unwrap(),
            v = rx_b.recv_event() => v.unwrap(),
        )
        .unwrap();
        if v == 0 {
            a_wins += 1;
        }
    }
    let share = f64::from(a_wins) / f64::from(ROUNDS);
    assert!(
        (0.4..=0.6).contains(&share),
        "receiver a won {a_wins} of {ROUNDS}"
    );
}

fn select_on_two_empty_channels_wakes_on_a_send_to_either(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    for which in [0u32, 1] {
        let (tx_a, rx_a) = bounded::<u32>(1);
        let (tx_b, rx_b) = bounded::<u32>(1);
        let waiter = io
            .concurrent(move |io| {
                zsync::select!(io;
                    v = rx_a.recv_event() => (0, v.unwrap()),
                    v = rx_b.recv_event() => (1, v.unwrap()),
                )
            })
            .unwrap();
        io.sleep(Duration::from_millis(20)).unwrap();
        let tx = if which == 0 { &tx_a } else { &tx_b };
        tx.send(40 + which).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), (which, 40 + which));
    }
}

fn select_on_two_empty_channels_wakes_on_cancel(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let (tx_a, rx_a) = bounded::<u32>(1);
    let (tx_b, rx_b) = bounded::<u32>(1);
    let (rx_a2, rx_b2) = (rx_a.clone(), rx_b.clone());
    let (keep_a, keep_b) = (rx_a.clone(), rx_b.clone());
    // A `cancel_requested()` arm reports the cancellation as a value.
    let with_arm = io
        .concurrent(move |io| {
            zsync::select!(io;
                _ = rx_a2.recv_event() => "a",
                _ = rx_b2.recv_event() => "b",
                _ = cancel_requested() => "canceled",
            )
        })
        .unwrap();
    // Without one, the select fails with Canceled.
    let plain = io
        .concurrent(move |io| {
            zsync::select!(io;
                _ = rx_a.recv_event() => "a",
                _ = rx_b.recv_event() => "b",
            )
        })
        .unwrap();
    io.sleep(Duration::from_millis(20)).unwrap();
    let start = crate::support::now();
    assert_eq!(with_arm.cancel().unwrap().unwrap(), "canceled");
    assert_canceled(plain.cancel().unwrap());
    assert!(crate::support::elapsed(start) < Duration::from_secs(2));
    // Neither canceled select took anything or left a registration behind: the channels are
    // empty and deliver normally.
    assert_eq!(keep_a.try_recv(), Err(TryRecvError::Empty));
    tx_a.send(1).unwrap();
    tx_b.send(2).unwrap();
    assert_eq!((keep_a.try_recv(), keep_b.try_recv()), (Ok(1), Ok(2)));
}

fn select_over_a_join_event_and_a_channel(io: &Io) {
    let (tx, rx) = bounded::<u32>(1);
    let (done_tx, done_rx) = oneshot::<u32>();
    if io.supports_concurrency() {
        // The channel delivers first; the task is left running (until the gate opens after
        // the first select, not for a fixed time) and joined afterwards.
        let gate = Arc::new(ResetEvent::new());
        let g = gate.clone();
        let mut task = io
            .concurrent(move |_| {
                g.wait()?;
                done_tx.send(3).ok();
                Ok::<_, std::io::Error>(9)
            })
            .unwrap();
        let keep_open = tx.clone();
        let sender = io
            .concurrent(move |io| {
                io.sleep(Duration::from_millis(5)).unwrap();
                tx.send(8).unwrap();
            })
            .unwrap();
        let r = zsync::select!(io;
            v = task.join_event() => v.unwrap().unwrap(),
            v = rx.recv_event() => v.unwrap(),
        )
        .unwrap();
        assert_eq!(r, 8);
        sender.join().unwrap();
        gate.set();
        // Then the task finishes: its join event wins against the now-empty channel.
        let r = zsync::select!(io;
            v = task.join_event() => v.unwrap().unwrap(),
            v = rx.recv_event() => v.unwrap() + 100,
        )
        .unwrap();
        assert_eq!(r, 9);
        assert_eq!(done_rx.recv(), Ok(3));
        drop(keep_open);
    } else {
        // Blocking: the spawned task ran inline, so its join event is ready at once.
        let mut task = io.spawn(move |_| {
            done_tx.send(3).ok();
            9
        });
        let r = zsync::select!(io;
            v = task.join_event() => v.unwrap(),
            v = rx.recv_event() => v.unwrap(),
        )
        .unwrap();
        assert_eq!(r, 9);
        assert_eq!(done_rx.try_recv(), Ok(3));
        drop(tx);
        assert_eq!(rx.recv(), Err(RecvError::Closed));
    }
}

conformance! {
    on sim:
        select_picks_the_first_ready_event,
        select_over_a_finished_task_and_a_timer,
        select_leaves_the_losing_task_untouched,
        select_is_fair_among_ready_arms,
        select_reports_cancellation_as_error_or_arm,
        select_wakes_on_cancel_while_blocked,
        select_respects_the_task_deadline,
        race_returns_the_first_result_and_cancels_the_rest,
        all_returns_every_result_in_order,
        try_all_reports_the_first_error_and_cancels_the_rest,
        timeout_stops_blocking_operations_with_a_distinct_error,
        select_over_two_receivers_takes_only_the_ready_one,
        select_recv_against_a_sleep_times_out_and_leaves_the_channel,
        select_send_on_a_full_channel_against_a_recv,
        select_is_fair_between_two_ready_receivers,
        select_on_two_empty_channels_wakes_on_a_send_to_either,
        select_on_two_empty_channels_wakes_on_cancel,
        select_over_a_join_event_and_a_channel,
    ;
    not on sim:
}

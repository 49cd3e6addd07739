//! Conformance tests: select!, race, all, try_all, timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zsync::select::{canceled, sleep, sleep_until};
use zsync::Io;

use crate::support::{assert_canceled, has_concurrency};

fn select_picks_the_first_ready_event(io: &Io) {
    let start = Instant::now();
    let r = zsync::select!(io;
        _ = sleep(Duration::from_millis(200)) => "late",
        _ = sleep(Duration::from_millis(10)) => "early",
    )
    .unwrap();
    assert_eq!(r, "early");
    assert!(start.elapsed() < Duration::from_millis(200));
}

fn select_over_a_finished_task_and_a_timer(io: &Io) {
    let mut t = io.spawn(|_| 7);
    if io.supports_concurrency() {
        while !t.is_finished() {
            io.sleep(Duration::from_millis(1)).unwrap();
        }
    }
    let r = zsync::select!(io;
        v = t.join_event() => v,
        _ = sleep(Duration::from_secs(5)) => 0,
    )
    .unwrap();
    assert_eq!(r, 7);
}

fn select_leaves_the_losing_task_untouched(io: &Io) {
    if !has_concurrency(io) {
        return;
    }
    let mut slow = io
        .concurrent(|io| io.sleep(Duration::from_millis(100)).map(|_| 5))
        .unwrap();
    let r = zsync::select!(io;
        v = slow.join_event() => v.unwrap(),
        _ = sleep(Duration::from_millis(5)) => 0,
    )
    .unwrap();
    assert_eq!(r, 0);
    // The loser still runs to completion and keeps its value.
    assert_eq!(slow.join().unwrap().unwrap(), 5);
}

fn select_is_fair_among_ready_arms(io: &Io) {
    let mut wins = [0u32; 3];
    let past = Instant::now();
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
        _ = canceled() => "canceled",
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
                _ = canceled() => "canceled",
            )
        })
        .unwrap();
    io.sleep(Duration::from_millis(20)).unwrap();
    let start = Instant::now();
    assert_eq!(t.cancel().unwrap(), "canceled");
    assert!(start.elapsed() < Duration::from_secs(2));
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
    let start = Instant::now();
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
    assert!(start.elapsed() < Duration::from_secs(5));
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
    let start = Instant::now();
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
        assert!(start.elapsed() < Duration::from_secs(5));
    } else {
        // Inline, in order: put the failing job first so the sleeper is canceled at once.
        let err = io.try_all(jobs.into_iter().rev()).unwrap_err();
        assert_eq!(err.to_string(), "job 2 failed");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(
        io.try_all((0..3u32).map(|i| move |_: &Io| Ok::<_, std::io::Error>(i)))
            .unwrap(),
        vec![0, 1, 2]
    );
}

fn timeout_stops_blocking_operations_with_a_distinct_error(io: &Io) {
    let start = Instant::now();
    let err = io
        .timeout(Duration::from_millis(20), |io| {
            io.sleep(Duration::from_secs(30))
        })
        .unwrap_err();
    assert!(zsync::is_timed_out(&err));
    assert!(!zsync::is_canceled(&err));
    assert!(start.elapsed() < Duration::from_secs(2));
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

conformance! {
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
}

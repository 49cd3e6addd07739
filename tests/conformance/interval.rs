//! Conformance tests: `zsync::time::Interval` on every model.
//!
//! The missed-tick tests do not depend on how long anything took: they block the task for many
//! periods and then check the *scheduled instants* `tick` returns, which follow each behaviour's
//! rule exactly (arithmetic on `Instant`s), whatever the machine's load.

use std::time::{Duration, Instant};

use zsync::time::{Interval, MissedTickBehavior};
use zsync::Io;

use crate::support::{assert_canceled, assert_timed_out, has_concurrency};

const PERIOD: Duration = Duration::from_millis(10);
/// Blocking this long misses at least six ticks.
const BLOCK: Duration = Duration::from_millis(60);

/// Whether `t` is on the schedule `start + k × PERIOD`.
fn on_grid(start: Instant, t: Instant) -> bool {
    (t - start).as_nanos().is_multiple_of(PERIOD.as_nanos())
}

fn interval_ticks_on_its_schedule(io: &Io) {
    let before = crate::support::now();
    let mut iv = io.interval(PERIOD);
    let first = iv.tick().unwrap();
    assert!(
        first >= before && first <= crate::support::now(),
        "the first tick is at once"
    );
    let start = crate::support::now();
    let mut iv = Interval::new_at(io, start, PERIOD);
    assert_eq!(iv.period(), PERIOD);
    assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
    for k in 0..5 {
        let t = iv.tick().unwrap();
        assert_eq!(t, start + PERIOD * k, "tick {k}");
        assert!(crate::support::now() >= t, "a tick never completes early");
    }
    assert_eq!(iv.next_tick(), start + PERIOD * 5);
    assert!(!format!("{iv:?}").is_empty());
}

/// Burst: after a long block, the missed ticks come back to back, each on the schedule.
fn interval_burst_catches_up(io: &Io) {
    let start = crate::support::now();
    let mut iv = io.interval_at(start, PERIOD);
    assert_eq!(iv.tick().unwrap(), start);
    io.sleep(BLOCK).unwrap();
    for k in 1..=8 {
        assert_eq!(iv.tick().unwrap(), start + PERIOD * k, "tick {k}");
    }
}

/// Delay: the late tick is returned at once, then the schedule restarts a period after it was
/// handled, and no two ticks are closer than a period.
fn interval_delay_restarts_from_now(io: &Io) {
    let start = crate::support::now();
    let mut iv = io.interval_at(start, PERIOD);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    assert_eq!(iv.tick().unwrap(), start);
    io.sleep(BLOCK).unwrap();
    let after = crate::support::now();
    // The late tick, as scheduled (`start + PERIOD` unless the first tick was itself late).
    let late = iv.tick().unwrap();
    assert!(late >= start + PERIOD && late < after);
    let mut prev = iv.tick().unwrap();
    assert!(
        prev >= after + PERIOD,
        "a period after the late tick was handled"
    );
    for _ in 0..3 {
        let t = iv.tick().unwrap();
        assert!(t >= prev + PERIOD);
        prev = t;
    }
}

/// Skip: the late tick is returned at once, then the schedule goes on from the first instant of
/// the original grid after now.
fn interval_skip_stays_on_the_grid(io: &Io) {
    let start = crate::support::now();
    let mut iv = io.interval_at(start, PERIOD);
    iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
    assert_eq!(iv.tick().unwrap(), start);
    io.sleep(BLOCK).unwrap();
    let after = crate::support::now();
    // The late tick, as scheduled (`start + PERIOD` unless the first tick was itself late).
    let late = iv.tick().unwrap();
    assert!(on_grid(start, late) && late > start && late < after);
    let mut prev = iv.tick().unwrap();
    assert!(on_grid(start, prev), "back on the original schedule");
    assert!(prev > after, "the missed ticks were skipped");
    for _ in 0..3 {
        let t = iv.tick().unwrap();
        assert!(on_grid(start, t) && t > prev);
        prev = t;
    }
}

fn interval_reset(io: &Io) {
    let mut iv = io.interval(Duration::from_secs(3600));
    iv.tick().unwrap();
    let before = crate::support::now();
    iv.reset();
    assert!(iv.next_tick() >= before + Duration::from_secs(3600));
    iv.reset_immediately();
    let t = iv.tick().unwrap();
    assert!(t >= before && t <= crate::support::now());
    let at = crate::support::now() + Duration::from_millis(5);
    iv.reset_at(at);
    assert_eq!(iv.tick().unwrap(), at);
    assert_eq!(iv.next_tick(), at + Duration::from_secs(3600));
}

/// A tick that times out is not consumed: the next `tick` returns it.
fn interval_tick_honours_deadlines(io: &Io) {
    let start = crate::support::now() + Duration::from_secs(3600);
    let mut iv = io.interval_at(start, PERIOD);
    let r = io.timeout_until(crate::support::now() + Duration::from_millis(20), |_| {
        iv.tick()
    });
    assert_timed_out(r);
    assert_timed_out(iv.tick_timeout(Duration::from_millis(10)));
    assert_timed_out(iv.tick_until(crate::support::now() + Duration::from_millis(10)));
    assert_eq!(iv.next_tick(), start, "not consumed");
    // `Io::wait_until` wakes for the tick before its own deadline.
    let soon = crate::support::now() + Duration::from_millis(20);
    iv.reset_at(soon);
    let began = crate::support::now();
    let far = began + Duration::from_secs(60);
    assert_eq!(io.wait_until(iv.tick_event(), far).unwrap(), soon);
    assert!(
        crate::support::elapsed(began) < Duration::from_secs(30),
        "woken by the tick"
    );
}

fn interval_tick_event_in_select(io: &Io) {
    let (tx, rx) = zsync::channel::unbounded();
    let start = crate::support::now() + Duration::from_secs(3600);
    let mut iv = io.interval_at(start, PERIOD);
    tx.send(1).unwrap();
    let got = zsync::select!(io;
        _ = iv.tick_event() => None,
        v = rx.recv_event() => v.ok(),
    )
    .unwrap();
    assert_eq!(got, Some(1));
    assert_eq!(iv.next_tick(), start, "the losing tick is not consumed");
    iv.reset_immediately();
    let ticked = zsync::select!(io;
        t = iv.tick_event() => Some(t),
        v = rx.recv_event() => v.ok().map(|_: i32| crate::support::now()),
    )
    .unwrap();
    assert!(ticked.is_some());
}

fn interval_tick_is_a_cancellation_point(io: &Io) {
    if has_concurrency(io) {
        let waiter = io
            .concurrent(|io| {
                let mut iv = io.interval(Duration::from_secs(3600));
                iv.tick()?;
                iv.tick()
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let began = crate::support::now();
        assert_canceled(waiter.cancel().unwrap());
        assert!(crate::support::elapsed(began) < Duration::from_secs(30));
    }
    let mut iv = io.interval(PERIOD);
    io.cancel_current();
    assert_canceled(iv.tick());
    assert!(io.shielded(|| iv.tick()).is_ok());
}

conformance! {
    on sim:
        interval_ticks_on_its_schedule,
        interval_burst_catches_up,
        interval_delay_restarts_from_now,
        interval_skip_stays_on_the_grid,
        interval_reset,
        interval_tick_honours_deadlines,
        interval_tick_event_in_select,
        interval_tick_is_a_cancellation_point,
    ;
    not on sim:
}

//! A circuit breaker per downstream service: closed, open, half-open.
//!
//! - **Closed**: calls go through; each failure of the downstream itself (see
//!   [`Outcome`]) adds one to a count of consecutive failures, each success resets it. At
//!   `failure_threshold` consecutive failures the breaker opens.
//! - **Open**: calls are refused at once (the caller answers `503` naming the downstream)
//!   until `open_for` has passed since it opened.
//! - **Half-open**: the first call after that is let through as a *probe*, and every other call
//!   is still refused while it runs. A probe that succeeds closes the breaker; one that fails
//!   opens it again for another `open_for`; one that ends without a verdict (the caller's
//!   deadline passed, or it was canceled) lets the next call probe.
//!
//! The state is a small struct under a `std` mutex held for a few instructions and never across
//! a wait, so the breaker is the same object on every model (and on Tokio, in the benchmark's
//! peer). It reads no clock of its own: callers pass `now`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Clone, Debug)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets a probe through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(1),
        }
    }
}

/// A breaker's state, as `/metrics` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe call is in flight or about to be; the others are refused.
    HalfOpen,
}

impl State {
    /// `"closed"`, `"open"` or `"half-open"`.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// How a call let through by the breaker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The downstream answered (any answer that is not its own failure).
    Success,
    /// The downstream failed: refused or reset the connection, closed it mid-response, or
    /// answered a `5xx` naming itself as the failed service.
    Failure,
    /// No verdict on the downstream: the caller's deadline passed or the caller was canceled.
    Inconclusive,
}

/// What the breaker has seen, for `/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    /// The current state.
    pub state: State,
    /// Failures in a row while closed.
    pub consecutive_failures: u32,
    /// How many times it opened.
    pub opened: u64,
    /// Calls refused because it was open (or half-open with a probe in flight).
    pub rejected: u64,
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    /// When the breaker last opened (meaningful in `Open`).
    opened_at: Instant,
    /// A probe is in flight (meaningful in `HalfOpen`).
    probing: bool,
    opened: u64,
    rejected: u64,
}

/// A circuit breaker. `Sync`: share it between every task calling the same downstream.
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
}

/// The right to make one call, from [`Breaker::admit`]. Report how it ended with
/// [`finish`](Permit::finish); dropped without a verdict, it counts as
/// [`Outcome::Inconclusive`] (a call abandoned by a panic does not leave the breaker half-open
/// with a probe that never ends).
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                opened_at: Instant::now(),
                probing: false,
                opened: 0,
                rejected: 0,
            }),
        }
    }

    /// The breaker's settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing under the lock can panic midway through an update; a poisoned lock still
        // holds a consistent state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to make a call at `now`: a [`Permit`], or `None` if the breaker refuses it.
    pub fn admit(&self, now: Instant) -> Option<Permit<'_>> {
        let mut s = self.lock();
        let probe = match s.state {
            State::Closed => false,
            State::Open if now.saturating_duration_since(s.opened_at) >= self.cfg.open_for => {
                s.state = State::HalfOpen;
                s.probing = true;
                true
            }
            State::HalfOpen if !s.probing => {
                s.probing = true;
                true
            }
            State::Open | State::HalfOpen => {
                s.rejected += 1;
                return None;
            }
        };
        Some(Permit {
            breaker: self,
            probe,
            done: false,
        })
    }

    /// The current state and counts.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        Snapshot {
            state: s.state,
            consecutive_failures: s.consecutive_failures,
            opened: s.opened,
            rejected: s.rejected,
        }
    }

    fn record(&self, probe: bool, outcome: Outcome, now: Instant) {
        let mut s = self.lock();
        if probe {
            s.probing = false;
        }
        match outcome {
            Outcome::Success => {
                // A success closes a half-open breaker; in a closed one it ends the run of
                // failures. (A call admitted while closed that succeeds after the breaker
                // opened does not close it: only a probe does.)
                if probe || s.state == State::Closed {
                    s.state = State::Closed;
                    s.consecutive_failures = 0;
                }
            }
            Outcome::Failure => match s.state {
                State::Closed => {
                    s.consecutive_failures += 1;
                    if s.consecutive_failures >= self.cfg.failure_threshold {
                        s.state = State::Open;
                        s.opened_at = now;
                        s.opened += 1;
                    }
                }
                State::HalfOpen if probe => {
                    s.state = State::Open;
                    s.opened_at = now;
                    s.opened += 1;
                }
                // A straggler admitted before the breaker opened: already counted as open.
                State::HalfOpen | State::Open => {}
            },
            Outcome::Inconclusive => {}
        }
    }
}

impl Permit<'_> {
    /// Whether this call is the half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports how the call ended, at `now`.
    pub fn finish(mut self, outcome: Outcome, now: Instant) {
        self.done = true;
        self.breaker.record(self.probe, outcome, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker
                .record(self.probe, Outcome::Inconclusive, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_threshold_then_probes_and_closes() {
        let b = breaker();
        let t0 = Instant::now();
        b.admit(t0).unwrap().finish(Outcome::Failure, t0);
        assert_eq!(b.snapshot().state, State::Closed);
        b.admit(t0).unwrap().finish(Outcome::Failure, t0);
        assert_eq!(b.snapshot().state, State::Open);
        assert!(b.admit(t0 + Duration::from_secs(1)).is_none());
        let later = t0 + Duration::from_secs(11);
        let probe = b.admit(later).unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.snapshot().state, State::HalfOpen);
        assert!(b.admit(later).is_none(), "one probe at a time");
        probe.finish(Outcome::Success, later);
        assert_eq!(b.snapshot().state, State::Closed);
        assert_eq!(b.snapshot().opened, 1);
    }

    #[test]
    fn a_failed_probe_reopens_and_an_abandoned_one_frees_the_slot() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..2 {
            b.admit(t0).unwrap().finish(Outcome::Failure, t0);
        }
        let t1 = t0 + Duration::from_secs(11);
        drop(b.admit(t1).unwrap());
        assert_eq!(b.snapshot().state, State::HalfOpen);
        b.admit(t1).unwrap().finish(Outcome::Failure, t1);
        assert_eq!(b.snapshot().state, State::Open);
        assert_eq!(b.snapshot().opened, 2);
        assert!(b.admit(t1 + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn a_success_resets_the_run_of_failures() {
        let b = breaker();
        let t0 = Instant::now();
        b.admit(t0).unwrap().finish(Outcome::Failure, t0);
        b.admit(t0).unwrap().finish(Outcome::Success, t0);
        b.admit(t0).unwrap().finish(Outcome::Failure, t0);
        assert_eq!(b.snapshot().state, State::Closed);
    }
}

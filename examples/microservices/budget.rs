//! Deadlines between services: the `x-deadline-ms` header carries the caller's remaining
//! budget in milliseconds.
//!
//! A service that receives a request turns the header (or its default budget, without one)
//! into a deadline on its own clock, `now + budget`, and runs the request's work under
//! `io.timeout_until(deadline, ..)`: every wait inside (a connection checkout, a connect, a
//! downstream response, a backoff sleep) stops with `TimedOut` when the deadline passes. Each
//! call it makes downstream carries what is left then, so the budget shrinks along the chain
//! and no service works on a request its caller has given up on. Only durations cross the
//! wire, never instants: the services' clocks need not agree.

use std::time::{Duration, Instant};

use hyper::HeaderMap;

/// The request header holding the remaining budget, in whole milliseconds.
pub const HEADER: &str = "x-deadline-ms";

/// The largest budget accepted (one hour): a larger value is a client bug.
pub const MAX: Duration = Duration::from_secs(3600);

/// The budget a request asks for: `Ok(None)` without the header, `Err` with a message for a
/// malformed or out-of-range value.
pub fn from_headers(headers: &HeaderMap) -> Result<Option<Duration>, String> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let ms: u64 = value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("{HEADER} must be a whole number of milliseconds"))?;
    let budget = Duration::from_millis(ms);
    if budget > MAX {
        return Err(format!("{HEADER} above {} ms", MAX.as_millis()));
    }
    Ok(Some(budget))
}

/// The whole milliseconds left before `deadline` at `now` (0 once it has passed).
pub fn remaining_ms(deadline: Instant, now: Instant) -> u64 {
    deadline.saturating_duration_since(now).as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), Ok(None));
        h.insert(HEADER, "250".parse().unwrap());
        assert_eq!(from_headers(&h), Ok(Some(Duration::from_millis(250))));
        h.insert(HEADER, "soon".parse().unwrap());
        assert!(from_headers(&h).is_err());
        h.insert(HEADER, "99999999999".parse().unwrap());
        assert!(from_headers(&h).is_err());
    }
}

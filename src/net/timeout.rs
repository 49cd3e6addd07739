//! Per-socket read and write timeouts, as std's `set_read_timeout`/`set_write_timeout` offer.
//!
//! A socket timeout that expires is reported as std reports an expired `SO_RCVTIMEO` or
//! `SO_SNDTIMEO` on Unix: `WouldBlock` (`EAGAIN`), which callers written for std sockets treat
//! as "nothing yet, try again later" (tungstenite's handshake resumes on it). `TimedOut` stays
//! the kind of the task's own deadline ([`Io::timeout_until`](crate::Io::timeout_until),
//! [`Io::timeout`](crate::Io::timeout)). An operation bounded by both waits until the earlier
//! one and reports that one's kind; at a tie the task's deadline wins (it ends more than this
//! operation).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::context;

/// No timeout.
const NONE: u64 = 0;

/// Read and write timeouts in nanoseconds (`NONE` = wait forever). Atomic so that `&self`
/// setters work like std's.
#[derive(Debug, Default)]
pub(crate) struct Timeouts {
    read: AtomicU64,
    write: AtomicU64,
}

fn encode(timeout: Option<Duration>) -> io::Result<u64> {
    match timeout {
        None => Ok(NONE),
        Some(d) if d.is_zero() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a zero duration timeout",
        )),
        Some(d) => Ok(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    }
}

fn decode(nanos: u64) -> Option<Duration> {
    (nanos != NONE).then(|| Duration::from_nanos(nanos))
}

impl Timeouts {
    pub(crate) fn set_read(&self, t: Option<Duration>) -> io::Result<()> {
        self.read.store(encode(t)?, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn set_write(&self, t: Option<Duration>) -> io::Result<()> {
        self.write.store(encode(t)?, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn read(&self) -> Option<Duration> {
        decode(self.read.load(Ordering::Relaxed))
    }

    pub(crate) fn write(&self) -> Option<Duration> {
        decode(self.write.load(Ordering::Relaxed))
    }

    /// Runs a read `op` bounded by the read timeout (see [`bounded`]).
    pub(crate) fn reading<T>(
        &self,
        op: impl FnOnce(Option<Instant>) -> io::Result<T>,
    ) -> io::Result<T> {
        bounded(self.read(), op)
    }

    /// Runs a write `op` bounded by the write timeout (see [`bounded`]).
    pub(crate) fn writing<T>(
        &self,
        op: impl FnOnce(Option<Instant>) -> io::Result<T>,
    ) -> io::Result<T> {
        bounded(self.write(), op)
    }
}

/// Runs `op` with the deadline `timeout` from now (`None`: none), which `op` hands to its waits
/// (where it fails with [`timed_out`](crate::timed_out), as the task's deadline does), and turns
/// the expiry of *that* deadline into `WouldBlock`, as std reports a socket timeout. A `TimedOut`
/// of the task's deadline passes through: when both deadlines apply, the earlier one is the one
/// that fired (at a tie, the task's).
pub(crate) fn bounded<T>(
    timeout: Option<Duration>,
    op: impl FnOnce(Option<Instant>) -> io::Result<T>,
) -> io::Result<T> {
    // One call site of `op`, so that it is inlined here.
    let deadline = timeout.and_then(|t| crate::clock::now().checked_add(t));
    let result = op(deadline);
    let Some(deadline) = deadline else {
        return result;
    };
    result.map_err(|e| {
        if !crate::error::is_timed_out(&e) {
            return e;
        }
        match context::effective_deadline(None) {
            Some(task) if task <= deadline => e,
            _ => io::Error::from_raw_os_error(libc::EAGAIN),
        }
    })
}

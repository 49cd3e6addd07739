//! Per-socket read and write timeouts, as std's `set_read_timeout`/`set_write_timeout` offer.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

    /// When a read starting now must give up.
    pub(crate) fn read_deadline(&self) -> Option<Instant> {
        self.read().map(|d| Instant::now() + d)
    }

    /// When a write starting now must give up.
    pub(crate) fn write_deadline(&self) -> Option<Instant> {
        self.write().map(|d| Instant::now() + d)
    }
}

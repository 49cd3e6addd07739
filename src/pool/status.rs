//! [`Status`]: a snapshot of a pool's counters, and the cumulative wait statistics behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a [`Pool`](super::Pool)'s state, from [`Pool::status`](super::Pool::status).
///
/// The fields are read under the pool's lock (the wait statistics from counters updated
/// beside it), so `idle + in_use == size` always holds in one snapshot.
///
/// ```
/// # use zsync::pool::{Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Conn = ();
/// #     type Error = std::io::Error;
/// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<()> { Ok(()) }
/// # }
/// zsync::run(zsync::Model::Blocking, |io| {
///     let pool = Pool::builder(M).max_size(4).build(io).unwrap();
///     let conn = pool.get(io).unwrap();
///     let s = pool.status();
///     assert_eq!((s.size, s.idle, s.in_use, s.max_size), (1, 0, 1, 4));
///     drop(conn);
///     assert_eq!((pool.status().idle, pool.status().in_use), (1, 0));
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The configured maximum number of connections.
    pub max_size: usize,
    /// Connections that exist or are being opened (idle + in use).
    pub size: usize,
    /// Connections sitting idle in the pool.
    pub idle: usize,
    /// Connections checked out, or being opened or checked for a task.
    pub in_use: usize,
    /// Tasks (or futures) queued for a slot right now.
    pub waiters: usize,
    /// Successful checkouts since the pool was built.
    pub gets: u64,
    /// How many acquires (successful or not) had to queue for a slot.
    pub waits: u64,
    /// Total time spent queued for a slot, over all `waits`.
    pub wait_time: Duration,
    /// Acquires that failed with [`Timeout`](super::PoolError::Timeout).
    pub timeouts: u64,
    /// Connections discarded: broken on return, failed check, expired, or
    /// [`discard`](super::Pooled::discard)ed.
    pub discarded: u64,
    /// [`Manager::connect`](super::Manager::connect) failures: on checkout, in
    /// [`replenish`](super::Pool::replenish) and in background maintenance.
    pub connect_errors: u64,
}

/// The cumulative counters; each is written by the task it describes, read by `status`.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) gets: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) wait_nanos: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) discarded: AtomicU64,
    pub(crate) connect_errors: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn waited(&self, d: Duration) {
        Self::bump(&self.waits);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn read(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

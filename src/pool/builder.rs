//! [`Builder`]: a pool's configuration.

use std::time::Duration;

use super::{Manager, Pool, PoolError};
use crate::Io;

/// The settings of a pool, read by the pool for its whole life.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) check_on_checkout: bool,
    pub(crate) check_on_return: bool,
    pub(crate) maintenance: Option<Duration>,
}

/// Configures and builds a [`Pool`]: see [`Pool::builder`].
///
/// Defaults: `max_size` 10, `min_idle` 0, `acquire_timeout` 30 s (as r2d2 and bb8),
/// no `max_lifetime`, no `idle_timeout`, `check_on_checkout` on, `check_on_return` off, no
/// background maintenance.
///
/// ```
/// use std::time::Duration;
/// # use zsync::pool::{Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Conn = ();
/// #     type Error = std::io::Error;
/// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<()> { Ok(()) }
/// # }
/// zsync::run(zsync::Model::Green, |io| {
///     let pool = Pool::builder(M)
///         .max_size(16)
///         .min_idle(2)
///         .acquire_timeout(Duration::from_secs(5))
///         .max_lifetime(Duration::from_secs(1800))
///         .idle_timeout(Duration::from_secs(600))
///         .build(io)
///         .unwrap();
///     assert_eq!(pool.status().idle, 2);
/// });
/// ```
#[must_use = "a builder does nothing until built"]
pub struct Builder<M: Manager> {
    manager: M,
    config: Config,
}

impl<M: Manager> std::fmt::Debug for Builder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish()
    }
}

impl<M: Manager> Builder<M> {
    pub(crate) fn new(manager: M) -> Builder<M> {
        Builder {
            manager,
            config: Config {
                max_size: 10,
                min_idle: 0,
                acquire_timeout: Some(Duration::from_secs(30)),
                max_lifetime: None,
                idle_timeout: None,
                check_on_checkout: true,
                check_on_return: false,
                maintenance: None,
            },
        }
    }

    /// The most connections that may exist at once (idle, in use, or being opened).
    ///
    /// # Panics
    /// At [`build`](Builder::build), if zero.
    pub fn max_size(mut self, n: usize) -> Self {
        self.config.max_size = n;
        self
    }

    /// How many idle connections the pool keeps ready: opened by [`build`](Builder::build) and
    /// topped up by [`Pool::replenish`], which the [maintenance](Builder::maintenance) task
    /// calls every period.
    /// Capped at `max_size`.
    pub fn min_idle(mut self, n: usize) -> Self {
        self.config.min_idle = n;
        self
    }

    /// How long [`Pool::get`] waits for a slot before failing with
    /// [`PoolError::Timeout`]; `None` waits until the task's own deadline or cancellation.
    pub fn acquire_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.acquire_timeout = timeout.into();
        self
    }

    /// Connections older than this are closed instead of being handed out or returned
    /// (checked at checkout and return, and by [`Pool::reap`]).
    pub fn max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.config.max_lifetime = lifetime.into();
        self
    }

    /// Connections idle for longer than this are closed instead of being handed out (checked
    /// at checkout, and by [`Pool::reap`]).
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.idle_timeout = timeout.into();
        self
    }

    /// Whether [`Manager::check`] runs on an idle connection before it is handed out.
    pub fn check_on_checkout(mut self, on: bool) -> Self {
        self.config.check_on_checkout = on;
        self
    }

    /// Whether [`Manager::check`] runs on a connection given back, before it goes idle (a
    /// failing one is closed). It runs on the task that drops the guard, through the `Io` the
    /// connection was checked out with. Where the drop cannot block — a guard from
    /// [`Pool::get_async`], dropped inside a future's poll, or dropped while unwinding — the
    /// check is deferred to the connection's next checkout instead. A task canceled while it
    /// held the connection fails the check (its `Io` is canceled), so its connection, whose
    /// state is unknown, is closed.
    ///
    /// ```
    /// # use zsync::pool::{Manager, Pool};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// struct Counting(AtomicUsize);
    /// impl Manager for Counting {
    ///     type Conn = ();
    ///     type Error = std::io::Error;
    ///     fn connect(&self, _: &zsync::Io) -> std::io::Result<()> { Ok(()) }
    ///     fn check(&self, _: &zsync::Io, _: &mut ()) -> std::io::Result<()> {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///         Ok(())
    ///     }
    /// }
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let pool = Pool::builder(Counting(AtomicUsize::new(0)))
    ///         .check_on_checkout(false)
    ///         .check_on_return(true)
    ///         .build(io)
    ///         .unwrap();
    ///     drop(pool.get(io).unwrap());
    ///     assert_eq!(pool.manager().0.load(Ordering::Relaxed), 1);
    /// });
    /// ```
    pub fn check_on_return(mut self, on: bool) -> Self {
        self.config.check_on_return = on;
        self
    }

    /// Runs maintenance in the background every `period` (`None`: off, the default): a task
    /// started by [`build`](Builder::build) with `io.concurrent` closes idle connections past
    /// `max_lifetime` or `idle_timeout` ([`Pool::reap`]) and opens connections up to
    /// `min_idle` ([`Pool::replenish`]). It ends when the pool is closed or its last [`Pool`]
    /// handle is dropped (which waits for it), so it never outlives the pool. Where no task
    /// can run concurrently (`Model::Blocking`), the pool reaps on checkout instead, at most
    /// once a period.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use zsync::pool::{Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Conn = ();
    /// #     type Error = std::io::Error;
    /// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let pool = Pool::builder(M)
    ///         .min_idle(2)
    ///         .maintenance(Duration::from_millis(10))
    ///         .build(io)
    ///         .unwrap();
    ///     pool.get(io).unwrap().discard(); // one idle connection fewer...
    ///     while pool.status().idle < 2 {
    ///         io.sleep(Duration::from_millis(5)).unwrap(); // ...until the task opens one
    ///     }
    /// });
    /// ```
    pub fn maintenance(mut self, period: impl Into<Option<Duration>>) -> Self {
        self.config.maintenance = period.into();
        self
    }

    /// Builds the pool, opens `min_idle` connections through `io`, and starts the
    /// [maintenance](Builder::maintenance) task if asked.
    ///
    /// Errors: the first [`PoolError::Backend`] from opening them (the pool is dropped).
    ///
    /// # Panics
    /// If `max_size` or the maintenance period is zero.
    pub fn build(self, io: &Io) -> Result<Pool<M>, PoolError<M::Error>> {
        assert!(self.config.max_size > 0, "a pool needs max_size > 0");
        assert!(
            self.config.maintenance != Some(Duration::ZERO),
            "a pool's maintenance period must be above zero"
        );
        let mut config = self.config;
        config.min_idle = config.min_idle.min(config.max_size);
        let mut pool = Pool::from_parts(self.manager, config);
        pool.replenish(io)?;
        pool.start_maintenance(io);
        Ok(pool)
    }
}

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
}

/// Configures and builds a [`Pool`]: see [`Pool::builder`].
///
/// Defaults: `max_size` 10, `min_idle` 0, `acquire_timeout` 30 s (as r2d2 and bb8),
/// no `max_lifetime`, no `idle_timeout`, `check_on_checkout` on.
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
    /// topped up by [`Pool::replenish`] (not by a background task: see the module docs).
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

    /// Builds the pool and opens `min_idle` connections through `io`.
    ///
    /// Errors: the first [`PoolError::Backend`] from opening them (the pool is dropped).
    ///
    /// # Panics
    /// If `max_size` is zero.
    pub fn build(self, io: &Io) -> Result<Pool<M>, PoolError<M::Error>> {
        assert!(self.config.max_size > 0, "a pool needs max_size > 0");
        let mut config = self.config;
        config.min_idle = config.min_idle.min(config.max_size);
        let pool = Pool::from_parts(self.manager, config);
        pool.replenish(io)?;
        Ok(pool)
    }
}

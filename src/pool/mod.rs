//! A connection pool for colorblind code: what deadpool and bb8 are to Tokio and r2d2 to
//! threads, one pool for every model.
//!
//! A [`Pool`] hands out connections made by a [`Manager`]. [`Pool::get`] is a plain blocking
//! call taking the task's [`Io`]: on Green it parks the fiber, on Threaded and Blocking the
//! thread; [`Pool::get_async`] is the same checkout as a `Future` for stackless code. The
//! returned [`Pooled`] guard derefs to the connection and gives it back when dropped.
//!
//! ```
//! use zsync::pool::{Manager, Pool};
//!
//! struct Db;
//! impl Manager for Db {
//!     type Conn = String;
//!     type Error = std::io::Error;
//!     fn connect(&self, _io: &zsync::Io) -> std::io::Result<String> {
//!         Ok("connection".to_string())
//!     }
//! }
//!
//! zsync::run(zsync::Model::Green, |io| {
//!     let pool = Pool::builder(Db).max_size(4).build(io).unwrap();
//!     let tasks: Vec<_> = (0..16)
//!         .map(|_| {
//!             let pool = pool.clone();
//!             io.spawn(move |io| pool.get(io).map(|conn| conn.len()))
//!         })
//!         .collect();
//!     for t in tasks {
//!         assert_eq!(t.join().unwrap().unwrap(), 10);
//!     }
//!     assert!(pool.status().size <= 4);
//! });
//! ```
//!
//! # How it works
//!
//! 1. **Slots.** A fair [`Semaphore`] with `max_size` permits gates checkouts: a task holding a
//!    permit owns one *slot*, the right to one connection. Waiting for a slot is the
//!    semaphore's wait: FIFO with direct hand-off, deadlines, cancellation on every model, and an
//!    `Event`/`Future` form. A canceled or timed-out waiter leaves the queue and, if a slot had
//!    already been handed to it, passes it to the next waiter: no slot and no wake-up is lost.
//! 2. **Checkout.** With a slot, the task pops the most recently returned idle connection
//!    (LIFO, as r2d2: warm connections are reused, cold ones age out). If it expired
//!    (`max_lifetime`, `idle_timeout`) or fails [`Manager::check`], it is closed and the next
//!    is tried. With none idle, the task *reserves* a connection (`size += 1` under the lock),
//!    unlocks, and calls [`Manager::connect`]; on failure the reservation and the slot are
//!    given back (waking the next waiter) and the error surfaces as [`PoolError::Backend`].
//! 3. **Return.** Dropping the guard runs [`Manager::has_broken`] and the lifetime test, pushes
//!    the connection onto the idle list (or closes it), and only then frees the slot, so the
//!    waiter the slot is handed to finds the connection there.
//!
//! Why `size <= max_size`: a connection is only opened by a slot holder that found no idle
//! connection, and every connection is idle or held by a slot holder.
//!
//! **No user code under the lock.** `connect`, `check`, `has_broken` and the connection's
//! `Drop` all run outside the pool's mutex, on the task that asked (or dropped the guard);
//! drop guards keep the counts right if any of them panics.
//!
//! **Maintenance.** Expiry is checked when a connection is checked out or returned, and by
//! [`Pool::reap`]; `min_idle` is filled by [`Builder::build`] and [`Pool::replenish`]. With
//! [`Builder::maintenance`], a background task calls both every period; it never outlives the
//! pool (see `maintenance.rs`). [`Builder::check_on_return`] adds a health check on return.

mod builder;
mod error;
mod guard;
mod maintenance;
mod manager;
mod status;

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdGuard};
use std::time::{Duration, Instant};

pub use builder::Builder;
pub use error::PoolError;
pub use guard::Pooled;
pub use manager::Manager;
pub use status::Status;

use builder::Config;
use maintenance::{Lazy, Maintenance};
use status::Stats;

use crate::sync::Semaphore;
use crate::Io;

/// A pool of connections made by a [`Manager`]. Cloning is cheap (an `Arc`); clones share the
/// pool. Thread-safe. See the [module docs](self) for the design.
///
/// ```
/// # use zsync::pool::{Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Conn = ();
/// #     type Error = std::io::Error;
/// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<()> { Ok(()) }
/// # }
/// zsync::run(zsync::Model::Threaded, |io| {
///     let pool = Pool::builder(M).max_size(2).build(io).unwrap();
///     let a = pool.get(io).unwrap();
///     let b = pool.get(io).unwrap();
///     assert!(pool.get_timeout(io, std::time::Duration::from_millis(10)).unwrap_err().is_timeout());
///     drop((a, b));
/// });
/// ```
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
    /// The maintenance task, shared by the `Pool` handles only (see `maintenance.rs`).
    maintenance: Option<Arc<Maintenance>>,
}

/// An open connection and when it was opened.
pub(crate) struct Live<C> {
    pub(crate) conn: C,
    pub(crate) created: Instant,
}

struct Idle<C> {
    live: Live<C>,
    /// When it was returned; only stamped when `idle_timeout` is set (reading the clock is a
    /// measurable share of an uncontended checkout).
    since: Option<Instant>,
    /// Given back where [`Builder::check_on_return`] could not check it: checked at the next
    /// checkout.
    needs_check: bool,
}

/// What the pool's mutex guards. Held only for bookkeeping: never across user code.
struct State<C> {
    /// Idle connections, most recently returned last.
    idle: Vec<Idle<C>>,
    /// Connections that exist or are being opened: idle + checked out + reserved.
    size: usize,
    closed: bool,
}

pub(crate) struct Inner<M: Manager> {
    manager: M,
    config: Config,
    /// One permit per slot (see the module docs, step 1).
    slots: Semaphore,
    state: StdMutex<State<M::Conn>>,
    stats: Stats,
    /// Reaping on checkout, when maintenance was asked for and no task could run it.
    lazy: Option<Lazy>,
}

/// Frees a slot when dropped, unless kept: the slot of a checkout that failed or panicked.
struct SlotRelease<'a, M: Manager>(&'a Inner<M>);

impl<M: Manager> SlotRelease<'_, M> {
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl<M: Manager> Drop for SlotRelease<'_, M> {
    fn drop(&mut self) {
        self.0.slots.add_permits(1);
    }
}

/// A connection counted in `size` that is closed (and uncounted) when dropped, unless taken.
struct Counted<'a, M: Manager> {
    inner: &'a Inner<M>,
    live: Option<Live<M::Conn>>,
}

impl<M: Manager> Drop for Counted<'_, M> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            self.inner.close_conn(live);
        }
    }
}

/// A `size` reservation for a connection being opened; given back when dropped, unless kept.
struct Reservation<'a, M: Manager>(&'a Inner<M>);

impl<M: Manager> Reservation<'_, M> {
    fn reserve(inner: &Inner<M>) -> Reservation<'_, M> {
        inner.lock().size += 1;
        Reservation(inner)
    }

    /// Reserves only if fewer than `max` connections exist or are being opened.
    fn reserve_below(inner: &Inner<M>, max: usize) -> Option<Reservation<'_, M>> {
        let mut s = inner.lock();
        if s.size >= max {
            return None;
        }
        s.size += 1;
        Some(Reservation(inner))
    }

    fn keep(self) {
        std::mem::forget(self);
    }
}

impl<M: Manager> Drop for Reservation<'_, M> {
    fn drop(&mut self) {
        self.0.lock().size -= 1;
    }
}

impl<M: Manager> Inner<M> {
    fn lock(&self) -> StdGuard<'_, State<M::Conn>> {
        // No user code runs under the lock and nothing in it panics; ignore poisoning anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lifetime_expired(&self, live: &Live<M::Conn>, now: Instant) -> bool {
        self.config
            .max_lifetime
            .is_some_and(|max| now.saturating_duration_since(live.created) >= max)
    }

    fn idle_expired(&self, idle: &Idle<M::Conn>, now: Instant) -> bool {
        self.lifetime_expired(&idle.live, now)
            || self.config.idle_timeout.is_some_and(|max| {
                idle.since
                    .is_some_and(|since| now.saturating_duration_since(since) >= max)
            })
    }

    /// Whether any expiry is configured: without one, checkout and return read no clock.
    fn expires(&self) -> bool {
        self.config.max_lifetime.is_some() || self.config.idle_timeout.is_some()
    }

    /// The `since` stamp of a connection going idle now.
    fn idle_since(&self) -> Option<Instant> {
        self.config.idle_timeout.map(|_| crate::clock::now())
    }

    /// Uncounts and closes a connection; its `Drop` runs after the lock is released.
    fn close_conn(&self, live: Live<M::Conn>) {
        self.lock().size -= 1;
        Stats::bump(&self.stats.discarded);
        drop(live);
    }

    /// A detached connection leaves the count and frees its slot.
    pub(crate) fn forget_one(&self) {
        self.lock().size -= 1;
        self.slots.add_permits(1);
    }

    /// Step 2 of the module docs, for a task that holds a slot.
    fn checkout(&self, io: &Io) -> Result<Live<M::Conn>, PoolError<M::Error>> {
        loop {
            let popped = self.lock().idle.pop();
            let Some(idle) = popped else { break };
            let expired = self.expires() && self.idle_expired(&idle, crate::clock::now());
            let needs_check = idle.needs_check || self.config.check_on_checkout;
            let mut conn = Counted {
                inner: self,
                live: Some(idle.live),
            };
            if expired {
                continue; // `conn` closes on drop
            }
            if needs_check {
                let live = conn.live.as_mut().expect("set above");
                if self.manager.check(io, &mut live.conn).is_err() {
                    continue;
                }
            }
            return Ok(conn.live.take().expect("set above"));
        }
        if self.lock().closed {
            return Err(PoolError::Closed);
        }
        let reservation = Reservation::reserve(self);
        let conn = self.connect(io)?;
        reservation.keep();
        Ok(Live {
            conn,
            created: crate::clock::now(),
        })
    }

    /// [`Manager::connect`], counting failures.
    fn connect(&self, io: &Io) -> Result<M::Conn, PoolError<M::Error>> {
        self.manager.connect(io).map_err(|e| {
            Stats::bump(&self.stats.connect_errors);
            PoolError::Backend(e)
        })
    }

    /// Step 3 of the module docs: the guard of a checked-out connection was dropped. `io` is
    /// the checkout's, kept by the guard when [`Builder::check_on_return`] is on and the
    /// checkout could block.
    pub(crate) fn give_back(&self, live: Live<M::Conn>, discard: bool, io: Option<&Io>) {
        let _slot = SlotRelease(self); // dropped last: the connection is back first
        let mut conn = Counted {
            inner: self,
            live: Some(live),
        };
        let live = conn.live.as_mut().expect("set above");
        if discard
            || (self.config.max_lifetime.is_some()
                && self.lifetime_expired(live, crate::clock::now()))
            || self.manager.has_broken(&mut live.conn)
        {
            return; // `conn` closes on drop, then the slot is freed
        }
        let mut needs_check = false;
        if self.config.check_on_return {
            match io {
                // Blocking here is the dropping task's own wait, as any call it makes.
                Some(io) if !std::thread::panicking() && !crate::stackless::in_future_poll() => {
                    if self.manager.check(io, &mut live.conn).is_err() {
                        return;
                    }
                }
                _ => needs_check = true,
            }
        }
        let mut s = self.lock();
        if !s.closed {
            s.idle.push(Idle {
                live: conn.live.take().expect("set above"),
                since: self.idle_since(),
                needs_check,
            });
        }
    }

    /// One round of background maintenance: [`reap`](Inner::reap), then
    /// [`replenish`](Inner::replenish) (a failure is counted in `connect_errors` and retried
    /// next round). `false` once the pool is closed.
    fn maintain(&self, io: &Io) -> bool {
        if self.lock().closed {
            return false;
        }
        self.reap();
        let _ = self.replenish(io);
        true
    }

    /// See [`Pool::replenish`].
    fn replenish(&self, io: &Io) -> Result<(), PoolError<M::Error>> {
        loop {
            {
                let s = self.lock();
                if s.closed || s.idle.len() >= self.config.min_idle {
                    return Ok(());
                }
            }
            let Ok(permit) = self.slots.try_acquire() else {
                return Ok(());
            };
            permit.forget();
            let _slot = SlotRelease(self); // freed after the connection is idle
                                           // Checked and reserved under one lock: idle connections hold no slot, so two
                                           // replenishing tasks that each checked `size` first could both open one past
                                           // `max_size`.
            let Some(reservation) = Reservation::reserve_below(self, self.config.max_size) else {
                return Ok(());
            };
            let conn = self.connect(io)?;
            reservation.keep();
            let live = Live {
                conn,
                created: crate::clock::now(),
            };
            let mut s = self.lock();
            if s.closed {
                drop(s);
                self.close_conn(live);
                return Ok(());
            }
            s.idle.push(Idle {
                live,
                since: self.idle_since(),
                needs_check: false,
            });
        }
    }

    /// See [`Pool::reap`].
    fn reap(&self) -> usize {
        let now = crate::clock::now();
        let expired: Vec<Idle<M::Conn>> = {
            let mut s = self.lock();
            let (expired, kept) = std::mem::take(&mut s.idle)
                .into_iter()
                .partition(|idle| self.idle_expired(idle, now));
            s.idle = kept;
            s.size -= expired.len();
            expired
        };
        let n = expired.len();
        for _ in 0..n {
            Stats::bump(&self.stats.discarded);
        }
        drop(expired); // the connections' `Drop`, outside the lock
        n
    }

    /// Where maintenance runs on checkout: reaps if a period has passed.
    fn reap_if_due(&self) {
        if self.lazy.as_ref().is_some_and(Lazy::due) {
            self.reap();
        }
    }
}

impl<M: Manager> Pool<M> {
    /// Starts configuring a pool of connections made by `manager`.
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
    ///     let pool = Pool::builder(M).max_size(8).build(io).unwrap();
    ///     assert_eq!(pool.status().max_size, 8);
    /// });
    /// ```
    pub fn builder(manager: M) -> Builder<M> {
        Builder::new(manager)
    }

    pub(crate) fn from_parts(manager: M, config: Config) -> Pool<M> {
        let slots = Semaphore::new(config.max_size);
        Pool {
            inner: Arc::new(Inner {
                manager,
                config,
                slots,
                state: StdMutex::new(State {
                    idle: Vec::new(),
                    size: 0,
                    closed: false,
                }),
                stats: Stats::default(),
                lazy: None,
            }),
            maintenance: None,
        }
    }

    /// Starts the maintenance task [`Builder::maintenance`] asked for, or, where no task can
    /// run concurrently, turns on reaping at checkout. Only while the pool is being built
    /// (`inner` is not shared yet).
    fn start_maintenance(&mut self, io: &Io) {
        let Some(every) = self.inner.config.maintenance else {
            return;
        };
        self.maintenance = Maintenance::start(io, &self.inner, every);
        if self.maintenance.is_none() {
            Arc::get_mut(&mut self.inner)
                .expect("the pool is not shared while it is built")
                .lazy = Some(Lazy::new(every));
        }
    }

    /// The manager the pool was built with.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Checks out a connection: an idle one (checked with [`Manager::check`] unless that is
    /// off), or a new one from [`Manager::connect`] if none is idle and the pool is not full;
    /// otherwise waits in FIFO order for one to be returned, up to the acquire timeout.
    /// Cancellation point.
    ///
    /// Errors: [`PoolError::Timeout`] (acquire timeout or the task's deadline),
    /// [`PoolError::Canceled`], [`PoolError::Closed`], [`PoolError::Backend`] from `connect`.
    /// A failed or canceled `get` holds no slot.
    ///
    /// ```
    /// # use zsync::pool::{Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Conn = u32;
    /// #     type Error = std::io::Error;
    /// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<u32> { Ok(42) }
    /// # }
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let pool = Pool::builder(M).build(io).unwrap();
    ///     assert_eq!(*pool.get(io).unwrap(), 42);
    /// });
    /// ```
    #[track_caller]
    pub fn get(&self, io: &Io) -> Result<Pooled<M>, PoolError<M::Error>> {
        self.get_timeout(io, self.inner.config.acquire_timeout)
    }

    /// [`get`](Pool::get) with this call's own acquire timeout (`None`: wait until the task's
    /// deadline or cancellation). Cancellation point.
    ///
    /// ```
    /// # use zsync::pool::{Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Conn = ();
    /// #     type Error = std::io::Error;
    /// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// use std::time::Duration;
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let pool = Pool::builder(M).max_size(1).build(io).unwrap();
    ///     let _held = pool.get(io).unwrap();
    ///     let err = pool.get_timeout(io, Duration::from_millis(5)).unwrap_err();
    ///     assert!(err.is_timeout());
    /// });
    /// ```
    #[track_caller]
    pub fn get_timeout(
        &self,
        io: &Io,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Pooled<M>, PoolError<M::Error>> {
        let timeout = timeout.into();
        self.inner.reap_if_due();
        let slots = &self.inner.slots;
        if let Err(e) = slots.try_acquire().map(|p| p.forget()) {
            if e.is_closed() {
                return Err(PoolError::Closed);
            }
            let start = crate::clock::now();
            let waited = match timeout {
                Some(t) => slots.acquire_timeout(t),
                None => slots.acquire(),
            };
            self.inner.stats.waited(start.elapsed());
            match waited {
                Ok(permit) => permit.forget(),
                Err(e) => return Err(self.wait_failed(e)),
            }
        }
        self.checkout_with_slot(io, true)
    }

    /// [`get`](Pool::get) as a `Future`, for stackless code: waiting for a slot is a future
    /// (dropping it mid-wait leaves the queue and passes on any slot handed to it), bounded by
    /// the acquire timeout ([`PoolError::Timeout`]); the checkout that follows (`check` or
    /// `connect`) runs through `io` like any colorblind call.
    ///
    /// ```
    /// # use zsync::pool::{Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Conn = u32;
    /// #     type Error = std::io::Error;
    /// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<u32> { Ok(7) }
    /// # }
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let pool = Pool::builder(M).build(io).unwrap();
    ///     let conn = futures::executor::block_on(pool.get_async(io)).unwrap();
    ///     assert_eq!(*conn, 7);
    /// });
    /// ```
    pub async fn get_async(&self, io: &Io) -> Result<Pooled<M>, PoolError<M::Error>> {
        self.inner.reap_if_due();
        let slots = &self.inner.slots;
        if let Err(e) = slots.try_acquire().map(|p| p.forget()) {
            if e.is_closed() {
                return Err(PoolError::Closed);
            }
            let start = crate::clock::now();
            let waited = match self.inner.config.acquire_timeout {
                Some(t) => crate::time::timeout(t, slots.acquire_event())
                    .await
                    .and_then(|acquired| acquired),
                None => slots.acquire_event().await,
            };
            self.inner.stats.waited(start.elapsed());
            match waited {
                Ok(permit) => permit.forget(),
                Err(e) => return Err(self.wait_failed(e)),
            }
        }
        self.checkout_with_slot(io, false)
    }

    fn wait_failed(&self, e: std::io::Error) -> PoolError<M::Error> {
        let e = PoolError::from_wait(e);
        if e.is_timeout() {
            Stats::bump(&self.inner.stats.timeouts);
        }
        e
    }

    /// Step 2 for a task that has just taken a slot: the slot goes back if this fails.
    /// `blocking`: the caller may block (not a future), so the guard keeps `io` for
    /// [`Builder::check_on_return`].
    fn checkout_with_slot(
        &self,
        io: &Io,
        blocking: bool,
    ) -> Result<Pooled<M>, PoolError<M::Error>> {
        let slot = SlotRelease(&*self.inner);
        let live = self.inner.checkout(io)?;
        slot.keep();
        Stats::bump(&self.inner.stats.gets);
        Ok(Pooled {
            inner: self.inner.clone(),
            live: Some(live),
            discard: false,
            io: (blocking && self.inner.config.check_on_return).then(|| io.clone()),
        })
    }

    /// Opens connections until `min_idle` are idle, as far as free slots allow (it never
    /// waits for a slot, and takes none while tasks are queued). Call it from a maintenance
    /// task; [`Builder::build`] calls it once.
    ///
    /// Errors: the first [`PoolError::Backend`]; connections opened before it stay.
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
    ///     let pool = Pool::builder(M).min_idle(3).build(io).unwrap();
    ///     pool.get(io).unwrap().discard();
    ///     assert_eq!(pool.status().idle, 2);
    ///     pool.replenish(io).unwrap();
    ///     assert_eq!(pool.status().idle, 3);
    /// });
    /// ```
    pub fn replenish(&self, io: &Io) -> Result<(), PoolError<M::Error>> {
        self.inner.replenish(io)
    }

    /// Closes idle connections that outlived `max_lifetime` or `idle_timeout`; returns how
    /// many. Never blocks.
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
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let pool = Pool::builder(M).idle_timeout(Duration::ZERO).build(io).unwrap();
    ///     drop(pool.get(io).unwrap());
    ///     assert_eq!(pool.reap(), 1);
    ///     assert_eq!(pool.status().size, 0);
    /// });
    /// ```
    pub fn reap(&self) -> usize {
        self.inner.reap()
    }

    /// Closes the pool: waiting and future `get`s fail with [`PoolError::Closed`], idle
    /// connections are closed now, checked-out ones when they come back.
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
    ///     let pool = Pool::builder(M).build(io).unwrap();
    ///     pool.close();
    ///     assert!(matches!(pool.get(io), Err(zsync::pool::PoolError::Closed)));
    /// });
    /// ```
    pub fn close(&self) {
        let idle = {
            let mut s = self.inner.lock();
            s.closed = true;
            let idle = std::mem::take(&mut s.idle);
            s.size -= idle.len();
            idle
        };
        self.inner.slots.close();
        drop(idle);
        if let Some(m) = &self.maintenance {
            m.stop();
        }
    }

    /// A snapshot of the pool's counters: see [`Status`].
    pub fn status(&self) -> Status {
        let inner = &*self.inner;
        let (size, idle) = {
            let s = inner.lock();
            (s.size, s.idle.len())
        };
        let st = &inner.stats;
        Status {
            max_size: inner.config.max_size,
            size,
            idle,
            in_use: size - idle,
            waiters: inner.slots.queued(),
            gets: Stats::read(&st.gets),
            waits: Stats::read(&st.waits),
            wait_time: Duration::from_nanos(Stats::read(&st.wait_nanos)),
            timeouts: Stats::read(&st.timeouts),
            discarded: Stats::read(&st.discarded),
            connect_errors: Stats::read(&st.connect_errors),
        }
    }
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
            maintenance: self.maintenance.clone(),
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish()
    }
}

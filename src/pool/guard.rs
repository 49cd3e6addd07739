//! [`Pooled`]: a checked-out connection, returned to its pool on drop.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::{Inner, Live, Manager};

/// A connection checked out of a [`Pool`](super::Pool). Derefs to the connection; dropping it
/// returns the connection to the pool (or discards it when
/// [`Manager::has_broken`] says so or it outlived `max_lifetime`) and frees the slot for the
/// next waiter.
///
/// ```
/// # use zsync::pool::{Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Conn = Vec<u8>;
/// #     type Error = std::io::Error;
/// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<Vec<u8>> { Ok(Vec::new()) }
/// # }
/// zsync::run(zsync::Model::Threaded, |io| {
///     let pool = Pool::builder(M).build(io).unwrap();
///     let mut conn = pool.get(io).unwrap();
///     conn.push(1); // a `&mut Vec<u8>`
///     drop(conn);
///     assert_eq!(*pool.get(io).unwrap(), vec![1]); // the same connection again
/// });
/// ```
#[must_use = "dropping the guard returns the connection at once"]
pub struct Pooled<M: Manager> {
    pub(crate) inner: Arc<Inner<M>>,
    /// `None` only inside `detach`/`drop`.
    pub(crate) live: Option<Live<M::Conn>>,
    pub(crate) discard: bool,
    /// The checkout's `Io`, for [`Builder::check_on_return`](super::Builder::check_on_return)
    /// (only when that is on and the checkout could block).
    pub(crate) io: Option<crate::Io>,
}

impl<M: Manager> Pooled<M> {
    /// Takes the connection out of the pool for good: the pool counts one connection fewer
    /// and its slot is free for a new one.
    ///
    /// ```
    /// # use zsync::pool::{Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Conn = u8;
    /// #     type Error = std::io::Error;
    /// #     fn connect(&self, _: &zsync::Io) -> std::io::Result<u8> { Ok(5) }
    /// # }
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let pool = Pool::builder(M).build(io).unwrap();
    ///     let conn: u8 = pool.get(io).unwrap().detach();
    ///     assert_eq!((conn, pool.status().size), (5, 0));
    /// });
    /// ```
    pub fn detach(mut self) -> M::Conn {
        let live = self.live.take().expect("connection present until drop");
        self.inner.forget_one();
        live.conn
    }

    /// Marks the connection broken: when the guard drops, it is closed instead of returned.
    /// Use it after an error that leaves the connection in an unknown state.
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
    ///     pool.get(io).unwrap().discard();
    ///     assert_eq!(pool.status().size, 0);
    /// });
    /// ```
    pub fn discard(mut self) {
        self.discard = true;
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> std::time::Duration {
        self.live().created.elapsed()
    }

    fn live(&self) -> &Live<M::Conn> {
        self.live.as_ref().expect("connection present until drop")
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Conn;

    fn deref(&self) -> &M::Conn {
        &self.live().conn
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Conn {
        &mut self
            .live
            .as_mut()
            .expect("connection present until drop")
            .conn
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            self.inner.give_back(live, self.discard, self.io.as_ref());
        }
    }
}

impl<M: Manager> fmt::Debug for Pooled<M>
where
    M::Conn: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled").field("conn", &**self).finish()
    }
}

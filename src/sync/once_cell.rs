//! [`OnceCell`]: a value initialised once, by the first task that asks.

use std::fmt;
use std::io;
use std::sync::OnceLock;

use super::semaphore::Semaphore;

/// A cell written once. [`get_or_init`](OnceCell::get_or_init) runs the initialiser in exactly
/// one task; concurrent callers wait (a cancellation point, through the running model) and then
/// see its value.
///
/// **Failure and cancellation.** Initialisers are serialised by a one-permit [`Semaphore`]. If the
/// running initialiser panics, or [`get_or_try_init`](OnceCell::get_or_try_init)'s initialiser
/// returns `Err` (e.g. because it was canceled), the cell stays empty, the permit is released, and
/// the next waiting caller (in FIFO order) runs its own initialiser. A caller canceled while
/// *waiting* just leaves with `Canceled`.
///
/// The value itself lives in a `std::sync::OnceLock`, only ever written by the task holding the
/// permit (or by [`set`](OnceCell::set)), so its internal lock is never contended for longer than
/// a store.
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::OnceCell;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let config = Arc::new(OnceCell::new());
///     let tasks: Vec<_> = (0..4)
///         .map(|i| {
///             let c = config.clone();
///             io.spawn(move |_| *c.get_or_init(|| i * 10).unwrap())
///         })
///         .collect();
///     let values: Vec<u32> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
///     assert!(values.iter().all(|&v| v == values[0]));
/// });
/// ```
pub struct OnceCell<T> {
    value: OnceLock<T>,
    init: Semaphore,
}

impl<T> Default for OnceCell<T> {
    fn default() -> OnceCell<T> {
        OnceCell::new()
    }
}

impl<T> OnceCell<T> {
    /// An empty cell.
    pub const fn new() -> OnceCell<T> {
        OnceCell {
            value: OnceLock::new(),
            init: Semaphore::new(1),
        }
    }

    /// The value, if initialised.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// A mutable reference to the value, if initialised.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut()
    }

    /// Whether the cell holds a value.
    pub fn initialized(&self) -> bool {
        self.value.get().is_some()
    }

    /// Stores `value` if the cell is empty; otherwise gives it back. Does not wait: a racing
    /// initialiser that finishes later finds the cell full and drops its own value.
    pub fn set(&self, value: T) -> Result<(), T> {
        self.value.set(value)
    }

    /// The value, running `f` to produce it if the cell is empty. Only one task runs its
    /// initialiser at a time; the others wait. Cancellation point while waiting.
    ///
    /// If `f` panics, the panic propagates to this caller and the cell stays empty for the next.
    #[track_caller]
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> io::Result<&T> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Once,
            crate::diag::wait_point::Object::of(self),
        );
        self.get_or_try_init(|| Ok::<T, io::Error>(f()))
    }

    /// Like [`get_or_init`](OnceCell::get_or_init) with a fallible initialiser: on `Err` the cell
    /// stays empty and the error is returned to this caller only. A wait that fails (canceled,
    /// timed out) is converted with `E::from(io::Error)`.
    pub fn get_or_try_init<E: From<io::Error>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<&T, E> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let _permit = self.init.acquire()?;
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let value = f()?;
        // Only `set` can have raced us; then the stored value wins and ours is dropped.
        let _ = self.value.set(value);
        Ok(self.value.get().expect("the cell was just set"))
    }

    /// Consumes the cell and returns its value, if any.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        self.value.take()
    }
}

impl<T> From<T> for OnceCell<T> {
    fn from(value: T) -> OnceCell<T> {
        OnceCell {
            value: OnceLock::from(value),
            init: Semaphore::new(1),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceCell")
            .field("value", &self.value.get())
            .finish()
    }
}

//! Task-local storage: [`task_local!`](crate::task_local) and [`LocalKey`].
//!
//! A `thread_local!` is the wrong tool under Green: every fiber of a worker shares its thread, so
//! one task's value is another's. A task-local value lives instead in the frame of the
//! [`LocalKey::scope`] call that set it, and the scope pushes an [`Entry`] (key, pointer to the
//! value, next entry) onto a list whose head is in the running task's
//! [`TaskContext`](crate::context::TaskContext). That context is swapped on every fiber switch
//! and made fresh for every task (a task run inline by its joiner, or by `spawn` on Blocking,
//! gets its own), so a task sees exactly the scopes it entered itself: values are not inherited
//! by the tasks it spawns (as with Tokio's `task_local!`). Outside any task (a plain thread),
//! the list head is a thread-local.
//!
//! A lookup walks the list: scopes nest rarely more than a few deep. Setting a value costs no
//! allocation; the value is dropped when its scope ends, by return or by unwinding.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::AtomicU8;

use crate::context;

/// One active [`LocalKey::scope`]: lives on the stack of that call.
pub(crate) struct Entry {
    /// The [`LocalKey`]'s address.
    key: *const (),
    /// The scope's value, a `&T` for the key's `T`.
    value: *const (),
    /// The enclosing scope of the same task, or null.
    next: *const Entry,
}

thread_local! {
    /// The list head outside any task.
    static OUTSIDE: Cell<*const Entry> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with the cell holding the running task's list head (or this thread's, outside any
/// task).
fn with_head<R>(f: impl FnOnce(&Cell<*const Entry>) -> R) -> R {
    context::with(|c| match c {
        Some(c) => f(&c.locals),
        None => OUTSIDE.with(|h| f(h)),
    })
}

/// A key for task-local values, declared with [`task_local!`](crate::task_local).
///
/// Tokio: `tokio::task::LocalKey`, with the same methods (`scope` takes a closure here, like
/// Tokio's `sync_scope`).
pub struct LocalKey<T: 'static> {
    /// Its address identifies the key. Interior mutability puts the static in writable memory,
    /// which the compiler never merges with another static.
    anchor: AtomicU8,
    _type: PhantomData<fn() -> T>,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new() -> LocalKey<T> {
        LocalKey {
            anchor: AtomicU8::new(0),
            _type: PhantomData,
        }
    }

    fn addr(&'static self) -> *const () {
        &self.anchor as *const AtomicU8 as *const ()
    }

    /// Runs `f` with `value` set for this key in the running task, and drops `value` when `f`
    /// returns or unwinds. Scopes nest: an inner scope of the same key hides the outer value
    /// until it ends. Tasks that `f` spawns do not see the value.
    pub fn scope<F, R>(&'static self, value: T, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        /// Pops the entry when the scope ends, before the value is dropped.
        struct Pop(*const Entry);
        impl Drop for Pop {
            fn drop(&mut self) {
                with_head(|h| h.set(self.0));
            }
        }
        let entry = Entry {
            key: self.addr(),
            value: &value as *const T as *const (),
            next: with_head(Cell::get),
        };
        with_head(|h| h.set(&entry));
        // Dropped before `entry` and `value` (locals drop in reverse order, parameters last).
        let _pop = Pop(entry.next);
        f()
    }

    /// Runs `f` with a reference to the value set for this key in the running task.
    ///
    /// # Panics
    ///
    /// If no [`scope`](Self::scope) of this key is active in the running task.
    #[track_caller]
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.try_with(f) {
            Ok(r) => r,
            Err(AccessError) => {
                panic!("cannot access a task-local value outside a `scope` of its key in this task")
            }
        }
    }

    /// Like [`with`](Self::with), but `Err(AccessError)` where it would panic.
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        let key = self.addr();
        let mut entry = with_head(Cell::get);
        while !entry.is_null() {
            // SAFETY: every entry in the running task's list lives in the frame of a `scope`
            // call of this task that has not returned yet (`Pop` unlinks it before that frame
            // ends, on return and on unwind), and lists are never shared between tasks.
            let e = unsafe { &*entry };
            if e.key == key {
                // SAFETY: `e.value` points to the `T` of a live `scope` frame of this very
                // key (same address, so same `LocalKey<T>` and same `T`).
                return Ok(f(unsafe { &*(e.value as *const T) }));
            }
            entry = e.next;
        }
        Err(AccessError)
    }

    /// A copy of the value set for this key in the running task.
    ///
    /// # Panics
    ///
    /// If no [`scope`](Self::scope) of this key is active in the running task.
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(|v| *v)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("LocalKey { .. }")
    }
}

/// The error of [`LocalKey::try_with`]: no scope of the key is active in the running task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessError;

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value not set in this task")
    }
}

impl std::error::Error for AccessError {}

/// Declares task-local keys: values that each task sets for itself with
/// [`LocalKey::scope`](crate::task::LocalKey::scope) and reads with
/// [`with`](crate::task::LocalKey::with), [`try_with`](crate::task::LocalKey::try_with) or
/// [`get`](crate::task::LocalKey::get).
///
/// Use it instead of `thread_local!` for per-request state: on Green many tasks share one
/// thread. Tokio: `tokio::task_local!`.
///
/// ```
/// use std::time::Duration;
/// zsync::task_local! {
///     static REQUEST_ID: u64;
/// }
///
/// fn log(what: &str) -> String {
///     format!("[req {}] {what}", REQUEST_ID.get())
/// }
///
/// zsync::run(zsync::Model::Green, |io| {
///     let tasks: Vec<_> = (1..=2u64)
///         .map(|id| {
///             io.spawn(move |io| {
///                 REQUEST_ID.scope(id, || {
///                     io.sleep(Duration::from_millis(1)).unwrap(); // the other task runs here
///                     log("done")
///                 })
///             })
///         })
///         .collect();
///     let lines: Vec<String> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
///     assert_eq!(lines, ["[req 1] done", "[req 2] done"]);
///     assert!(REQUEST_ID.try_with(|_| ()).is_err(), "not set in the root task");
/// });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = $crate::task::LocalKey::__new();
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::task_local!($(#[$attr])* $vis static $name: $t;);
    };
}

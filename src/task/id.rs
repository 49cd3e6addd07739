//! Task identity: a process-unique [`TaskId`] for every task, an optional name, and
//! [`current`], what a running task knows about itself.
//!
//! Ids come from one process-wide counter, but a thread takes them [`ID_BLOCK`] at a time (a
//! thread-local block), so a spawn costs a thread-local increment, not a shared atomic
//! read-modify-write: ids are unique, not ordered across threads. Names are `&'static str` or
//! `Arc<str>` ([`Name`]): an unnamed task stores `None` and allocates nothing.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::context;

/// How many ids a thread takes from the shared counter at a time.
const ID_BLOCK: u64 = 1024;

/// A task's id: unique among the tasks of the process (also across runtimes), never reused.
///
/// Printed as `#42`. Ids of tasks started on one thread grow; across threads they are not
/// ordered (each thread takes ids in blocks).
///
/// ```
/// zsync::run(zsync::Model::Threaded, |io| {
///     let a = io.spawn(|_| zsync::task::current().unwrap().id());
///     let b = io.spawn(|_| ());
///     assert_ne!(a.id(), b.id());
///     let id = a.id();
///     assert_eq!(a.join().unwrap(), id, "a task sees its own id");
///     assert!(id.to_string().starts_with('#'));
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    /// A fresh id.
    #[inline]
    pub(crate) fn next() -> TaskId {
        thread_local! {
            /// The next id of this thread's block and the block's end.
            static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        BLOCK.with(|b| {
            let (mut next, mut end) = b.get();
            if next == end {
                next = refill();
                end = next + ID_BLOCK;
            }
            b.set((next + 1, end));
            // Ids start at 1 (see `refill`) and a u64 does not wrap in the life of a process.
            TaskId(NonZeroU64::new(next).expect("task ids start at 1"))
        })
    }

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

/// The first id of a fresh block.
#[cold]
fn refill() -> u64 {
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    NEXT_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed)
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A task's name: a `'static` string costs nothing, another one is shared (`Arc<str>`).
#[derive(Clone)]
pub(crate) enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }
}

impl From<Cow<'static, str>> for Name {
    fn from(name: Cow<'static, str>) -> Name {
        match name {
            Cow::Borrowed(s) => Name::Static(s),
            Cow::Owned(s) => Name::Shared(s.into()),
        }
    }
}

/// What identifies a task: its id, its name if it has one, where it was spawned.
#[derive(Clone)]
pub(crate) struct Meta {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Name>,
    pub(crate) location: &'static Location<'static>,
    /// Its tracing span and profile marks (features `tracing`, `profile`).
    #[cfg(any(feature = "tracing", feature = "profile"))]
    pub(crate) diag: crate::diag::hooks::TaskDiag,
}

impl Meta {
    /// A new, unnamed task spawned at `location`.
    #[inline]
    pub(crate) fn new(location: &'static Location<'static>) -> Meta {
        let id = TaskId::next();
        crate::sim::host::note_spawn(id);
        Meta {
            id,
            name: None,
            location,
            #[cfg(any(feature = "tracing", feature = "profile"))]
            diag: Default::default(),
        }
    }

    /// The name, if any.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }

    /// Says on stderr which task panicked, if it is named (the panic hook has printed the
    /// message, naming only the thread). Never panics (stderr may be gone).
    #[cold]
    pub(crate) fn report_panic(&self) {
        if let Some(name) = self.name() {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "zsync: task '{name}' ({}, spawned at {}) panicked",
                self.id,
                self.location
            );
        }
    }
}

/// What the running task knows about itself; see [`current`].
#[derive(Clone)]
pub struct CurrentTask {
    id: TaskId,
    name: Option<Name>,
}

impl CurrentTask {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it was given one with [`TaskBuilder::name`](crate::task::TaskBuilder::name).
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }
}

impl fmt::Debug for CurrentTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentTask")
            .field("id", &self.id)
            .field("name", &self.name())
            .finish()
    }
}

/// The task running on this thread (or fiber), or `None` outside any task of a runtime.
///
/// The root task of [`run`](crate::run) has an id too (and no name). A panic hook can call it
/// to say which task panicked:
///
/// ```
/// use zsync::Model;
/// zsync::run(Model::Green, |io| {
///     let task = io.task().name("conn").spawn(|_| {
///         let me = zsync::task::current().unwrap();
///         (me.id(), me.name().map(str::to_owned))
///     });
///     let id = task.id();
///     assert_eq!(task.join().unwrap(), (id, Some("conn".to_owned())));
/// });
/// assert!(zsync::task::current().is_none());
/// ```
pub fn current() -> Option<CurrentTask> {
    context::with(|c| {
        c.map(|c| CurrentTask {
            id: c.task.id,
            name: c.task.name.cloned(),
        })
    })
}

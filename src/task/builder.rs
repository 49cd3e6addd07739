//! Starting a task with a name: [`TaskBuilder`] (from [`Io::task`]) and [`GroupTaskBuilder`]
//! (from [`Group::task`]). Tokio: `tokio::task::Builder`, `JoinSet::build_task`.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;

use crate::error::ConcurrencyUnavailable;
use crate::task::id::{Meta, Name, TaskId};
use crate::{Group, Io, Task};

/// Configures a task before it starts: `io.task().name("conn").spawn(f)`.
///
/// A task's name shows in [`Task::name`], in [`current`](crate::task::current) inside it, in the
/// line zsync prints to stderr when it panics (`zsync: task 'conn' (#42, spawned at
/// src/main.rs:10) panicked`; unnamed tasks are left to the panic hook's message alone), and in
/// a Green stack-overflow report. A `&'static str` name costs nothing; a `String` is kept as an
/// `Arc<str>` (one allocation).
///
/// ```
/// zsync::run(zsync::Model::Threaded, |io| {
///     let task = io.task().name("conn").spawn(|_| {
///         zsync::task::current().unwrap().name().map(str::to_owned)
///     });
///     assert_eq!(task.name(), Some("conn"));
///     assert_eq!(task.join().unwrap().as_deref(), Some("conn"));
///
///     let peer = "10.0.0.1:443";
///     let task = io.task().name(format!("conn {peer}")).concurrent(|_| ()).unwrap();
///     assert_eq!(task.name(), Some("conn 10.0.0.1:443"));
/// });
/// ```
#[must_use = "a TaskBuilder starts nothing until spawn or concurrent is called"]
pub struct TaskBuilder<'a> {
    io: &'a Io,
    name: Option<Name>,
}

impl<'a> TaskBuilder<'a> {
    pub(crate) fn new(io: &'a Io) -> TaskBuilder<'a> {
        TaskBuilder { io, name: None }
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> TaskBuilder<'a> {
        self.name = Some(Name::from(name.into()));
        self
    }

    /// [`Io::spawn`] with this configuration.
    #[track_caller]
    pub fn spawn<T, F>(self, f: F) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.io.spawn_meta(meta(self.name, Location::caller()), f)
    }

    /// [`Io::concurrent`] with this configuration.
    #[track_caller]
    pub fn concurrent<T, F>(self, f: F) -> Result<Task<T>, ConcurrencyUnavailable<F>>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        let parent = self.io.current_scope();
        self.io
            .concurrent_in(&parent, meta(self.name, Location::caller()), f)
    }
}

impl fmt::Debug for TaskBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("name", &self.name.as_ref().map(Name::as_str))
            .finish()
    }
}

/// Configures a task of a [`Group`] before it starts: `group.task().name("conn").spawn(f)`. See
/// [`TaskBuilder`] for what a name does.
///
/// ```
/// use zsync::Group;
/// zsync::run(zsync::Model::Blocking, |io| {
///     let mut group = Group::new(io);
///     group.task().name("worker").spawn(|_| zsync::task::current().unwrap().name().map(str::to_owned));
///     assert_eq!(group.join_all().unwrap(), [Some("worker".to_owned())]);
/// });
/// ```
#[must_use = "a GroupTaskBuilder starts nothing until spawn or concurrent is called"]
pub struct GroupTaskBuilder<'a, T> {
    group: &'a mut Group<T>,
    name: Option<Name>,
}

impl<'a, T: Send + 'static> GroupTaskBuilder<'a, T> {
    pub(crate) fn new(group: &'a mut Group<T>) -> GroupTaskBuilder<'a, T> {
        GroupTaskBuilder { group, name: None }
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> GroupTaskBuilder<'a, T> {
        self.name = Some(Name::from(name.into()));
        self
    }

    /// [`Group::spawn`] with this configuration.
    #[track_caller]
    pub fn spawn<F>(self, f: F)
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        self.group
            .spawn_meta(meta(self.name, Location::caller()), f)
    }

    /// [`Group::concurrent`] with this configuration.
    #[track_caller]
    pub fn concurrent<F>(self, f: F) -> Result<(), ConcurrencyUnavailable<F>>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        self.group
            .concurrent_meta(meta(self.name, Location::caller()), f)
    }
}

impl<T> fmt::Debug for GroupTaskBuilder<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupTaskBuilder")
            .field("name", &self.name.as_ref().map(Name::as_str))
            .finish()
    }
}

fn meta(name: Option<Name>, location: &'static Location<'static>) -> Meta {
    let id = TaskId::next();
    crate::sim::host::note_spawn(id);
    Meta {
        id,
        name,
        location,
        #[cfg(any(feature = "tracing", feature = "profile"))]
        diag: Default::default(),
    }
}

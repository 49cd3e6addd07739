//! Groups of tasks that end together. Zig: `std.Io.Group`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::cancel::{CancelNode, NodeRef};
use crate::error::ConcurrencyUnavailable;
use crate::{Io, Task};

/// What a [`Group`] does when one of its tasks fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GroupPolicy {
    /// Let every task run to completion regardless of the others.
    WaitAll,
    /// Cancel the remaining tasks as soon as one returns `Err` (only meaningful for groups of
    /// `Result`s, see [`Group::fail_fast`]).
    #[default]
    CancelOnFirstError,
}

/// Runs many tasks, waits for all of them, and cancels all of them on drop.
///
/// Tasks of a group are children of the group's cancellation scope, which is itself a child of the
/// task that created the group: canceling the creator cancels the group.
///
/// ```
/// use zsync::{Group, Model};
/// let sum: u64 = zsync::run(Model::Blocking, |io| {
///     let mut group = Group::new(io);
///     for i in 1..=4u64 {
///         group.spawn(move |_io| i * i);
///     }
///     group.join_all().unwrap().into_iter().sum()
/// });
/// assert_eq!(sum, 30);
/// ```
#[must_use = "dropping a Group cancels its tasks and waits for them; call join_all() for their results"]
pub struct Group<T> {
    io: Io,
    scope: NodeRef,
    tasks: Vec<Task<T>>,
    /// Index of the first task that failed, or `usize::MAX`.
    first_failure: Arc<AtomicUsize>,
    is_failure: Option<fn(&T) -> bool>,
}

impl<T: Send + 'static> Group<T> {
    /// An empty group whose tasks run on `io`, under the calling task's cancellation scope.
    pub fn new(io: &Io) -> Group<T> {
        let parent = crate::context::current_cancel().unwrap_or_else(|| io.inner.root.clone());
        Group {
            io: io.clone(),
            scope: CancelNode::child(&parent),
            tasks: Vec::new(),
            first_failure: Arc::new(AtomicUsize::new(usize::MAX)),
            is_failure: None,
        }
    }

    /// Number of tasks started in the group.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task was started in the group.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn wrap<F>(&self, f: F) -> impl FnOnce(&Io) -> T + Send + 'static
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        let index = self.tasks.len();
        let is_failure = self.is_failure;
        let first_failure = self.first_failure.clone();
        let scope = self.scope.clone();
        move |io| {
            let value = f(io);
            if is_failure.is_some_and(|failed| failed(&value))
                && first_failure
                    .compare_exchange(usize::MAX, index, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                scope.cancel();
            }
            value
        }
    }

    /// Starts `f` in the group; it may run inline. Zig: `group.async(io, f)`.
    #[track_caller]
    pub fn spawn<F>(&mut self, f: F)
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        let task = self.io.spawn_in(&self.scope, self.wrap(f));
        self.tasks.push(task);
    }

    /// Starts `f` in the group, concurrently with the caller, or refuses.
    /// Zig: `group.concurrent(io, f)`.
    #[track_caller]
    pub fn concurrent<F>(&mut self, f: F) -> Result<(), ConcurrencyUnavailable>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        let task = self.io.concurrent_in(&self.scope, self.wrap(f))?;
        self.tasks.push(task);
        Ok(())
    }

    /// The group's cancellation scope, for combinators that cancel the group from inside a task.
    pub(crate) fn scope_handle(&self) -> NodeRef {
        self.scope.clone()
    }

    /// Cancels every task of the group without waiting.
    pub fn request_cancel(&self) {
        self.scope.cancel();
    }

    /// Waits for every task and returns their values in the order they were started.
    ///
    /// Cancellation point: if the caller is canceled, the group's tasks are canceled (they are
    /// its descendants), all are waited for, and `Canceled` is returned.
    pub fn join_all(mut self) -> io::Result<Vec<T>> {
        let tasks = std::mem::take(&mut self.tasks);
        let mut values = Vec::with_capacity(tasks.len());
        let mut was_canceled = false;
        for task in tasks {
            match task.join() {
                Ok(v) => values.push(v),
                Err(_) => was_canceled = true,
            }
        }
        if was_canceled {
            return Err(crate::error::canceled());
        }
        Ok(values)
    }

    /// Cancels every task, waits for all, and returns their values in start order.
    pub fn cancel(mut self) -> Vec<T> {
        self.scope.cancel();
        std::mem::take(&mut self.tasks)
            .into_iter()
            .map(Task::cancel)
            .collect()
    }
}

impl<T: Send + 'static, E: Send + 'static> Group<Result<T, E>> {
    /// A group of fallible tasks with the given failure policy. With
    /// [`GroupPolicy::CancelOnFirstError`] the first task to return `Err` cancels the others.
    pub fn with_policy(io: &Io, policy: GroupPolicy) -> Self {
        let mut group = Group::new(io);
        if policy == GroupPolicy::CancelOnFirstError {
            group.is_failure = Some(Result::is_err);
        }
        group
    }

    /// A group that cancels its remaining tasks when one fails.
    pub fn fail_fast(io: &Io) -> Self {
        Self::with_policy(io, GroupPolicy::CancelOnFirstError)
    }

    /// Waits for every task; returns all values, or the error of the task that failed *first*
    /// (not the `Canceled` errors its failure caused in the others).
    ///
    /// If the caller itself is canceled, returns `Err(E::from(Canceled))`.
    pub fn try_join_all(mut self) -> Result<Vec<T>, E>
    where
        E: From<io::Error>,
    {
        let tasks = std::mem::take(&mut self.tasks);
        let mut results = Vec::with_capacity(tasks.len());
        let mut was_canceled = false;
        for task in tasks {
            match task.join() {
                Ok(r) => results.push(Some(r)),
                Err(_) => {
                    was_canceled = true;
                    results.push(None);
                }
            }
        }
        let first = self.first_failure.load(Ordering::Acquire);
        if let Some(Some(Err(_))) = results.get(first) {
            if let Some(Err(e)) = results.swap_remove(first) {
                return Err(e);
            }
        }
        if was_canceled {
            return Err(E::from(crate::error::canceled()));
        }
        let mut values = Vec::with_capacity(results.len());
        for r in results.into_iter().flatten() {
            values.push(r?);
        }
        Ok(values)
    }
}

impl<T> Drop for Group<T> {
    fn drop(&mut self) {
        if !self.tasks.is_empty() {
            self.scope.cancel();
            // Each handle's drop waits for its task.
            self.tasks.clear();
        }
        self.scope.detach_from_parent();
    }
}

impl<T> std::fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

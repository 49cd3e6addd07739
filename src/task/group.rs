//! Groups of tasks that end together. Zig: `std.Io.Group`.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use atomic_waker::AtomicWaker;

use crate::cancel::{CancelNode, NodeRef};
use crate::context;
use crate::error::ConcurrencyUnavailable;
use crate::task::id::Meta;
use crate::task::{Body, GroupTaskBuilder};
use crate::{park, Io, Task};

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

/// Runs many tasks, and cancels and waits for those still running when dropped: a scope that
/// never leaks a task. Zig: `std.Io.Group`; Tokio: `JoinSet`.
///
/// Wait for all of them at once ([`join_all`](Group::join_all), in start order), or reap them
/// one at a time as they finish ([`join_next`](Group::join_next), [`try_join_next`](Group::try_join_next),
/// in completion order): a joined task's memory is freed at once, so a long-lived group (an
/// accept loop's connections) stays as small as the number of tasks still running.
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
    /// Tasks not joined yet, by start number: iterating gives start order, and a reaped task
    /// leaves no hole behind.
    tasks: BTreeMap<u64, Task<T>>,
    /// The start number of the next task.
    next_seq: u64,
    /// Start number of the first task that failed, or `u64::MAX`.
    first_failure: Arc<AtomicU64>,
    is_failure: Option<fn(&T) -> bool>,
    /// Announces finished tasks, from the first `join_next`/`try_join_next` on (a group only
    /// joined all at once pays nothing for it).
    reaper: Option<Arc<Reaper>>,
}

/// Where a group's tasks announce that they finished, for [`Group::join_next`].
struct Reaper {
    /// Start numbers of finished tasks, in completion order (a number may come twice, or after
    /// its task was joined another way: the group skips those).
    done: Mutex<VecDeque<u64>>,
    /// The group's owner, waiting in `join_next`.
    owner: AtomicWaker,
}

impl Reaper {
    fn push(&self, seq: u64) {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(seq);
        self.owner.wake();
    }

    fn pop(&self) -> Option<u64> {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn is_empty(&self) -> bool {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// The waker a group leaves with each of its tasks: the task's completion wakes it (see
/// `Core::complete`), which queues the task's start number.
struct Finished {
    seq: u64,
    reaper: Arc<Reaper>,
}

impl Wake for Finished {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.reaper.push(self.seq);
    }
}

/// A group task's closure with what the group's failure policy needs; gives the closure back
/// when `concurrent` refuses it.
struct GroupBody<F, T> {
    f: F,
    seq: u64,
    is_failure: Option<fn(&T) -> bool>,
    first_failure: Arc<AtomicU64>,
    scope: NodeRef,
}

impl<F, T> Body<T> for GroupBody<F, T>
where
    F: FnOnce(&Io) -> T + Send + 'static,
    T: Send + 'static,
{
    fn call(self, io: &Io) -> T {
        let value = (self.f)(io);
        if self.is_failure.is_some_and(|failed| failed(&value))
            && self
                .first_failure
                .compare_exchange(u64::MAX, self.seq, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.scope.cancel();
        }
        value
    }
}

impl<T: Send + 'static> Group<T> {
    /// An empty group whose tasks run on `io`, under the calling task's cancellation scope.
    pub fn new(io: &Io) -> Group<T> {
        let parent = crate::context::current_cancel().unwrap_or_else(|| io.inner.root.clone());
        Group {
            io: io.clone(),
            scope: CancelNode::child(&parent),
            tasks: BTreeMap::new(),
            next_seq: 0,
            first_failure: Arc::new(AtomicU64::new(u64::MAX)),
            is_failure: None,
            reaper: None,
        }
    }

    /// Number of tasks in the group: started and not joined yet (finished or not).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the group holds no task (none started, or all joined).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn wrap<F>(&self, f: F) -> GroupBody<F, T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        GroupBody {
            f,
            seq: self.next_seq,
            is_failure: self.is_failure,
            first_failure: self.first_failure.clone(),
            scope: self.scope.clone(),
        }
    }

    /// Adds a started task (under the start number `wrap` gave it).
    fn insert(&mut self, task: Task<T>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(reaper) = &self.reaper {
            watch(reaper, seq, &task);
        }
        self.tasks.insert(seq, task);
    }

    /// Starts `f` in the group; it may run inline. Zig: `group.async(io, f)`.
    #[track_caller]
    pub fn spawn<F>(&mut self, f: F)
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        self.spawn_meta(Meta::new(Location::caller()), f);
    }

    pub(crate) fn spawn_meta<F>(&mut self, meta: Meta, f: F)
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        let task = self.io.spawn_at(&self.scope, meta, self.wrap(f));
        self.insert(task);
    }

    /// Starts `f` in the group, concurrently with the caller, or refuses and gives `f` back
    /// (see [`Io::concurrent`]). Zig: `group.concurrent(io, f)`.
    #[track_caller]
    pub fn concurrent<F>(&mut self, f: F) -> Result<(), ConcurrencyUnavailable<F>>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        self.concurrent_meta(Meta::new(Location::caller()), f)
    }

    pub(crate) fn concurrent_meta<F>(
        &mut self,
        meta: Meta,
        f: F,
    ) -> Result<(), ConcurrencyUnavailable<F>>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        match self.io.concurrent_in(&self.scope, meta, self.wrap(f)) {
            Ok(task) => {
                self.insert(task);
                Ok(())
            }
            Err(refused) => Err(refused.map(|body| body.f)),
        }
    }

    /// Starts building a task of the group with a name: `group.task().name("conn").spawn(f)`.
    pub fn task(&mut self) -> GroupTaskBuilder<'_, T> {
        GroupTaskBuilder::new(self)
    }

    /// Cancels every task of the group without waiting.
    pub fn request_cancel(&self) {
        self.scope.cancel();
    }

    /// The reaper, made on first use: from then on every task announces its end.
    fn reaper(&mut self) -> Arc<Reaper> {
        if let Some(reaper) = &self.reaper {
            return reaper.clone();
        }
        let reaper = Arc::new(Reaper {
            done: Mutex::new(VecDeque::new()),
            owner: AtomicWaker::new(),
        });
        for (&seq, task) in &self.tasks {
            watch(&reaper, seq, task);
        }
        self.reaper = Some(reaper.clone());
        reaper
    }

    /// Joins a task that has finished, if one has (the one that finished first among those not
    /// joined yet), without waiting; `None` if none has. A panic of that task resumes here.
    ///
    /// For a loop that starts tasks and must not wait for them, like an accept loop:
    ///
    /// ```
    /// use zsync::Group;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let mut conns = Group::new(io);
    ///     for i in 0..100u32 {
    ///         conns.spawn(move |_| i); // a connection's task
    ///         while let Some(_finished) = conns.try_join_next() {} // reap what has ended
    ///         assert!(conns.len() <= 100);
    ///     }
    ///     let rest = std::iter::from_fn(|| conns.join_next().unwrap()).count();
    ///     assert!(conns.is_empty() && rest <= 100);
    /// });
    /// ```
    pub fn try_join_next(&mut self) -> Option<T> {
        let reaper = self.reaper();
        while let Some(seq) = reaper.pop() {
            let Some(task) = self.tasks.get(&seq) else {
                continue; // announced twice
            };
            if !task.is_finished() {
                // Not announced by its completion: leave the waker with it again.
                watch(&reaper, seq, task);
                continue;
            }
            let task = self.tasks.remove(&seq).expect("present");
            // Finished: `join` returns its value without waiting and never reports `Canceled`.
            return Some(
                task.join()
                    .unwrap_or_else(|_| unreachable!("a finished task")),
            );
        }
        None
    }

    /// Waits for the next task to finish and joins it: its value, in completion order, or
    /// `Ok(None)` when the group is empty. A panic of that task resumes here. Tokio:
    /// `JoinSet::join_next`.
    ///
    /// Cancellation point: if the caller is canceled, returns `Canceled` (the group's tasks are
    /// its descendants, so they are canceled too; they stay in the group until joined or
    /// dropped).
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::Group;
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let mut group = Group::new(io);
    ///     for ms in [30u64, 10, 20] {
    ///         group.spawn(move |io| { io.sleep(Duration::from_millis(ms)).unwrap(); ms });
    ///     }
    ///     let mut order = Vec::new();
    ///     while let Some(ms) = group.join_next().unwrap() {
    ///         order.push(ms);
    ///     }
    ///     assert_eq!(order.len(), 3); // in the order they finished: [10, 20, 30] on a quiet machine
    /// });
    /// ```
    #[track_caller]
    pub fn join_next(&mut self) -> io::Result<Option<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Join,
            crate::diag::wait_point::Object::None,
        );
        let reaper = self.reaper();
        loop {
            if self.tasks.is_empty() {
                return Ok(None);
            }
            if let Some(value) = self.try_join_next() {
                return Ok(Some(value));
            }
            park::with_current_waker(|waker| {
                reaper.owner.register(waker);
                if reaper.is_empty() {
                    context::check()?;
                    park::park(None);
                }
                Ok::<(), io::Error>(())
            })?;
        }
    }

    /// Waits for every task and returns their values in the order they were started.
    ///
    /// Cancellation point: if the caller is canceled, the group's tasks are canceled (they are
    /// its descendants), all are waited for, and `Canceled` is returned.
    #[track_caller]
    pub fn join_all(mut self) -> io::Result<Vec<T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Join,
            crate::diag::wait_point::Object::None,
        );
        let tasks = std::mem::take(&mut self.tasks);
        let mut values = Vec::with_capacity(tasks.len());
        let mut was_canceled = false;
        for task in tasks.into_values() {
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
            .into_values()
            // A group's tasks are closure tasks, which always end with a value.
            .map(|task| task.cancel().expect("a closure task ends with a value"))
            .collect()
    }
}

/// Has `task` announce its end to `reaper` under `seq` (at once if it has ended).
fn watch<T>(reaper: &Arc<Reaper>, seq: u64, task: &Task<T>) {
    let waker = Waker::from(Arc::new(Finished {
        seq,
        reaper: reaper.clone(),
    }));
    if task.notify_finished(&waker) {
        reaper.push(seq);
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
    #[track_caller]
    pub fn try_join_all(mut self) -> Result<Vec<T>, E>
    where
        E: From<io::Error>,
    {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Join,
            crate::diag::wait_point::Object::None,
        );
        let tasks = std::mem::take(&mut self.tasks);
        let mut results = BTreeMap::new();
        let mut was_canceled = false;
        for (seq, task) in tasks {
            match task.join() {
                Ok(r) => {
                    results.insert(seq, r);
                }
                Err(_) => was_canceled = true,
            }
        }
        let first = self.first_failure.load(Ordering::Acquire);
        if let Some(Err(_)) = results.get(&first) {
            if let Some(Err(e)) = results.remove(&first) {
                return Err(e);
            }
        }
        if was_canceled {
            return Err(E::from(crate::error::canceled()));
        }
        results.into_values().collect()
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

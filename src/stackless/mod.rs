//! The stackless side: Rust futures as zsync tasks, on the same workers as the fibers.
//!
//! A future is a stackless coroutine whose frame the compiler sizes (`async fn`). zsync runs
//! one as a task of its own with [`Io::spawn_future`](crate::Io::spawn_future): the future lives
//! inline in the task's one allocation ([`cell`]), its waker is the task pointer, and a wake
//! queues the task on its model:
//!
//! - **Green**: polled directly by the worker loops, with no fiber and no stack of its own. A
//!   `Send` future goes on the waking worker's stealable future deque (or the global one from
//!   other threads), so any worker may poll it next: it moves between workers at every poll,
//!   as Tokio's tasks do, where a started fiber stays on its worker for life. A `!Send` future
//!   ([`Io::spawn_local_future`](crate::Io::spawn_local_future)) is polled only on its worker.
//! - **Threaded**: polled on the pool's workers.
//! - **Custom models**: each poll is a [`Runnable`](crate::Runnable) handed to
//!   [`CustomModel::spawn`](crate::CustomModel::spawn).
//! - **Blocking**: run to completion inline, by [`Io::block_on`](crate::Io::block_on), at the
//!   spawn (Zig's `io.async` may run inline).
//!
//! The other direction, colorblind code waiting for a future, is [`Io::block_on`]: it parks
//! the fiber on Green and the thread elsewhere between polls. A [`Task`](crate::Task) is a
//! `Future` too, so async code awaits closure and future tasks alike.

pub(crate) mod cache;
pub(crate) mod cell;
pub(crate) mod frame;
mod yield_now;

use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::pin;
use std::task::{Context, Poll};

pub(crate) use cell::in_future_poll;
use cell::{FutureCell, Home};
pub use yield_now::{yield_now, YieldNow};

use crate::cancel::NodeSource;
use crate::error::ConcurrencyUnavailable;
use crate::model::blocking;
use crate::task::id::Meta;
use crate::task::{Dropped, Task};
use crate::{context, park, Io};

impl Io {
    /// Starts `future` as a task and returns its handle: the same [`Task`] as
    /// [`spawn`](Io::spawn) gives, joined, canceled, detached or awaited the same way.
    ///
    /// Green polls it on the worker loops without a fiber (it may move between workers at every
    /// poll), Threaded on the pool; Blocking runs it to completion here, at once (see
    /// [`block_on`](Io::block_on)). Canceling the task drops the future at its next poll; its
    /// joiners then see `Err(Canceled)`. A panic in it resumes at `join` or `.await`.
    ///
    /// May run inline.
    ///
    /// ```
    /// use zsync::Model;
    ///
    /// for model in [Model::Blocking, Model::Threaded, Model::Green] {
    ///     let v = zsync::run(model, |io| {
    ///         let fiber = io.spawn(|_| 21); // a closure task, awaited by a future task
    ///         let doubled = io.spawn_future(async move { fiber.await.unwrap() * 2 });
    ///         doubled.join().unwrap()
    ///     });
    ///     assert_eq!(v, 42);
    /// }
    /// ```
    #[track_caller]
    pub fn spawn_future<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let meta = Meta::new(Location::caller());
        context::with_cancel(|parent| {
            let parent: &dyn NodeSource = parent.unwrap_or(&self.inner.root);
            if !self.inner.model.queues_spawns() {
                return self.run_future_inline(parent, meta, future);
            }
            let cell = FutureCell::new(self.clone(), parent.node_ref(), meta, future, Home::Any);
            self.inner.state.task_started();
            self.inner
                .model
                .schedule_future(FutureCell::runnable(cell.clone()), Home::Any, false);
            FutureCell::handle(cell)
        })
    }

    /// Starts `future` as a task that is guaranteed to make progress concurrently with the
    /// caller, or gives it back in [`ConcurrencyUnavailable`] (always on Blocking). Zig:
    /// `io.concurrent`.
    ///
    /// ```
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let task = io.concurrent_future(async { 7 }).unwrap();
    ///     assert_eq!(task.join().unwrap(), 7);
    /// });
    /// ```
    #[track_caller]
    pub fn concurrent_future<F>(
        &self,
        future: F,
    ) -> Result<Task<F::Output>, ConcurrencyUnavailable<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let meta = Meta::new(Location::caller());
        if self.inner.model.refuses_concurrency() {
            return Err(ConcurrencyUnavailable::new(self.model_name()).with_closure(future));
        }
        let parent = self.current_scope();
        let cell = FutureCell::new(self.clone(), parent, meta, future, Home::Any);
        self.inner.state.task_started();
        match self
            .inner
            .model
            .concurrent_future(FutureCell::runnable(cell.clone()))
        {
            Ok(()) => Ok(FutureCell::handle(cell)),
            Err(refused) => match cell.take_back() {
                Some(future) => Err(refused.with_closure(future)),
                None => Ok(FutureCell::handle(cell)),
            },
        }
    }

    /// Starts a `!Send` future as a task that stays on the calling thread: on a Green worker
    /// (a fiber or a future task), it is polled only by that worker and never stolen; anywhere
    /// else (Blocking, Threaded, custom models, a thread outside the runtime) it runs to
    /// completion here, at once, as [`spawn`](Io::spawn) may.
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let shared = Rc::new(5); // not Send: the future must stay on this thread
    ///     let task = io.spawn_local_future(async move { *shared + 1 });
    ///     assert_eq!(task.join().unwrap(), 6);
    /// });
    /// ```
    ///
    /// A `!Send` future cannot go to [`spawn_future`](Io::spawn_future), which may move it
    /// between threads:
    ///
    /// ```compile_fail
    /// use std::rc::Rc;
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let shared = Rc::new(5);
    ///     io.spawn_future(async move { *shared + 1 }).join().unwrap()
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_local_future<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let meta = Meta::new(Location::caller());
        context::with_cancel(|parent| {
            let parent: &dyn NodeSource = parent.unwrap_or(&self.inner.root);
            let worker = match &self.inner.model {
                crate::model::ModelImpl::Green(green) if green.is_open() => green.current_worker(),
                _ => None,
            };
            let Some(worker) = worker else {
                return self.run_future_inline(parent, meta, future);
            };
            let home = Home::Worker(worker);
            let cell = FutureCell::new(self.clone(), parent.node_ref(), meta, future, home);
            self.inner.state.task_started();
            self.inner
                .model
                .schedule_future(FutureCell::runnable(cell.clone()), home, false);
            FutureCell::handle(cell)
        })
    }

    /// Runs `future` to completion as a task of its own, here, now.
    fn run_future_inline<F>(
        &self,
        parent: &dyn NodeSource,
        meta: Meta,
        future: F,
    ) -> Task<F::Output>
    where
        F: Future,
    {
        let result = blocking::run_inline(self, Some(parent), &meta, |io: &Io| io.block_on(future));
        let result = match result {
            Ok(Ok(v)) => Ok(v),
            // Canceled while it waited: dropped, as a canceled future task is.
            Ok(Err(_)) => Err(Box::new(Dropped) as Box<dyn std::any::Any + Send>),
            Err(payload) => Err(payload),
        };
        Task::ready(meta.id, meta.name, result)
    }

    /// Runs `future` to completion from colorblind code: polls it, and between polls parks the
    /// calling fiber (Green) or thread (elsewhere) until the future's waker is woken. The
    /// future's own waits (a zsync channel, a socket, `zsync::time::sleep`) wake it through
    /// zsync's reactor; wakers from any other thread work too.
    ///
    /// Cancellation point: if the calling task is canceled (or its deadline, see
    /// [`timeout`](Io::timeout), passes) while the future is pending, the future is dropped and
    /// `block_on` returns `Err(Canceled)` (or `TimedOut`). A panic in the future resumes here.
    ///
    /// Called inside a future task's poll, it blocks that worker's thread: await instead there.
    ///
    /// ```
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let v = io.block_on(async { 40 + 2 }).unwrap();
    ///     assert_eq!(v, 42);
    /// });
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> io::Result<F::Output> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::BlockOn,
            crate::diag::wait_point::Object::None,
        );
        crate::model::green::fiber::consume_budget();
        let mut future = pin!(future);
        park::with_waiter(|waiter| {
            let mut cx = Context::from_waker(waiter.waker());
            loop {
                context::check()?;
                // The fiber parks between polls, so ring ops the future starts complete on this
                // worker (see `green::submit_owned`).
                let polled =
                    crate::model::green::polling_in_zsync_wait(|| future.as_mut().poll(&mut cx));
                if let Poll::Ready(v) = polled {
                    return Ok(v);
                }
                let deadline = context::effective_deadline(None);
                if deadline.is_some_and(park::deadline_passed) {
                    context::check()?;
                    return Err(crate::error::timed_out());
                }
                waiter.park(deadline);
            }
        })
    }
}

impl<T> Unpin for Task<T> {}

/// A task handle is a future of the task's value: async code awaits closure tasks and future
/// tasks alike. Like [`Task::join`] it yields `Err(Canceled)` for a future task dropped by its
/// cancellation, and resumes the task's panic; unlike `join` it never runs an unstarted task
/// inline. Dropping the handle unfinished inside a future task cancels the task and detaches it
/// (waiting there would block the worker); `run` still waits for it at shutdown.
///
/// ```
/// zsync::run(zsync::Model::Threaded, |io| {
///     let fiber = io.spawn(|_| 20);
///     let sum = io.spawn_future(async move { fiber.await.unwrap() + 22 });
///     assert_eq!(sum.join().unwrap(), 42);
/// });
/// ```
impl<T> Future for Task<T> {
    type Output = io::Result<T>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.get_mut().poll_join(cx.waker())
    }
}

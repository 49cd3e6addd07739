//! The execution models, and the one seam through which `Io` reaches them.
//!
//! Zig's `std.Io` is a vtable every model fills in; zsync's [`Io`](crate::Io) holds a closed enum
//! of the built-in models, [`ModelImpl`], plus [`Model::Custom`] for a user's [`CustomModel`]
//! behind a trait object. Every scheduling call (`spawn`, `concurrent`, `blocking`, `offload`,
//! shutdown, the name) is one exhaustive `match` here: a program that uses one built-in model
//! pays a predictable branch, never a virtual call. I/O operations reach a custom model through
//! [`CustomModel::operate`] (see [`crate::op`]); the built-in models run them directly.
//!
//! - [`blocking`]: everything inline on the caller's thread.
//! - [`threaded`]: a work-stealing pool plus elastic threads for `concurrent` tasks.
//! - [`green`]: M:N stackful fibers on per-worker event loops.
//! - [`custom`]: the trait a user's model implements.
//! - [`operation`]: the I/O operations as a custom model receives them.
//! - [`run_state`]: what every model shares during a run (live tasks, panics of detached tasks).
//!
//! How each model's tasks *wait* is [`crate::park`]'s business.

pub(crate) mod blocking;
pub(crate) mod custom;
pub(crate) mod elastic;
pub(crate) mod green;
pub(crate) mod operation;
pub(crate) mod run_state;
pub(crate) mod threaded;

use std::fmt;
use std::sync::Arc;

pub use custom::CustomModel;
pub use operation::{Completion, Operation};

use crate::error::ConcurrencyUnavailable;
use crate::stackless::cell::Home;
use crate::task::Runnable;

/// Which execution model runs the tasks of a [`run`](crate::run).
///
/// The same colorblind code runs unchanged on every model; only timing and concurrency differ.
#[derive(Clone)]
#[non_exhaustive]
pub enum Model {
    /// Direct syscalls on the calling thread. [`Io::spawn`](crate::Io::spawn) runs the closure
    /// inline, at once; [`Io::concurrent`](crate::Io::concurrent) reports
    /// [`ConcurrencyUnavailable`]. Zero overhead over plain std calls.
    Blocking,
    /// A work-stealing pool of OS threads (default size: available parallelism); blocking
    /// syscalls run on the workers, and each [`Io::concurrent`](crate::Io::concurrent) task gets
    /// a thread of its own.
    Threaded,
    /// Stackful fibers, M:N on per-worker event loops (the calling thread becomes worker 0).
    /// A blocking operation parks the fiber, not the thread. The I/O engine is chosen with
    /// [`Builder::backend`](crate::Builder::backend).
    Green,
    /// A model supplied by the user.
    Custom(Arc<dyn CustomModel>),
}

impl Model {
    /// Which kind of model this is: what code compares, where [`name`](Model::name) is for
    /// display.
    ///
    /// ```
    /// use zsync::{Model, ModelKind};
    /// assert_eq!(Model::Green.kind(), ModelKind::Green);
    /// ```
    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Blocking => ModelKind::Blocking,
            Model::Threaded => ModelKind::Threaded,
            Model::Green => ModelKind::Green,
            Model::Custom(_) => ModelKind::Custom,
        }
    }

    /// The model's name, as printed by the demo and in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Model::Blocking => "Blocking",
            Model::Threaded => "Threaded",
            Model::Green => "Green",
            Model::Custom(rt) => rt.name(),
        }
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of model runs an [`Io`](crate::Io): [`Io::model`](crate::Io::model) and
/// [`Model::kind`] return it, for code that branches on the model (a `Copy` value to compare,
/// where [`Io::model_name`](crate::Io::model_name) is a string for display; every custom model
/// is [`Custom`](ModelKind::Custom), its own name is in `model_name`).
///
/// ```
/// use zsync::{Model, ModelKind};
/// zsync::run(Model::Threaded, |io| {
///     assert_eq!(io.model(), ModelKind::Threaded);
///     assert_eq!(io.model().to_string(), io.model_name());
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelKind {
    /// [`Model::Blocking`].
    Blocking,
    /// [`Model::Threaded`].
    Threaded,
    /// [`Model::Green`].
    Green,
    /// [`Model::Custom`], whatever the custom model.
    Custom,
    /// A deterministic simulation ([`Sim`](crate::sim::Sim)): fibers on one thread in the
    /// order a seed picks, under a virtual clock.
    Simulation,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Blocking => "Blocking",
            ModelKind::Threaded => "Threaded",
            ModelKind::Green => "Green",
            ModelKind::Custom => "Custom",
            ModelKind::Simulation => "Simulation",
        })
    }
}

/// A built-in model's running state, or a custom model. One `match` per scheduling call; no `_`
/// arms, so a new model cannot be forgotten in one of them.
pub(crate) enum ModelImpl {
    Blocking,
    Threaded(threaded::Pool),
    Green(green::Green),
    Custom(Arc<dyn CustomModel>),
}

/// A model that declined a task (closed, at its limit, or refusing concurrency by design).
#[derive(Debug)]
pub(crate) struct Declined;

impl ModelImpl {
    /// Which kind of model this is.
    pub(crate) fn kind(&self) -> ModelKind {
        match self {
            ModelImpl::Blocking => ModelKind::Blocking,
            ModelImpl::Threaded(_) => ModelKind::Threaded,
            ModelImpl::Green(g) if g.sim().is_some() => ModelKind::Simulation,
            ModelImpl::Green(_) => ModelKind::Green,
            ModelImpl::Custom(_) => ModelKind::Custom,
        }
    }

    /// The model's name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ModelImpl::Blocking => "Blocking",
            ModelImpl::Threaded(_) => "Threaded",
            ModelImpl::Green(g) if g.sim().is_some() => "Simulation",
            ModelImpl::Green(_) => "Green",
            ModelImpl::Custom(rt) => rt.name(),
        }
    }

    /// What a task dump learns from the model beyond the cancellation tree: Green's fibers
    /// and their stacks (waiting at most `patience` for each worker), the tasks in the
    /// queues, the tasks running on a Threaded pool's workers.
    pub(crate) fn dump_report(
        &self,
        patience: std::time::Duration,
    ) -> crate::diag::dump::ModelReport {
        match self {
            ModelImpl::Green(g) => g.dump_report(patience),
            ModelImpl::Threaded(pool) => pool.dump_report(),
            ModelImpl::Blocking => Default::default(),
            ModelImpl::Custom(_) => crate::diag::dump::ModelReport {
                notes: vec![
                    "a custom model's queues cannot be looked into: only tasks that \
                             waited, and the one taking the dump, are listed"
                        .to_owned(),
                ],
                ..Default::default()
            },
        }
    }

    /// The Green worker the calling thread is, if it is one of this runtime's.
    pub(crate) fn current_worker(&self) -> Option<usize> {
        match self {
            ModelImpl::Green(g) => g.current_worker(),
            ModelImpl::Blocking | ModelImpl::Threaded(_) | ModelImpl::Custom(_) => None,
        }
    }

    /// The I/O engine: `"io_uring"` or `"epoll"` on Green, `"syscalls"` elsewhere.
    pub(crate) fn backend_name(&self) -> &'static str {
        match self {
            ModelImpl::Green(g) => g.backend_name(),
            ModelImpl::Blocking | ModelImpl::Threaded(_) | ModelImpl::Custom(_) => "syscalls",
        }
    }

    /// Whether [`concurrent`](Self::concurrent) can succeed at all.
    pub(crate) fn supports_concurrency(&self) -> bool {
        match self {
            ModelImpl::Blocking => false,
            ModelImpl::Threaded(_) | ModelImpl::Green(_) | ModelImpl::Custom(_) => true,
        }
    }

    /// Whether a spawned task goes to the model (`true`) or runs inline in the spawner (Blocking,
    /// and a built-in pool that has shut down: its last tasks may still spawn).
    #[inline]
    pub(crate) fn queues_spawns(&self) -> bool {
        match self {
            ModelImpl::Blocking => false,
            ModelImpl::Threaded(pool) => pool.is_open(),
            ModelImpl::Green(green) => green.is_open(),
            ModelImpl::Custom(_) => true,
        }
    }

    /// Hands a task to the model to run, possibly inline. Only called when
    /// [`queues_spawns`](Self::queues_spawns) said so.
    pub(crate) fn spawn(&self, task: Runnable) {
        match self {
            // Not reached (`queues_spawns` is false); running it is still correct.
            ModelImpl::Blocking => task.run(),
            ModelImpl::Threaded(pool) => pool.spawn(task),
            // `spawn` may run the task inline, so telling an idle worker about it can wait (see
            // `Green::spawn`): a spawn that is joined at once then wakes nobody.
            ModelImpl::Green(green) => green.spawn(task, false),
            ModelImpl::Custom(rt) => rt.spawn(task),
        }
    }

    /// A Green runtime's identity, for [`green::schedule_future_here`]; `None` on the other
    /// models.
    pub(crate) fn runtime_id(&self) -> Option<*const ()> {
        match self {
            ModelImpl::Green(green) => Some(green.id()),
            _ => None,
        }
    }

    /// Queues a future task for a poll: its first, or after its waker was woken (see
    /// [`crate::stackless`]). `home` pins a `!Send` one to a Green worker; `eager` asks an idle
    /// Green worker to take it at once (a `concurrent_future`).
    pub(crate) fn schedule_future(&self, task: Runnable, home: Home, eager: bool) {
        match self {
            // Blocking runs future tasks inline (`block_on`), so none is ever queued; a poll
            // here is still correct.
            ModelImpl::Blocking => task.run(),
            ModelImpl::Threaded(pool) => pool.spawn(task),
            ModelImpl::Green(green) => green.schedule_future(task, home, eager),
            ModelImpl::Custom(rt) => rt.spawn(task),
        }
    }

    /// Hands a new future task to the model for its first poll, promising progress
    /// concurrently with the caller, or refuses.
    pub(crate) fn concurrent_future(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
        let refused = ConcurrencyUnavailable::new(self.name());
        match self {
            ModelImpl::Blocking => Err(refused),
            // The pool polls it whenever a worker is free; its monitor starts extra threads for
            // a pool whose every worker is blocked while tasks wait.
            ModelImpl::Threaded(pool) if pool.is_open() => {
                pool.spawn(task);
                Ok(())
            }
            ModelImpl::Threaded(_) => Err(refused),
            ModelImpl::Green(green) if green.is_open() => {
                green.schedule_future(task, Home::Any, true);
                Ok(())
            }
            ModelImpl::Green(_) => Err(refused),
            ModelImpl::Custom(rt) => rt.concurrent(task),
        }
    }

    /// Whether [`concurrent`](Self::concurrent) would refuse before a task is even made.
    pub(crate) fn refuses_concurrency(&self) -> bool {
        match self {
            ModelImpl::Blocking => true,
            ModelImpl::Green(green) => !green.is_open(),
            ModelImpl::Threaded(_) | ModelImpl::Custom(_) => false,
        }
    }

    /// Hands a task to the model to run concurrently with the caller, or refuses it.
    pub(crate) fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
        let refused = ConcurrencyUnavailable::new(self.name());
        match self {
            ModelImpl::Blocking => Err(refused),
            ModelImpl::Threaded(pool) => pool.concurrent(task).map_err(|_| refused),
            // A fiber runs concurrently with its spawner: a blocking wait parks the fiber and
            // frees the worker, and the task is queued where an idle worker can steal it, so it
            // progresses even while its spawner computes without blocking.
            ModelImpl::Green(green) if green.is_open() => {
                green.spawn(task, true);
                Ok(())
            }
            ModelImpl::Green(_) => Err(refused),
            ModelImpl::Custom(rt) => rt.concurrent(task),
        }
    }

    /// Whether [`Io::blocking`](crate::Io::blocking) hands its closure to another thread
    /// (`true`) or calls it right here.
    pub(crate) fn offloads_blocking(&self) -> bool {
        match self {
            ModelImpl::Blocking => false,
            ModelImpl::Threaded(pool) => pool.is_open(),
            ModelImpl::Green(green) => green.is_open(),
            ModelImpl::Custom(_) => true,
        }
    }

    /// Runs a task made by [`Io::blocking`](crate::Io::blocking) on a thread where blocking is
    /// harmless: a helper thread on Green and Threaded, a `concurrent` task on custom models.
    pub(crate) fn blocking(&self, task: Runnable) -> Result<(), Declined> {
        match self {
            ModelImpl::Blocking => {
                task.run();
                Ok(())
            }
            ModelImpl::Threaded(pool) => pool.blocking(task).map_err(|_| Declined),
            ModelImpl::Green(green) => green.blocking(task).map_err(|_| Declined),
            ModelImpl::Custom(rt) => rt.concurrent(task).map_err(|_| Declined),
        }
    }

    /// Runs `f`, a short blocking syscall (a disk read, a `stat`), where it cannot stall other
    /// tasks: on a helper thread while a Green fiber waits, right here on the thread models
    /// (whose tasks own their thread). A panic in `f` resumes here.
    #[inline]
    #[track_caller]
    pub(crate) fn offload<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            ModelImpl::Green(green) => green.offload(f),
            ModelImpl::Blocking | ModelImpl::Threaded(_) | ModelImpl::Custom(_) => f(),
        }
    }

    /// Takes the unstarted task whose cell is at `task` out of the calling worker's queue if it
    /// was queued there last, before its joiner runs it inline.
    pub(crate) fn unqueue(&self, task: *const ()) {
        match self {
            ModelImpl::Green(green) => green.unqueue(task),
            ModelImpl::Threaded(pool) => pool.unqueue(task),
            ModelImpl::Blocking | ModelImpl::Custom(_) => {}
        }
    }

    /// Whether a joiner on the calling thread may run an unstarted task inline (Zig's `await`
    /// of a future nobody started). Green tasks run on fibers of its workers, so a joiner on a
    /// foreign thread (a [`Runtime`](crate::Runtime)'s caller) waits for a worker instead; on
    /// the other models a task may run on any thread, the joiner's included.
    pub(crate) fn runs_joined_inline_here(&self) -> bool {
        match self {
            ModelImpl::Green(green) => green.on_own_worker(),
            ModelImpl::Blocking | ModelImpl::Threaded(_) | ModelImpl::Custom(_) => true,
        }
    }

    /// Sends the wake-up for an idle worker that the calling worker deferred when it queued its
    /// last task (see `Green::spawn`), for a task that will not be joined.
    pub(crate) fn announce_spawned(&self) {
        match self {
            ModelImpl::Green(green) => green.announce_spawned(),
            ModelImpl::Blocking | ModelImpl::Threaded(_) | ModelImpl::Custom(_) => {}
        }
    }

    /// Releases the model's threads. Called once by `run` after every task has finished.
    pub(crate) fn shutdown(&self) {
        match self {
            ModelImpl::Blocking => {}
            ModelImpl::Threaded(pool) => pool.shutdown(),
            ModelImpl::Green(green) => green.shutdown(),
            ModelImpl::Custom(rt) => rt.shutdown(),
        }
    }

    /// The model behind this handle that takes every operation as an
    /// [`Operation`](crate::Operation), if it has one: a custom model, or a simulation's world.
    /// What the operation layer asks first.
    #[inline]
    pub(crate) fn custom(&self) -> Option<&dyn CustomModel> {
        match self {
            ModelImpl::Custom(rt) => Some(&**rt),
            ModelImpl::Green(g) => match g.sim() {
                Some(world) => Some(&**world),
                None => None,
            },
            ModelImpl::Blocking | ModelImpl::Threaded(_) => None,
        }
    }

    /// The simulated world, when this is a simulation.
    #[inline]
    pub(crate) fn sim(&self) -> Option<&crate::sim::world::World> {
        match self {
            ModelImpl::Green(g) => g.sim().map(|w| &**w),
            ModelImpl::Blocking | ModelImpl::Threaded(_) | ModelImpl::Custom(_) => None,
        }
    }
}

//! [`Builder`]: configures a runtime and runs the root task on it; [`run`] is the short form.

use std::panic;
use std::sync::Arc;
use std::time::Duration;

use crate::cancel::NodeRef;
use crate::context::{self, TaskContext};
use crate::io::IoInner;
use crate::model::green::{self, Backend, GreenConfig};
use crate::model::run_state::RunState;
use crate::model::threaded::{self, ThreadedConfig};
use crate::model::{Model, ModelImpl};
use crate::Io;

/// Configures and runs a runtime. [`run`](crate::run) is `Builder::new(model).run(f)`.
///
/// ```
/// use zsync::{Builder, Model};
/// let n = Builder::new(Model::Threaded).worker_threads(2).run(|io| {
///     let a = io.spawn(|_| 20);
///     let b = io.spawn(|_| 22);
///     a.join().unwrap() + b.join().unwrap()
/// });
/// assert_eq!(n, 42);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Builder does nothing until run() is called"]
pub struct Builder {
    model: Model,
    threaded: ThreadedConfig,
    green: GreenConfig,
    dump_on_signal: Option<crate::diag::on_signal::DumpOnSignal>,
    /// Whether the runtime profiles from its start (feature `profile`).
    #[cfg(feature = "profile")]
    profile: bool,
}

impl Builder {
    /// A builder for `model` with default settings.
    pub fn new(model: Model) -> Builder {
        Builder {
            model,
            threaded: ThreadedConfig::default(),
            green: GreenConfig::default(),
            dump_on_signal: None,
            #[cfg(feature = "profile")]
            profile: false,
        }
    }

    /// Writes a [task dump](crate::dump) to stderr each time the process receives `signal`,
    /// while the runtime runs: Go's `SIGQUIT` goroutine dump, except that the program goes on.
    /// Off by default. [`SignalKind::quit`](crate::signal::SignalKind::quit) (Ctrl-\\ in a
    /// terminal) is the usual choice; the signal is then taken over by zsync for the whole
    /// process (see [`zsync::signal`](crate::signal)) and no longer ends it, also after the
    /// runtime has ended (it is ignored then, as any signal zsync once listened for). `run`
    /// fails to start (panics; `build` returns the error) for a signal that cannot be caught.
    ///
    /// ```
    /// use zsync::signal::SignalKind;
    /// zsync::Builder::new(zsync::Model::Green)
    ///     .dump_on_signal(SignalKind::quit())
    ///     .run(|io| {
    ///         // `kill -QUIT <pid>` now prints every task and where it waits.
    ///         # let _ = io;
    ///     });
    /// ```
    pub fn dump_on_signal(self, signal: crate::signal::SignalKind) -> Builder {
        self.dump_on_signal_to(signal, std::io::stderr())
    }

    /// [`dump_on_signal`](Builder::dump_on_signal), writing each dump to `out` instead of
    /// stderr (a log file, a pipe; a test's buffer).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use zsync::signal::SignalKind;
    ///
    /// #[derive(Clone, Default)]
    /// struct Shared(Arc<Mutex<Vec<u8>>>);
    /// impl std::io::Write for Shared {
    ///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
    ///         self.0.lock().unwrap().write(b)
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let out = Shared::default();
    /// zsync::Builder::new(zsync::Model::Threaded)
    ///     .dump_on_signal_to(SignalKind::user_defined2(), out.clone())
    ///     .run(|io| {
    ///         // SAFETY: kill(2) has no memory-safety preconditions.
    ///         unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
    ///         while out.0.lock().unwrap().is_empty() {
    ///             io.sleep(std::time::Duration::from_millis(5)).unwrap();
    ///         }
    ///     });
    /// assert!(String::from_utf8_lossy(&out.0.lock().unwrap()).starts_with("zsync task dump"));
    /// ```
    pub fn dump_on_signal_to(
        mut self,
        signal: crate::signal::SignalKind,
        out: impl std::io::Write + Send + 'static,
    ) -> Builder {
        self.dump_on_signal = Some(crate::diag::on_signal::DumpOnSignal {
            kind: signal,
            out: Arc::new(std::sync::Mutex::new(Box::new(out))),
        });
        self
    }

    /// Profiles the runtime from its start (default: off): per task and per spawn site, the
    /// time running, waiting to be scheduled and blocked per kind of operation; waits at
    /// contended `Mutex`/`RwLock`/`Semaphore` call sites; fiber stack use. Read the figures
    /// with [`Io::profile`](crate::Io::profile); turn profiling on or off later with
    /// [`Io::set_profiling`](crate::Io::set_profiling). Feature `profile`.
    ///
    /// ```
    /// use zsync::{Builder, Model};
    /// Builder::new(Model::Threaded).profile(true).run(|io| {
    ///     io.spawn(|_| ()).join().unwrap();
    ///     assert!(io.profile().sites.iter().any(|s| s.tasks == 1));
    /// });
    /// ```
    #[cfg(feature = "profile")]
    pub fn profile(mut self, on: bool) -> Builder {
        self.profile = on;
        self
    }

    /// Threaded and Green: number of workers (default: available parallelism). Values below 1
    /// are treated as 1. On Green the calling thread is worker 0.
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.threaded.workers = n.max(1);
        self.green.workers = n.max(1);
        self
    }

    /// Green: the usable size of each fiber's stack, rounded up to whole pages (a guard page
    /// comes on top).
    ///
    /// The default depends on the build: **256 KiB** in release builds and **512 KiB** with
    /// `debug_assertions`, whose unoptimised frames are several times larger. Either leaves
    /// room for ordinary recursive crates: `serde_json` parsing JSON nested to its limit of 128
    /// levels needs about 80 KiB in release and 240 KiB in debug.
    ///
    /// The size is address space, not memory: stacks are reserved with `MAP_NORESERVE` and a
    /// fiber costs the pages it touches (one 4 KiB page for a task parked in a plain wait),
    /// and a worker gives the pages of stacks it no longer uses back to the system when it is
    /// idle. So a bigger stack costs nothing until used, except page tables (about 0.5 KiB per
    /// live fiber at 256 KiB). A fiber that runs past its stack hits the guard page and the
    /// process aborts with a message naming the task's spawn location.
    ///
    /// ```
    /// use zsync::{Builder, Model};
    /// let depth = Builder::new(Model::Green)
    ///     .stack_size(4 << 20) // deep recursion ahead
    ///     .run(|io| io.spawn(|_| count_down(10_000)).join().unwrap());
    /// assert_eq!(depth, 10_000);
    ///
    /// fn count_down(n: u32) -> u32 {
    ///     if n == 0 { 0 } else { 1 + count_down(std::hint::black_box(n - 1)) }
    /// }
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.green.stack_size = bytes;
        self
    }

    /// Green, tests only: which guard pages the stack pools may install (e.g. none of
    /// `MADV_GUARD_INSTALL` and a tiny mprotect budget, as on an old kernel at its limit).
    #[cfg(test)]
    pub(crate) fn guard_policy(mut self, policy: crate::fiber_stack::GuardPolicy) -> Builder {
        self.green.guard_policy = Some(policy);
        self
    }

    /// Green: the I/O engine (default [`Backend::Auto`]: io_uring where available, else epoll;
    /// the `ZSYNC_BACKEND` environment variable overrides `Auto`).
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.green.backend = backend;
        self
    }

    /// Threaded: most threads that run [`Io::concurrent`] tasks at once (default 1024); beyond it
    /// `concurrent` reports [`ConcurrencyUnavailable`](crate::ConcurrencyUnavailable). The same number bounds, separately, the
    /// extra threads that run spawned tasks while every worker is blocked (see
    /// [`Io::spawn`]).
    pub fn max_concurrent_threads(mut self, n: usize) -> Builder {
        self.threaded.max_concurrent = n;
        self
    }

    /// Threaded: how long an idle thread for concurrent tasks waits for more work before it exits
    /// (default 5 s).
    pub fn concurrent_keep_alive(mut self, d: Duration) -> Builder {
        self.threaded.keep_alive = d;
        self
    }

    /// Green and Threaded: how long a task may hold a Green worker, or tasks may wait to start
    /// while every worker is blocked, before zsync prints a warning (default 100 ms); `None`
    /// turns both warnings off.
    ///
    /// - **Blocked worker** (Green): a fiber in a call that is not zsync's
    ///   (`std::thread::sleep`, a blocking socket of another crate, a C library, a long
    ///   computation) holds its worker's thread, and every other task of that worker waits. A
    ///   monitor thread (`zsync-sysmon`, parked while the runtime is idle, not started when this
    ///   is `None`) sees it and prints one warning per incident naming the task's spawn site
    ///   and pointing at [`Io::blocking`].
    /// - **Starved queue** (Green, Threaded): tasks wait to start while every worker is held;
    ///   the warning names them (id, name, spawn site). On Threaded the pool also starts extra
    ///   threads to run them (see [`Io::spawn`]); that rescue does not depend on this setting,
    ///   only the warning does (printed once per run there).
    ///
    /// Warnings go to stderr unless [`diagnostics`](Builder::diagnostics) says otherwise. What
    /// they look like: docs/debugging.md, "Stalls and deadlocks".
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::{Builder, Model};
    /// let quiet = Builder::new(Model::Green).stall_threshold(None); // no warnings, no monitor
    /// let strict = Builder::new(Model::Green).stall_threshold(Some(Duration::from_millis(20)));
    /// # let _ = (quiet, strict);
    /// ```
    pub fn stall_threshold(mut self, threshold: Option<Duration>) -> Builder {
        self.green.stall.threshold = threshold;
        self.threaded.stall.threshold = threshold;
        self
    }

    /// Whether a run whose every task is asleep with nothing left that could wake one fails
    /// (default `true`): zsync then prints "all tasks are asleep:
    /// deadlock" with what it knows of the tasks, cancels every task so that the run ends, and
    /// the run fails with [`Deadlock`](crate::Deadlock) ([`try_run`](Builder::try_run) returns
    /// it; `run` panics with its message).
    ///
    /// A report is never a guess: it is made only when it is proven that nothing can wake any
    /// task. On Green a worker about to sleep with nothing to do checks: every worker asleep
    /// with no timer, descriptor wait or io_uring op; no task queued; no [`Io::blocking`] call
    /// running; no async driver in use; and no thread in the process but the runtime's own. On
    /// Blocking (one thread runs everything) the check is made when that thread parks with no
    /// deadline and no wake-up pending, and the process has no other thread. So any other
    /// thread prevents the report (a `std::thread` may hold a channel's sender, a waker may
    /// have been cloned into it): a [`Runtime`](crate::Runtime), whose owner thread outlives
    /// its tasks, and a test harness, which runs tests on threads, are never checked. On
    /// Threaded the pool's monitor checks that the root and every worker wait in a zsync wait
    /// with no timeout (or, a worker, sleep for lack of work), each asleep in the kernel, with
    /// no task queued, no helper thread busy and no other thread in the process (see
    /// docs/debugging.md, "Stalls and deadlocks").
    ///
    /// ```
    /// use zsync::{Builder, Model};
    /// let b = Builder::new(Model::Green).deadlock_detection(false);
    /// # let _ = b;
    /// ```
    pub fn deadlock_detection(mut self, on: bool) -> Builder {
        self.green.stall.deadlock = on;
        self.threaded.stall.deadlock = on;
        self
    }

    /// Where stall warnings and deadlock reports are written (default: stderr). Each report is
    /// written whole, then the writer is flushed.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use zsync::{Builder, Model};
    ///
    /// /// Collects what the runtime reports.
    /// #[derive(Clone, Default)]
    /// struct Collect(Arc<Mutex<Vec<u8>>>);
    /// impl std::io::Write for Collect {
    ///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
    ///         self.0.lock().unwrap().extend_from_slice(b);
    ///         Ok(b.len())
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// }
    ///
    /// let log = Collect::default();
    /// Builder::new(Model::Green).diagnostics(log.clone()).run(|io| {
    ///     io.sleep(std::time::Duration::from_millis(1)).unwrap(); // parks the task: no warning
    /// });
    /// assert!(log.0.lock().unwrap().is_empty());
    /// ```
    pub fn diagnostics(self, out: impl std::io::Write + Send + 'static) -> Builder {
        self.diagnostics_to(crate::stall::Diagnostics::to(Box::new(out)))
    }

    /// [`diagnostics`](Builder::diagnostics) with the writer already wrapped.
    pub(crate) fn diagnostics_to(mut self, out: crate::stall::Diagnostics) -> Builder {
        self.green.stall.out = out.clone();
        self.threaded.stall.out = out;
        self
    }

    /// Runs `f` as the root task on the calling thread and returns its value.
    ///
    /// When `f` returns, tasks still running (detached ones) are canceled and waited for, every
    /// thread the model started has exited, and then a panic of `f` or of a detached task is
    /// re-raised here.
    ///
    /// Panics if the runtime cannot start (Green: io_uring forced but refused, no descriptors
    /// or threads for the workers), or with "zsync: all tasks are asleep: deadlock" when the
    /// run deadlocked (see [`deadlock_detection`](Builder::deadlock_detection));
    /// [`try_run`](Builder::try_run) and [`build`](Builder::build) report those as errors.
    pub fn run<T>(self, f: impl FnOnce(&Io) -> T) -> T {
        self.try_run(f).unwrap_or_else(|e| panic!("zsync: {e}"))
    }

    /// Creates a long-lived [`Runtime`](crate::Runtime) with these settings: the same runtime
    /// [`run`](Builder::run) would make, hosted on a thread of its own until the `Runtime` is
    /// shut down or dropped. `Err` if the model cannot start (nothing is left running then).
    ///
    /// ```
    /// use zsync::{Builder, Model};
    /// let rt = Builder::new(Model::Green).worker_threads(2).build()?;
    /// assert_eq!(rt.block_on(|io| io.spawn(|_| 6 * 7).join().unwrap()), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(self) -> std::io::Result<crate::Runtime> {
        crate::runtime::Runtime::start(self)
    }

    /// [`run`](Builder::run), with failures of the runtime reported as `Err` instead of a
    /// panic: a runtime that cannot start (then `f` has not run and no thread of the model is
    /// left), or a run that deadlocked (an error carrying [`Deadlock`](crate::Deadlock), see
    /// [`deadlock_detection`](Builder::deadlock_detection): every task was canceled and has
    /// finished, `f`'s value or panic is dropped). A panic of `f` or of a detached task is
    /// still re-raised.
    ///
    /// ```
    /// use zsync::{Builder, Model};
    /// let n = Builder::new(Model::Green).try_run(|io| io.spawn(|_| 6 * 7).join().unwrap())?;
    /// assert_eq!(n, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_run<T>(mut self, f: impl FnOnce(&Io) -> T) -> std::io::Result<T> {
        let dump_on_signal = self.dump_on_signal.take();
        let io = self.into_io()?;
        let watcher = dump_on_signal
            .map(|cfg| crate::diag::on_signal::Watcher::start(&io, cfg))
            .transpose()?;
        let result = match &io.inner.model {
            // Worker 0 runs the root as a fiber until every task has finished.
            ModelImpl::Green(green) => green.run_root(&io, f)?,
            ModelImpl::Threaded(pool) => {
                pool.start(&io);
                run_root_on_thread(&io, f)
            }
            ModelImpl::Blocking | ModelImpl::Custom(_) => run_root_on_thread(&io, f),
        };
        drop(watcher);
        io.inner.model.shutdown();
        // After the model: no task is left to wait on the driver; its thread is joined here.
        io.inner.state.driver.retire();
        let detached_panic = io
            .inner
            .state
            .panic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if io
            .inner
            .state
            .deadlocked
            .load(std::sync::atomic::Ordering::Acquire)
        {
            // The tasks were canceled to end the run: what they returned or how they panicked
            // (a canceled wait unwrapped) says nothing the deadlock report did not.
            for payload in [result.err(), detached_panic].into_iter().flatten() {
                crate::contain::drop_payload(payload);
            }
            return Err(crate::Deadlock.into());
        }
        Ok(match (result, detached_panic) {
            (Ok(v), None) => v,
            (Ok(_), Some(payload)) => panic::resume_unwind(payload),
            (Err(payload), detached) => {
                // Dropped before unwinding: a payload's `Drop` panicking during the unwind
                // would abort.
                if let Some(detached) = detached {
                    crate::contain::drop_payload(detached);
                }
                panic::resume_unwind(payload)
            }
        })
    }

    /// The model's state and the `Io` over it, before any thread is started.
    fn into_io(self) -> std::io::Result<Io> {
        // Worker threads that own a live-task shard (see `RunState`).
        let workers = match &self.model {
            Model::Threaded => self.threaded.workers.max(1),
            Model::Green => self.green.workers.max(1),
            Model::Blocking | Model::Custom(_) => 0,
        };
        let mut state = RunState::new(workers);
        if matches!(self.model, Model::Blocking) && self.green.stall.deadlock {
            // The deadlock setting is kept with Green's; Blocking reads it from there.
            state = state.with_single_thread_check(self.green.stall.out.clone());
        }
        let model = match self.model {
            Model::Blocking => ModelImpl::Blocking,
            Model::Threaded => ModelImpl::Threaded(threaded::Pool::new(self.threaded)),
            Model::Green => ModelImpl::Green(green::Green::new(self.green).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot create the Green runtime: {e}"))
            })?),
            Model::Custom(rt) => ModelImpl::Custom(rt),
        };
        #[cfg(feature = "profile")]
        state.profile.set_enabled(self.profile);
        Ok(Io {
            inner: Arc::new(IoInner {
                model,
                state: Arc::new(state),
                root: NodeRef::root(),
            }),
        })
    }

    /// Makes the runtime the scheduler of a simulated `world` (see [`crate::sim::Sim`], which
    /// sets everything else a simulation needs).
    pub(crate) fn simulation(mut self, world: std::sync::Arc<crate::sim::world::World>) -> Self {
        self.green.sim = Some(world);
        self
    }

    /// The model this builder makes.
    pub(crate) fn model(&self) -> &Model {
        &self.model
    }
}

/// Runs `f` as the root task on the calling thread, then cancels what is left and waits until
/// every task has finished (the thread models; Green's worker 0 does this in its loop).
fn run_root_on_thread<T>(io: &Io, f: impl FnOnce(&Io) -> T) -> std::thread::Result<T> {
    let ctx = TaskContext::new(io, &io.inner.root, crate::context::TaskRef::root());
    ctx.cancel.set_waker(crate::park::current_waker);
    let result = {
        let _entered = context::enter(&ctx);
        crate::contain::catch(|| f(io))
    };
    io.inner.root.cancel();
    io.inner.state.wait_all_done();
    result
}

/// Runs `f` on a fresh runtime of the given model and returns its value.
///
/// ```
/// use zsync::{Io, Model};
///
/// fn work(io: &Io) -> u32 {
///     let a = io.spawn(|_| 1);
///     let b = io.spawn(|_| 2);
///     a.join().unwrap() + b.join().unwrap()
/// }
/// for model in [Model::Blocking, Model::Threaded] {
///     assert_eq!(zsync::run(model, work), 3);
/// }
/// ```
pub fn run<T>(model: Model, f: impl FnOnce(&Io) -> T) -> T {
    Builder::new(model).run(f)
}

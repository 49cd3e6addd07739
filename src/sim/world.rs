//! The simulated world a [`Sim`](super::Sim) run happens in: its seed's PRNG, its clock's
//! origin, its event log, and the operation seam through which its tasks' I/O reaches it.
//!
//! The world is the simulation's [`CustomModel`]: every operation of its tasks comes here as
//! an [`Operation`], as a custom model's would. Time is simulated (`now`, the wall clock,
//! sleeps); everything else is real I/O, whose outcome and timing the seed cannot decide, and
//! is refused with an error that says so.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::log::{Event, EventKind, EventLog};
use crate::error::ConcurrencyUnavailable;
use crate::model::operation::{Completion, Operation};
use crate::model::CustomModel;
use crate::task::Runnable;

/// What the wall clock reads when a simulation starts: 2026-01-01T00:00:00Z, the same in
/// every run.
const WALL_CLOCK_ORIGIN: Duration = Duration::from_secs(1_767_225_600);

/// One simulated run's world. Only its scheduler's thread uses it; the lock is there because a
/// model must be `Sync`, and it is never contended.
pub(crate) struct World {
    seed: u64,
    /// Simulated time zero: a real reading taken when the world was made, so that simulated
    /// `Instant`s are ordinary ones (compared and subtracted as usual).
    origin: Instant,
    state: Mutex<State>,
}

struct State {
    rng: fastrand::Rng,
    log: EventLog,
    /// Simulated time when the run ended.
    end: Option<Instant>,
}

impl World {
    pub(crate) fn new(seed: u64) -> World {
        World {
            seed,
            origin: Instant::now(),
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                log: EventLog::default(),
                end: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Never poisoned: nothing user-supplied runs while the lock is held.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the calling thread's clock to simulated time zero until the guard is dropped,
    /// which records the simulated time the run ended at.
    pub(crate) fn start_clock(&self) -> ClockGuard<'_> {
        let previous = crate::clock::set_virtual(Some(self.origin));
        crate::park::forget_clock();
        ClockGuard {
            world: self,
            previous,
        }
    }

    /// A choice among `n` (at least 1) runnable things: the seed's next pick.
    pub(crate) fn pick(&self, n: usize) -> usize {
        debug_assert!(n > 0);
        if n == 1 {
            // No draw: a step with one choice leaves the sequence for the next real choice, so
            // that runs with the same choices stay in step.
            return 0;
        }
        self.state().rng.usize(..n)
    }

    /// Appends `kind` to the log, at the current simulated time.
    pub(crate) fn record(&self, kind: EventKind) {
        let at = crate::clock::now().saturating_duration_since(self.origin);
        self.state().log.push(Event { at, kind });
    }

    /// The log so far, taken out of the world.
    pub(crate) fn take_log(&self) -> EventLog {
        std::mem::take(&mut self.state().log)
    }

    /// Simulated time from the start to the end of the run (to now while it runs).
    pub(crate) fn elapsed(&self) -> Duration {
        let end = self.state().end.unwrap_or_else(crate::clock::now);
        end.saturating_duration_since(self.origin)
    }

    /// The error of an operation the simulation cannot run: it would reach the real world.
    pub(crate) fn refuse(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{what} in a simulation (seed {}): real I/O would make the run depend on the \
                 outside world, so the simulation refuses it; simulated time (`io.sleep`, \
                 timeouts, `io.now`), tasks, channels and locks are what a simulated run can use",
                self.seed
            ),
        )
    }
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// `Err(Unsupported)` naming `what` when `io` runs a simulation: for the calls that make a
/// real socket before any operation reaches the model (binds).
pub(crate) fn refuse_in_sim(io: &crate::Io, what: &str) -> io::Result<()> {
    match io.inner.model.sim() {
        Some(world) => Err(world.refuse(what)),
        None => Ok(()),
    }
}

/// Puts the thread's clock back to what it was when dropped; see [`World::start_clock`].
pub(crate) struct ClockGuard<'a> {
    world: &'a World,
    previous: Option<Instant>,
}

impl Drop for ClockGuard<'_> {
    fn drop(&mut self) {
        self.world.state().end = Some(crate::clock::now());
        crate::clock::set_virtual(self.previous);
        crate::park::forget_clock();
    }
}

/// The world as the model its tasks' operations reach. Its scheduling methods are never
/// called: a simulation's tasks are scheduled by its Green worker (see `worker/sim_loop.rs`).
impl CustomModel for World {
    fn name(&self) -> &'static str {
        "Simulation"
    }

    fn spawn(&self, task: Runnable) {
        task.run();
    }

    fn concurrent(&self, _task: Runnable) -> Result<(), ConcurrencyUnavailable> {
        Err(ConcurrencyUnavailable::new("Simulation"))
    }

    fn operate(&self, op: Operation<'_, '_>) -> io::Result<Completion> {
        match op {
            // A park with a timer on the simulated clock: the scheduler moves the clock to it
            // when every task waits.
            Operation::Sleep { .. } => op.perform(),
            Operation::Now => Ok(Completion::Instant(crate::clock::now())),
            Operation::WallClock => Ok(Completion::SystemTime(
                SystemTime::UNIX_EPOCH + WALL_CLOCK_ORIGIN + self.elapsed(),
            )),
            other => Err(self.refuse(&format!("`{}`", other.name()))),
        }
    }
}

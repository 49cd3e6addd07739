//! The simulated world a [`Sim`](super::Sim) run happens in: its seed's PRNG, its clock's
//! origin, its event log, and the operation seam through which its tasks' I/O reaches it.
//!
//! The world is the simulation's [`CustomModel`]: every operation of its tasks comes here as
//! an [`Operation`], as a custom model's would. Time is simulated (`now`, the wall clock,
//! sleeps); files are simulated on an in-memory disk with seeded faults (see [`disk`]); what
//! is left is real I/O, whose outcome and timing the seed cannot decide, and is refused with an
//! error that says so.
//!
//! [`disk`]: super::disk

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::disk::{Disk, DiskFaults, OpenRequest};
use super::log::{Event, EventKind, EventLog};
use crate::error::ConcurrencyUnavailable;
use crate::model::operation::{Completion, Operation};
use crate::model::CustomModel;
use crate::task::Runnable;

/// Operations named in [`Operation::Other`] that act on a descriptor the program holds and on
/// nothing else: on a simulated file they run on its memory. (A descriptor can only be a
/// simulated file's in a simulation: real opens are refused.)
const DESCRIPTOR_OPS: &[&str] = &["fs::fstat", "fs::seek", "fs::ftruncate"];

/// The first `n` bytes of `bufs`, as slices borrowed from them.
fn first_bytes<'b>(bufs: &'b [std::io::IoSlice<'_>], n: usize) -> Vec<std::io::IoSlice<'b>> {
    let mut left = n;
    let mut out = Vec::new();
    for b in bufs {
        if left == 0 {
            break;
        }
        let take = left.min(b.len());
        out.push(std::io::IoSlice::new(&b[..take]));
        left -= take;
    }
    out
}

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
    faults: DiskFaults,
    state: Mutex<State>,
}

struct State {
    rng: fastrand::Rng,
    log: EventLog,
    disk: Disk,
    /// Simulated time when the run ended.
    end: Option<Instant>,
}

impl World {
    pub(crate) fn new(seed: u64, faults: DiskFaults) -> World {
        World {
            seed,
            origin: Instant::now(),
            faults,
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                log: EventLog::default(),
                disk: Disk::default(),
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

    /// `true` with probability `p`, drawn from the run's PRNG (no draw when `p` is 0).
    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.state().rng.f64() < p
    }

    /// The disk's latency: waits a simulated time drawn from its range. A cancellation point
    /// (the task's deadline applies).
    fn disk_latency(&self) -> io::Result<()> {
        let Some((min, max)) = self.faults.latency else {
            return Ok(());
        };
        let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
        let wait = min + Duration::from_nanos(self.state().rng.u64(0..=span));
        let until = crate::clock::now() + wait;
        while crate::clock::now() < until {
            crate::context::check()?;
            crate::park::park(crate::context::effective_deadline(Some(until)));
        }
        crate::context::check()
    }

    /// A simulated power loss: every file back to what was synced (see [`Disk::power_loss`]).
    pub(crate) fn power_loss(&self) -> io::Result<()> {
        let torn = self.faults.torn_writes;
        let mut state = self.state();
        let State { rng, disk, .. } = &mut *state;
        disk.power_loss(|tail| if torn { rng.u64(0..=tail) } else { 0 })
    }

    /// A write of `len` bytes at the file position of `fd` (or `offset`) on the simulated file
    /// at `path`: how many bytes the disk takes (fewer on a short write or a full disk), or
    /// `ENOSPC` when it takes none.
    fn writable(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        path: &std::path::Path,
        offset: Option<u64>,
        len: usize,
    ) -> io::Result<usize> {
        let mut n = len;
        if len > 1 && self.chance(self.faults.short_writes) {
            n = self.state().rng.usize(1..len);
        }
        if let Some(capacity) = self.faults.capacity {
            let state = self.state();
            let size = state.disk.size(path);
            let at = match offset {
                Some(at) => at,
                None => rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(0))?,
            };
            let growth = (at + n as u64).saturating_sub(size);
            let free = capacity.saturating_sub(state.disk.used());
            if growth > free {
                let fits = (size + free).saturating_sub(at);
                if fits == 0 {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                n = n.min(usize::try_from(fits).unwrap_or(usize::MAX));
            }
        }
        Ok(n)
    }

    /// The path of the simulated file open on `fd`, if it is one.
    fn sim_file(&self, fd: std::os::fd::BorrowedFd<'_>) -> Option<std::path::PathBuf> {
        self.state().disk.file_of(fd).map(|p| p.to_owned())
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
        // The simulated file a descriptor operation is on, looked up once.
        let file = match &op {
            Operation::Read { fd, .. }
            | Operation::ReadVectored { fd, .. }
            | Operation::Write { fd, .. }
            | Operation::WriteVectored { fd, .. }
            | Operation::Sync { fd, .. } => self.sim_file(*fd),
            _ => None,
        };
        match (op, file) {
            // A park with a timer on the simulated clock: the scheduler moves the clock to it
            // when every task waits.
            (op @ Operation::Sleep { .. }, _) => op.perform(),
            (Operation::Now, _) => Ok(Completion::Instant(crate::clock::now())),
            (Operation::WallClock, _) => Ok(Completion::SystemTime(
                SystemTime::UNIX_EPOCH + WALL_CLOCK_ORIGIN + self.elapsed(),
            )),
            // The simulated disk: the operations run on the files' memory (see `disk.rs`),
            // after the faults were drawn.
            (Operation::Open { path, options }, _) => {
                crate::context::check()?;
                self.disk_latency()?;
                let (flags, _mode) = options.open_flags()?;
                let fd = self.state().disk.open(path, OpenRequest { flags })?;
                Ok(Completion::Fd(fd))
            }
            (op @ (Operation::Read { .. } | Operation::ReadVectored { .. }), Some(_)) => {
                self.disk_latency()?;
                op.perform()
            }
            (
                Operation::Write {
                    fd,
                    buf,
                    offset,
                    deadline,
                },
                Some(path),
            ) => {
                self.disk_latency()?;
                let n = self.writable(fd, &path, offset, buf.len())?;
                Operation::Write {
                    fd,
                    buf: &buf[..n],
                    offset,
                    deadline,
                }
                .perform()
            }
            (
                Operation::WriteVectored {
                    fd,
                    bufs,
                    offset,
                    deadline,
                },
                Some(path),
            ) => {
                self.disk_latency()?;
                let len = bufs.iter().map(|b| b.len()).sum();
                let n = self.writable(fd, &path, offset, len)?;
                let kept = first_bytes(bufs, n);
                Operation::WriteVectored {
                    fd,
                    bufs: &kept,
                    offset,
                    deadline,
                }
                .perform()
            }
            (Operation::Sync { .. }, Some(path)) => {
                crate::context::check()?;
                self.disk_latency()?;
                if self.chance(self.faults.failing_syncs) {
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
                self.state().disk.sync(&path)?;
                Ok(Completion::Done)
            }
            // Descriptor operations that only touch the descriptor's own file: on a simulated
            // file, its memory.
            (Operation::Other { name, run }, _) if DESCRIPTOR_OPS.contains(&name) => {
                run().map(|()| Completion::Done)
            }
            (other, _) => Err(self.refuse(&format!("`{}`", other.name()))),
        }
    }
}

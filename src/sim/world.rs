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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::disk::{Disk, DiskFaults, OpenRequest};
use super::host::{HostId, HostSpec};
use super::log::{Event, EventKind, EventLog};
use super::net::NetFaults;
pub(crate) use super::net::{Attempt, Network};
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

/// How long a connect waits for an answer (Linux: about two minutes of SYN retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(127);

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
    /// Each host's disk, by host index.
    disks: Vec<Disk>,
    net: Network,
    /// The declared hosts (index 1 on) and the task each runs in now.
    specs: Vec<HostSpec>,
    host_tasks: Vec<Option<crate::Task<()>>>,
    /// The host of each task not on the scenario's own (see `host.rs`).
    task_hosts: std::collections::HashMap<crate::task::TaskId, HostId>,
    /// The host the next spawned task goes on, instead of its spawner's (a host's boot).
    next_host: Option<HostId>,
    /// Simulated time when the run ended.
    end: Option<Instant>,
}

impl World {
    pub(crate) fn new(
        seed: u64,
        faults: DiskFaults,
        net: NetFaults,
        specs: Vec<HostSpec>,
    ) -> World {
        let names: Vec<String> = specs.iter().map(|h| h.name.clone()).collect();
        let hosts = specs.len() + 1;
        World {
            seed,
            origin: Instant::now(),
            faults,
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                log: EventLog::default(),
                disks: (0..hosts).map(|_| Disk::default()).collect(),
                net: Network::new(net, &names),
                specs,
                host_tasks: (0..hosts).map(|_| None).collect(),
                task_hosts: std::collections::HashMap::new(),
                next_host: None,
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
    pub(crate) fn start_clock(self: &Arc<World>) -> ClockGuard<'_> {
        let previous = crate::clock::set_virtual(Some(self.origin));
        crate::park::forget_clock();
        let previous_world = super::host::set_world(Some(self.clone()));
        ClockGuard {
            world: self,
            previous,
            previous_world,
        }
    }

    /// Notes that the running task spawns `child` (see `host.rs`).
    pub(crate) fn note_spawn(&self, child: crate::task::TaskId) {
        let parent = crate::context::with(|c| c.map(|c| c.task.id));
        let mut state = self.state();
        let host = match state.next_host.take() {
            Some(host) => host,
            None => parent
                .and_then(|p| state.task_hosts.get(&p).copied())
                .unwrap_or_default(),
        };
        if host != HostId::default() {
            state.task_hosts.insert(child, host);
        }
    }

    /// The host of the running task (the scenario's own outside any task).
    pub(crate) fn current_host(&self) -> HostId {
        let task = crate::context::with(|c| c.map(|c| c.task.id));
        task.and_then(|t| self.state().task_hosts.get(&t).copied())
            .unwrap_or_default()
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

    /// A simulated power loss on `host`: every file of its disk back to what was synced (see
    /// [`Disk::power_loss`]).
    pub(crate) fn power_loss(&self, host: u32) -> io::Result<()> {
        let torn = self.faults.torn_writes;
        let mut state = self.state();
        let State { rng, disks, .. } = &mut *state;
        disks[host as usize].power_loss(|tail| if torn { rng.u64(0..=tail) } else { 0 })
    }

    /// A write of `len` bytes at the file position of `fd` (or `offset`) on the simulated file
    /// at `path`: how many bytes the disk takes (fewer on a short write or a full disk), or
    /// `ENOSPC` when it takes none.
    fn writable(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        (host, path): &(usize, std::path::PathBuf),
        offset: Option<u64>,
        len: usize,
    ) -> io::Result<usize> {
        let mut n = len;
        if len > 1 && self.chance(self.faults.short_writes) {
            n = self.state().rng.usize(1..len);
        }
        if let Some(capacity) = self.faults.capacity {
            let state = self.state();
            let disk = &state.disks[*host];
            let size = disk.size(path);
            let at = match offset {
                Some(at) => at,
                None => rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(0))?,
            };
            let growth = (at + n as u64).saturating_sub(size);
            let free = capacity.saturating_sub(disk.used());
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

    /// The host whose disk holds the simulated file open on `fd`, and its path, if it is one.
    fn sim_file(&self, fd: std::os::fd::BorrowedFd<'_>) -> Option<(usize, std::path::PathBuf)> {
        let state = self.state();
        state
            .disks
            .iter()
            .enumerate()
            .find_map(|(host, disk)| Some((host, disk.file_of(fd)?.to_owned())))
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
    previous_world: Option<Arc<World>>,
}

impl Drop for ClockGuard<'_> {
    fn drop(&mut self) {
        self.world.state().end = Some(crate::clock::now());
        crate::clock::set_virtual(self.previous);
        crate::park::forget_clock();
        super::host::set_world(self.previous_world.take());
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
        let me = self.current_host();
        let harmless = matches!(
            op,
            Operation::Close { .. } | Operation::Now | Operation::WallClock
        );
        if !harmless && !self.state().net.is_current(me) {
            // A task of a host that crashed: its life is over. (A close still reaches the
            // world, and a clock read is answered: neither is an action on the world, and a
            // clock read cannot fail.)
            return Err(crate::error::canceled());
        }
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
                let host = me.index as usize;
                let fd = self.state().disks[host].open(path, OpenRequest { flags })?;
                Ok(Completion::Fd(fd))
            }
            // Paths of the simulated disk (a flat namespace: directories are implicit, so
            // creating one succeeds and a path's parent need not exist).
            (Operation::Stat { path, .. }, _) => {
                crate::context::check()?;
                self.disk_latency()?;
                let host = me.index as usize;
                self.state().disks[host]
                    .stat(path)
                    .map(Completion::Metadata)
            }
            (Operation::Remove { path, dir }, _) => {
                crate::context::check()?;
                self.disk_latency()?;
                if dir {
                    return Ok(Completion::Done);
                }
                let host = me.index as usize;
                self.state().disks[host]
                    .remove(path)
                    .map(|()| Completion::Done)
            }
            (Operation::Rename { from, to }, _) => {
                crate::context::check()?;
                self.disk_latency()?;
                let host = me.index as usize;
                self.state().disks[host]
                    .rename(from, to)
                    .map(|()| Completion::Done)
            }
            (Operation::CreateDir { .. }, _) => {
                crate::context::check()?;
                Ok(Completion::Done)
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
            (Operation::Sync { .. }, Some((host, path))) => {
                crate::context::check()?;
                self.disk_latency()?;
                if self.chance(self.faults.failing_syncs) {
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
                self.state().disks[host].sync(&path)?;
                Ok(Completion::Done)
            }
            // Descriptor operations that only touch the descriptor's own file: on a simulated
            // file, its memory.
            (Operation::Other { name, run }, _) if DESCRIPTOR_OPS.contains(&name) => {
                run().map(|()| Completion::Done)
            }
            // Everything else on a descriptor is the simulated network's, if the descriptor is
            // a simulated socket; the rest is refused.
            (op, None) => self.network_op(me, op),
            (other, Some(_)) => {
                Err(self.refuse(&format!("`{}` on a simulated file", other.name())))
            }
        }
    }
}

/// A fresh placeholder socket for an accepted simulated connection, of `local`'s family.
pub(crate) fn placeholder_stream(local: std::net::SocketAddr) -> io::Result<std::os::fd::OwnedFd> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(local),
        socket2::Type::STREAM.nonblocking(),
        Some(socket2::Protocol::TCP),
    )?;
    Ok(socket.into())
}

/// The bytes of `bufs`, gathered.
fn gather(bufs: &[io::IoSlice<'_>]) -> Vec<u8> {
    bufs.iter().flat_map(|b| b.iter().copied()).collect()
}

/// Spreads `data` over `bufs`.
fn scatter(data: &[u8], bufs: &mut [io::IoSliceMut<'_>]) {
    let mut at = 0;
    for b in bufs {
        let n = b.len().min(data.len() - at);
        b[..n].copy_from_slice(&data[at..at + n]);
        at += n;
    }
}

impl World {
    /// Runs `attempt` on the network until it is done, waiting on the simulated clock (and
    /// for wake-ups) in between. A cancellation point; `TimedOut` at `deadline` or the task's.
    fn wait<T>(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Network, &mut fastrand::Rng, Instant) -> Attempt<T>,
    ) -> io::Result<T> {
        let waker = crate::park::current_waker();
        loop {
            let deadline = crate::context::check_until(deadline)?;
            let outcome = self.with_net(|net, rng| {
                net.waker = Some(waker.clone());
                let outcome = attempt(net, rng, crate::clock::now());
                net.waker = None;
                outcome
            });
            match outcome {
                Attempt::Done(r) => return r,
                Attempt::Wait(until) => {
                    crate::park::park(crate::context::earlier(deadline, until));
                }
            }
        }
    }

    /// Runs `f` on the network, then wakes the tasks it made runnable (after the lock is
    /// released: a waker is not run under it).
    fn with_net<R>(&self, f: impl FnOnce(&mut Network, &mut fastrand::Rng) -> R) -> R {
        let (r, wake) = {
            let mut state = self.state();
            let State { net, rng, .. } = &mut *state;
            let r = f(net, rng);
            (r, std::mem::take(&mut net.to_wake))
        };
        for w in wake {
            w.wake();
        }
        r
    }

    /// One try of `attempt` for a poll: ready with its outcome, or pending with `cx`'s waker
    /// registered on what it waits for, and woken by a timer of `io`'s async driver at the
    /// simulated time it waits until.
    pub(crate) fn poll<T>(
        &self,
        io: &crate::Io,
        cx: &mut std::task::Context<'_>,
        attempt: impl FnOnce(&mut Network, &mut fastrand::Rng, Instant) -> Attempt<T>,
    ) -> std::task::Poll<io::Result<T>> {
        let outcome = self.with_net(|net, rng| {
            net.waker = Some(cx.waker().clone());
            let outcome = attempt(net, rng, crate::clock::now());
            net.waker = None;
            outcome
        });
        match outcome {
            Attempt::Done(r) => std::task::Poll::Ready(r),
            Attempt::Wait(until) => {
                if let Some(at) = until {
                    match io.driver() {
                        // One-shot: it fires at `at` (or the run ends first).
                        Ok(driver) => drop(driver.arm_timer(None, at, cx.waker().clone())),
                        Err(e) => return std::task::Poll::Ready(Err(e)),
                    }
                }
                std::task::Poll::Pending
            }
        }
    }

    /// One try of `attempt` that does not wait: `WouldBlock` where it would.
    pub(crate) fn try_now<T>(
        &self,
        attempt: impl FnOnce(&mut Network, &mut fastrand::Rng, Instant) -> Attempt<T>,
    ) -> io::Result<T> {
        match self.with_net(|net, rng| attempt(net, rng, crate::clock::now())) {
            Attempt::Done(r) => r,
            Attempt::Wait(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Waits until simulated time `at`. A cancellation point.
    fn pause_until(&self, at: Instant, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            let deadline = crate::context::check_until(deadline)?;
            if crate::clock::now() >= at {
                return Ok(());
            }
            crate::park::park(crate::context::earlier(deadline, Some(at)));
        }
    }

    /// An operation that is not on a simulated file: the simulated network's, or refused.
    fn network_op(&self, me: HostId, op: Operation<'_, '_>) -> io::Result<Completion> {
        let count = Completion::Count;
        if let Some(fd) = op_fd(&op) {
            if !self.state().net.knows(fd)
                && !matches!(op, Operation::Bind { .. } | Operation::Connect { .. })
            {
                if matches!(op, Operation::Close { .. }) {
                    return Ok(Completion::Done);
                }
                return Err(self.refuse(&format!(
                    "`{}` on a descriptor the simulation did not make",
                    op.name()
                )));
            }
        }
        match op {
            Operation::Bind { fd, addr, backlog } => self
                .with_net(|net, _| net.bind(me, fd, addr, backlog.is_some()))
                .map(|()| Completion::Done),
            Operation::Connect { fd, addr, deadline } => {
                // A SYN nobody answers (a host down, a partition) is retried until the
                // kernel's connect timeout.
                let syn = crate::clock::now() + CONNECT_TIMEOUT;
                let attempt = self.wait(
                    crate::context::earlier(deadline, Some(syn)),
                    |net, rng, now| net.connect(now, rng, me, fd, addr),
                );
                let (at, outcome) = match attempt {
                    Err(e)
                        if crate::is_timed_out(&e)
                            && crate::clock::now() >= syn
                            && crate::context::effective_deadline(deadline)
                                .is_none_or(|d| d > syn) =>
                    {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("connecting to {addr} timed out: no answer in the simulation"),
                        ))
                    }
                    other => other?,
                };
                self.pause_until(at, deadline)?;
                outcome.map(|()| Completion::Done)
            }
            Operation::Accept { fd, deadline } => self
                .wait(deadline, |net, _, now| {
                    net.accept(now, fd, placeholder_stream)
                })
                .map(Completion::Fd),
            Operation::Recv {
                fd,
                buf,
                peek,
                deadline,
            } => self
                .wait(deadline, |net, _, now| net.recv(now, fd, buf, peek))
                .map(count),
            Operation::Read {
                fd,
                buf,
                offset: None,
                deadline,
            } => self
                .wait(deadline, |net, _, now| net.recv(now, fd, buf, false))
                .map(count),
            Operation::RecvVectored { fd, bufs, deadline }
            | Operation::ReadVectored {
                fd,
                bufs,
                offset: None,
                deadline,
            } => {
                let mut tmp = vec![0; bufs.iter().map(|b| b.len()).sum()];
                let n = self.wait(deadline, |net, _, now| net.recv(now, fd, &mut tmp, false))?;
                scatter(&tmp[..n], bufs);
                Ok(count(n))
            }
            Operation::Send { fd, buf, deadline }
            | Operation::Write {
                fd,
                buf,
                offset: None,
                deadline,
            } => self
                .wait(deadline, |net, rng, now| net.send(now, rng, fd, buf))
                .map(count),
            Operation::SendVectored { fd, bufs, deadline }
            | Operation::WriteVectored {
                fd,
                bufs,
                offset: None,
                deadline,
            } => {
                let data = gather(bufs);
                self.wait(deadline, |net, rng, now| net.send(now, rng, fd, &data))
                    .map(count)
            }
            Operation::RecvFrom {
                fd,
                buf,
                peek,
                deadline,
            } => self
                .wait(deadline, |net, _, now| net.recv_from(now, fd, buf, peek))
                .map(|(n, from)| Completion::Datagram(n, from)),
            Operation::SendTo { fd, buf, addr, .. } => {
                crate::context::check()?;
                self.with_net(|net, rng| net.send_to(crate::clock::now(), rng, fd, buf, addr))
                    .map(count)
            }
            Operation::Address { fd, peer } => self
                .with_net(|net, _| net.address(fd, peer))
                .map(Completion::Address),
            Operation::Shutdown { fd, how } => self
                .with_net(|net, rng| net.shutdown(crate::clock::now(), rng, fd, how))
                .map(|()| Completion::Done),
            Operation::Duplicate { fd } => {
                let new = fd.try_clone_to_owned()?;
                self.with_net(|net, _| net.duplicate(fd, std::os::fd::AsFd::as_fd(&new)))?;
                Ok(Completion::Fd(new))
            }
            Operation::Close { fd } => {
                self.with_net(|net, rng| net.close(crate::clock::now(), rng, fd));
                Ok(Completion::Done)
            }
            Operation::Resolve { name } => {
                crate::context::check()?;
                self.state().net.resolve(name).map(Completion::Addresses)
            }
            other => Err(self.refuse(&format!("`{}`", other.name()))),
        }
    }

    /// Starts the declared hosts, each in a task of its own on its host, from the scenario's
    /// root task; whether there were any.
    pub(crate) fn start_hosts(&self, io: &crate::Io) -> bool {
        let count = self.state().specs.len();
        for index in 1..=count as u32 {
            let host = HostId { index, epoch: 0 };
            self.boot(io, host);
        }
        count > 0
    }

    /// Runs host `host`'s closure in a new task of that host.
    fn boot(&self, io: &crate::Io, host: HostId) {
        let spec = self.state().specs[host.index as usize - 1].clone();
        let name = spec.name.clone();
        // The task spawned next (this one) goes on `host`.
        self.state().next_host = Some(host);
        let task = io
            .task()
            .name(format!("host {name}"))
            .spawn(move |io: &crate::Io| {
                // The host's own end: a crash shows up as canceled operations.
                let _ = (spec.main)(io);
            });
        // The old handle (if any) is dropped after the lock is released.
        let old = self.state().host_tasks[host.index as usize].replace(task);
        drop(old);
    }

    /// Ends every host's task (at the end of the scenario): canceled, and waited for.
    pub(crate) fn stop_hosts(&self) {
        let tasks: Vec<_> = self
            .state()
            .host_tasks
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for t in &tasks {
            t.request_cancel();
        }
        drop(tasks);
    }

    /// Host `name` crashes: its tasks are canceled, its sockets reset, its disk loses what was
    /// not synced.
    pub(crate) fn crash(&self, name: &str) -> io::Result<()> {
        let index = self.state().net.host_named(name)?;
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the scenario's own host cannot crash: crash a host declared with `Sim::host`",
            ));
        }
        self.record(EventKind::Crash { host: index });
        self.with_net(|net, rng| net.crash(crate::clock::now(), rng, index));
        self.power_loss(index)?;
        let task = self.state().host_tasks[index as usize].take();
        if let Some(task) = task {
            task.request_cancel();
            task.detach();
        }
        Ok(())
    }

    /// Host `name` restarts (after a crash): its closure runs again, on an empty network state
    /// and what its disk kept.
    pub(crate) fn restart(&self, io: &crate::Io, name: &str) -> io::Result<()> {
        let index = self.state().net.host_named(name)?;
        if self.state().net.hosts[index as usize].up {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("simulated host {name:?} is up: crash it first"),
            ));
        }
        self.record(EventKind::Restart { host: index });
        let host = self.with_net(|net, rng| net.restart(crate::clock::now(), rng, index));
        self.boot(io, host);
        Ok(())
    }

    /// Hosts `a` and `b` stop reaching each other.
    pub(crate) fn partition(&self, a: &str, b: &str) -> io::Result<()> {
        let (a, b) = {
            let state = self.state();
            (state.net.host_named(a)?, state.net.host_named(b)?)
        };
        self.record(EventKind::Partition { a, b });
        self.with_net(|net, _| net.partition(a, b));
        Ok(())
    }

    /// Every partition heals.
    pub(crate) fn heal(&self) {
        self.record(EventKind::Heal);
        self.with_net(|net, rng| net.heal(crate::clock::now(), rng));
    }

    /// Whether `fd` is a simulated socket.
    pub(crate) fn is_simulated_socket(&self, fd: std::os::fd::BorrowedFd<'_>) -> bool {
        self.state().net.knows(fd)
    }

    /// The names of the declared hosts.
    pub(crate) fn host_names(&self) -> Vec<String> {
        self.state().specs.iter().map(|s| s.name.clone()).collect()
    }

    /// The network's seeded faults.
    pub(crate) fn net_faults(&self) -> NetFaults {
        self.state().net.faults.clone()
    }

    /// A draw from the run's PRNG.
    pub(crate) fn draw(&self, range: std::ops::Range<u64>) -> u64 {
        self.state().rng.u64(range)
    }

    /// Whether host `name` is up.
    pub(crate) fn is_up(&self, name: &str) -> bool {
        let state = self.state();
        state
            .net
            .host_named(name)
            .is_ok_and(|i| state.net.hosts[i as usize].up)
    }
}

/// The descriptor an operation is on, if it is on one.
fn op_fd<'a>(op: &Operation<'a, '_>) -> Option<std::os::fd::BorrowedFd<'a>> {
    match op {
        Operation::Read { fd, .. }
        | Operation::ReadVectored { fd, .. }
        | Operation::Write { fd, .. }
        | Operation::WriteVectored { fd, .. }
        | Operation::Sync { fd, .. }
        | Operation::Accept { fd, .. }
        | Operation::Connect { fd, .. }
        | Operation::Recv { fd, .. }
        | Operation::Send { fd, .. }
        | Operation::RecvVectored { fd, .. }
        | Operation::SendVectored { fd, .. }
        | Operation::RecvFrom { fd, .. }
        | Operation::SendTo { fd, .. }
        | Operation::Bind { fd, .. }
        | Operation::Address { fd, .. }
        | Operation::Shutdown { fd, .. }
        | Operation::Duplicate { fd }
        | Operation::Close { fd } => Some(*fd),
        _ => None,
    }
}

impl World {
    /// Drops the hosts' task handles left after a run (one that ended by a panic), outside it.
    pub(crate) fn forget_hosts(&self) {
        let tasks: Vec<_> = self
            .state()
            .host_tasks
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        drop(tasks);
    }
}

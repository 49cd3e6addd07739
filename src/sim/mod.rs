//! Deterministic simulation: the same colorblind code, run on one thread in an order a seed
//! picks, under a virtual clock.
//!
//! Code written against [`Io`] does not know which model runs it, so it can run on one that
//! decides everything itself. [`Sim::new(seed)`](Sim::new) is that model: its tasks are
//! fibers (and future tasks) on a single OS thread; at every step the seed's PRNG picks which
//! runnable task goes next; `io.now()`, sleeps, timeouts and deadlines read a simulated clock
//! that jumps to the next timer whenever every task waits, so a scenario that sleeps for an
//! hour finishes in microseconds. The same seed gives the same interleaving, the same results
//! and the same [`EventLog`]; a failing seed, run again, fails the same way.
//!
//! The world is simulated too: files live on an in-memory disk per host ([`DiskFaults`]),
//! and TCP and UDP sockets on a simulated network between named hosts ([`Sim::host`],
//! [`NetFaults`]), which the test or the seed partitions and crashes ([`partition`],
//! [`crash`]). What a simulation cannot decide, it refuses with a clear error rather than let
//! the run depend on the outside world: the rest of real I/O (Unix sockets, pipes, processes,
//! path operations) and [`Io::blocking`] fail with
//! [`ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported) naming the operation and the
//! seed. `std::time::Instant::now()` called directly by the
//! code under test is real time: read the clock through `io.now()`.
//!
//! [`Sim::run_seeds`] runs a scenario under many seeds (on all cores) and reports the first
//! one that fails, with its event log.
//!
//! ```
//! use std::time::Duration;
//! use zsync::sim::Sim;
//!
//! let run = Sim::new(42).run(|io| {
//!     let start = io.now();
//!     let ticker = io.spawn(|io| {
//!         for _ in 0..60 {
//!             io.sleep(Duration::from_secs(60)).unwrap();
//!         }
//!     });
//!     ticker.join().unwrap();
//!     io.now() - start
//! });
//! // An hour of simulated time, in no time at all.
//! assert_eq!(run.value, Duration::from_secs(3600));
//! assert_eq!(run.elapsed, Duration::from_secs(3600));
//! ```
//!
//! How the simulation plugs into the model seam: see "Deterministic simulation" in
//! docs/ARCHITECTURE.md.

mod chaos;
mod disk;
pub(crate) mod host;
pub(crate) mod log;
mod net;
mod seeds;
mod shrink;
pub(crate) mod world;

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

pub use disk::DiskFaults;
pub use log::{Event, EventKind, EventLog};
pub use net::NetFaults;
pub use seeds::SeedsReport;
pub use shrink::Shrunk;

use crate::{Backend, Builder, Io, Model};
use world::World;

/// A deterministic simulated run, set up by its seed.
///
/// ```
/// use zsync::sim::Sim;
/// let run = Sim::new(1).run(|io| io.model());
/// assert_eq!(run.value, zsync::ModelKind::Simulation);
/// ```
#[derive(Clone)]
pub struct Sim {
    seed: u64,
    stack_size: Option<usize>,
    disk: DiskFaults,
    /// The network between hosts.
    net: NetFaults,
    /// The hosts declared with [`Sim::host`].
    hosts: Vec<host::HostSpec>,
    /// Where deadlock reports and stall warnings go (`None`: stderr).
    diagnostics: Option<crate::stall::Diagnostics>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("stack_size", &self.stack_size)
            .field("disk", &self.disk)
            .field("net", &self.net)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// What a successful simulated run returned, and how it got there.
#[derive(Debug)]
#[non_exhaustive]
pub struct SimRun<T> {
    /// The scenario's return value.
    pub value: T,
    /// Every scheduling decision and clock jump, in order.
    pub log: EventLog,
    /// Simulated time from the start to the end of the run.
    pub elapsed: Duration,
}

/// A simulated run that failed: a panic (an assertion of the scenario) or a deadlock, with the
/// seed that reproduces it and the log of the run.
#[derive(Debug)]
#[non_exhaustive]
pub struct SimFailure {
    /// The seed: `Sim::new(seed)` runs the same scenario the same way again.
    pub seed: u64,
    /// What went wrong: the panic's message, or the deadlock.
    pub error: String,
    /// Every scheduling decision and clock jump up to the failure.
    pub log: EventLog,
    /// Simulated time from the start to the failure.
    pub elapsed: Duration,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation failed with seed {} after {:?} of simulated time: {}",
            self.seed, self.elapsed, self.error
        )?;
        writeln!(
            f,
            "reproduce with zsync::sim::Sim::new({}); the run's last events:",
            self.seed
        )?;
        f.write_str(&self.log.tail(20))
    }
}

impl std::error::Error for SimFailure {}

/// Seed 0, no disk faults.
impl Default for Sim {
    fn default() -> Sim {
        Sim::new(0)
    }
}

impl Sim {
    /// A simulation whose every choice follows `seed`.
    pub fn new(seed: u64) -> Sim {
        Sim {
            seed,
            stack_size: None,
            disk: DiskFaults::default(),
            net: NetFaults::default(),
            hosts: Vec::new(),
            diagnostics: None,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The faults of the simulated disk (none by default): failing syncs, short writes, a
    /// capacity, latency, torn writes on a [`power_loss`].
    pub fn disk(mut self, faults: DiskFaults) -> Sim {
        self.disk = faults;
        self
    }

    /// Where the run's deadlock report and stall warnings go (default: stderr), as
    /// [`Builder::diagnostics`](crate::Builder::diagnostics). `run_seeds` shares the writer
    /// between its runs.
    pub fn diagnostics(mut self, out: impl std::io::Write + Send + 'static) -> Sim {
        self.diagnostics = Some(crate::stall::Diagnostics::to(Box::new(out)));
        self
    }

    /// Declares a host named `name`, with its own address (`10.0.0.2` for the first declared,
    /// then `10.0.0.3`, ...; the scenario's own host, `"main"`, is `10.0.0.1`) and its own
    /// disk, which runs `main` in a task of its own when the run starts, and again at each
    /// [`restart`]. Other hosts reach it by name (`"name:port"`) or address; its tasks, and
    /// every task they spawn, are on this host (`127.0.0.1` is the host itself).
    ///
    /// The scenario starts 1 ms of simulated time after the hosts, so that servers that
    /// listen at once are up when it connects (after a [`restart`], a client has to retry, as
    /// a real one would).
    ///
    /// `main`'s error, if it returns one, ends the host's life but not the run (a server that
    /// stopped is part of what a test observes). The run ends when the scenario does; the hosts
    /// are canceled then.
    pub fn host(
        mut self,
        name: &str,
        main: impl Fn(&Io) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Sim {
        assert!(
            name != host::MAIN_HOST && !self.hosts.iter().any(|h| h.name == name),
            "zsync::sim: a host named {name:?} exists already"
        );
        self.hosts.push(host::HostSpec {
            name: name.to_owned(),
            main: Arc::new(main),
        });
        self
    }

    /// The simulated network's latency, bandwidth and faults between hosts (see
    /// [`NetFaults`]).
    pub fn network(mut self, faults: NetFaults) -> Sim {
        self.net = faults;
        self
    }

    /// The usable size of each task's fiber stack (as [`Builder::stack_size`]).
    pub fn stack_size(mut self, bytes: usize) -> Sim {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs `f` as the root task of a simulated run and returns what it returned, with the
    /// run's log. Like [`run`](crate::run), it returns once every task has finished.
    ///
    /// # Panics
    ///
    /// If the scenario panics (its panic resumes here), deadlocks, or the runtime cannot
    /// start; [`try_run`](Sim::try_run) returns those as a [`SimFailure`] with the log.
    pub fn run<T>(&self, f: impl FnOnce(&Io) -> T) -> SimRun<T> {
        let world = self.world();
        let outcome = self.builder(&world).try_run(|io| scenario(&world, io, f));
        world.forget_hosts();
        match outcome {
            Ok(value) => SimRun {
                value,
                log: world.take_log(),
                elapsed: world.elapsed(),
            },
            Err(e) => panic!("zsync::sim: seed {}: {e}", self.seed),
        }
    }

    /// Runs `f` as [`run`](Sim::run) does, returning a panic or a deadlock as a
    /// [`SimFailure`] with the seed and the log instead of unwinding.
    ///
    /// ```
    /// use zsync::sim::Sim;
    /// let failure = Sim::new(3).try_run(|io| {
    ///     let (tx, rx) = zsync::channel::bounded::<u32>(1);
    ///     let _keep = tx;
    ///     rx.recv().unwrap() // nobody sends: a deadlock
    /// }).unwrap_err();
    /// assert!(failure.error.contains("deadlock"), "{failure}");
    /// ```
    pub fn try_run<T>(&self, f: impl FnOnce(&Io) -> T) -> Result<SimRun<T>, SimFailure> {
        let world = self.world();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            self.builder(&world).try_run(|io| scenario(&world, io, f))
        }));
        world.forget_hosts();
        let error = match outcome {
            Ok(Ok(value)) => {
                return Ok(SimRun {
                    value,
                    log: world.take_log(),
                    elapsed: world.elapsed(),
                })
            }
            Ok(Err(e)) if e.get_ref().is_some_and(|e| e.is::<crate::Deadlock>()) => {
                "deadlock: every task waits and nothing can wake them".to_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(payload) => panic_message(&*payload),
        };
        Err(SimFailure {
            seed: self.seed,
            error,
            log: world.take_log(),
            elapsed: world.elapsed(),
        })
    }

    /// Runs `scenario` once per seed of `seeds`, each as this simulation with that seed (its
    /// disk faults and stack size; its own seed is not used), on as many threads as the
    /// machine has cores, and returns the failure of the lowest failing seed, or how many ran.
    ///
    /// ```
    /// use std::time::Duration;
    /// use zsync::sim::Sim;
    ///
    /// let report = Sim::default()
    ///     .run_seeds(0..50, |io| {
    ///         let a = io.spawn(|io| io.sleep(Duration::from_millis(5)));
    ///         let b = io.spawn(|io| io.sleep(Duration::from_millis(3)));
    ///         a.join().unwrap().unwrap();
    ///         b.join().unwrap().unwrap();
    ///     })
    ///     .unwrap();
    /// assert_eq!(report.seeds, 50);
    /// ```
    pub fn run_seeds(
        &self,
        seeds: std::ops::Range<u64>,
        scenario: impl Fn(&Io) + Sync,
    ) -> Result<SeedsReport, SimFailure> {
        seeds::run(self, seeds, &scenario)
    }

    /// This simulation with another seed.
    /// A world for one run of this simulation.
    fn world(&self) -> Arc<World> {
        Arc::new(World::new(
            self.seed,
            self.disk.clone(),
            self.net.clone(),
            self.hosts.clone(),
        ))
    }

    /// Shrinks the faults behind `failure` (a failure of `scenario` under this simulation):
    /// turns each kind of fault off in turn (seeded crashes and partitions, loss,
    /// duplication, reordering, jitter, bandwidth, and the disk's faults) and keeps every
    /// removal under which the scenario still fails, trying `failure`'s seed and then the
    /// seeds of `seeds`. The result names the faults the failure needs, and a failure under
    /// only those to debug. Greedy: no single remaining kind can be removed (within the seeds
    /// tried).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::time::Duration;
    /// use zsync::sim::{DiskFaults, Sim};
    ///
    /// // The bug: one `write` taken for the whole buffer (a short write loses the rest).
    /// let save = |io: &zsync::Io| {
    ///     let mut f = zsync::fs::File::create(io, "/data").unwrap();
    ///     let n = f.write(b"all of it").unwrap();
    ///     let _ = f.sync_all(); // may fail: not what is checked
    ///     assert_eq!(n, 9, "short write");
    /// };
    /// let faults = DiskFaults::default()
    ///     .short_writes(0.5)
    ///     .failing_syncs(0.5)
    ///     .latency(Duration::from_micros(10), Duration::from_millis(1));
    /// let sim = Sim::new(0).disk(faults);
    /// let failure = sim.run_seeds(0..20, save).unwrap_err();
    /// let shrunk = sim.shrink(failure, 0..20, save);
    /// // Short writes are what it needs; the rest was noise.
    /// assert_eq!(shrunk.removed, ["failing syncs", "disk latency"]);
    /// assert!(shrunk.failure.error.contains("short write"));
    /// ```
    pub fn shrink(
        &self,
        failure: SimFailure,
        seeds: std::ops::Range<u64>,
        scenario: impl Fn(&Io) + Sync,
    ) -> Shrunk {
        shrink::shrink(self, failure, seeds, &scenario)
    }

    /// This simulation (its hosts, network, disk and settings) with another seed: how a
    /// failure that [`run_seeds`](Sim::run_seeds) found is reproduced.
    pub fn with_seed(&self, seed: u64) -> Sim {
        Sim {
            seed,
            ..self.clone()
        }
    }

    /// The runtime of one run: a single Green worker driven by `world`.
    fn builder(&self, world: &Arc<World>) -> Builder {
        let mut b = Builder::new(Model::Green)
            .worker_threads(1)
            // No ring: the simulation never submits real I/O, and io_uring may be refused.
            .backend(Backend::Epoll)
            // The monitor names a task that holds the one thread in a call that is not zsync's
            // (it stalls the whole simulation); it takes no part in scheduling.
            .deadlock_detection(true);
        if let Some(bytes) = self.stack_size {
            b = b.stack_size(bytes);
        }
        if let Some(out) = &self.diagnostics {
            b = b.diagnostics_to(out.clone());
        }
        b.simulation(world.clone())
    }
}

/// A simulated power loss of the running simulation's disk: every file goes back to what was
/// last synced (with [`DiskFaults::torn_writes`], plus a random prefix of what was written
/// after). Descriptors stay usable and see the restored bytes. `Err(Unsupported)` outside a
/// simulation.
///
/// ```
/// use zsync::sim::{power_loss, Sim};
/// let run = Sim::new(5).run(|io| {
///     zsync::fs::write(io, "/db/kept", b"synced")?;
///     let f = zsync::fs::File::open(io, "/db/kept")?;
///     f.sync_all()?;
///     zsync::fs::write(io, "/db/lost", b"never synced")?;
///     power_loss(io)?;
///     Ok::<_, std::io::Error>((zsync::fs::read(io, "/db/kept")?, zsync::fs::read(io, "/db/lost")?))
/// });
/// let (kept, lost) = run.value.unwrap();
/// assert_eq!(kept, b"synced");
/// assert!(lost.is_empty());
/// ```
pub fn power_loss(io: &Io) -> std::io::Result<()> {
    let world = world_of(io, "power_loss")?;
    world.power_loss(world.current_host().index)
}

/// The world `io` runs in, or the error of calling `what` outside a simulation.
fn world_of<'a>(io: &'a Io, what: &str) -> std::io::Result<&'a World> {
    io.inner.model.sim().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("zsync::sim::{what} outside a simulation"),
        )
    })
}

/// Crashes the simulated host `name` (declared with [`Sim::host`]): its tasks are canceled
/// (each of their operations fails as canceled from now on), its connections are reset
/// (their peers read `ConnectionReset`), its ports are free, and its disk loses what was not
/// synced (torn, with [`DiskFaults::torn_writes`]). It stays down until [`restart`].
///
/// Errors: `NotFound` for an unknown host, `InvalidInput` for the scenario's own host,
/// `Unsupported` outside a simulation.
///
/// ```
/// use std::io::{Read, Write};
/// use zsync::net::{TcpListener, TcpStream};
/// use zsync::sim::{self, Sim};
///
/// let run = Sim::new(5)
///     .host("echo", |io| {
///         let listener = TcpListener::bind(io, "0.0.0.0:7")?;
///         loop {
///             let (mut s, _) = listener.accept()?;
///             io.spawn(move |_| std::io::copy(&mut s.try_clone()?, &mut s)).detach();
///         }
///     })
///     .run(|io| -> std::io::Result<()> {
///         let mut c = TcpStream::connect(io, "echo:7")?;
///         c.write_all(b"hi")?;
///         let mut buf = [0; 2];
///         c.read_exact(&mut buf)?;
///         assert_eq!(&buf, b"hi");
///         sim::crash(io, "echo")?;
///         // The connection is reset; nothing listens until the host restarts.
///         assert!(c.read(&mut buf).is_err());
///         assert!(TcpStream::connect(io, "echo:7").is_err());
///         sim::restart(io, "echo")?;
///         io.sleep(std::time::Duration::from_millis(1))?;
///         let mut c = TcpStream::connect(io, "echo:7")?;
///         c.write_all(b"back")?;
///         Ok(())
///     });
/// run.value.unwrap();
/// ```
pub fn crash(io: &Io, name: &str) -> std::io::Result<()> {
    world_of(io, "crash")?.crash(name)
}

/// Restarts the crashed host `name`: its closure runs again, in a new task, with the files its
/// disk kept. Errors: `InvalidInput` if it is up, `NotFound` for an unknown host.
pub fn restart(io: &Io, name: &str) -> std::io::Result<()> {
    world_of(io, "restart")?.restart(io, name)
}

/// Cuts hosts `a` and `b` off from each other (`"main"` is the scenario's own host) until
/// [`heal`]: TCP segments between them are held back (a connection stalls, then resumes),
/// datagrams are lost, connects wait.
pub fn partition(io: &Io, a: &str, b: &str) -> std::io::Result<()> {
    world_of(io, "partition")?.partition(a, b)
}

/// Heals every partition: what they held back arrives.
pub fn heal(io: &Io) -> std::io::Result<()> {
    world_of(io, "heal")?.heal();
    Ok(())
}

/// How long after the hosts the scenario starts.
const BOOT: Duration = Duration::from_millis(1);

/// The scenario as the root task runs it: the declared hosts and the seeded faults start
/// first, and end with it.
fn scenario<T>(world: &Arc<World>, io: &Io, f: impl FnOnce(&Io) -> T) -> T {
    /// Stops the hosts and the chaos when the scenario ends, even by a panic.
    struct Stop<'a>(&'a World, Option<crate::Task<()>>);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            if let Some(chaos) = self.1.take() {
                chaos.request_cancel();
                drop(chaos);
            }
            self.0.stop_hosts();
        }
    }
    let booting = world.start_hosts(io);
    let _stop = Stop(world, chaos::start(world, io));
    if booting {
        // The hosts boot first: they run until they wait (for a connection, say) before the
        // clock reaches this, as servers are up before their clients in a real deployment.
        let _ = io.sleep(BOOT);
    }
    f(io)
}

/// The message of a panic payload (`&str` or `String`), or a note that it had none.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked (with a payload that is not a string)".to_owned()
    }
}

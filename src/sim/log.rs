//! The event log of a simulated run: every scheduling decision and every jump of the clock,
//! in order, with the simulated time it happened at.
//!
//! Two runs of the same scenario with the same seed make the same log, event for event; a run
//! that went wrong is explained by its log, and reproduced by running its seed again.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::Location;
use std::time::Duration;

/// What the simulation's scheduler did at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// Started a task spawned at `site` on a fiber of its own.
    Start {
        /// Where the task was spawned.
        site: &'static Location<'static>,
    },
    /// Resumed the fiber in slot `fiber` (slots are reused once a fiber finishes).
    Resume {
        /// The fiber's slot.
        fiber: usize,
    },
    /// Polled the future task spawned at `site`.
    Poll {
        /// Where the future task was spawned.
        site: &'static Location<'static>,
    },
    /// Every task waited: the clock jumped forward to the next timer.
    Advance,
    /// Every task waited and no timer was armed: a deadlock, reported and ended by canceling
    /// every task.
    Deadlock,
    /// Every task waited on real I/O, which the simulation cannot order: the scheduler blocked
    /// for it (the run is not deterministic from here on).
    RealIo,
    /// Host `host` (by declaration order, from 1) crashed.
    Crash {
        /// The host's index.
        host: u32,
    },
    /// Host `host` restarted.
    Restart {
        /// The host's index.
        host: u32,
    },
    /// Hosts `a` and `b` were cut off from each other (0 is the scenario's own host).
    Partition {
        /// One host's index.
        a: u32,
        /// The other's.
        b: u32,
    },
    /// Every partition healed.
    Heal,
}

/// One step of a simulated run: what happened, at which simulated time (since the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// Simulated time since the run started.
    pub at: Duration,
    /// What the scheduler did.
    pub kind: EventKind,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.at.as_secs_f64() * 1e3;
        match self.kind {
            EventKind::Start { site } => write!(f, "{ms:>12.3} ms  start {site}"),
            EventKind::Resume { fiber } => write!(f, "{ms:>12.3} ms  resume fiber {fiber}"),
            EventKind::Poll { site } => write!(f, "{ms:>12.3} ms  poll future {site}"),
            EventKind::Advance => write!(f, "{ms:>12.3} ms  clock advanced"),
            EventKind::Deadlock => write!(f, "{ms:>12.3} ms  DEADLOCK: every task waits"),
            EventKind::RealIo => write!(f, "{ms:>12.3} ms  waited for real I/O"),
            EventKind::Crash { host } => write!(f, "{ms:>12.3} ms  CRASH of host {host}"),
            EventKind::Restart { host } => write!(f, "{ms:>12.3} ms  restart of host {host}"),
            EventKind::Partition { a, b } => {
                write!(f, "{ms:>12.3} ms  PARTITION between hosts {a} and {b}")
            }
            EventKind::Heal => write!(f, "{ms:>12.3} ms  partitions healed"),
        }
    }
}

/// The events of a simulated run, in order.
///
/// ```
/// use zsync::sim::Sim;
/// let run = Sim::new(7).run(|io| {
///     let a = io.spawn(|io| io.sleep(std::time::Duration::from_secs(1)));
///     a.join().unwrap().unwrap();
/// });
/// // The same seed, the same log.
/// assert_eq!(run.log.fingerprint(), Sim::new(7).run(|io| {
///     let a = io.spawn(|io| io.sleep(std::time::Duration::from_secs(1)));
///     a.join().unwrap().unwrap();
/// }).log.fingerprint());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLog {
    events: Vec<Event>,
}

impl EventLog {
    pub(crate) fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// How many events there are.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// A hash of the whole log: equal for two runs that made the same decisions at the same
    /// simulated times (within one build of the program).
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.events.hash(&mut h);
        h.finish()
    }

    /// The last `n` events, formatted one per line: what a failure report shows.
    pub fn tail(&self, n: usize) -> String {
        let skip = self.events.len().saturating_sub(n);
        let mut out = String::new();
        if skip > 0 {
            out.push_str(&format!("  ({skip} earlier events)\n"));
        }
        for e in &self.events[skip..] {
            out.push_str(&format!("  {e}\n"));
        }
        out
    }
}

impl fmt::Display for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.events {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

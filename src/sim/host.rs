//! Simulated hosts: the machines of a simulated world, each with its own address, disk and
//! tasks, which the test (or the seed) can crash and restart.
//!
//! A task's host is the host of the task that spawned it, as a process's threads share its
//! machine: the world notes it at every spawn ([`note_spawn`], called where a task's identity
//! is made) in a table by task id, and a host's closure runs in a task the world puts on the
//! host. A crash ends an incarnation: the id's `epoch` no longer matches the host's, so every
//! operation of the old tasks fails as canceled, and a restart runs the closure again on a new
//! epoch.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::world::World;
use crate::task::TaskId;
use crate::Io;

/// Which host, and which of its lives, a task belongs to. `Default` is the simulation's own
/// host (index 0, where the scenario runs), and the only host outside a simulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct HostId {
    pub(crate) index: u32,
    pub(crate) epoch: u32,
}

/// What a host runs at each start: the closure given to [`Sim::host`](super::Sim::host).
pub(crate) type HostMain = Arc<dyn Fn(&Io) -> io::Result<()> + Send + Sync>;

/// A host as declared on the [`Sim`](super::Sim).
#[derive(Clone)]
pub(crate) struct HostSpec {
    pub(crate) name: String,
    pub(crate) main: HostMain,
}

impl fmt::Debug for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The name of the scenario's own host (index 0).
pub(crate) const MAIN_HOST: &str = "main";

/// The address of host `index`: `10.0.0.1` for the scenario's host, then `10.0.0.2`, ... in
/// the order the hosts were declared.
pub(crate) fn address_of(index: u32) -> IpAddr {
    let n = index + 1;
    IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

/// The host whose address `ip` is, among `count` hosts.
pub(crate) fn index_of(ip: IpAddr, count: usize) -> Option<u32> {
    let IpAddr::V4(v4) = ip else { return None };
    let [a, b, c, d] = v4.octets();
    if a != 10 {
        return None;
    }
    let n = (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d);
    (n >= 1 && (n as usize) <= count).then(|| n - 1)
}

/// A host's life in a run: up or down, and its current epoch.
#[derive(Debug)]
pub(crate) struct HostState {
    pub(crate) name: String,
    pub(crate) epoch: u32,
    pub(crate) up: bool,
}

thread_local! {
    /// The world of the simulation running on this thread, if one is (set for the run by
    /// [`World::start_clock`]).
    static WORLD: RefCell<Option<Arc<World>>> = const { RefCell::new(None) };
}

/// Makes `world` this thread's simulation (or, with `None`, none); returns the previous one.
pub(crate) fn set_world(world: Option<Arc<World>>) -> Option<Arc<World>> {
    WORLD.with(|w| w.replace(world))
}

/// Notes that the running task spawns `child`, which runs on the same host: called where a
/// task's identity is made. Outside a simulation one thread-local read (the virtual clock's).
#[inline]
pub(crate) fn note_spawn(child: TaskId) {
    if !crate::clock::is_virtual() {
        return;
    }
    WORLD.with(|w| {
        // The borrow is held for a map insertion under the world's uncontended lock: no
        // user code runs and nothing blocks.
        if let Some(world) = &*w.borrow() {
            world.note_spawn(child);
        }
    });
}

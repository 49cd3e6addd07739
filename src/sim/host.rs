//! Simulated hosts: the machines of a simulated world, each with its own address, disk and
//! tasks, which the test (or the seed) can crash and restart.
//!
//! A host is known to its tasks through their [`Io`]: the handle a host's closure receives
//! carries the host's [`HostId`], and every task spawned through it (and every socket made
//! with it) inherits the id, as a process's threads share its machine. A crash ends an
//! incarnation: the id's `epoch` no longer matches the host's, so every operation of the old
//! tasks fails as canceled, and a restart runs the closure again on a new epoch.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

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

impl Io {
    /// This handle, for the tasks of `host`.
    pub(crate) fn on_host(&self, host: HostId) -> Io {
        Io {
            inner: self.inner.clone(),
            host,
        }
    }
}

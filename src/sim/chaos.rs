//! Seeded faults of the simulated network ([`NetFaults::partitions`] and
//! [`NetFaults::crashes`]): a task of the scenario's host that, at times the seed picks,
//! partitions two hosts or crashes one, and undoes it after a while.
//!
//! [`NetFaults::partitions`]: super::NetFaults::partitions
//! [`NetFaults::crashes`]: super::NetFaults::crashes

use std::sync::Arc;
use std::time::Duration;

use super::host::MAIN_HOST;
use super::world::World;
use crate::{Io, Task};

/// Starts the fault task if the network has seeded faults.
pub(super) fn start(world: &Arc<World>, io: &Io) -> Option<Task<()>> {
    let faults = world.net_faults();
    if faults.partitions.is_none() && faults.crashes.is_none() {
        return None;
    }
    let world = world.clone();
    Some(io.task().name("sim chaos").spawn(move |io: &Io| {
        // Ends at the scenario's end, canceled in a sleep.
        let _ = run(&world, io);
    }))
}

/// A duration drawn uniformly from `0..=max`.
fn up_to(world: &World, max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(world.draw(0..nanos.saturating_add(1)))
}

fn run(world: &World, io: &Io) -> std::io::Result<()> {
    let faults = world.net_faults();
    let names = world.host_names();
    let mut all = vec![MAIN_HOST.to_owned()];
    all.extend(names.iter().cloned());
    loop {
        let kinds = [faults.partitions, faults.crashes];
        let enabled: Vec<usize> = (0..2).filter(|&k| kinds[k].is_some()).collect();
        let kind = enabled[world.draw(0..enabled.len() as u64) as usize];
        let Some((every, lasting)) = kinds[kind] else {
            continue;
        };
        io.sleep(up_to(world, every * 2))?;
        match kind {
            0 if all.len() > 1 => {
                let a = world.draw(0..all.len() as u64) as usize;
                let mut b = world.draw(0..all.len() as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                world.partition(&all[a], &all[b])?;
                io.sleep(up_to(world, lasting))?;
                world.heal();
            }
            1 if !names.is_empty() => {
                let name = &names[world.draw(0..names.len() as u64) as usize];
                if world.is_up(name) {
                    world.crash(name)?;
                    io.sleep(up_to(world, lasting))?;
                    world.restart(io, name)?;
                }
            }
            _ => io.sleep(every)?,
        }
    }
}

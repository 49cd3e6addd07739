//! The simulation's scheduler: the loop a Green worker runs instead of its own when it is the
//! single worker of a [`Sim`](crate::sim::Sim).
//!
//! Everything a normal worker does by arrival order, time or other threads, this loop does by
//! the seed. Each step it gathers what could run next — the ready fibers, the unstarted tasks
//! (taken out of the deque and the injector into a list of its own), the ready future tasks —
//! and lets the simulation's PRNG pick one; it records the pick in the event log, runs it until
//! it suspends, and looks again. When nothing can run, it fires the timers due at the current
//! simulated time, or moves the clock to the next timer (an `Advance` in the log), or, with no
//! timer left either, declares a deadlock (reported and ended as on Green: every task is
//! canceled and the run fails with [`Deadlock`](crate::Deadlock)).
//!
//! No other thread takes part in scheduling: the simulation runs no worker threads and no
//! helper threads (`offload` runs inline, `io.blocking` is refused), and its operations never
//! reach the reactor. The monitor thread (sysmon) does run, only to name a task that holds the
//! simulation's one thread in a call that is not zsync's (a std lock, `std::thread::sleep`):
//! that stalls the whole simulation, and would otherwise be a silent hang (the simulation's operation seam refuses real I/O). The one exception is code
//! that waits on a descriptor without going through the operation layer: when only such waits
//! are left, the loop blocks in the reactor for them and logs `RealIo`, since from there the
//! run depends on the outside world.

use std::sync::atomic::Ordering;
use std::task::Waker;

use crossbeam_deque::Steal;

use super::WorkerLocal;
use crate::sim::log::EventKind;
use crate::sim::world::World;
use crate::task::Runnable;

/// Scheduling steps in a row without an idle moment after which the clock jumps to the next
/// timer anyway. Running tasks costs no simulated time, so tasks that never wait (a spin on an
/// atomic, a loop of `yield_now`) would otherwise hold the clock still for ever, and a task
/// that sleeps until they are done would never wake: this lets time pass as it does while
/// real tasks compute. Counted in steps, so it is as deterministic as the rest.
const BUSY_STEPS_PER_JUMP: u32 = 1024;

/// What the scheduler may pick from besides the ready fibers: tasks it took out of the queues.
#[derive(Default)]
struct Pending {
    /// Unstarted closure tasks.
    tasks: Vec<Runnable>,
    /// Future tasks waiting for a poll.
    futures: Vec<Runnable>,
}

impl WorkerLocal {
    /// Runs the simulation until `done` says the run is over and no fiber is left.
    pub(in crate::model::green) fn run_sim(&self, done: &dyn Fn() -> bool, world: &World) {
        crate::contain::abort_on_unwind("the simulation's scheduler", || {
            self.sim_loop(done, world)
        });
    }

    fn sim_loop(&self, done: &dyn Fn() -> bool, world: &World) {
        let remote = &self.shared.remotes[self.index];
        let mut pending = Pending::default();
        let mut due: Vec<Waker> = Vec::new();
        let mut busy_steps = 0u32;
        loop {
            if self.shared.dump.requested() != self.dump_served.get() {
                self.answer_dump(None);
            }
            // Progress, for the monitor: a fiber stuck in a call that is not zsync's stops it.
            self.turns.set(self.turns.get() + 1);
            remote.load.turns.store(self.turns.get(), Ordering::Release);
            self.gather(&mut pending);
            let fibers = self.ready.borrow().len();
            let choices = fibers + pending.tasks.len() + pending.futures.len();
            if choices > 0 && busy_steps >= BUSY_STEPS_PER_JUMP {
                busy_steps = 0;
                if self.jump_to_next_timer(world, &mut due) {
                    continue;
                }
            }
            if choices > 0 {
                busy_steps += 1;
                let pick = world.pick(choices);
                if pick < fibers {
                    let handle = self.ready.borrow_mut().remove(pick);
                    if let Some(handle) = handle {
                        world.record(EventKind::Resume { fiber: handle.key });
                        self.resume(handle);
                    }
                } else if pick < fibers + pending.tasks.len() {
                    let task = pending.tasks.swap_remove(pick - fibers);
                    world.record(EventKind::Start {
                        site: task.location(),
                    });
                    self.start_task(task);
                } else {
                    let task = pending
                        .futures
                        .swap_remove(pick - fibers - pending.tasks.len());
                    world.record(EventKind::Poll {
                        site: task.location(),
                    });
                    task.run();
                }
                continue;
            }
            // Nothing can run: the timers due now, the async driver's share, then the clock.
            busy_steps = 0;
            let now = crate::clock::now();
            self.fire_timers(&mut due);
            self.turn_driver(Some(now));
            if self.runnable(remote) {
                continue;
            }
            if !self.reactor.is_idle() {
                // Waits outside the simulation's seam: take what is ready without blocking.
                if let Err(e) = self.reactor.poll(Some(std::time::Duration::ZERO)) {
                    eprintln!("zsync: the simulation's reactor failed: {e}");
                }
                if self.runnable(remote) {
                    continue;
                }
            }
            if done() && self.live_fibers() == 0 {
                break;
            }
            if self.runnable(remote) {
                continue;
            }
            match self.next_deadline() {
                Some(_) => {
                    self.jump_to_next_timer(world, &mut due);
                }
                None if !self.reactor.is_idle() => {
                    world.record(EventKind::RealIo);
                    if let Err(e) = self.reactor.poll(None) {
                        eprintln!("zsync: the simulation's reactor failed: {e}");
                    }
                }
                None => {
                    world.record(EventKind::Deadlock);
                    match self.shared.deadlock_found() {
                        // `done` reports it and cancels every task.
                        super::checkdead::Found::First | super::checkdead::Found::Pending => {}
                        super::checkdead::Found::Again => {
                            super::checkdead::fatal(&self.shared.diagnostics, &[self.live_fibers()])
                        }
                    }
                }
            }
        }
    }

    /// The next deadline of the worker's timers or the async driver's.
    fn next_deadline(&self) -> Option<std::time::Instant> {
        let next = self.timers.borrow_mut().next_deadline();
        match (next, self.driver_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the clock to the next deadline (if it is ahead) and fires what is due; returns
    /// whether a timer was armed at all. Logged as an `Advance` when the jump woke a task (a
    /// far timer may take several jumps, one per block of the wheel, before it is due).
    fn jump_to_next_timer(&self, world: &World, due: &mut Vec<Waker>) -> bool {
        let Some(at) = self.next_deadline() else {
            return false;
        };
        if at > crate::clock::now() {
            crate::clock::set_virtual(Some(at));
        }
        let before = self.ready.borrow().len();
        self.fire_timers(due);
        self.turn_driver(Some(at));
        let remote = &self.shared.remotes[self.index];
        if self.ready.borrow().len() > before || self.runnable_besides_ready(remote) {
            world.record(EventKind::Advance);
        }
        true
    }

    /// Moves everything that could run into the ready queue and `pending`: wake-ups from the
    /// inbox, the unstarted tasks of the deque and the injector, the queued future tasks.
    fn gather(&self, pending: &mut Pending) {
        let remote = &self.shared.remotes[self.index];
        while let Steal::Success(wakeup) = remote.inbox.steal() {
            match wakeup {
                crate::model::green::Wakeup::Fiber(h) => self.ready.borrow_mut().push_back(h),
                crate::model::green::Wakeup::LocalFuture(t) => pending.futures.push(t),
            }
        }
        while let Some(task) = self.local.pop() {
            pending.tasks.push(task);
        }
        // A joiner's `unqueue` finds nothing on the deque now: it runs its task inline, and
        // the entry left here is dropped below.
        self.last_pushed.set(std::ptr::null());
        self.wake_deferred.set(false);
        while let Some(task) = steal(&self.shared.injector) {
            pending.tasks.push(task);
        }
        pending.tasks.retain(|t| !t.is_stale());
        while let Some(task) = self.local_futures.borrow_mut().pop_front() {
            pending.futures.push(task);
        }
        while let Some(task) = self.futures.pop() {
            pending.futures.push(task);
        }
        while let Some(task) = steal(&self.shared.future_injector) {
            pending.futures.push(task);
        }
    }

    /// Whether anything could run now (after a timer, the driver or the reactor woke some).
    fn runnable(&self, remote: &crate::model::green::Remote) -> bool {
        !self.ready.borrow().is_empty() || self.runnable_besides_ready(remote)
    }

    /// Whether anything but a ready fiber could run now.
    fn runnable_besides_ready(&self, remote: &crate::model::green::Remote) -> bool {
        !self.local.is_empty()
            || !self.shared.injector.is_empty()
            || self.has_ready_futures()
            || !self.shared.future_injector.is_empty()
            || !remote.inbox.is_empty()
    }
}

/// One item of a crossbeam injector, retrying a lost race.
fn steal(from: &crossbeam_deque::Injector<Runnable>) -> Option<Runnable> {
    loop {
        match from.steal() {
            Steal::Success(t) => return Some(t),
            Steal::Empty => return None,
            Steal::Retry => {}
        }
    }
}

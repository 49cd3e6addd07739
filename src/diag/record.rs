//! Where a profiled runtime adds up its figures: a [`Recorder`] per runtime (in its
//! `RunState`), split in [`SHARDS`] locked shards.
//!
//! Each event of a profiled task (a stretch of running, of waiting to be scheduled, of being
//! blocked in an operation; a finish; a lock wait; a fiber's stack use) is added at once to
//! two entries of the calling thread's shard: its spawn site's and its task's. A thread always
//! uses the same shard, so with one shard per worker the lock is uncontended (one
//! compare-and-swap and a store); a snapshot ([`Recorder::snapshot`]) locks each shard in
//! turn and sums them. Adding at once, rather than keeping a task's figures in the task until
//! it finishes, makes a snapshot show the tasks still running (an accept loop never finishes).
//!
//! Finished tasks' own entries are kept up to [`KEPT_FINISHED`] per shard (their sites keep
//! every figure): a server with a task per connection would otherwise grow without bound.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::task::id::{Meta, TaskId};

/// Shards of a recorder; a thread keeps the one it was first given.
const SHARDS: usize = 16;

/// Finished tasks whose own figures a shard keeps (see the module docs).
pub(crate) const KEPT_FINISHED: usize = 1024;

/// Runtimes with profiling on in this process: the one relaxed load on a fiber's wake-up path
/// (which does not know its runtime's recorder) before it reads the clock.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether any runtime of the process is profiling now.
#[inline]
pub(crate) fn any_active() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// What a stretch of a task's time was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charge {
    /// Resumed on its worker (or, on a thread model, on its thread and not parked).
    Running,
    /// Ready but not yet resumed: spawned and not started, woken and not yet resumed, yielded.
    Scheduling,
    /// Parked in a blocking operation of this kind.
    Blocked(&'static str),
}

/// Which task an event is about.
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) id: TaskId,
    /// `None` for a root task (of `run`, of a `block_on`).
    pub(crate) meta: Option<&'a Meta>,
}

impl Who<'_> {
    fn site(&self) -> Option<&'static Location<'static>> {
        self.meta.map(|m| m.location)
    }
}

/// Time per operation kind: `(kind, nanoseconds, times)`, a short list searched linearly.
#[derive(Clone, Default, Debug)]
pub(crate) struct Blocked(pub(crate) Vec<(&'static str, u64, u64)>);

impl Blocked {
    fn add(&mut self, op: &'static str, ns: u64) {
        match self.0.iter_mut().find(|(k, _, _)| *k == op) {
            Some(e) => {
                e.1 += ns;
                e.2 += 1;
            }
            None => self.0.push((op, ns, 1)),
        }
    }

    pub(crate) fn merge(&mut self, other: &Blocked) {
        for &(op, ns, n) in &other.0 {
            match self.0.iter_mut().find(|(k, _, _)| *k == op) {
                Some(e) => {
                    e.1 += ns;
                    e.2 += n;
                }
                None => self.0.push((op, ns, n)),
            }
        }
    }
}

/// The time figures of a task or a site, in clock units (see [`crate::diag::clock`]).
#[derive(Clone, Default, Debug)]
pub(crate) struct Times {
    pub(crate) running: u64,
    pub(crate) scheduling: u64,
    pub(crate) blocked: Blocked,
    /// Stretches of running: resumes (a task's first start included).
    pub(crate) runs: u64,
}

impl Times {
    fn add(&mut self, charge: Charge, ns: u64) {
        match charge {
            Charge::Running => {
                self.running += ns;
                self.runs += 1;
            }
            Charge::Scheduling => self.scheduling += ns,
            Charge::Blocked(op) => self.blocked.add(op, ns),
        }
    }

    pub(crate) fn merge(&mut self, other: &Times) {
        self.running += other.running;
        self.scheduling += other.scheduling;
        self.blocked.merge(&other.blocked);
        self.runs += other.runs;
    }
}

/// Stack use of the fibers started for one site.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct StackUse {
    pub(crate) fibers: u64,
    pub(crate) max_used: usize,
    pub(crate) total_used: u64,
    pub(crate) size: usize,
}

impl StackUse {
    pub(crate) fn merge(&mut self, other: &StackUse) {
        self.fibers += other.fibers;
        self.max_used = self.max_used.max(other.max_used);
        self.total_used += other.total_used;
        self.size = self.size.max(other.size);
    }
}

#[derive(Clone, Default, Debug)]
pub(crate) struct SiteAcc {
    pub(crate) site: Option<&'static Location<'static>>,
    pub(crate) started: u64,
    pub(crate) finished: u64,
    pub(crate) times: Times,
    pub(crate) stack: StackUse,
}

#[derive(Clone, Debug)]
pub(crate) struct TaskAcc {
    pub(crate) id: TaskId,
    pub(crate) name: Option<String>,
    pub(crate) site: Option<&'static Location<'static>>,
    pub(crate) finished: bool,
    pub(crate) times: Times,
    pub(crate) stack_used: Option<usize>,
}

/// Which lock a contended acquisition waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LockKind {
    Mutex,
    RwLockRead,
    RwLockWrite,
    Semaphore,
}

impl LockKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LockKind::Mutex => "Mutex::lock",
            LockKind::RwLockRead => "RwLock::read",
            LockKind::RwLockWrite => "RwLock::write",
            LockKind::Semaphore => "Semaphore::acquire",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct LockAcc {
    pub(crate) kind: LockKind,
    pub(crate) site: &'static Location<'static>,
    pub(crate) waits: u64,
    pub(crate) total_ns: u64,
    pub(crate) max_ns: u64,
}

/// A multiplicative hash for the shards' keys (addresses, task ids): SipHash's resistance to
/// chosen keys buys nothing here and costs ~20 ns a lookup, twice per event.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by address or id, hashed with [`KeyHasher`].
pub(crate) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
pub(crate) struct Shard {
    pub(crate) sites: KeyMap<usize, SiteAcc>,
    pub(crate) tasks: KeyMap<TaskId, TaskAcc>,
    pub(crate) locks: KeyMap<(usize, LockKind), LockAcc>,
    finished_kept: usize,
}

/// The key of a spawn site: its `Location`'s address (one static per call site), 0 for root
/// tasks.
fn site_key(site: Option<&'static Location<'static>>) -> usize {
    site.map_or(0, |l| l as *const Location<'static> as usize)
}

impl Shard {
    fn site(&mut self, site: Option<&'static Location<'static>>) -> &mut SiteAcc {
        self.sites.entry(site_key(site)).or_insert_with(|| SiteAcc {
            site,
            ..SiteAcc::default()
        })
    }

    fn task(&mut self, who: Who<'_>) -> &mut TaskAcc {
        self.tasks.entry(who.id).or_insert_with(|| TaskAcc {
            id: who.id,
            name: who.meta.and_then(Meta::name).map(str::to_owned),
            site: who.site(),
            finished: false,
            times: Times::default(),
            stack_used: None,
        })
    }
}

/// A shard padded to its own cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Padded(Mutex<Shard>);

/// A runtime's profile figures; see the module docs.
pub(crate) struct Recorder {
    enabled: AtomicBool,
    /// When profiling was last turned on (a timestamp, see [`crate::diag::clock`]).
    since: AtomicU64,
    shards: Box<[Padded]>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            enabled: AtomicBool::new(false),
            since: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.set_enabled(false);
    }
}

impl Recorder {
    /// Whether this runtime records now: the one relaxed load an event costs when not.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns recording on or off; figures recorded so far are kept.
    pub(crate) fn set_enabled(&self, on: bool) {
        if self.enabled.swap(on, Ordering::Relaxed) != on {
            if on {
                self.since.store(super::now_ticks(), Ordering::Relaxed);
                ACTIVE.fetch_add(1, Ordering::Relaxed);
            } else {
                ACTIVE.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// When recording was last turned on, if ever.
    pub(crate) fn since_ns(&self) -> u64 {
        self.since.load(Ordering::Relaxed)
    }

    /// The calling thread's shard.
    fn shard(&self) -> MutexGuard<'_, Shard> {
        thread_local! {
            static INDEX: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            };
        }
        let i = INDEX.with(|i| *i) % self.shards.len();
        self.shards[i].0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a stretch of `ns` nanoseconds of `charge` to `who` and its site.
    pub(crate) fn charge(&self, who: Who<'_>, charge: Charge, ns: u64) {
        self.charge_all(who, &[(charge, ns)]);
    }

    /// Adds several stretches to `who` and its site under one lock (zero ones are skipped).
    pub(crate) fn charge_all(&self, who: Who<'_>, charges: &[(Charge, u64)]) {
        let mut shard = self.shard();
        let site = shard.site(who.site());
        for &(charge, ns) in charges {
            if ns != 0 || charge == Charge::Running {
                site.times.add(charge, ns);
            }
        }
        let task = shard.task(who);
        for &(charge, ns) in charges {
            if ns != 0 || charge == Charge::Running {
                task.times.add(charge, ns);
            }
        }
    }

    /// A task's first start.
    pub(crate) fn started(&self, who: Who<'_>) {
        let mut shard = self.shard();
        shard.site(who.site()).started += 1;
        shard.task(who);
    }

    /// A task's end.
    pub(crate) fn finished(&self, who: Who<'_>) {
        let mut shard = self.shard();
        shard.site(who.site()).finished += 1;
        if shard.finished_kept >= KEPT_FINISHED {
            shard.tasks.remove(&who.id);
        } else if let Some(t) = shard.tasks.get_mut(&who.id) {
            t.finished = true;
            shard.finished_kept += 1;
        }
    }

    /// A fiber started for a task of `site` finished having used `used` bytes of its
    /// `size`-byte stack; `task` is the task it was started for.
    pub(crate) fn stack_used(
        &self,
        site: Option<&'static Location<'static>>,
        task: Option<TaskId>,
        used: usize,
        size: usize,
    ) {
        let mut shard = self.shard();
        let s = &mut shard.site(site).stack;
        s.fibers += 1;
        s.max_used = s.max_used.max(used);
        s.total_used += used as u64;
        s.size = s.size.max(size);
        if let Some(t) = task.and_then(|id| shard.tasks.get_mut(&id)) {
            t.stack_used = Some(used);
        }
    }

    /// An acquisition at `site` that found the lock taken and waited `ns` nanoseconds.
    pub(crate) fn lock_waited(&self, site: &'static Location<'static>, kind: LockKind, ns: u64) {
        let mut shard = self.shard();
        let key = (site as *const Location<'static> as usize, kind);
        let e = shard.locks.entry(key).or_insert(LockAcc {
            kind,
            site,
            waits: 0,
            total_ns: 0,
            max_ns: 0,
        });
        e.waits += 1;
        e.total_ns += ns;
        e.max_ns = e.max_ns.max(ns);
    }

    /// Runs `f` on each shard in turn, locked.
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&Shard)) {
        for s in self.shards.iter() {
            f(&s.0.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Forgets every figure recorded so far.
    pub(crate) fn reset(&self) {
        for s in self.shards.iter() {
            *s.0.lock().unwrap_or_else(|p| p.into_inner()) = Shard::default();
        }
        if self.enabled() {
            self.since.store(super::now_ticks(), Ordering::Relaxed);
        }
    }
}

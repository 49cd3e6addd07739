//! Fiber stacks for the Green model: pooled, carved from large slabs, always guarded without
//! spending the process's VMA budget where the kernel allows, reporting overflows by task name,
//! and given back to the system when a worker no longer needs them.
//!
//! # Layout
//!
//! A [`StackPool`] (one per worker thread) `mmap`s *slabs*: one anonymous
//! `PROT_READ|PROT_WRITE`, `MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE` region cut into equal slots
//! (and marked `MADV_NOHUGEPAGE`, so that a touched stack page never becomes a 2 MiB huge page).
//! Nothing is committed until touched, so a parked fiber costs the pages it actually used
//! (typically one). Slabs grow geometrically, 16 slots first, doubling up to 4096 slots (and at
//! most 1 GiB) per slab.
//!
//! ```text
//!  lower addresses                     one slab = one mmap = one VMA                 higher
//!  +-------+--------------------+-------+--------------------+-- ... --+-------+--------------------+
//!  | guard |  usable stack 0    | guard |  usable stack 1    |         | guard |  usable stack n-1  |
//!  | page  |             <----- | page  |             <----- |         | page  |             <----- |
//!  +-------+--------------------+-------+--------------------+-- ... --+-------+--------------------+
//!  ^                            ^
//!  limit() of stack 0           base() of stack 0 (sp starts here, grows down) = limit() of stack 1
//!  (includes the guard)
//! ```
//!
//! # Every stack has a guard page, within the mapping budget
//!
//! Linux limits a process to `vm.max_map_count` memory areas (65530 here). The classic layout —
//! one `mmap` per stack plus an `mprotect(PROT_NONE)` guard — costs two VMAs per fiber and tops
//! out near 32k fibers, after which `mmap` fails with `ENOMEM` (a peer stackful runtime dies at
//! 100k parked coroutines this way). So, per slot, in order of preference:
//!
//! 1. [`GuardKind::GuardPage`]: `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+) marks the slot's
//!    lowest page as a guard inside the slab's single VMA: no new VMA, faults like `PROT_NONE`.
//!    Probed once per process.
//! 2. [`GuardKind::Mprotect`]: on older kernels, `mprotect(PROT_NONE)` on that page, which splits
//!    the slab's VMA (about +2 per stack). Allowed while the process holds fewer guards of this
//!    kind than its [`GuardBudget`](slab::GuardBudget) (a quarter of `vm.max_map_count`, keeping half the map count
//!    for everything else).
//! 3. Otherwise **no stack**: [`StackPool::get`] fails (the slot stays uncarved until a guard can
//!    be had) and the scheduler runs the task another way (the Green worker hands it to a helper
//!    thread, whose stack has its own guard). An unguarded stack would let a deep recursion
//!    write into the neighbouring slot, another fiber's live frames, before anything noticed:
//!    safe code could corrupt memory. Stacks already carved keep their guard for life, so
//!    recycling is unaffected; only the number of fibers alive at once is capped, at about
//!    16k per process on a pre-6.13 kernel with the default map count.
//!
//! # Overflow reports
//!
//! A process-wide `SIGSEGV`/`SIGBUS` handler (`SA_SIGINFO|SA_ONSTACK`, installed with the first
//! slab) looks the fault address up in a lock-free registry of slab ranges. A hit in a guard
//! page prints `zsync: fiber task '<name>' overflowed its stack of <N> KiB (fault at 0x...):
//! raise the stack size with Builder::stack_size` and aborts; any other fault goes to the
//! handler installed before ours (Rust's own, usually). The name is the [`TaskName`] the
//! scheduler last set on that thread with [`replace_current_task_name`] (a task's spawn
//! location, `file:line`) or [`set_current_task_name`]. The handler needs an alternate signal
//! stack, since the faulting fiber's stack is exhausted: workers call [`ensure_sigaltstack`]
//! when they start.
//!
//! # Ownership, recycling and trimming
//!
//! Every [`PooledStack`] holds an `Arc` of its slab, and the pool holds one for the slab it is
//! carving, so a slab is unmapped exactly when its pool has moved on from it and all its stacks
//! are gone: stacks of a dropped pool stay valid. [`StackPool::get`] never maps memory when a
//! returned stack is available. [`StackPool::put`] keeps returned stacks *hot* (LIFO, pages
//! still committed, no syscall). Releasing pages is what costs: an `madvise` on a
//! multi-threaded process sends a TLB shootdown to the other CPUs (tens of microseconds per call;
//! see docs/ARCHITECTURE.md, "Measurements behind the tuning"), so it stays off the spawn path. Instead the worker calls [`StackPool::trim`] when it
//! is about to sleep: every [`TRIM_PERIOD`], hot stacks that went unused for [`TRIM_AGE`]
//! periods (the bottom of the LIFO, beyond the [`DEFAULT_KEEP_HOT`] most recent) are released
//! with `MADV_DONTNEED`, sorted by address so that one call covers each run of adjacent slots
//! (at most [`TRIM_CHUNK`] stacks per `trim` call, so that an idle worker is back for new work
//! soon), and kept *cold* for reuse before any new slot is carved; a slab whose every stack is
//! then cold is unmapped, which also frees its page tables. A stack dropped instead of returned
//! releases its pages too, but its slot is only reclaimed when the whole slab is unmapped.

mod overflow;
mod slab;

#[cfg(test)]
mod tests;

use std::io;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::stack::{Stack, StackPointer, MIN_STACK_SIZE};

#[cfg(test)]
pub(crate) use overflow::set_current_task_name;
use overflow::with_context;
pub(crate) use overflow::{
    current_task_name_addr, ensure_sigaltstack, replace_current_task_name, RemoteName, TaskName,
    TASK_NAME_SIZE,
};
pub(crate) use slab::GuardPolicy;
use slab::SlabMapping;

/// Slots in a pool's first slab.
const FIRST_SLAB_SLOTS: usize = 16;
/// Most slots in one slab (slabs double in size up to this).
const MAX_SLAB_SLOTS: usize = 4096;
/// Most bytes in one slab (caps the slot count for big stacks).
const MAX_SLAB_BYTES: usize = 1 << 30;
/// Most returned stacks [`StackPool::put`] keeps hot (pages committed) between two trims;
/// beyond it, each further one is released on the spot (an `madvise`, see the module docs).
pub(crate) const DEFAULT_MAX_CACHED: usize = 1 << 17;
/// How often [`StackPool::trim`] looks at the hot stacks (one *period*).
pub(crate) const TRIM_PERIOD: Duration = Duration::from_millis(250);
/// Periods a hot stack may go unused before [`StackPool::trim`] releases it.
pub(crate) const TRIM_AGE: u32 = 3;
/// Hot stacks [`StackPool::trim`] never releases: the most recently returned ones.
pub(crate) const DEFAULT_KEEP_HOT: usize = 64;
/// Most stacks one [`StackPool::trim`] call releases, so that a call stays short (a few ms) and
/// a worker that trims while idle is back for new work soon; a bigger batch is released over
/// as many calls, each wanting the next at once.
const TRIM_CHUNK: usize = 2048;

/// The system page size (cached after the first call).
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let p = if p > 0 && (p as usize).is_power_of_two() {
                p as usize
            } else {
                4096
            };
            PAGE.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

/// How a stack's overflow is caught. Every stack a pool hands out has one of these: a slot
/// that cannot get a guard is never used (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardKind {
    /// A guard page installed with `madvise(MADV_GUARD_INSTALL)`: faults on touch, no extra VMA.
    GuardPage,
    /// A guard page made with `mprotect(PROT_NONE)`: faults on touch, costs about 2 VMAs.
    Mprotect,
}

/// Counters describing a pool, for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolStats {
    /// Slabs this pool has mapped over its life.
    pub(crate) slabs_mapped: usize,
    /// Slabs [`StackPool::trim`] has unmapped (every slot of them was cached, none in use).
    pub(crate) slabs_unmapped: usize,
    /// Slots carved from slabs over the pool's life (new stacks, as opposed to recycled ones).
    pub(crate) carved: usize,
    /// Stacks cached with their pages committed.
    pub(crate) hot: usize,
    /// Stacks cached with their pages released.
    pub(crate) cold: usize,
    /// `madvise(MADV_DONTNEED)` calls made to release cached stacks (one per run of adjacent
    /// slots when trimming).
    pub(crate) release_calls: usize,
}

/// What a [`StackPool::trim`] call did, and when it wants the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trim {
    /// When to call again: `None` when nothing is left to trim (no need to call until stacks
    /// come back), the time passed in while a release is under way.
    pub(crate) next: Option<Instant>,
    /// Stacks given back by a release that this call completed (0 if none did): many of them
    /// mean a burst of fibers has ended, after which a worker can trim other memory too.
    pub(crate) released: usize,
}

/// A returned stack kept with its pages committed.
#[derive(Debug)]
struct HotStack {
    stack: PooledStack,
    /// The pool's trim period when the stack was returned.
    period: u32,
}

/// A per-worker pool of fiber stacks of one size. See the [module docs](self).
///
/// `Send` (it may be built on one thread and moved to its worker) but not `Sync`.
#[derive(Debug)]
pub(crate) struct StackPool {
    /// Usable bytes per stack (page multiple, guard excluded).
    usable: usize,
    /// Guard bytes per stack (one page).
    guard: usize,
    /// Recycled stacks with committed pages, used LIFO: oldest returns at the bottom.
    hot: Vec<HotStack>,
    /// Stale stacks `trim` is releasing, a chunk per call, highest address first (so the end,
    /// released next, holds the lowest). Their pages are still committed: `get` takes them
    /// after the hot ones.
    releasing: Vec<PooledStack>,
    /// Recycled stacks whose pages were released.
    cold: Vec<PooledStack>,
    /// Most stacks kept in `hot`.
    max_cached: usize,
    /// Hot stacks `trim` leaves alone (the top of `hot`).
    keep_hot: usize,
    /// Trim periods elapsed (advanced by `trim`).
    period: u32,
    /// Stacks released so far by the release under way (reported when it completes).
    released: usize,
    /// When `trim` next advances `period`, if it has work ahead.
    next_trim: Option<Instant>,
    /// The slab being carved, if any slots remain in it.
    current: Option<Arc<SlabMapping>>,
    /// Next slot index to carve in `current`.
    next_slot: usize,
    /// Number of slots in `current`.
    current_slots: usize,
    /// Slots the next slab will have.
    next_slab_slots: usize,
    /// Which guards to install.
    policy: GuardPolicy,
    /// Counters.
    stats: PoolStats,
    /// Not `Sync`: a pool belongs to one worker.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl StackPool {
    /// A pool of stacks with at least `stack_size` usable bytes each (rounded up to whole pages,
    /// at least `MIN_STACK_SIZE`), plus one guard page each. Maps nothing until the first
    /// [`get`](Self::get).
    #[cfg(test)]
    pub(crate) fn new(stack_size: usize) -> StackPool {
        Self::with_policy(stack_size, GuardPolicy::detect())
    }

    /// A pool with an explicit guard policy (tests force the fallbacks with it).
    pub(crate) fn with_policy(stack_size: usize, policy: GuardPolicy) -> StackPool {
        let page = page_size();
        StackPool {
            usable: stack_size.max(MIN_STACK_SIZE).next_multiple_of(page),
            guard: page,
            hot: Vec::new(),
            releasing: Vec::new(),
            cold: Vec::new(),
            max_cached: DEFAULT_MAX_CACHED,
            keep_hot: DEFAULT_KEEP_HOT,
            period: 0,
            released: 0,
            next_trim: None,
            current: None,
            next_slot: 0,
            current_slots: 0,
            next_slab_slots: FIRST_SLAB_SLOTS,
            policy,
            stats: PoolStats {
                slabs_mapped: 0,
                slabs_unmapped: 0,
                carved: 0,
                hot: 0,
                cold: 0,
                release_calls: 0,
            },
            _not_sync: PhantomData,
        }
    }

    /// Sets how many returned stacks may stay hot (pages committed) at once; the rest are
    /// released to the system on return and kept cold. Default [`DEFAULT_MAX_CACHED`].
    #[cfg(test)]
    pub(crate) fn with_max_cached(mut self, max_cached: usize) -> StackPool {
        self.max_cached = max_cached;
        self
    }

    /// Sets how many of the most recently returned stacks [`trim`](Self::trim) keeps hot
    /// however long they go unused. Default [`DEFAULT_KEEP_HOT`].
    #[cfg(test)]
    pub(crate) fn with_keep_hot(mut self, keep_hot: usize) -> StackPool {
        self.keep_hot = keep_hot;
        self
    }

    /// Usable bytes per stack (the requested size rounded up to whole pages; guard excluded).
    #[cfg(test)]
    pub(crate) fn stack_size(&self) -> usize {
        self.usable
    }

    /// A guarded stack: a recycled one if any (no syscall for a hot one, none that maps memory
    /// for a cold one), else a fresh slot of the current slab, mapping a new slab when it is
    /// full.
    ///
    /// Fails when memory cannot be mapped, or when no guard page can be had for a new slot
    /// (a kernel without `MADV_GUARD_INSTALL` whose mprotect guard budget is spent; see the
    /// module docs): this pool never hands out a stack without a guard.
    pub(crate) fn get(&mut self) -> io::Result<PooledStack> {
        if let Some(hot) = self.hot.pop() {
            return Ok(hot.stack);
        }
        if let Some(stack) = self.releasing.pop() {
            return Ok(stack);
        }
        if let Some(stack) = self.cold.pop() {
            return Ok(stack);
        }
        self.carve()
    }

    /// Returns a stack to the pool. It must no longer be in use by a coroutine (take it back
    /// with `Coroutine::into_stack` once the coroutine has finished).
    ///
    /// A stack of the same size from another pool is adopted (it keeps its own slab alive);
    /// one of another size is simply dropped.
    pub(crate) fn put(&mut self, stack: PooledStack) {
        if stack.usable != self.usable || stack.guard_len != self.guard {
            return;
        }
        if self.hot.len() < self.max_cached {
            self.hot.push(HotStack {
                stack,
                period: self.period,
            });
        } else {
            stack.release_pages();
            self.stats.release_calls += 1;
            self.cold.push(stack);
        }
    }

    /// Gives memory back to the system from an idle pool: the pages of hot stacks that went
    /// unused for [`TRIM_AGE`] periods of [`TRIM_PERIOD`] (all but the `keep_hot` most recently
    /// returned), and whole slabs none of whose slots is in use any more. Cheap unless a period
    /// has ended (one comparison). Says when to call again: at once while a release is under
    /// way (at most [`TRIM_CHUNK`] stacks per call), never when nothing is left to trim.
    ///
    /// Meant for the idle path of the worker (before it sleeps): releasing pages costs a TLB
    /// shootdown per `madvise` call on a multi-threaded process, so the released stacks are
    /// sorted by address and each run of adjacent slots goes in one call.
    pub(crate) fn trim(&mut self, now: Instant) -> Trim {
        let wait = |next| Trim { next, released: 0 };
        if self.releasing.is_empty() {
            if self.hot.len() <= self.keep_hot {
                self.next_trim = None;
                return wait(None);
            }
            match self.next_trim {
                Some(at) if now < at => return wait(Some(at)),
                Some(_) => self.period = self.period.wrapping_add(1),
                None => {}
            }
            // Hot stacks are ordered by return time (pushed on top, taken from the top), so the
            // stale ones are a prefix.
            let candidates = self.hot.len() - self.keep_hot;
            let stale = self.hot[..candidates]
                .partition_point(|h| self.period.wrapping_sub(h.period) >= TRIM_AGE);
            if stale > 0 {
                self.releasing = self.hot.drain(..stale).map(|h| h.stack).collect();
                self.releasing
                    .sort_unstable_by_key(|s| std::cmp::Reverse(s.base.get()));
                shrink_spare(&mut self.hot, self.keep_hot);
            }
        }
        let mut released = 0;
        if !self.releasing.is_empty() {
            self.release_chunk();
            if !self.releasing.is_empty() {
                return wait(Some(now));
            }
            self.releasing = Vec::new();
            self.unmap_idle_slabs();
            released = std::mem::take(&mut self.released);
        }
        self.next_trim = (self.hot.len() > self.keep_hot).then(|| now + TRIM_PERIOD);
        Trim {
            next: self.next_trim,
            released,
        }
    }

    /// Releases the pages of up to [`TRIM_CHUNK`] stacks from the end of `releasing` (the lowest
    /// addresses) and caches them cold.
    fn release_chunk(&mut self) {
        let from = self.releasing.len().saturating_sub(TRIM_CHUNK);
        let mut chunk = self.releasing.split_off(from);
        chunk.reverse(); // lowest address first
        let slot = self.usable + self.guard;
        let mut i = 0;
        while i < chunk.len() {
            // A run of slots whose stacks are adjacent in memory: one call for all of them,
            // guards in between included (`MADV_DONTNEED` keeps both kinds of guard; see
            // `release_range`).
            let low = chunk[i].usable_bottom();
            let mut j = i + 1;
            while j < chunk.len() && chunk[j].base.get() == chunk[j - 1].base.get() + slot {
                j += 1;
            }
            let high = chunk[j - 1].base.get();
            // SAFETY: `[low, high)` covers the usable regions of stacks we own (none in use by a
            // coroutine) and the guards between them, all inside mappings held alive by those
            // stacks (adjacent slots of one slab, or of two slabs mapped next to each other).
            unsafe { release_range(low, high - low) };
            self.stats.release_calls += 1;
            i = j;
        }
        self.released += chunk.len();
        self.cold.append(&mut chunk);
    }

    /// Drops the cold stacks of every slab that only cold stacks keep alive (not the slab being
    /// carved, which the pool holds too), unmapping it: its page tables and, for mprotect
    /// guards, its map entries go back to the system as well.
    fn unmap_idle_slabs(&mut self) {
        // Group by slab, then compare each slab's cold count with its reference count.
        self.cold
            .sort_unstable_by_key(|s| Arc::as_ptr(&s.slab) as usize);
        let mut kept = Vec::new();
        let mut group: Vec<PooledStack> = Vec::new();
        let mut stacks = std::mem::take(&mut self.cold).into_iter().peekable();
        while let Some(stack) = stacks.next() {
            let same_slab_next = stacks
                .peek()
                .is_some_and(|next| Arc::ptr_eq(&next.slab, &stack.slab));
            group.push(stack);
            if same_slab_next {
                continue;
            }
            if Arc::strong_count(&group[0].slab) == group.len() {
                // Only these stacks hold the slab: dropping them unmaps it (no `madvise` per
                // stack: `into_slab` skips `PooledStack::drop`).
                self.stats.slabs_unmapped += 1;
                for stack in group.drain(..) {
                    drop(stack.into_slab());
                }
            } else {
                kept.append(&mut group);
            }
        }
        shrink_spare(&mut kept, 0);
        self.cold = kept;
    }

    /// Counters describing the pool.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            hot: self.hot.len() + self.releasing.len(),
            cold: self.cold.len(),
            ..self.stats
        }
    }

    /// Carves the next slot, mapping a new slab first if needed. Fails, leaving the slot for a
    /// later attempt, when no guard can be installed in it.
    fn carve(&mut self) -> io::Result<PooledStack> {
        let slot = self.usable + self.guard;
        let slab = match &self.current {
            Some(slab) if self.next_slot < self.current_slots => Arc::clone(slab),
            _ => {
                overflow::install_overflow_handler()?;
                let slots = self.next_slab_slots.min((MAX_SLAB_BYTES / slot).max(1));
                let slab = SlabMapping::map(slot, slots, self.guard, self.policy.budget)?;
                self.current = Some(Arc::clone(&slab));
                self.current_slots = slots;
                self.next_slot = 0;
                self.next_slab_slots = (slots * 2).min(MAX_SLAB_SLOTS);
                self.stats.slabs_mapped += 1;
                slab
            }
        };
        let bottom = slab.base() + self.next_slot * slot;
        let Some(guard_kind) = slab.install_guard(bottom, self.guard, self.policy) else {
            return Err(no_guard_error(self.policy));
        };
        self.next_slot += 1;
        if self.next_slot == self.current_slots {
            // Full: the slab now lives exactly as long as its stacks.
            self.current = None;
        }
        self.stats.carved += 1;
        let base = NonZeroUsize::new(bottom + slot).ok_or_else(|| {
            with_context(io::Error::other("null address"), "carving a fiber stack")
        })?;
        Ok(PooledStack {
            slab,
            base,
            usable: self.usable,
            guard_len: self.guard,
            guard_kind,
        })
    }
}

/// Gives a vector's spare capacity back once it is mostly unused (after a burst).
fn shrink_spare<T>(v: &mut Vec<T>, floor: usize) {
    let want = (2 * v.len()).max(floor);
    if v.capacity() > 2 * want {
        v.shrink_to(want);
    }
}

/// The error of a [`StackPool::get`] that found no guard page for a new stack.
fn no_guard_error(policy: GuardPolicy) -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "zsync fiber stacks: no guard page left for a new stack: {}, and the {} mprotect \
             guards allowed (a quarter of vm.max_map_count) are in use",
            if policy.madvise {
                "madvise(MADV_GUARD_INSTALL) failed"
            } else {
                "this kernel lacks madvise(MADV_GUARD_INSTALL) (Linux 6.13+)"
            },
            policy.budget.limit(),
        ),
    )
}

/// `madvise(MADV_DONTNEED)` over `len` bytes at `addr`: the pages read as zeros next time.
/// Guard pages in the range stay guards (`mprotect` ones are a property of the memory area,
/// `MADV_GUARD_INSTALL` markers survive `MADV_DONTNEED` by design).
///
/// # Safety
///
/// The range must lie in mappings of this module's slabs, and no live data may be there (no
/// coroutine runs on a stack in it, no reference points into it).
unsafe fn release_range(addr: usize, len: usize) {
    // SAFETY: forwarded from the caller; MADV_DONTNEED on private anonymous memory just drops
    // the pages.
    let rc = unsafe { libc::madvise(addr as *mut _, len, libc::MADV_DONTNEED) };
    debug_assert_eq!(rc, 0, "madvise(MADV_DONTNEED) on fiber stacks failed");
}

impl Drop for StackPool {
    fn drop(&mut self) {
        // Cached stacks are unused. Drop them without an madvise each: cold ones are released
        // already, and a slab whose last user this is gets unmapped. (Hot pages of a slab kept
        // alive by stacks still out stay committed until those stacks go: a shutdown-only case.)
        let hot = self.hot.drain(..).map(|h| h.stack);
        for stack in hot
            .chain(self.releasing.drain(..))
            .chain(self.cold.drain(..))
        {
            drop(stack.into_slab());
        }
    }
}

/// A fiber stack from a [`StackPool`]: one slot of a slab, guard included.
///
/// Implements [`corosensei::stack::Stack`]; give it back with [`StackPool::put`] once its
/// coroutine has finished.
#[derive(Debug)]
pub(crate) struct PooledStack {
    /// The slab this stack lives in (kept mapped while the stack exists).
    slab: Arc<SlabMapping>,
    /// Highest address (exclusive): where the stack pointer starts.
    base: NonZeroUsize,
    /// Usable bytes below `base`.
    usable: usize,
    /// Guard bytes below the usable region.
    guard_len: usize,
    /// How overflows of this stack are caught (the tests check it).
    #[cfg_attr(not(test), allow(dead_code))]
    guard_kind: GuardKind,
}

impl PooledStack {
    /// How an overflow of this stack is caught.
    #[cfg(test)]
    pub(crate) fn guard_kind(&self) -> GuardKind {
        self.guard_kind
    }

    /// Usable bytes (guard excluded).
    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.usable
    }

    /// The usable bytes' addresses, `[bottom, top)`, guard excluded (for a profile's stack
    /// high-water mark, see `crate::diag::stack`).
    #[cfg(feature = "profile")]
    pub(crate) fn usable_range(&self) -> (usize, usize) {
        (self.usable_bottom(), self.base.get())
    }

    /// Lowest usable address (just above the guard).
    fn usable_bottom(&self) -> usize {
        self.base.get() - self.usable
    }

    /// Gives the usable pages back to the system (`MADV_DONTNEED`); they read as zeros next
    /// time. The guard is left alone.
    fn release_pages(&self) {
        // SAFETY: the usable region of this stack, which no coroutine is using (we own it),
        // inside its slab (kept mapped by `self.slab`).
        unsafe { release_range(self.usable_bottom(), self.usable) };
    }

    /// Dismantles the stack without releasing its pages, returning its slab reference.
    fn into_slab(self) -> Arc<SlabMapping> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the `Arc` is moved out exactly once.
        unsafe { std::ptr::read(&this.slab) }
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        // If the slab outlives this stack, give its pages back now: the slot is not reused
        // until the whole slab goes. If we are the last user, munmap is about to do it.
        if Arc::strong_count(&self.slab) > 1 {
            self.release_pages();
        }
    }
}

// SAFETY: `base` is the top of a slot (page-aligned, so STACK_ALIGNMENT-aligned) and `limit` its
// bottom, guard included; the memory stays mapped while `self.slab` is held. The slot's lowest
// page is a guard page (MADV_GUARD_INSTALL or mprotect; `StackPool::carve` hands out no slot
// without one, and releasing pages keeps it), so running off the stack faults before touching
// any other memory. At least MIN_STACK_SIZE usable bytes (enforced by `StackPool::new`).
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        // `base > usable + guard_len` since the slot lies inside a mapping that cannot start
        // at address 0, so this is never zero.
        NonZeroUsize::new(self.base.get() - self.usable - self.guard_len).unwrap_or(self.base)
    }
}

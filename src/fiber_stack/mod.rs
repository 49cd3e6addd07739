//! Fiber stacks for the Green model: pooled, carved from large slabs, guarded without spending
//! the process's VMA budget, and reporting overflows by task name.
//!
//! # Layout
//!
//! A [`StackPool`] (one per worker thread) `mmap`s *slabs*: one anonymous
//! `PROT_READ|PROT_WRITE`, `MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE` region cut into equal slots.
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
//!  ^       ^                    ^
//!  |       |                    base() of stack 0 (sp starts here, grows down) = limit() of stack 1
//!  |       canary words (only for GuardKind::Canary stacks)
//!  limit() of stack 0 (includes the guard)
//! ```
//!
//! # Guards within the mapping budget
//!
//! Linux limits a process to `vm.max_map_count` memory areas (65530 here). The classic layout —
//! one `mmap` per stack plus an `mprotect(PROT_NONE)` guard — costs two VMAs per fiber and tops
//! out near 32k fibers, after which `mmap` fails with `ENOMEM` (a peer stackful runtime dies at
//! 100k parked coroutines this way). So, per stack, in order of preference:
//!
//! 1. [`GuardKind::GuardPage`]: `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+) marks the slot's
//!    lowest page as a guard inside the slab's single VMA: no new VMA, faults like `PROT_NONE`.
//!    Probed once per process.
//! 2. [`GuardKind::Mprotect`]: on older kernels, `mprotect(PROT_NONE)` on that page, which splits
//!    the slab's VMA (about +2 per stack). Allowed while the process holds fewer than
//!    `max_map_count / 4` such guards, keeping half the map count for everything else.
//! 3. [`GuardKind::Canary`]: beyond that budget, no guard page. Magic words at the bottom of the
//!    usable stack are checked by [`PooledStack::check_canary`] (the scheduler calls
//!    [`PooledStack::abort_if_overflowed`] whenever a fiber suspends or finishes, and
//!    [`StackPool::put`] checks too): the overflow is reported *after the fact*. This mode is a
//!    best-effort degradation — it does not meet `corosensei::stack::Stack`'s guard-page
//!    requirement, and an overflow larger than the unguarded page below the stack can corrupt a
//!    neighbouring stack before it is noticed. It only happens on pre-6.13 kernels with more
//!    than ~16k fibers alive.
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
//! # Ownership and recycling
//!
//! Every [`PooledStack`] holds an `Arc` of its slab, and the pool holds one for the slab it is
//! carving, so a slab is unmapped exactly when its pool has moved on from it and all its stacks
//! are gone: stacks of a dropped pool stay valid. [`StackPool::get`] never maps memory when a
//! returned stack is available. [`StackPool::put`] keeps up to `max_cached` stacks *hot*
//! (LIFO, pages still committed); beyond that it `MADV_DONTNEED`s the usable pages (RSS goes
//! back to the system) and keeps the slot in a *cold* list, reused before carving new slots. A
//! stack dropped instead of returned releases its pages too, but its slot is only reclaimed
//! when the whole slab is unmapped.

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

use corosensei::stack::{Stack, StackPointer, MIN_STACK_SIZE};

pub(crate) use overflow::{ensure_sigaltstack, replace_current_task_name, TaskName};
#[allow(unused_imports)] // for schedulers naming tasks by string; the unit tests use the first
pub(crate) use overflow::{set_current_task_name, set_current_task_name_unchecked};
use overflow::{with_context, OverflowSite};
use slab::{GuardPolicy, SlabMapping};

/// Slots in a pool's first slab.
const FIRST_SLAB_SLOTS: usize = 16;
/// Most slots in one slab (slabs double in size up to this).
const MAX_SLAB_SLOTS: usize = 4096;
/// Most bytes in one slab (caps the slot count for big stacks).
const MAX_SLAB_BYTES: usize = 1 << 30;
/// Default number of hot stacks [`StackPool::put`] keeps with their pages committed.
pub(crate) const DEFAULT_MAX_CACHED: usize = 1024;

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

/// How a stack's overflow is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardKind {
    /// A guard page installed with `madvise(MADV_GUARD_INSTALL)`: faults on touch, no extra VMA.
    GuardPage,
    /// A guard page made with `mprotect(PROT_NONE)`: faults on touch, costs about 2 VMAs.
    Mprotect,
    /// No guard page (VMA budget exhausted): canary words checked after the fact.
    Canary,
}

/// Counters describing a pool, for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolStats {
    /// Slabs this pool has mapped over its life.
    pub(crate) slabs_mapped: usize,
    /// Slots carved from slabs over the pool's life (new stacks, as opposed to recycled ones).
    pub(crate) carved: usize,
    /// Stacks cached with their pages committed.
    pub(crate) hot: usize,
    /// Stacks cached with their pages released.
    pub(crate) cold: usize,
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
    /// Recycled stacks with committed pages, used LIFO.
    hot: Vec<PooledStack>,
    /// Recycled stacks whose pages were released.
    cold: Vec<PooledStack>,
    /// Most stacks kept in `hot`.
    max_cached: usize,
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
            cold: Vec::new(),
            max_cached: DEFAULT_MAX_CACHED,
            current: None,
            next_slot: 0,
            current_slots: 0,
            next_slab_slots: FIRST_SLAB_SLOTS,
            policy,
            stats: PoolStats {
                slabs_mapped: 0,
                carved: 0,
                hot: 0,
                cold: 0,
            },
            _not_sync: PhantomData,
        }
    }

    /// Sets how many returned stacks stay hot (pages committed); the rest are released to the
    /// system and kept cold. Default [`DEFAULT_MAX_CACHED`].
    pub(crate) fn with_max_cached(mut self, max_cached: usize) -> StackPool {
        self.max_cached = max_cached;
        self
    }

    /// Usable bytes per stack (the requested size rounded up to whole pages; guard excluded).
    pub(crate) fn stack_size(&self) -> usize {
        self.usable
    }

    /// A stack: a recycled one if any (no syscall for a hot one, none that maps memory for a
    /// cold one), else a fresh slot of the current slab, mapping a new slab when it is full.
    pub(crate) fn get(&mut self) -> io::Result<PooledStack> {
        if let Some(stack) = self.hot.pop() {
            return Ok(stack);
        }
        if let Some(stack) = self.cold.pop() {
            if stack.guard_kind == GuardKind::Canary {
                // SAFETY: the canary area is the bottom of this unused stack's usable region,
                // writable (no guard there) and zeroed by MADV_DONTNEED.
                unsafe { slab::write_canary(stack.usable_bottom()) };
            }
            return Ok(stack);
        }
        self.carve()
    }

    /// Returns a stack to the pool. It must no longer be in use by a coroutine (take it back
    /// with `Coroutine::into_stack` once the coroutine has finished).
    ///
    /// Aborts with an overflow report if the stack is a [`GuardKind::Canary`] one whose canary
    /// was clobbered. A stack of the same size from another pool is adopted (it keeps its own slab
    /// alive); one of another size is simply dropped.
    pub(crate) fn put(&mut self, stack: PooledStack) {
        if stack.usable != self.usable || stack.guard_len != self.guard {
            return;
        }
        stack.abort_if_overflowed();
        if self.hot.len() < self.max_cached {
            self.hot.push(stack);
        } else {
            stack.release_pages();
            self.cold.push(stack);
        }
    }

    /// Counters describing the pool.
    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            hot: self.hot.len(),
            cold: self.cold.len(),
            ..self.stats
        }
    }

    /// Carves the next slot, mapping a new slab first if needed.
    fn carve(&mut self) -> io::Result<PooledStack> {
        let slot = self.usable + self.guard;
        let slab = match &self.current {
            Some(slab) if self.next_slot < self.current_slots => Arc::clone(slab),
            _ => {
                overflow::install_overflow_handler()?;
                let slots = self.next_slab_slots.min((MAX_SLAB_BYTES / slot).max(1));
                let slab = SlabMapping::map(slot, slots, self.guard)?;
                self.current = Some(Arc::clone(&slab));
                self.current_slots = slots;
                self.next_slot = 0;
                self.next_slab_slots = (slots * 2).min(MAX_SLAB_SLOTS);
                self.stats.slabs_mapped += 1;
                slab
            }
        };
        let bottom = slab.base() + self.next_slot * slot;
        let guard_kind = slab.install_guard(bottom, self.guard, self.policy);
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

impl Drop for StackPool {
    fn drop(&mut self) {
        // Cached stacks are unused. Drop them without an madvise each: cold ones are released
        // already, and a slab whose last user this is gets unmapped. (Hot pages of a slab kept
        // alive by stacks still out stay committed until those stacks go: a shutdown-only case.)
        for stack in self.hot.drain(..).chain(self.cold.drain(..)) {
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
    /// How overflows of this stack are caught.
    guard_kind: GuardKind,
}

impl PooledStack {
    /// How an overflow of this stack is caught.
    pub(crate) fn guard_kind(&self) -> GuardKind {
        self.guard_kind
    }

    /// Usable bytes (guard excluded).
    pub(crate) fn size(&self) -> usize {
        self.usable
    }

    /// Lowest usable address (just above the guard; where the canary lives).
    fn usable_bottom(&self) -> usize {
        self.base.get() - self.usable
    }

    /// `false` if this is a [`GuardKind::Canary`] stack whose canary has been overwritten, i.e.
    /// a fiber ran past the end of it. Always `true` for guarded stacks (an overflow of those
    /// faults on the spot). Call only while no fiber is running on the stack.
    pub(crate) fn check_canary(&self) -> bool {
        if self.guard_kind != GuardKind::Canary {
            return true;
        }
        // SAFETY: the canary lies in this stack's usable region, mapped while `self.slab`
        // lives, page-aligned, and readable (no guard was installed on this stack).
        unsafe { slab::canary_intact(self.usable_bottom()) }
    }

    /// Reports an overflow of this stack (with the current task name) and aborts if
    /// [`check_canary`](Self::check_canary) fails. The scheduler calls this whenever a fiber
    /// on the stack suspends or finishes.
    pub(crate) fn abort_if_overflowed(&self) {
        if !self.check_canary() {
            overflow::report_overflow_and_abort(
                self.usable,
                OverflowSite::Canary(self.usable_bottom()),
            );
        }
    }

    /// A copy of what [`abort_if_overflowed`](Self::abort_if_overflowed) reads, for a scheduler
    /// that must check the stack while a coroutine owns it (corosensei gives no access to a
    /// coroutine's stack until it is taken back with `into_stack`).
    pub(crate) fn overflow_check(&self) -> OverflowCheck {
        OverflowCheck {
            canary: (self.guard_kind == GuardKind::Canary).then(|| self.usable_bottom()),
            usable: self.usable,
        }
    }

    /// Gives the usable pages back to the system (`MADV_DONTNEED`); they read as zeros next
    /// time. The guard is left alone.
    fn release_pages(&self) {
        // SAFETY: the usable region of this stack, which no coroutine is using (we own it).
        // MADV_DONTNEED on private anonymous memory just drops the pages.
        let rc = unsafe {
            libc::madvise(
                self.usable_bottom() as *mut _,
                self.usable,
                libc::MADV_DONTNEED,
            )
        };
        debug_assert_eq!(rc, 0, "madvise(MADV_DONTNEED) on a fiber stack failed");
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

/// [`PooledStack::abort_if_overflowed`] for a stack a coroutine owns; see
/// [`PooledStack::overflow_check`]. Two words, `Copy`; checking it is one branch unless the stack
/// is a [`GuardKind::Canary`] one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverflowCheck {
    /// Lowest usable address (the canary) of a canary stack; `None` for a guarded stack.
    canary: Option<usize>,
    /// Usable bytes of the stack, for the report.
    usable: usize,
}

impl OverflowCheck {
    /// Reports an overflow (with the current task name) and aborts if the stack is a canary
    /// one whose canary was overwritten. The Green model calls this whenever a fiber suspends
    /// or finishes, from the fiber itself: reading the canary from the stack it guards is fine,
    /// since a fiber that has not overflowed has no frame down there.
    ///
    /// # Safety
    ///
    /// The stack this check was taken from must still exist (the caller runs on it, or holds
    /// the coroutine that owns it), so that its memory is mapped.
    #[inline]
    pub(crate) unsafe fn abort_if_overflowed(&self) {
        if let Some(bottom) = self.canary {
            // SAFETY: `bottom` is the canary of a live canary stack (caller's contract): mapped,
            // page-aligned and readable (no guard on such a stack).
            if !unsafe { slab::canary_intact(bottom) } {
                overflow::report_overflow_and_abort(self.usable, OverflowSite::Canary(bottom));
            }
        }
    }
}

// SAFETY: `base` is the top of a slot (page-aligned, so STACK_ALIGNMENT-aligned) and `limit` its
// bottom, guard included; the memory stays mapped while `self.slab` is held. The slot's lowest
// page is a guard (MADV or mprotect) except for `GuardKind::Canary` stacks, the documented
// best-effort fallback used only when the VMA budget is exhausted on kernels without
// MADV_GUARD_INSTALL. At least MIN_STACK_SIZE usable bytes (enforced by `StackPool::new`).
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

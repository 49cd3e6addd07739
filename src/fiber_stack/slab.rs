//! Slab mappings and guard installation.
//!
//! A [`SlabMapping`] is one `MAP_NORESERVE` anonymous mapping cut into equal slots, one stack
//! each. It is shared (`Arc`) by every stack carved from it and unmapped when the last one goes.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::overflow::{self, with_context};
use super::GuardKind;

/// `MADV_GUARD_INSTALL` (Linux 6.13+): turn a range into guard pages without a new VMA.
/// Not (yet) in the `libc` crate.
pub(crate) const MADV_GUARD_INSTALL: libc::c_int = 102;

/// A limit on `mprotect` guards, shared by the pools that draw on it: each such guard splits a
/// slab's memory area (about two more entries of `vm.max_map_count`), so their number must stay
/// well below that limit. The process has one (see [`GuardBudget::process`]); tests make tiny
/// ones to reach the "no guard left" path on a kernel that has `MADV_GUARD_INSTALL`.
#[derive(Debug)]
pub(crate) struct GuardBudget {
    /// Most guards that may exist at once.
    limit: usize,
    /// Guards that exist now (taken by [`SlabMapping::install_guard`], given back when their
    /// slab is unmapped).
    used: AtomicUsize,
}

impl GuardBudget {
    /// A budget of `limit` guards.
    pub(crate) const fn new(limit: usize) -> GuardBudget {
        GuardBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The process's budget: a quarter of `vm.max_map_count` (read once), so that guards use
    /// at most half of the map count and the rest stays for everything else (heap, threads,
    /// files, ...).
    pub(crate) fn process() -> &'static GuardBudget {
        static BUDGET: OnceLock<GuardBudget> = OnceLock::new();
        BUDGET.get_or_init(|| {
            let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(65530);
            GuardBudget::new(max / 4)
        })
    }

    /// Most guards that may exist at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Guards that exist now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes one guard from the budget, if any is left.
    fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives `n` guards back.
    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Whether `MADV_GUARD_INSTALL` works on this kernel, probed once per process.
pub(crate) fn madv_guard_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let page = super::page_size();
        // SAFETY: a fresh two-page private anonymous mapping, unmapped below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        // SAFETY: advises on the first page of our own mapping.
        let ok = unsafe { libc::madvise(p, page, MADV_GUARD_INSTALL) } == 0;
        // SAFETY: unmaps exactly the probe mapping.
        unsafe { libc::munmap(p, 2 * page) };
        ok
    })
}

/// Which guards a pool may install: the process defaults, or forced ones in tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardPolicy {
    /// Try `MADV_GUARD_INSTALL` first.
    pub(crate) madvise: bool,
    /// Where `mprotect` guards are counted and limited.
    pub(crate) budget: &'static GuardBudget,
}

impl GuardPolicy {
    /// The best this process can do: MADV guards if the kernel has them, else mprotect guards
    /// within the process's budget.
    pub(crate) fn detect() -> Self {
        GuardPolicy {
            madvise: madv_guard_supported(),
            budget: GuardBudget::process(),
        }
    }
}

/// One `mmap`ed region carved into stack slots.
#[derive(Debug)]
pub(crate) struct SlabMapping {
    /// Lowest address of the mapping.
    base: usize,
    /// Length of the mapping in bytes.
    len: usize,
    /// Entry in the overflow handler's registry, if it had room.
    registry: Option<usize>,
    /// Where this slab's mprotect guards were counted (given back when it is unmapped).
    budget: &'static GuardBudget,
    /// mprotect guards installed in this slab.
    mprotect_guards: AtomicUsize,
}

impl SlabMapping {
    /// Maps `slots` slots of `slot` bytes each (`guard` of them a guard at each slot's bottom)
    /// and registers the range with the overflow handler. mprotect guards installed in it are
    /// counted in `budget`.
    pub(crate) fn map(
        slot: usize,
        slots: usize,
        guard: usize,
        budget: &'static GuardBudget,
    ) -> io::Result<Arc<Self>> {
        let len = slot.checked_mul(slots).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "fiber stack slab size overflows",
            )
        })?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected. With
        // MAP_NORESERVE nothing is committed until touched.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            return Err(with_context(
                err,
                &format!("mmap of a {len}-byte slab ({slots} stacks of {slot} bytes)"),
            ));
        }
        // No transparent huge pages: with THP set to `always`, the first touch of a 2 MiB
        // stretch of the slab not yet holding a guard could fault in a huge page, 2 MiB of RSS
        // for one stack page. A flag on the whole mapping: no split, no new memory area. Advice
        // only, so a failure (a kernel without THP) changes nothing.
        // SAFETY: advises on exactly the mapping just created; no data lives there yet.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        let base = p as usize;
        Ok(Arc::new(SlabMapping {
            base,
            len,
            registry: overflow::register(base, base + len, slot, guard),
            budget,
            mprotect_guards: AtomicUsize::new(0),
        }))
    }

    /// Lowest address of the mapping.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Installs the guard for the slot starting at `bottom` (`guard` bytes) with the best kind
    /// `policy` allows. `None` when no guard can be had (no `MADV_GUARD_INSTALL`, and the
    /// mprotect budget is spent or the kernel's map count ran out): the slot must not be used.
    pub(crate) fn install_guard(
        &self,
        bottom: usize,
        guard: usize,
        policy: GuardPolicy,
    ) -> Option<GuardKind> {
        debug_assert!(bottom >= self.base && bottom + guard <= self.base + self.len);
        debug_assert!(ptr::eq(policy.budget, self.budget));
        if policy.madvise {
            // SAFETY: `[bottom, bottom + guard)` is the unused guard area of a slot in our
            // mapping; no live data is there.
            if unsafe { libc::madvise(bottom as *mut _, guard, MADV_GUARD_INSTALL) } == 0 {
                return Some(GuardKind::GuardPage);
            }
        }
        if !self.budget.take() {
            return None;
        }
        // SAFETY: as above, the slot's guard area holds no data.
        if unsafe { libc::mprotect(bottom as *mut _, guard, libc::PROT_NONE) } == 0 {
            self.mprotect_guards.fetch_add(1, Ordering::Relaxed);
            return Some(GuardKind::Mprotect);
        }
        // ENOMEM: the map count ran out anyway. Give the budget back; no guard.
        self.budget.give_back(1);
        None
    }
}

impl Drop for SlabMapping {
    fn drop(&mut self) {
        if let Some(idx) = self.registry {
            overflow::unregister(idx);
        }
        // SAFETY: unmaps exactly our mapping; every stack carved from it held an `Arc` to this
        // slab, so none is alive any more.
        let rc = unsafe { libc::munmap(self.base as *mut _, self.len) };
        debug_assert_eq!(rc, 0, "munmap of a fiber stack slab failed");
        // The guards are gone with the mapping: their map entries are free again.
        self.budget
            .give_back(self.mprotect_guards.load(Ordering::Relaxed));
    }
}

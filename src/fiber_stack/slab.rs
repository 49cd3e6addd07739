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

/// Magic words written at the bottom of the usable stack of a [`GuardKind::Canary`] stack.
pub(crate) const CANARY: [u64; 4] = [
    0x7a73_796e_635f_6361, // "zsync_ca"
    0xdead_beef_cafe_f00d,
    0x0123_4567_89ab_cdef,
    0xfeed_face_8bad_f00d,
];

/// mprotect guards currently installed in this process (each costs about 2 VMAs).
static MPROTECT_GUARDS: AtomicUsize = AtomicUsize::new(0);

/// mprotect guards currently installed in this process.
pub(crate) fn mprotect_guards_in_use() -> usize {
    MPROTECT_GUARDS.load(Ordering::Relaxed)
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

/// How many mprotect guards the process may hold: each splits a VMA (about 2 more map entries),
/// and half of `vm.max_map_count` stays for everything else (heap, threads, files, ...).
pub(crate) fn default_mprotect_budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(65530);
        max / 4
    })
}

/// Which guards a pool may install: the process defaults, or forced ones in tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardPolicy {
    /// Try `MADV_GUARD_INSTALL` first.
    pub(crate) madvise: bool,
    /// Install mprotect guards while fewer than this many exist process-wide.
    pub(crate) mprotect_budget: usize,
}

impl GuardPolicy {
    /// The best this process can do: MADV guards if the kernel has them, else mprotect guards
    /// within the VMA budget, else canaries.
    pub(crate) fn detect() -> Self {
        GuardPolicy {
            madvise: madv_guard_supported(),
            mprotect_budget: default_mprotect_budget(),
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
    /// mprotect guards installed in this slab (returned to the budget when it is unmapped).
    mprotect_guards: AtomicUsize,
}

impl SlabMapping {
    /// Maps `slots` slots of `slot` bytes each (`guard` of them a guard at each slot's bottom)
    /// and registers the range with the overflow handler.
    pub(crate) fn map(slot: usize, slots: usize, guard: usize) -> io::Result<Arc<Self>> {
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
        let base = p as usize;
        Ok(Arc::new(SlabMapping {
            base,
            len,
            registry: overflow::register(base, base + len, slot, guard),
            mprotect_guards: AtomicUsize::new(0),
        }))
    }

    /// Lowest address of the mapping.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Installs the guard for the slot starting at `bottom` (`guard` bytes) with the best kind
    /// `policy` allows, or writes the canary just above it. Returns the kind obtained.
    pub(crate) fn install_guard(
        &self,
        bottom: usize,
        guard: usize,
        policy: GuardPolicy,
    ) -> GuardKind {
        debug_assert!(bottom >= self.base && bottom + guard <= self.base + self.len);
        if policy.madvise {
            // SAFETY: `[bottom, bottom + guard)` is the unused guard area of a slot in our
            // mapping; no live data is there.
            if unsafe { libc::madvise(bottom as *mut _, guard, MADV_GUARD_INSTALL) } == 0 {
                return GuardKind::GuardPage;
            }
        }
        let reserved = MPROTECT_GUARDS
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < policy.mprotect_budget).then_some(n + 1)
            })
            .is_ok();
        if reserved {
            // SAFETY: as above, the slot's guard area holds no data.
            if unsafe { libc::mprotect(bottom as *mut _, guard, libc::PROT_NONE) } == 0 {
                self.mprotect_guards.fetch_add(1, Ordering::Relaxed);
                return GuardKind::Mprotect;
            }
            // ENOMEM: the map count ran out anyway. Give the budget back, use a canary.
            MPROTECT_GUARDS.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: the canary goes at the bottom of the slot's usable stack, inside our mapping
        // and writable (no guard was installed).
        unsafe { write_canary(bottom + guard) };
        GuardKind::Canary
    }
}

/// Writes [`CANARY`] at `addr`.
///
/// # Safety
///
/// `addr` must be 8-aligned and `size_of_val(&CANARY)` bytes there must be writable and not in
/// use by anything else.
pub(crate) unsafe fn write_canary(addr: usize) {
    for (i, w) in CANARY.iter().enumerate() {
        // SAFETY: guaranteed by the caller; volatile so the stores are not elided.
        unsafe { ptr::write_volatile((addr as *mut u64).add(i), *w) };
    }
}

/// Whether the [`CANARY`] at `addr` is intact.
///
/// # Safety
///
/// `addr` must be 8-aligned and `size_of_val(&CANARY)` bytes there must be readable.
pub(crate) unsafe fn canary_intact(addr: usize) -> bool {
    CANARY.iter().enumerate().all(|(i, w)| {
        // SAFETY: guaranteed by the caller; volatile since a fiber may have written it.
        unsafe { ptr::read_volatile((addr as *const u64).add(i)) == *w }
    })
}

impl Drop for SlabMapping {
    fn drop(&mut self) {
        if let Some(idx) = self.registry {
            overflow::unregister(idx);
        }
        MPROTECT_GUARDS.fetch_sub(
            self.mprotect_guards.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        // SAFETY: unmaps exactly our mapping; every stack carved from it held an `Arc` to this
        // slab, so none is alive any more.
        let rc = unsafe { libc::munmap(self.base as *mut _, self.len) };
        debug_assert_eq!(rc, 0, "munmap of a fiber stack slab failed");
    }
}

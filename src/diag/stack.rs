//! A finished fiber's stack high-water mark (feature `profile`).
//!
//! A fiber stack starts as zeroed memory: fresh slots are new anonymous pages, and released
//! ones read as zeros again (`MADV_DONTNEED`, see [`crate::fiber_stack`]). A recycled one is
//! not re-zeroed by the pool (that is what keeps a spawn cheap), so while a runtime profiles,
//! the worker re-zeroes what each finished fiber dirtied, right here. Then the lowest non-zero
//! word of a finished fiber's stack is the deepest it went (a frame that wrote only zeros
//! down there is missed: the mark is a lower bound, short by less than a frame).
//!
//! Scanning from the bottom up would touch every page of a 256 KiB stack, most of them never
//! mapped (a read fault each, microseconds on a VM). `mincore` says which pages are resident:
//! only those can hold a non-zero word, so the scan starts at the lowest resident page and
//! usually reads a page or two. Cost per finished fiber, only while profiling: one `mincore`,
//! a scan of the used bytes' page, and a `memset` of the used bytes (a few KiB).
//!
//! A stack dirtied before profiling was turned on (`Io::set_profiling` on a running runtime)
//! reports the deepest use of any fiber that ran on it since then: an overestimate, once.

use crate::fiber_stack::PooledStack;

/// Pages whose residency one `mincore` call asks for.
const CHUNK_PAGES: usize = 256;

/// Bytes used at most by the fiber that just returned on `stack` (from its top down to the
/// lowest non-zero word), and the stack's usable size; re-zeroes those bytes for the next
/// fiber.
pub(crate) fn high_water(stack: &PooledStack) -> (usize, usize) {
    let (bottom, top) = stack.usable_range();
    let size = top - bottom;
    let page = crate::fiber_stack::page_size();
    let lowest = lowest_dirty(bottom, top, page).unwrap_or(top);
    // SAFETY: `[lowest, top)` is part of the usable range of a stack no coroutine runs on any
    // more (its fiber returned and the coroutine was consumed by `into_stack`); the worker
    // owns it until it puts it back in the pool, after this call. Zeroed, not freed.
    unsafe { std::ptr::write_bytes(lowest as *mut u8, 0, top - lowest) };
    (top - lowest, size)
}

/// The address of the lowest non-zero word in `[bottom, top)`, looking only at resident pages.
fn lowest_dirty(bottom: usize, top: usize, page: usize) -> Option<usize> {
    let mut residency = [0u8; CHUNK_PAGES];
    let mut chunk = bottom;
    while chunk < top {
        let len = (top - chunk).min(CHUNK_PAGES * page);
        let pages = len.div_ceil(page);
        // SAFETY: `[chunk, chunk + len)` is within the stack's usable range (mapped, page
        // aligned: slots are carved in whole pages) and `residency` has room for `pages`.
        let rc = unsafe { libc::mincore(chunk as *mut libc::c_void, len, residency.as_mut_ptr()) };
        for (i, &resident) in residency[..pages].iter().enumerate() {
            if rc == 0 && resident & 1 == 0 {
                continue; // never touched since mapped or released: zero
            }
            let start = chunk + i * page;
            let end = (start + page).min(top);
            let mut word = start;
            while word < end {
                // SAFETY: a mapped, readable word of the stack's usable range (the guard page
                // lies below `bottom`); volatile, since no Rust object lives there any more.
                if unsafe { std::ptr::read_volatile(word as *const usize) } != 0 {
                    return Some(word);
                }
                word += std::mem::size_of::<usize>();
            }
        }
        chunk += len;
    }
    None
}

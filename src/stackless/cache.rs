//! Per-thread caches of freed frames, by size class: what makes a future task's spawn and
//! completion cost no allocator call in steady state.
//!
//! ```text
//!   Frame::new(layout)                                    last reference dropped (any thread)
//!        │                                                               │
//!        ▼  class_of(layout)                                             ▼  class_of(layout)
//!   ┌──────────────┐  hit   ┌───────────────────────────┐   push   ┌──────────────────────┐
//!   │ this thread's│◀───────│ class 7 (768 B): ▣─▣─▣─∅  │◀─────────│ that thread's cache, │
//!   │ cache, class │        │ (intrusive list, ≤ keep)  │          │ if it has one and    │
//!   └──────────────┘        └───────────────────────────┘          │ the class has room   │
//!        │ miss, no cache, too big or over-aligned                 └──────────────────────┘
//!        ▼                                                                   │ otherwise
//!   global allocator (class layout for a class-sized frame)      global allocator (same layout)
//! ```
//!
//! - **Classes.** A frame of at most [`MAX`] bytes and alignment at most [`ALIGN`] belongs to the
//!   smallest class that holds it: 64 B, 96 B, 128 B, 192 B … 3 KiB, 4 KiB (powers of two and the
//!   half-way points between them, so at most a third of a block is slack). Its block is always
//!   allocated with the class's layout, whichever thread allocates it and whether or not that
//!   thread has a cache, so any thread can keep it or return it to the global allocator.
//!   Larger or over-aligned frames use the global allocator with their own layout.
//! - **Bounded.** A class keeps at most [`keep`] blocks (about 16 KiB of them, at least 4, at
//!   most 64); a block freed into a full class goes back to the global allocator. After a spike
//!   (100k tasks spawned, then finished) a thread holds at most its caps: 172 KiB if every
//!   class were full, typically one class's 16 KiB.
//! - **Opt-in, per thread.** Only threads that run tasks have a cache: a model's worker enables
//!   it for as long as its loop runs ([`enable`]), and the cache is emptied when the last such
//!   scope ends (before the worker's thread exits). Anywhere else (a thread of the user's, a
//!   waker fired from a foreign thread) frames come from and go to the global allocator
//!   directly.
//! - **Nothing runs on the way.** [`alloc`](fn@alloc) and [`free`] touch only the thread's own lists: no
//!   lock, no atomic, no user code, no allocation (the lists are threaded through the free
//!   blocks themselves). Memory reaches [`free`] only from the last reference of a frame (see
//!   [`super::frame`]), after its value was dropped: nothing can touch it any more.
//!
//! Under AddressSanitizer (`--cfg zsync_asan`, see `ci/asan.sh`) a cached block is poisoned
//! apart from its link word, so a use after the last release is still reported even though
//! the memory has not gone back to the allocator.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};

/// Number of size classes.
const CLASSES: usize = 13;
/// The smallest class's block size.
const MIN: usize = 64;
/// The largest class's block size: bigger frames bypass the cache.
pub(crate) const MAX: usize = 4096;
/// Alignment of every class block: what the system allocator gives for free (16 on x86_64).
/// A frame that needs more bypasses the cache.
pub(crate) const ALIGN: usize = 16;
/// About how many bytes of free blocks one class keeps.
const CLASS_BUDGET: usize = 16 * 1024;

/// Block size of class `i`: `64 << i/2` for even `i`, `96 << i/2` for odd `i`.
const fn class_size(i: usize) -> usize {
    if i.is_multiple_of(2) {
        MIN << (i / 2)
    } else {
        (MIN + MIN / 2) << (i / 2)
    }
}

/// How many free blocks class `i` keeps at most.
pub(crate) const fn keep(i: usize) -> usize {
    let n = CLASS_BUDGET / class_size(i);
    if n < 4 {
        4
    } else if n > 64 {
        64
    } else {
        n
    }
}

/// [`keep`] of every class, computed once (no division on the free path).
const KEEP: [usize; CLASSES] = {
    let mut keeps = [0; CLASSES];
    let mut i = 0;
    while i < CLASSES {
        keeps[i] = keep(i);
        i += 1;
    }
    keeps
};

/// The layout of class `i`'s blocks.
fn class_layout(i: usize) -> Layout {
    // SAFETY: `ALIGN` is a power of two and every class size is a multiple of it, far below
    // `isize::MAX`.
    unsafe { Layout::from_size_align_unchecked(class_size(i), ALIGN) }
}

/// The class a frame of `layout` belongs to, if any (see the module docs).
#[inline]
pub(crate) fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if layout.align() > ALIGN || size > MAX {
        return None;
    }
    if size <= MIN {
        return Some(0);
    }
    // `size` is in (64, 4096]: between 2^(k-1) and 2^k, with k in 7..=12.
    let k = usize::BITS - (size - 1).leading_zeros();
    let upper = 2 * (k as usize - 6);
    let half_way = 3usize << (k - 2);
    Some(if size <= half_way { upper - 1 } else { upper })
}

/// One thread's cache. Every field is touched only by its thread, and no method calls out
/// (no user code, no allocation), so plain `Cell`s suffice.
struct Cache {
    /// Open [`enable`] scopes on this thread: the cache keeps blocks only while this is > 0.
    users: Cell<usize>,
    /// Head of each class's free list: a free block's first word is the next one's address.
    heads: [Cell<*mut u8>; CLASSES],
    /// Length of each class's free list.
    counts: [Cell<usize>; CLASSES],
}

thread_local! {
    /// This thread's cache: const-initialized and without a destructor, so that reaching it
    /// is a plain thread-local access (no lazy-init or teardown-state check). It holds blocks
    /// only while a [`Scope`] lives, and the last scope's end empties it: a thread leaves
    /// nothing behind (a worker's scope ends with its loop, before the thread exits).
    static CACHE: Cache = const {
        Cache {
            users: Cell::new(0),
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            counts: [const { Cell::new(0) }; CLASSES],
        }
    };
}

impl Cache {
    /// A free block of `class`, if the cache has one.
    #[inline]
    fn pop(&self, class: usize) -> Option<NonNull<u8>> {
        let head = NonNull::new(self.heads[class].get())?;
        asan::unpoison(head, class_size(class));
        // SAFETY: `head` is a block of `class` that `push` put on this list: unused, at least
        // `MIN` bytes, aligned to `ALIGN`, its first word holding the next block's address.
        let next = unsafe { head.cast::<*mut u8>().as_ptr().read() };
        self.heads[class].set(next);
        self.counts[class].set(self.counts[class].get() - 1);
        Some(head)
    }

    /// Keeps `block` of `class` if this thread caches and the class has room; gives it back
    /// otherwise.
    #[inline]
    fn push(&self, class: usize, block: NonNull<u8>) -> Result<(), NonNull<u8>> {
        let count = self.counts[class].get();
        if self.users.get() == 0 || count >= KEEP[class] {
            return Err(block);
        }
        // SAFETY: `block` is a whole block of `class` (`free`'s contract), nobody else's any
        // more, so its first word may hold the link.
        unsafe {
            block
                .cast::<*mut u8>()
                .as_ptr()
                .write(self.heads[class].get())
        };
        self.heads[class].set(block.as_ptr());
        self.counts[class].set(count + 1);
        asan::poison(block, class_size(class));
        Ok(())
    }

    /// Gives every cached block back to the global allocator.
    fn flush(&self) {
        for class in 0..CLASSES {
            while let Some(block) = self.pop(class) {
                // SAFETY: every block on a list was allocated with its class's layout.
                unsafe { alloc::dealloc(block.as_ptr(), class_layout(class)) };
            }
        }
    }
}

/// Memory for a frame of `layout` (whose size is never zero): from this thread's cache when it
/// has a block of the frame's class, else from the global allocator.
#[inline]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    let layout = match class_of(layout) {
        Some(class) => {
            if let Some(block) = CACHE.with(|c| c.pop(class)) {
                return block;
            }
            class_layout(class)
        }
        None => layout,
    };
    // SAFETY: `layout` has a non-zero size (a class's, or the caller's).
    let p = unsafe { alloc::alloc(layout) };
    NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Frees the memory of a frame of `layout`: into this thread's cache if it has one and the
/// class has room, else to the global allocator.
///
/// # Safety
/// `block` came from [`alloc`](fn@alloc) with the same `layout`, and nothing will touch it again: the
/// frame's value was dropped and no reference to the frame is left.
#[inline]
pub(crate) unsafe fn free(block: NonNull<u8>, layout: Layout) {
    let (block, layout) = match class_of(layout) {
        Some(class) => match CACHE.with(|c| c.push(class, block)) {
            Ok(()) => return,
            Err(block) => (block, class_layout(class)),
        },
        None => (block, layout),
    };
    // SAFETY: `alloc` allocated `block` with exactly this layout (the class's for a class-sized
    // frame, the frame's own otherwise), and the caller is done with it.
    unsafe { alloc::dealloc(block.as_ptr(), layout) };
}

/// Keeps this thread's cache on while alive: what a model's worker holds for as long as its
/// loop runs. Scopes nest; when the last one ends, the cache is emptied.
#[must_use = "the cache is on only while the scope lives"]
pub(crate) struct Scope(());

/// Turns this thread's frame cache on until the returned scope is dropped (see the module
/// docs).
pub(crate) fn enable() -> Scope {
    CACHE.with(|c| c.users.set(c.users.get() + 1));
    Scope(())
}

impl Drop for Scope {
    fn drop(&mut self) {
        CACHE.with(|c| {
            let users = c.users.get().saturating_sub(1);
            c.users.set(users);
            if users == 0 {
                c.flush();
            }
        });
    }
}

/// Bytes held in this thread's cache (for tests).
#[cfg(all(test, not(loom)))]
pub(crate) fn cached_bytes() -> usize {
    CACHE.with(|c| {
        (0..CLASSES)
            .map(|i| c.counts[i].get() * class_size(i))
            .sum()
    })
}

/// Telling AddressSanitizer that a cached block is off limits (see the module docs).
#[cfg(zsync_asan)]
mod asan {
    use std::ptr::NonNull;

    extern "C" {
        fn __asan_poison_memory_region(addr: *const u8, size: usize);
        fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
    }

    /// Poisons `block` but for its first word (the free list's link).
    pub(super) fn poison(block: NonNull<u8>, size: usize) {
        let word = std::mem::size_of::<usize>();
        // SAFETY: ASan's interface; the range lies inside the block, which the cache owns.
        unsafe { __asan_poison_memory_region(block.as_ptr().add(word), size - word) };
    }

    /// Makes `block` usable again.
    pub(super) fn unpoison(block: NonNull<u8>, size: usize) {
        // SAFETY: as above.
        unsafe { __asan_unpoison_memory_region(block.as_ptr(), size) };
    }
}

#[cfg(not(zsync_asan))]
mod asan {
    use std::ptr::NonNull;

    #[inline(always)]
    pub(super) fn poison(_: NonNull<u8>, _: usize) {}

    #[inline(always)]
    pub(super) fn unpoison(_: NonNull<u8>, _: usize) {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_small_size_with_at_most_a_third_of_slack() {
        assert_eq!(class_size(CLASSES - 1), MAX);
        let mut last = 0;
        for size in 1..=MAX {
            let class = class_of(Layout::from_size_align(size, 8).unwrap()).unwrap();
            assert!(class_size(class) >= size, "{size} fits its class");
            assert!(
                class == 0 || class_size(class - 1) < size,
                "{size}: smallest class"
            );
            assert!(class >= last);
            last = class;
            if size > MIN {
                assert!(
                    class_size(class) * 2 <= size * 3,
                    "{size}: slack below a third"
                );
            }
        }
        assert_eq!(class_of(Layout::from_size_align(MAX + 1, 8).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(64, 32).unwrap()), None);
    }

    #[test]
    fn a_thread_without_a_scope_keeps_nothing() {
        std::thread::spawn(|| {
            let layout = Layout::from_size_align(200, 8).unwrap();
            let p = alloc(layout);
            // SAFETY: just allocated with this layout, never used.
            unsafe { free(p, layout) };
            assert_eq!(cached_bytes(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_scope_recycles_blocks_up_to_the_cap_and_empties_the_cache_when_it_ends() {
        std::thread::spawn(|| {
            let layout = Layout::from_size_align(200, 8).unwrap();
            let class = class_of(layout).unwrap();
            let scope = enable();
            let p = alloc(layout);
            // SAFETY: just allocated with this layout, never used.
            unsafe { free(p, layout) };
            assert_eq!(cached_bytes(), class_size(class));
            assert_eq!(alloc(layout), p, "the freed block is reused");
            // SAFETY: as above.
            unsafe { free(p, layout) };
            let many: Vec<_> = (0..keep(class) + 10).map(|_| alloc(layout)).collect();
            for p in many {
                // SAFETY: as above.
                unsafe { free(p, layout) };
            }
            assert_eq!(cached_bytes(), keep(class) * class_size(class));
            drop(scope);
            assert_eq!(cached_bytes(), 0);
        })
        .join()
        .unwrap();
    }

    /// Under ASan, a cached block is off limits but for its link word, and usable again once
    /// handed out.
    #[cfg(zsync_asan)]
    #[test]
    fn a_cached_block_is_poisoned_under_asan() {
        extern "C" {
            fn __asan_address_is_poisoned(addr: *const u8) -> i32;
        }
        std::thread::spawn(|| {
            let layout = Layout::from_size_align(200, 8).unwrap();
            let _scope = enable();
            let p = alloc(layout);
            // SAFETY: just allocated with this layout, never used.
            unsafe { free(p, layout) };
            // SAFETY: ASan's interface, asked about addresses inside the cached block.
            unsafe {
                assert_eq!(__asan_address_is_poisoned(p.as_ptr()), 0, "the link word");
                assert_eq!(__asan_address_is_poisoned(p.as_ptr().add(64)), 1);
            }
            let q = alloc(layout);
            assert_eq!(q, p);
            // SAFETY: as above.
            assert_eq!(unsafe { __asan_address_is_poisoned(q.as_ptr().add(64)) }, 0);
            // SAFETY: allocated with this layout just above.
            unsafe { free(q, layout) };
        })
        .join()
        .unwrap();
    }
}

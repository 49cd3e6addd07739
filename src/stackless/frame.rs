//! A future task's one allocation, reference-counted by hand so that its memory can go back to
//! a per-thread cache ([`super::cache`]) instead of the global allocator.
//!
//! `Arc` cannot: on stable Rust it always allocates from, and frees to, the global allocator.
//! A [`Frame<T>`] is the same idea (a count in front of the value, `Clone` adds one, the last
//! `Drop` drops the value and frees the memory) with the memory coming from, and going back to,
//! [`cache::alloc`] and [`cache::free`]:
//!
//! ```text
//!   Block<FutureCell<F>>  (repr(C), one allocation, from the cache's size class)
//!   ┌──────────┬───────────────────────────────────────────────────────┐
//!   │ refs     │ value: the cell (core, sched word, the future inline) │
//!   └──────────┴───────────────────────────────────────────────────────┘
//!   ▲ every reference points here: the task handle, each queue entry, each owning waker
//!     (its data pointer, no allocation per waker), each cancellation-tree link to the node
//! ```
//!
//! The references that type-erase the cell (`Runnable`, `Task<T>`, `NodeRef`) hold a
//! [`CellRef`]: either a closure task's `Arc` or a future task's `Frame`, both of a trait
//! object, so everything that reads a cell through a trait is unchanged.
//!
//! The count follows `Arc`'s protocol: increments are `Relaxed` (a new reference is made from
//! one the caller holds), the decrement is `Release`, and the one that reaches zero issues an
//! `Acquire` fence before dropping the value, so every use through any other reference
//! happens-before the drop and the free. The memory is freed only then: nothing can touch it
//! once it is back in a cache. The value's drop runs inside [`contain::catch`]: a cell may
//! still hold user code's values (a never-polled future, a joiner's waker); a panic there is
//! dropped quietly after the memory is freed, never unwound into whoever held the last
//! reference, and the memory is freed exactly once either way.
//!
//! The count is a [`crate::loom`] atomic; the loom model at the end of this file checks that
//! concurrent clones and drops release the value exactly once, after every use.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use super::cache;
use crate::cancel::NodeOwner;
use crate::contain;
use crate::loom::sync::atomic::{fence, AtomicUsize, Ordering};
use crate::task::{Joinable, Run};

/// References beyond this abort the process (as `Arc`'s do): the count cannot overflow.
const MAX_REFS: usize = isize::MAX as usize;

/// A frame's allocation: the count, then the value.
#[repr(C)]
pub(crate) struct Block<T: ?Sized> {
    refs: AtomicUsize,
    value: T,
}

/// An owning reference to a value in a pooled, reference-counted allocation (see the module
/// docs). `T` may be a trait object: the erasing conversions below make one.
pub(crate) struct Frame<T: ?Sized> {
    /// Points at a live `Block<T>` for which this reference counts one.
    ptr: NonNull<Block<T>>,
    _owns: PhantomData<Block<T>>,
}

// SAFETY: as `Arc<T>`: the value is shared between threads (`Sync`) and dropped by whichever
// thread drops the last reference (`Send`).
unsafe impl<T: ?Sized + Send + Sync> Send for Frame<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for Frame<T> {}

impl<T> Frame<T> {
    /// Moves `value` into a new frame (memory from this thread's cache when it can).
    pub(crate) fn new(value: T) -> Frame<T> {
        let block = cache::alloc(Layout::new::<Block<T>>()).cast::<Block<T>>();
        // SAFETY: `cache::alloc` returned memory fit for this layout, unused by anyone.
        unsafe {
            block.as_ptr().write(Block {
                refs: AtomicUsize::new(1),
                value,
            })
        };
        Frame {
            ptr: block,
            _owns: PhantomData,
        }
    }

    /// This frame's thin pointer, without giving up the reference.
    pub(crate) fn as_raw(this: &Frame<T>) -> NonNull<()> {
        this.ptr.cast()
    }

    /// Takes back a reference given up by [`into_thin`](Self::into_thin) (or made by
    /// [`increment`](Self::increment)).
    ///
    /// # Safety
    /// `p` is a frame of this `T`, and the caller owns one count of it, which the result takes.
    pub(crate) unsafe fn from_raw(p: NonNull<()>) -> Frame<T> {
        Frame {
            ptr: p.cast(),
            _owns: PhantomData,
        }
    }

    /// Adds a reference to the frame `p`, for a later [`from_raw`](Self::from_raw).
    ///
    /// # Safety
    /// `p` is a live frame of this `T`: the caller holds a reference to it for the call.
    pub(crate) unsafe fn increment(p: NonNull<()>) {
        // SAFETY: the frame is live (the contract).
        let block = unsafe { p.cast::<Block<T>>().as_ref() };
        acquire(&block.refs);
    }

    /// The value of the frame `p`, borrowed.
    ///
    /// # Safety
    /// `p` is a frame of this `T`, live for `'a`.
    pub(crate) unsafe fn value<'a>(p: NonNull<()>) -> &'a T {
        // SAFETY: the frame is live for `'a` (the contract).
        unsafe { &p.cast::<Block<T>>().as_ref().value }
    }
}

impl<T: ?Sized> Frame<T> {
    /// Gives up this reference as a thin pointer to the block, whatever `T` is (a trait object
    /// loses its metadata: the receiver must know the concrete type).
    pub(crate) fn into_thin(this: Frame<T>) -> NonNull<()> {
        let p = this.ptr.cast();
        std::mem::forget(this);
        p
    }

    fn block(&self) -> &Block<T> {
        // SAFETY: this reference keeps the block alive.
        unsafe { self.ptr.as_ref() }
    }

    /// Rebuilds a reference from an erased pointer to the same block.
    fn erased<U: ?Sized>(this: Frame<T>, ptr: NonNull<Block<U>>) -> Frame<U> {
        std::mem::forget(this);
        Frame {
            ptr,
            _owns: PhantomData,
        }
    }
}

/// Erasing conversions: the same block, seen through a trait (the pointer coerces; only the
/// static type changes, and with it where the value's `Drop` is found: its vtable).
impl<T: Run + 'static> Frame<T> {
    pub(crate) fn into_run(this: Frame<T>) -> Frame<dyn Run> {
        let ptr: NonNull<Block<dyn Run>> = this.ptr;
        Frame::erased(this, ptr)
    }
}

impl<T: NodeOwner> Frame<T> {
    pub(crate) fn into_node(this: Frame<T>) -> Frame<dyn NodeOwner> {
        let ptr: NonNull<Block<dyn NodeOwner>> = this.ptr;
        Frame::erased(this, ptr)
    }
}

impl<T: 'static> Frame<T> {
    pub(crate) fn into_joinable<O>(this: Frame<T>) -> Frame<dyn Joinable<O>>
    where
        T: Joinable<O>,
    {
        let ptr: NonNull<Block<dyn Joinable<O>>> = this.ptr;
        Frame::erased(this, ptr)
    }
}

/// One more reference on `refs`, which the caller holds one of (so it cannot be freed meanwhile).
#[inline]
fn acquire(refs: &AtomicUsize) {
    // Relaxed, as `Arc::clone`: the new reference is made from one the caller holds, which
    // keeps the block alive; what the new one reads was published to the caller already.
    if refs.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
        std::process::abort();
    }
}

impl<T: ?Sized> Clone for Frame<T> {
    fn clone(&self) -> Frame<T> {
        acquire(&self.block().refs);
        Frame {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for Frame<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.block().value
    }
}

impl<T: ?Sized> Drop for Frame<T> {
    #[inline]
    fn drop(&mut self) {
        // Release: this reference's uses happen-before the drop of the value, which the last
        // one's Acquire fence orders after every such decrement.
        if self.block().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero: this was the last reference, and none can be made
        // any more (a new one is made only from a live one).
        unsafe { release(self.ptr) };
    }
}

/// Drops the value and frees the block.
///
/// # Safety
/// No reference to the block is left, and none will be made.
#[cold]
unsafe fn release<T: ?Sized>(block: NonNull<Block<T>>) {
    // SAFETY: the block is still whole (its value not yet dropped), and nobody else uses it.
    let layout = Layout::for_value(unsafe { block.as_ref() });
    // The value may still hold user code's values: contained (see the module docs). A panic
    // in one field's drop still drops the others (drop glue goes on while unwinding).
    // SAFETY: the value is live and ours alone; it is dropped exactly once, here.
    let dropped =
        contain::catch(|| unsafe { ptr::drop_in_place(&raw mut (*block.as_ptr()).value) });
    // SAFETY: the value is gone (dropped, or its drop unwound after dropping every field) and
    // no reference is left: the memory is nobody's; `cache::alloc` gave it with this layout.
    unsafe { cache::free(block.cast(), layout) };
    if let Err(payload) = dropped {
        contain::drop_payload(payload);
    }
}

/// An owning reference to a task's cell, type-erased as `D`: a closure task's `Arc`, or a
/// future task's pooled [`Frame`].
///
/// Kept as the value's pointer, tagged with its owner, rather than as an enum of the two smart
/// pointers: reading the cell (every `Deref`: each step of a cancellation walk, each handle
/// poll) is the pointer with one bit masked, no branch and no offset to compute, and the
/// reference is two words, as an `Arc<dyn …>` was (a queue entry stays that small). Only
/// `Clone` and `Drop` look at the owner.
pub(crate) struct CellRef<D: ?Sized> {
    /// The value's address, plus [`FRAME_TAG`] when a [`Frame`] owns it (else an `Arc`): the
    /// value is `Arc::into_raw` of an `Arc`, or the `value` field of a frame's block, and
    /// this reference counts one on its owner. Both put the value at an address that is a
    /// multiple of 8 (after an `Arc`'s two counts, std's layout, or a frame's one, in blocks
    /// aligned to at least 8), so the tag bit is free (a unit test checks std's side).
    tagged: NonNull<D>,
}

/// The low bit of [`CellRef::tagged`]: set for a frame.
const FRAME_TAG: usize = 1;

// SAFETY: as the `Arc<D>` or `Frame<D>` it stands for (both `Send + Sync` for such `D`).
unsafe impl<D: ?Sized + Send + Sync> Send for CellRef<D> {}
// SAFETY: as above.
unsafe impl<D: ?Sized + Send + Sync> Sync for CellRef<D> {}

impl<D: ?Sized> CellRef<D> {
    /// Takes over an `Arc`'s reference.
    pub(crate) fn from_arc(arc: Arc<D>) -> CellRef<D> {
        let value = Arc::into_raw(arc).cast_mut();
        debug_assert_eq!(value.addr() & FRAME_TAG, 0);
        CellRef {
            // SAFETY: `Arc::into_raw` never returns null.
            tagged: unsafe { NonNull::new_unchecked(value) },
        }
    }

    /// Takes over a frame's reference.
    pub(crate) fn from_frame(frame: Frame<D>) -> CellRef<D> {
        let block = frame.ptr;
        std::mem::forget(frame);
        // SAFETY: `block` is live (the reference just taken over); the projection keeps the
        // whole block's provenance, which `block_of` relies on to go back.
        let value = unsafe { &raw mut (*block.as_ptr()).value };
        debug_assert_eq!(value.addr() & FRAME_TAG, 0);
        CellRef {
            // SAFETY: a field of a non-null block, plus a tag bit: still non-null.
            tagged: unsafe { NonNull::new_unchecked(value.map_addr(|a| a | FRAME_TAG)) },
        }
    }

    /// Whether a frame owns the value.
    #[inline]
    fn is_frame(&self) -> bool {
        self.tagged.as_ptr().addr() & FRAME_TAG != 0
    }

    /// The value's pointer, untagged.
    #[inline]
    fn value(&self) -> *mut D {
        self.tagged.as_ptr().map_addr(|a| a & !FRAME_TAG)
    }

    /// The frame block of a frame-owned reference.
    fn block_of(&self) -> NonNull<Block<D>> {
        debug_assert!(self.is_frame());
        let value = self.value();
        // `value` sits after the count, at the count's size rounded up to the value's
        // alignment (`repr(C)`; alignments are powers of two).
        // SAFETY: the value is live (this reference).
        let align = std::mem::align_of_val(unsafe { &*value });
        let offset = (std::mem::size_of::<AtomicUsize>() + align - 1) & !(align - 1);
        // SAFETY: `value` was projected from its block (`from_frame`), with the block's
        // provenance; stepping back by the field's offset gives the block, and the cast keeps
        // the metadata (the same trait object's).
        unsafe { NonNull::new_unchecked(value.byte_sub(offset) as *mut Block<D>) }
    }

    /// Gives up this reference as a frame, or as an `Arc`.
    pub(crate) fn into_owner(self) -> Result<Frame<D>, Arc<D>> {
        let this = std::mem::ManuallyDrop::new(self);
        if this.is_frame() {
            Ok(Frame {
                ptr: this.block_of(),
                _owns: PhantomData,
            })
        } else {
            // SAFETY: the untagged value came from `Arc::into_raw`, and this reference's count
            // moves to the rebuilt `Arc`.
            Err(unsafe { Arc::from_raw(this.value()) })
        }
    }

    /// The cell's address (its value's): identifies the task across its references.
    #[inline]
    pub(crate) fn addr(&self) -> *const () {
        self.value().cast_const().cast()
    }
}

impl<D: ?Sized> Clone for CellRef<D> {
    #[inline]
    fn clone(&self) -> CellRef<D> {
        if self.is_frame() {
            // SAFETY: the block is live (this reference).
            acquire(unsafe { &self.block_of().as_ref().refs });
        } else {
            // SAFETY: the untagged value came from `Arc::into_raw` and the `Arc` is live (this
            // reference); the new reference takes the new count.
            unsafe { Arc::increment_strong_count(self.value()) };
        }
        CellRef {
            tagged: self.tagged,
        }
    }
}

impl<D: ?Sized> Drop for CellRef<D> {
    #[inline]
    fn drop(&mut self) {
        // `into_owner` rebuilds the owner from this reference's count (taken over from
        // `self`, whose fields need no drop); dropping the owner releases it.
        drop(
            CellRef {
                tagged: self.tagged,
            }
            .into_owner(),
        );
    }
}

impl<D: ?Sized> Deref for CellRef<D> {
    type Target = D;

    #[inline]
    fn deref(&self) -> &D {
        // SAFETY: this reference keeps the value alive.
        unsafe { &*self.value() }
    }
}

/// Loom model of the reference count: `RUSTFLAGS="--cfg loom" cargo test --lib loom_models`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::cell::UnsafeCell;
    use crate::loom::model::model;
    use crate::loom::sync::Arc as LoomArc;
    use ::loom::thread;

    /// Writes through its cell on every use and on drop (loom flags a use racing the drop),
    /// and counts its drops.
    struct Probe {
        uses: UnsafeCell<usize>,
        drops: LoomArc<AtomicUsize>,
    }

    // SAFETY: test-only: every access goes through loom's checked cell, which reports any
    // unsynchronized pair of accesses instead of letting it pass.
    unsafe impl Sync for Probe {}

    impl Probe {
        fn touch(&self) {
            // SAFETY: loom checks the access.
            self.uses.with_mut(|u| unsafe { *u += 1 });
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.touch();
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Two threads clone and drop references to one frame while the owner uses it and drops
    /// its own: the value is dropped exactly once, after the use (loom reports a use racing
    /// the drop as a data race on the probe's cell).
    #[test]
    fn the_last_reference_releases_exactly_once_after_every_use() {
        model(|| {
            let drops = LoomArc::new(AtomicUsize::new(0));
            let frame = Frame::new(Probe {
                uses: UnsafeCell::new(0),
                drops: drops.clone(),
            });
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let mine = frame.clone();
                    thread::spawn(move || {
                        let again = mine.clone();
                        drop(mine);
                        drop(again);
                    })
                })
                .collect();
            frame.touch();
            drop(frame);
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }

    /// A reference sent to another thread as a raw pointer (a waker's data) and taken back
    /// there: the value is released once, on whichever side drops last.
    #[test]
    fn a_raw_reference_taken_back_on_another_thread_releases_once() {
        model(|| {
            let drops = LoomArc::new(AtomicUsize::new(0));
            let frame = Frame::new(Probe {
                uses: UnsafeCell::new(0),
                drops: drops.clone(),
            });
            // SAFETY: `frame` is live; the count made here is taken back below.
            unsafe { Frame::<Probe>::increment(Frame::as_raw(&frame)) };
            let raw = Frame::as_raw(&frame).as_ptr() as usize;
            let t = thread::spawn(move || {
                let p = NonNull::new(raw as *mut ()).unwrap();
                // SAFETY: the count made above is this thread's to take back.
                let mine = unsafe { Frame::<Probe>::from_raw(p) };
                mine.touch();
                drop(mine);
            });
            drop(frame);
            t.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::stackless::cell::FutureCell;

    /// A future task with a small future (here a ready `usize`: 16 bytes) takes one block of
    /// the 256-byte class: 240 bytes today (the count, the `Core` of 184, the scheduling word
    /// and the future). A cell that grows past the class costs every task 128 bytes more.
    /// The `tracing` and `profile` features add one pointer to a task's `Meta`
    /// (`diag::hooks::TaskDiag`): the class is the default build's promise, so the pointer
    /// is taken off before the check.
    #[test]
    fn a_small_future_task_fits_the_256_byte_class() {
        let diag = std::mem::size_of::<crate::diag::hooks::TaskDiagSize>();
        let layout = Layout::new::<Block<FutureCell<std::future::Ready<usize>>>>();
        let size = layout.size() - diag;
        assert!(size <= 256, "{size} bytes (+{diag} of diagnostics)");
        let without = Layout::from_size_align(size, layout.align()).unwrap();
        assert_eq!(
            cache::class_of(without),
            cache::class_of(Layout::new::<[u64; 32]>())
        );
    }

    /// A cell reference finds its frame's block again from the value's pointer, whatever the
    /// value's alignment (the count is followed by padding up to it), and releases it once.
    #[test]
    fn a_cell_ref_to_an_over_aligned_value_finds_its_block() {
        use std::sync::atomic::AtomicUsize as Count;
        #[repr(align(64))]
        struct Wide(u8, Arc<Count>);
        impl Drop for Wide {
            fn drop(&mut self) {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let drops = Arc::new(Count::new(0));
        let frame = Frame::new(Wide(7, drops.clone()));
        let block = frame.ptr.cast::<u8>();
        let cell = CellRef::from_frame(frame);
        assert_eq!(cell.0, 7);
        assert_eq!(cell.addr() as usize - block.as_ptr() as usize, 64);
        let other = cell.clone();
        drop(cell);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 0);
        match other.into_owner() {
            Ok(frame) => assert_eq!(frame.ptr.cast::<u8>(), block),
            Err(_) => panic!("a frame's reference gives back a frame"),
        }
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// The tag bit of a `CellRef` is free for an `Arc` of a byte-aligned value too: std puts
    /// an `Arc`'s value after its two counts. (Were that to change, this fails, and so does
    /// the `debug_assert` in `CellRef::from_arc`.)
    #[test]
    fn an_arc_of_a_byte_aligned_value_leaves_the_tag_bit_free() {
        struct Unit;
        let arcs: Vec<Arc<dyn Anything>> = (0..16)
            .map(|_| Arc::new(Unit) as Arc<dyn Anything>)
            .chain((0..16).map(|i| Arc::new(i as u8) as Arc<dyn Anything>))
            .collect();
        for a in arcs {
            assert_eq!(Arc::as_ptr(&a).cast::<u8>().addr() & FRAME_TAG, 0);
            let cell = CellRef::from_arc(a);
            assert!(!cell.is_frame());
            drop(cell.clone());
        }
    }
    trait Anything {}
    impl<T> Anything for T {}

    /// A value whose drop panics: the panic is contained, and the memory freed exactly once
    /// (ASan and the allocation tests would see a leak or a double free).
    #[test]
    fn a_panicking_drop_of_the_last_reference_is_contained_and_frees_once() {
        struct Boom;
        impl Drop for Boom {
            fn drop(&mut self) {
                panic!("boom in drop");
            }
        }
        let frame = Frame::new((Boom, vec![1u8; 100]));
        let other = frame.clone();
        drop(frame);
        drop(other); // the last: drops `Boom` (panics, contained), then the Vec, then frees
    }
}

//! Allocation accounting: what a zsync value allocates, it frees.
//!
//! A counting global allocator keeps each thread's live heap bytes; a test measures them around
//! a value's whole life. LeakSanitizer (`ci/asan.sh`) finds the same leaks, but only on nightly;
//! these run in every `cargo test`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

use zsync::bufio::Writer;

/// [`System`], counting the live bytes allocated and freed by each thread.
struct Counting;

thread_local! {
    // Const-initialized and without a destructor: usable from inside the allocator.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the same arguments; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// `Writer::into_inner` used to drop the buffer and return the sink but never free the block a
/// short splat slice is copied into (found by LeakSanitizer): about 4 KiB per writer.
#[test]
fn writer_into_inner_frees_the_splat_block() {
    let before = live();
    let mut w = Writer::with_capacity(16, Vec::new());
    w.write_all(b"key=").unwrap();
    // One byte repeated more than 16 times: copied into the splat block.
    assert_eq!(w.drain(&[b"0"], 1000).unwrap(), 1000);
    assert!(
        live() - before > 1000 + 16,
        "the sink, the buffer and the splat block are allocated"
    );
    let sink = w.into_inner().map_err(|(e, _)| e).unwrap();
    assert_eq!(sink.len(), 4 + 1000);
    drop(sink);
    assert_eq!(live() - before, 0, "bytes left allocated");
}

/// The same writer dropped instead of unwrapped frees everything too.
#[test]
fn writer_dropped_frees_everything() {
    let before = live();
    let mut w = Writer::with_capacity(16, Vec::new());
    w.drain(&[b"-"], 1000).unwrap();
    drop(w);
    assert_eq!(live() - before, 0, "bytes left allocated");
}

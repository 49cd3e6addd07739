//! A small per-thread cache of buffers for [`Reader`](super::Reader) and
//! [`Writer`](super::Writer), which hold their buffer only while it has bytes in it.
//!
//! A connection's reader and writer are empty most of the time: between requests, and while
//! the task waits for its client. Holding a buffer then costs its touched pages for every idle
//! connection; giving it back to the allocator and asking again for the next request costs an
//! allocation (and, for a reader, zeroing) per request. This cache sits between the two: an
//! emptied buffer goes onto its thread's list and the next one of the same size taken on that
//! thread is that buffer again, pages still committed, with no allocator call. So the buffers
//! in use at once are about as many as the requests being *worked on* at once, not as many as
//! the connections.
//!
//! Bounds: at most [`MAX_POOLED_BYTES`] per thread and per kind (read buffers, write buffers);
//! a buffer returned beyond that, larger than [`MAX_POOLED_BUFFER`] or smaller than
//! [`MIN_POOLED_BUFFER`], is freed. So after a
//! load spike a thread keeps a bounded cache, whatever the spike was.
//!
//! Read buffers are kept fully initialised (zeroed once, when first allocated) so that a
//! [`Reader`](super::Reader) can hand them to any [`Read`](std::io::Read) as `&mut [u8]`; write
//! buffers are plain `Vec`s, kept empty.
//!
//! Thread-locals: a fiber never parks while it holds the cache's `RefCell` borrowed (taking or
//! returning is a push or a pop), and a buffer taken on one thread may be returned on another
//! (a stackless task that moved): it simply joins that thread's cache. During thread-local
//! destruction the cache is gone and buffers go straight to the allocator.

use std::cell::RefCell;

/// Most bytes of buffers of one kind a thread keeps for reuse.
pub(crate) const MAX_POOLED_BYTES: usize = 256 * 1024;
/// The largest buffer kept for reuse; larger ones are freed when returned.
pub(crate) const MAX_POOLED_BUFFER: usize = 64 * 1024;
/// The smallest buffer kept for reuse: smaller ones cost the allocator little (its own
/// per-thread cache serves them) and are freed when returned.
pub(crate) const MIN_POOLED_BUFFER: usize = 1024;

/// One thread's cached buffers.
struct Pool {
    /// Zero-initialised read buffers (every byte initialised), most recently returned last.
    read: Vec<Box<[u8]>>,
    /// Sum of `read`'s lengths.
    read_bytes: usize,
    /// Empty write buffers (`len() == 0`), most recently returned last.
    write: Vec<Vec<u8>>,
    /// Sum of `write`'s capacities.
    write_bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            read: Vec::new(),
            read_bytes: 0,
            write: Vec::new(),
            write_bytes: 0,
        })
    };
}

/// A read buffer of exactly `len` bytes, all initialised: a cached one if this thread has one
/// of that size, else a fresh zeroed allocation.
pub(crate) fn take_read(len: usize) -> Box<[u8]> {
    let cached = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let i = p.read.iter().rposition(|b| b.len() == len)?;
            let b = p.read.swap_remove(i);
            p.read_bytes -= b.len();
            Some(b)
        })
        .ok()
        .flatten();
    cached.unwrap_or_else(|| vec![0; len].into_boxed_slice())
}

/// Returns a read buffer to this thread's cache (or frees it when the cache is full, the
/// buffer is too large, or the thread is exiting).
pub(crate) fn give_read(buf: Box<[u8]>) {
    if !(MIN_POOLED_BUFFER..=MAX_POOLED_BUFFER).contains(&buf.len()) {
        return;
    }
    let _ = POOL.try_with(move |p| {
        let mut p = p.borrow_mut();
        if p.read_bytes + buf.len() <= MAX_POOLED_BYTES {
            p.read_bytes += buf.len();
            p.read.push(buf);
        }
    });
}

/// An empty write buffer with a capacity of exactly `cap` bytes: a cached one if this thread
/// has one of that capacity, else a fresh allocation.
pub(crate) fn take_write(cap: usize) -> Vec<u8> {
    let cached = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let i = p.write.iter().rposition(|b| b.capacity() == cap)?;
            let b = p.write.swap_remove(i);
            p.write_bytes -= b.capacity();
            Some(b)
        })
        .ok()
        .flatten();
    cached.unwrap_or_else(|| Vec::with_capacity(cap))
}

/// Returns a write buffer (emptied first) to this thread's cache, or frees it.
pub(crate) fn give_write(mut buf: Vec<u8>) {
    let cap = buf.capacity();
    if !(MIN_POOLED_BUFFER..=MAX_POOLED_BUFFER).contains(&cap) {
        return;
    }
    buf.clear();
    let _ = POOL.try_with(move |p| {
        let mut p = p.borrow_mut();
        if p.write_bytes + cap <= MAX_POOLED_BYTES {
            p.write_bytes += cap;
            p.write.push(buf);
        }
    });
}

/// Bytes of read and write buffers this thread keeps cached (for tests).
#[cfg(test)]
pub(crate) fn cached_bytes() -> (usize, usize) {
    POOL.with(|p| {
        let p = p.borrow();
        (p.read_bytes, p.write_bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a spike of buffers, a thread keeps a bounded cache; the rest go to the allocator.
    #[test]
    fn a_spike_of_buffers_leaves_a_bounded_cache() {
        let (r0, w0) = cached_bytes();
        let reads: Vec<_> = (0..200).map(|_| take_read(16 * 1024)).collect();
        let writes: Vec<_> = (0..200).map(|_| take_write(16 * 1024)).collect();
        reads.into_iter().for_each(give_read);
        writes.into_iter().for_each(give_write);
        let (r, w) = cached_bytes();
        assert!(r <= MAX_POOLED_BYTES && w <= MAX_POOLED_BYTES, "{r} {w}");
        assert!(r > r0 && w > w0, "some are kept for reuse");
        // Reuse: the cached buffers come back, initialised (read) or empty (write).
        let b = take_read(16 * 1024);
        assert_eq!(b.len(), 16 * 1024);
        let v = take_write(16 * 1024);
        assert!(v.is_empty() && v.capacity() == 16 * 1024);
        assert_eq!(cached_bytes(), (r - 16 * 1024, w - 16 * 1024));
        give_read(b);
        give_write(v);
        // Small and huge buffers are never kept.
        give_read(vec![0; 100].into_boxed_slice());
        give_write(Vec::with_capacity(1 << 20));
        assert_eq!(cached_bytes(), (r, w));
    }
}

//! Allocation accounting: what a zsync value allocates, it frees; what a hot path should not
//! allocate, it does not.
//!
//! A counting global allocator keeps each thread's live heap bytes and allocation calls; a test
//! measures them around a value's whole life, or around a loop on one worker thread.
//! LeakSanitizer (`ci/asan.sh`) finds the same leaks, but only on nightly; these run in every
//! `cargo test`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use zsync::bufio::Writer;
use zsync::{Backend, Builder, Io, Model};

/// [`System`], counting the live bytes allocated and freed by each thread.
struct Counting;

thread_local! {
    // Const-initialized and without a destructor: usable from inside the allocator.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

/// Live bytes of the whole process (every thread's allocations and frees).
static TOTAL: AtomicIsize = AtomicIsize::new(0);

/// Held by every test here, so that one reading [`TOTAL`] sees only its own allocations.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn count(delta: isize) {
    TOTAL.fetch_add(delta, Ordering::Relaxed);
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

/// One more call that hands out memory (`alloc`, `alloc_zeroed`, `realloc`).
fn call() {
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Allocator calls made by this thread so far.
fn calls() -> usize {
    CALLS.with(Cell::get)
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
        call();
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        call();
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
        call();
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// `Writer::into_inner` used to drop the buffer and return the sink but never free the block a
/// short splat slice is copied into (found by LeakSanitizer): about 4 KiB per writer.
#[test]
fn writer_into_inner_frees_the_splat_block() {
    let _serial = serial();
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
    let _serial = serial();
    let before = live();
    let mut w = Writer::with_capacity(16, Vec::new());
    w.drain(&[b"-"], 1000).unwrap();
    drop(w);
    assert_eq!(live() - before, 0, "bytes left allocated");
}

// Future tasks' frames: spawn + join of a small future allocates its frame once, cold, and
// never in steady state (the frame comes back through the worker's cache); after a spike the
// cache gives the memory back. Each runtime has one worker, so the spawns, the polls and the
// last references all happen on the one thread whose counters the test reads.

/// The Green builders with one worker, per backend (io_uring only where the kernel allows it).
fn green_builders() -> Vec<(&'static str, Builder)> {
    let mut builders = vec![("green_epoll", Backend::Epoll)];
    match Backend::IoUring.resolve() {
        Ok(_) => builders.push(("green_uring", Backend::IoUring)),
        Err(e) => eprintln!("skipped: green_uring: io_uring unavailable: {e}"),
    }
    builders
        .into_iter()
        .map(|(name, b)| {
            (
                name,
                Builder::new(Model::Green).backend(b).worker_threads(1),
            )
        })
        .collect()
}

/// One worker thread of the Threaded pool.
fn threaded() -> Builder {
    Builder::new(Model::Threaded).worker_threads(1)
}

const PAIRS: usize = 1000;

/// A future of a size class (about 2 KiB) that no task of the runtime used before: its spawn
/// finds the worker's cache empty for that class.
async fn cold_future(payload: [u8; 1500]) -> usize {
    zsync::task::yield_now().await;
    payload.iter().map(|&b| b as usize).sum()
}

/// Allocator calls of `n` spawn + join pairs from the calling fiber (`join` parks it).
fn join_pairs(io: &Io, n: usize) -> usize {
    let before = calls();
    for i in 0..n {
        assert_eq!(io.spawn_future(async move { i * 2 }).join().unwrap(), i * 2);
    }
    calls() - before
}

/// Allocator calls of `n` spawn + `.await` pairs from the calling future task.
async fn await_pairs(io: &Io, n: usize) -> usize {
    let before = calls();
    for i in 0..n {
        assert_eq!(io.spawn_future(async move { i + 1 }).await.unwrap(), i + 1);
    }
    calls() - before
}

/// From a future task: warm spawn + `.await` pairs allocate nothing, a cold one at most once.
async fn check_awaits(io: Io, name: &'static str) {
    // Warm up: the cache, the worker's deques, the parent's child bookkeeping.
    await_pairs(&io, 100).await;
    let warm = await_pairs(&io, PAIRS).await;
    assert_eq!(
        warm, 0,
        "{name}: {PAIRS} warm spawn_future + .await allocated"
    );
    // A child that waits registers with its parent for cancellation: the parent's list of
    // children is allocated once, by the first one. Have that happen before measuring.
    let waiting_child = io.spawn_future(async {
        zsync::task::yield_now().await;
        0
    });
    assert_eq!(waiting_child.await.unwrap(), 0);
    let before = calls();
    let cold = io.spawn_future(cold_future([1; 1500])).await.unwrap();
    assert_eq!(cold, 1500);
    let cold = calls() - before;
    assert!(
        cold <= 1,
        "{name}: a cold spawn_future + .await allocated {cold} times"
    );
}

#[test]
fn spawn_future_and_join_allocate_at_most_once_cold_and_never_warm_on_green() {
    let _serial = serial();
    for (name, builder) in green_builders() {
        builder.run(|io| {
            join_pairs(io, 100);
            let warm = join_pairs(io, PAIRS);
            assert_eq!(
                warm, 0,
                "{name}: {PAIRS} warm spawn_future + join allocated"
            );
            let io2 = io.clone();
            io.spawn_future(check_awaits(io2, name)).join().unwrap();
        });
    }
}

#[test]
fn spawn_future_and_await_allocate_at_most_once_cold_and_never_warm_on_a_threaded_worker() {
    let _serial = serial();
    threaded().run(|io| {
        // Driven by a future task, on the pool's thread (the caller of `run` is not one; a
        // closure task blocked in `join` there would leave the one worker to the monitor).
        let io2 = io.clone();
        io.spawn_future(check_awaits(io2, "threaded"))
            .join()
            .unwrap();
    });
}

const SPIKE: usize = 100_000;

/// Spawns `SPIKE` futures, all alive at once (nothing yields until all are spawned), and joins
/// them.
async fn spike(io: Io, name: &'static str) -> isize {
    let before = TOTAL.load(Ordering::Relaxed);
    let mut tasks = Vec::with_capacity(SPIKE);
    for i in 0..SPIKE {
        tasks.push(io.spawn_future(async move {
            zsync::task::yield_now().await;
            i
        }));
    }
    let peak = TOTAL.load(Ordering::Relaxed) - before;
    assert!(
        peak > (SPIKE * 128) as isize,
        "{name}: the spike holds {SPIKE} frames at once ({peak} bytes)"
    );
    let mut sum = 0;
    for t in tasks {
        sum += t.await.unwrap();
    }
    assert_eq!(sum, SPIKE * (SPIKE - 1) / 2);
    peak
}

/// Runs [`spike`] as a task of its own and checks that, once it is over, the process' live
/// bytes are back to within the frame caches' bound of where they were.
async fn after_a_spike(io: Io, name: &'static str) {
    // Warm up first, so that what is allocated once (queues, the cache's first blocks) is in
    // the baseline.
    await_pairs(&io, 100).await;
    let before = TOTAL.load(Ordering::Relaxed);
    let peak = io.spawn_future(spike(io.clone(), name)).await.unwrap();
    // At most the caches' bound (172 KiB if every class were full; one class of a few KiB here)
    // and queue leftovers: tens of KiB, where the spike held tens of MiB.
    let after = TOTAL.load(Ordering::Relaxed) - before;
    assert!(
        after < 256 * 1024,
        "{name}: {after} bytes still held after a spike of {peak} bytes"
    );
}

#[test]
fn memory_returns_after_a_spike_of_future_tasks() {
    let _serial = serial();
    for (name, builder) in green_builders()
        .into_iter()
        .chain([("threaded", threaded())])
    {
        builder.run(|io| {
            let io2 = io.clone();
            io.spawn_future(after_a_spike(io2, name)).join().unwrap()
        });
    }
}

// Connection buffers: an idle connection holds no read or write buffer (on-demand `Reader`,
// `Writer`), and the buffers of a spike of busy connections come back when they end.

/// Connections served at once by [`idle_connections_hold_no_buffers`].
const CONNS: usize = 256;
/// Their read and write buffers' size.
const CONN_BUF: usize = 16 * 1024;

/// Serves `conns` connections from `listener`, each a task that answers one 4-byte request
/// through an on-demand `Reader` and a `Writer` of [`CONN_BUF`] bytes, then waits for the next
/// request (which never comes: the client closes). Returns once every connection has ended.
fn serve_once_then_idle(io: &Io, listener: zsync::net::TcpListener, conns: usize) {
    use std::io::Read;
    use zsync::bufio::Reader;
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (s, _) = listener.accept().unwrap();
            io.concurrent(move |_| -> std::io::Result<usize> {
                let mut r = Reader::on_demand(CONN_BUF, &s);
                let mut w = Writer::with_capacity(CONN_BUF, &s);
                let mut req = [0u8; 4];
                r.read_exact(&mut req)?;
                w.write_all(&req)?;
                w.flush()?;
                assert!(!r.holds_buffer() && !w.holds_buffer());
                // Idle: wait for a next request with no buffer; the client's close ends it.
                r.fill_more()
            })
            .unwrap()
        })
        .collect();
    for t in tasks {
        assert_eq!(t.join().unwrap().unwrap(), 0, "end of stream");
    }
}

/// [`CONNS`] connections each served one request and then idle, waiting for the next one: the
/// process's heap holds far less than one buffer per connection (it would hold two, 32 KiB,
/// with buffers kept for a connection's life); once they end, what they allocated is freed
/// except the per-thread buffer caches' bound.
#[test]
fn idle_connections_hold_no_buffers() {
    let _serial = serial();
    for (name, builder) in green_builders() {
        builder.run(|io| {
            use std::io::Read;
            let listener = zsync::net::TcpListener::bind(io, "127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let before = TOTAL.load(Ordering::Relaxed);
            let server = io
                .concurrent(move |io| serve_once_then_idle(io, listener, CONNS))
                .unwrap();
            let clients: Vec<zsync::net::TcpStream> = (0..CONNS)
                .map(|i| {
                    let mut c = zsync::net::TcpStream::connect(io, addr).unwrap();
                    let req = (i as u32).to_le_bytes();
                    c.write_all(&req).unwrap();
                    let mut got = [0u8; 4];
                    c.read_exact(&mut got).unwrap();
                    assert_eq!(got, req);
                    c
                })
                .collect();
            // Every connection has been answered: its task has given both buffers back.
            let idle = TOTAL.load(Ordering::Relaxed) - before;
            assert!(
                idle < (CONNS * CONN_BUF / 4) as isize,
                "{name}: {idle} bytes live with {CONNS} idle connections \
                 (buffers of {CONN_BUF} bytes each way)"
            );
            drop(clients);
            server.join().unwrap();
            // The per-thread caches keep at most 256 KiB of each kind.
            let after = TOTAL.load(Ordering::Relaxed) - before;
            assert!(
                after < 640 * 1024,
                "{name}: {after} bytes still held after {CONNS} connections ended"
            );
        });
    }
}

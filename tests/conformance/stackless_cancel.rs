//! Conformance tests: a future task's cancellation by an ancestor (see "Cancellation" in
//! `src/stackless/cell.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use zsync::Io;

/// Sets its flag when dropped: tells that a future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A future task whose parent is canceled (and finishes) while the task's first poll runs, before
/// the task could register with its ancestors: that cancel's push cannot reach it, and nothing
/// else ever wakes it (it awaits a future that never completes). It must still be dropped, by
/// its own registration seeing the canceled ancestor — not left parked for ever (then `run`
/// would never return).
fn future_task_canceled_by_its_parent_during_its_first_poll(io: &Io) {
    if !io.supports_concurrency() {
        return; // Blocking runs future tasks inline: no concurrent cancel is possible.
    }
    let (polling_tx, polling_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let parent = io.spawn_future(async move {
        let io = Io::current().expect("a future task runs with its Io");
        let child = io.spawn_future(async move {
            let _flag = flag;
            polling_tx.send(()).unwrap();
            // Block this poll (and its thread) until the parent was canceled; bounded, in case
            // the model cannot run the parent's cancellation meanwhile.
            let _ = go_rx.recv_timeout(Duration::from_secs(20));
            std::future::pending::<()>().await;
        });
        child.detach();
        std::future::pending::<()>().await;
    });
    // Cancel from a plain thread: the runtime's workers may be busy with the blocked poll.
    let canceler = std::thread::spawn(move || {
        polling_rx.recv().unwrap();
        let canceled = parent.cancel();
        go_tx.send(()).unwrap();
        canceled
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dropped.load(Ordering::SeqCst) && Instant::now() < deadline {
        io.sleep(Duration::from_millis(2)).unwrap();
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the orphaned future task was never dropped"
    );
    let canceled = canceler.join().unwrap();
    assert!(canceled.is_err(), "the parent was dropped by its cancel");
}

crate::conformance!(future_task_canceled_by_its_parent_during_its_first_poll);

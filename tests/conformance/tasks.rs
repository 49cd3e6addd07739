//! Conformance tests: tasks, groups, cancellation, time.

use zsync::Io;

fn spawn_join_returns_value(io: &Io) {
    let t = io.spawn(|_| 41 + 1);
    assert_eq!(t.join().unwrap(), 42);
}

conformance! {
    spawn_join_returns_value,
}

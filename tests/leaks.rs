//! Runs every conformance body on every model, one after another in this process, and checks that
//! no file descriptor and no thread outlives it.
//!
//! A separate test binary, so that no other test opens descriptors or starts threads meanwhile.

use zsync::Io;

/// In this binary a conformance module only lists its bodies; the per-model `#[test]`s live in
/// the `conformance` binary.
macro_rules! conformance {
    (on sim: $($sim:ident),* $(,)? ; not on sim: $($other:ident),* $(,)?) => {
        pub const ALL: &[(&str, fn(&Io))] =
            &[$((stringify!($sim), $sim),)* $((stringify!($other), $other)),*];
    };
    ($($name:ident),* $(,)?) => {
        pub const ALL: &[(&str, fn(&Io))] = &[$((stringify!($name), $name)),*];
    };
}

/// Tests with a runtime of their own are left out here.
macro_rules! standalone {
    ($($item:item)*) => {};
}

#[path = "conformance/support/mod.rs"]
#[allow(unused_macros)]
mod support;

#[path = "conformance/async_events.rs"]
mod async_events;
#[path = "conformance/async_io.rs"]
mod async_io;
#[path = "conformance/async_pipe.rs"]
mod async_pipe;
#[path = "conformance/async_sock_owned.rs"]
mod async_sock_owned;
#[path = "conformance/broadcast.rs"]
mod broadcast;
#[path = "conformance/broken_pipe.rs"]
mod broken_pipe;

#[path = "conformance/async_fs.rs"]
mod async_fs;
#[path = "conformance/bufio.rs"]
mod bufio;
#[path = "conformance/channel.rs"]
mod channel;
#[path = "conformance/dns.rs"]
mod dns;
#[path = "conformance/fs.rs"]
mod fs;
#[path = "conformance/green.rs"]
mod green;
#[path = "conformance/interval.rs"]
mod interval;
#[path = "conformance/pipe.rs"]
mod pipe;
#[path = "conformance/pool.rs"]
mod pool;
#[path = "conformance/process.rs"]
mod process;
#[path = "conformance/select.rs"]
mod select;
#[path = "conformance/shared_fd.rs"]
mod shared_fd;
#[path = "conformance/signal.rs"]
mod signal;
#[path = "conformance/socket_timeouts.rs"]
mod socket_timeouts;
#[path = "conformance/stackless.rs"]
mod stackless;
#[path = "conformance/sync.rs"]
mod sync;
#[path = "conformance/task_api.rs"]
mod task_api;
#[path = "conformance/tasks.rs"]
mod tasks;
#[path = "conformance/tcp.rs"]
mod tcp;
#[path = "conformance/transfer.rs"]
mod transfer;
#[path = "conformance/udp.rs"]
mod udp;
#[path = "conformance/unix.rs"]
mod unix;
#[path = "conformance/watch.rs"]
mod watch;

/// A conformance module's bodies, by name.
type Suite = &'static [(&'static str, fn(&Io))];

use support::{open_fds, quiescent_thread_count, settled_thread_count};

#[test]
fn the_whole_suite_leaks_no_fd_and_no_thread() {
    let suites: &[(&str, Suite)] = &[
        ("tasks", tasks::ALL),
        ("stackless", stackless::ALL),
        ("task_api", task_api::ALL),
        ("channel", channel::ALL),
        ("fs", fs::ALL),
        ("green", green::ALL),
        ("select", select::ALL),
        ("shared_fd", shared_fd::ALL),
        ("socket_timeouts", socket_timeouts::ALL),
        ("tcp", tcp::ALL),
        ("udp", udp::ALL),
        ("unix", unix::ALL),
        ("dns", dns::ALL),
        ("sync", sync::ALL),
        ("broken_pipe", broken_pipe::ALL),
        ("async_fs", async_fs::ALL),
        ("bufio", bufio::ALL),
        ("transfer", transfer::ALL),
        ("pipe", pipe::ALL),
        ("process", process::ALL),
        ("signal", signal::ALL),
        ("watch", watch::ALL),
        ("broadcast", broadcast::ALL),
        ("interval", interval::ALL),
        ("async_events", async_events::ALL),
        ("async_io", async_io::ALL),
        ("async_pipe", async_pipe::ALL),
        ("async_sock_owned", async_sock_owned::ALL),
        ("pool", pool::ALL),
    ];
    // Each body runs on a fresh thread (as libtest would run it), so thread-local state such as
    // a thread's wake-up eventfd is released when the body ends, as it is in real programs.
    let run = |builder: fn() -> zsync::Builder, body: fn(&Io)| {
        std::thread::spawn(move || builder().worker_threads(2).run(body))
            .join()
            .unwrap()
    };
    // Warm up process-wide lazies (the resolver, std's runtime, the io_uring probe) before the
    // baseline.
    run(support::blocking, |_| ());
    if support::io_uring_unavailable().is_none() {
        run(support::green_uring, |_| ());
    }
    let fds_before = open_fds();
    let threads_before = quiescent_thread_count();
    let mut ran = 0;
    for (model_name, builder) in support::models() {
        for (suite, bodies) in suites {
            for (name, body) in bodies.iter() {
                run(builder, *body);
                ran += 1;
                assert_eq!(
                    settled_thread_count(threads_before),
                    threads_before,
                    "{suite}::{name} on {model_name} left a thread running after run() returned"
                );
            }
        }
    }
    assert!(ran > 0);
    let fds_after = open_fds();
    assert_eq!(fds_before, fds_after, "descriptors leaked by the suite");
}

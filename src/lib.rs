//! # zsync — colorblind async I/O for Rust, after Zig's `std.Io`
//!
//! Application code is plain Rust — `fn`, not `async fn` — that takes an injected [`Io`] handle.
//! The caller picks the execution model, and the same code runs unchanged on each:
//!
//! | model | how tasks run | `spawn` | `concurrent` |
//! |---|---|---|---|
//! | [`Model::Blocking`] | on the calling thread, direct syscalls | runs inline, at once | [`ConcurrencyUnavailable`] |
//! | [`Model::Threaded`] | work-stealing pool of OS threads | queued on the pool | a thread of its own |
//! | [`Model::Green`] | stackful fibers, M:N on worker threads with io_uring or epoll event loops ([`Backend`]); a wait parks the fiber, not the thread | queued on a worker (may run inline when joined) | a fiber of its own |
//! | [`Model::Custom`] | your [`CustomModel`]: you decide where tasks run | as your model decides | as your model decides |
//!
//! Code that must branch on the model compares [`Io::model`] (a [`ModelKind`]).
//!
//! ```
//! use std::io::{Read, Write};
//! use zsync::net::{TcpListener, TcpStream};
//! use zsync::{Io, Model};
//!
//! /// Colorblind: no `async`, no runtime type, just an `Io`.
//! fn echo_once(io: &Io, listener: &TcpListener) -> std::io::Result<()> {
//!     let (mut conn, _) = listener.accept()?;
//!     let mut buf = [0; 5];
//!     conn.read_exact(&mut buf)?;
//!     conn.write_all(&buf)
//! }
//!
//! for model in [Model::Blocking, Model::Threaded, Model::Green] {
//!     let reply = zsync::run(model, |io| -> std::io::Result<Vec<u8>> {
//!         let listener = TcpListener::bind(io, "127.0.0.1:0")?;
//!         let addr = listener.local_addr()?;
//!         let mut client = TcpStream::connect(io, addr)?; // queued in the kernel's backlog
//!         client.write_all(b"hello")?;
//!         let server = io.spawn(move |io| echo_once(io, &listener)); // may run inline
//!         server.try_join()?;
//!         let mut reply = vec![0; 5];
//!         client.read_exact(&mut reply)?;
//!         Ok(reply)
//!     });
//!     assert_eq!(reply.unwrap(), b"hello");
//! }
//! ```
//!
//! ## A long-lived runtime
//!
//! [`run`] is scoped: the runtime lives for one call. [`Runtime`] lives until it is shut down
//! or dropped, and is entered from any thread (Tokio's `Runtime`/`Handle`):
//!
//! ```
//! let rt = zsync::Runtime::new(zsync::Model::Green)?;
//! let handle = rt.handle();
//! let from_elsewhere = std::thread::spawn(move || handle.block_on(|io| {
//!     io.spawn(|_| 21).join().unwrap() * 2
//! }));
//! assert_eq!(from_elsewhere.join().unwrap(), 42);
//! assert!(rt.shutdown().is_complete()); // or drop(rt): cancels, waits, joins every thread
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Zig correspondence
//!
//! | Zig `std.Io` | zsync |
//! |---|---|
//! | `io.async(f)` | [`Io::spawn`] — may run inline |
//! | `io.concurrent(f)` | [`Io::concurrent`] — concurrent or [`ConcurrencyUnavailable`] |
//! | `future.await(io)` | [`Task::join`] |
//! | `future.cancel(io)` | [`Task::cancel`]; dropping a [`Task`] does the same |
//! | `error.Canceled` | [`is_canceled`] on the `io::Error` of any blocking operation |
//! | `Io.Group` | [`Group`] |
//! | `io.checkCancel()` | [`Io::check_canceled`] |
//! | `io.swapCancelProtection` | [`Io::shielded`] |
//! | `io.sleep` | [`Io::sleep`] |
//!
//! ## Cancellation
//!
//! [`Task::cancel`] (or dropping the handle) asks a task to stop. Its current or next blocking
//! operation — read, write, accept, connect, sleep, join — returns an `io::Error` for which
//! [`is_canceled`] is true, even if the task is already blocked in it. Canceling a task cancels
//! the tasks it spawned.
//!
//! ## Guides
//!
//! - [Getting started](https://github.com/zsync-io/zsync/blob/main/docs/guides/getting-started.md):
//!   a first program, tasks, sockets and files, cancellation and deadlines, channels.
//! - [Choosing a model](https://github.com/zsync-io/zsync/blob/main/docs/guides/choosing-a-model.md):
//!   the measured cost of each model and when fibers, threads or blocking fit.
//! - [Migrating from Tokio](https://github.com/zsync-io/zsync/blob/main/docs/guides/migrating-from-tokio.md):
//!   a table of equivalents and what behaves differently.
//! - [Coming from Zig's `std.Io`](https://github.com/zsync-io/zsync/blob/main/docs/guides/coming-from-zig.md).
//! - [Writing a custom model](https://github.com/zsync-io/zsync/blob/main/docs/guides/custom-model.md):
//!   [`CustomModel`], failure injection, a simulated clock.
//! - [Building a service with zsync](https://github.com/zsync-io/zsync/blob/main/docs/guides/building-a-service.md):
//!   the example applications (PostgreSQL through a pool, WebSocket chat, a file pipeline,
//!   microservices with deadlines, TLS, HTTP/3) and what to copy from each.
//! - [Testing with deterministic simulation](https://github.com/zsync-io/zsync/blob/main/docs/guides/testing-with-simulation.md):
//!   [`sim::Sim`], seeds, simulated time, finding and reproducing interleaving bugs.
//!
//! The guides live in `docs/guides/` in the repository; every Rust block in them runs as a
//! doctest.
//!
//! See `docs/ARCHITECTURE.md` for how a call flows from user code to the syscall.

#![warn(missing_docs)]
#![warn(missing_debug_implementations)]

// zsync is Linux-only today: say so before anything else fails. The OS-facing dependencies are
// Linux-only in Cargo.toml, so none fails to build first, and rustc reports a `compile_error!`
// (emitted while macros expand) before the unresolved names that follow it in the modules.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "zsync supports Linux only today. It is built on Linux interfaces with no port yet: \
     io_uring and epoll (the Green model's event loops), eventfd (waking a worker), \
     splice, sendfile and copy_file_range (zero-copy transfers), MADV_GUARD_INSTALL guard \
     pages and a SIGSEGV handler on an alternate stack (fiber stacks), /proc/self/task \
     (spotting blocked workers), and signalfd and pidfd (signals, child processes). \
     A port needs a kqueue (macOS, BSD) or IOCP (Windows) backend for each of them."
);

mod builder;
mod cancel;
mod clock;
mod contain;
mod context;
mod diag;
mod driver;
mod error;
mod event;
pub(crate) mod fiber_stack;
mod io;
mod loom;
mod model;
mod op;
mod park;
mod pipe;
mod runtime;
mod stackless;
mod stall;
#[cfg(test)]
mod test_waker;
mod wait;

pub mod bufio;
pub use diag::dump;
pub mod channel;
pub mod compat;
pub mod fs;
pub mod net;
pub mod pool;
pub mod process;
/// Profiles of a running program (feature `profile`): see [`Io::profile`] and
/// docs/debugging.md, "Profiles".
#[cfg(feature = "profile")]
pub mod profile {
    pub use crate::diag::report::{
        LockProfile, OpTime, Profile, SiteProfile, StackProfile, TaskProfile,
    };
}
pub mod select;
pub mod signal;
pub mod sim;
pub mod sync;
pub mod task;
pub mod time;
pub mod transfer;

pub use builder::{run, Builder};
pub use error::{
    canceled, is_canceled, is_closed, is_deadlock, is_timed_out, timed_out, Canceled, Closed,
    ConcurrencyUnavailable, Deadlock, Elapsed,
};
pub use event::Event;
pub use io::Io;
pub use model::green::Backend;
pub use model::{Completion, CustomModel, Model, ModelKind, Operation};
pub use pipe::{pipe, PipeReader, PipeWriter};
pub use runtime::{Handle, Runtime, ShutdownStatus};
pub use task::{Group, GroupPolicy, Runnable, Task};
pub use transfer::copy;

// The guides in docs/guides/ are doctests: every ```rust block in them is compiled and run by
// `cargo test --doc`. These items exist only for that; they are not part of the API.
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/getting-started.md")]
pub struct GuideGettingStarted;
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/choosing-a-model.md")]
pub struct GuideChoosingAModel;
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/migrating-from-tokio.md")]
pub struct GuideMigratingFromTokio;
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/coming-from-zig.md")]
pub struct GuideComingFromZig;
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/custom-model.md")]
pub struct GuideCustomModel;
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/building-a-service.md")]
pub struct GuideBuildingAService;
#[cfg(doctest)]
#[doc = include_str!("../docs/guides/testing-with-simulation.md")]
pub struct GuideTestingWithSimulation;
#[cfg(doctest)]
#[doc = include_str!("../docs/debugging.md")]
pub struct GuideDebugging;

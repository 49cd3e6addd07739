//! Seeing inside a running program: what each task waits on ([`wait_point`]), task dumps
//! ([`dump`], public as `zsync::dump`) and the dump-on-signal listener ([`on_signal`]).
//!
//! Everything here costs nothing until someone looks, beyond a few relaxed stores into memory
//! the task owns (its cancellation node) when it enters a blocking operation or sleeps.
//!
//! ## Crate-internal API (for detectors and profilers)
//!
//! - [`wait_point::note`] / [`wait_point::begin`] / [`wait_point::end`]: record what the
//!   running task waits in (see that module for who calls them);
//!   [`wait_point::current`]: the running task's [`WaitSnapshot`](wait_point::WaitSnapshot).
//! - A task's slot from anywhere: `node.wait.snapshot()` for any `NodeRef`/`CancelNode`.
//! - Live tasks: [`dump::collect`]`(io)` returns a full [`Dump`](dump::Dump) (tree walk, Green
//!   fibers traced at their workers' safe points, the caller); for a cheaper walk without
//!   stacks, `io.inner.root` and `CancelNode::registered_children` give every task that can
//!   sleep, `NodeRef::owner().task_meta()` its id, name and spawn site.

pub mod dump;
pub(crate) mod on_signal;
pub(crate) mod wait_point;

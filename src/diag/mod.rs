//! Seeing inside a running program: what each task waits on ([`wait_point`]), task dumps
//! ([`dump`], public as `zsync::dump`), the dump-on-signal listener ([`on_signal`]), `tracing`
//! spans and events per task (feature `tracing`) and profiles (feature `profile`).
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
//!
//! Everything the schedulers call for tracing and profiles lives in [`hooks`]: one `#[inline]`
//! function per event (spawn, a task entered or left, a fiber suspended or resumed, a thread
//! parked, a wake, a finish, a cancel, a lock wait, a fiber's end). Without either feature each
//! is an empty function and the per-task state (`hooks::TaskDiag`, `hooks::CtxDiag`) does not
//! exist, so the scheduler code compiles to what it was. With `profile` compiled in but not
//! enabled, an event costs one relaxed load of the runtime's flag (and a fiber's wake-up one
//! relaxed load of a process-wide count of enabled runtimes).
//!
//! - `trace` (feature `tracing`): the span of a task and its events.
//! - `record` (feature `profile`): where a profiled runtime adds up its figures, in shards so
//!   that workers do not share one lock.
//! - `clock` (feature `profile`): the profile's cheap timestamps (the TSC where the kernel
//!   trusts it).
//! - `stack` (feature `profile`): a finished fiber's stack high-water mark.
//! - `report` (feature `profile`): `Profile`, its text report, JSON, folded stacks and flame
//!   graph.
//!
//! The design and why it is this way: docs/ARCHITECTURE.md, "Observing a running program".

#[cfg(feature = "profile")]
pub(crate) mod clock;
pub mod dump;
pub(crate) mod hooks;
pub(crate) mod on_signal;
#[cfg(feature = "profile")]
pub(crate) mod record;
#[cfg(feature = "profile")]
pub(crate) mod report;
pub(crate) mod running;
#[cfg(feature = "profile")]
pub(crate) mod stack;
pub(crate) mod thread_trace;
#[cfg(feature = "tracing")]
pub(crate) mod trace;
pub(crate) mod wait_point;

/// A profile timestamp (see [`clock`]).
#[cfg(feature = "profile")]
pub(crate) use clock::now as now_ticks;

//! Seeing inside a running program: what each task waits on ([`wait_point`], for task dumps),
//! `tracing` spans and events per task (feature `tracing`) and profiles (feature `profile`).
//!
//! Wait points cost nothing until someone looks, beyond a few relaxed stores into memory the
//! task owns (its cancellation node) when it enters a blocking operation or sleeps.
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
//! - `stack` (feature `profile`): a finished fiber's stack high-water mark.
//! - `report` (feature `profile`): `Profile`, its text report, JSON, folded stacks and flame
//!   graph.
//!
//! The design and why it is this way: docs/ARCHITECTURE.md, "Observing a running program".

pub(crate) mod hooks;
#[cfg(feature = "profile")]
pub(crate) mod record;
#[cfg(feature = "profile")]
pub(crate) mod report;
#[cfg(feature = "profile")]
pub(crate) mod stack;
#[cfg(feature = "tracing")]
pub(crate) mod trace;
pub(crate) mod wait_point;

/// Nanoseconds since a process-wide epoch (the first call): a timestamp that fits an atomic.
/// Never 0 (0 means "none" wherever it is stored).
#[cfg(feature = "profile")]
#[inline]
pub(crate) fn now_ns() -> u64 {
    ns_since_epoch(std::time::Instant::now())
}

/// `at` as nanoseconds since the process-wide epoch (see [`now_ns`]).
#[cfg(feature = "profile")]
pub(crate) fn ns_since_epoch(at: std::time::Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| at - std::time::Duration::from_millis(1));
    (at.saturating_duration_since(epoch).as_nanos() as u64).max(1)
}

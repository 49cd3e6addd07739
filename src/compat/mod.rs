//! Adapters that run crates of the async ecosystem on zsync, each behind its own cargo feature.
//!
//! | module | feature | what it provides |
//! |---|---|---|
//! | [`quinn`] | `quinn` | a [`quinn::Runtime`](::quinn::Runtime): QUIC endpoints whose drivers are zsync future tasks |
//!
//! An adapter only connects a crate's runtime seam to zsync's future tasks
//! ([`Io::spawn_future`](crate::Io::spawn_future)), timers ([`zsync::time`](crate::time)) and
//! socket readiness; colorblind code then waits for the crate's futures with
//! [`Io::block_on`](crate::Io::block_on), on every model that runs tasks concurrently.

#[cfg(feature = "quinn")]
pub mod quinn;

// TEMPORARY: removed when the core and the driver are merged from main.
#[cfg(feature = "quinn")]
mod shim;

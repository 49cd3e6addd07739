//! Adapters that run crates of the async ecosystem on zsync, each behind a cargo feature named
//! after the crate.
//!
//! | module | feature | what it provides |
//! |---|---|---|
//! | `hyper` | `hyper` | hyper 1.x's `rt::{Executor, Timer, Read, Write}` |
//! | `quinn` | `quinn` | a `quinn::Runtime`: QUIC endpoints whose drivers are zsync future tasks |
//!
//! An adapter only connects a crate's runtime seam to zsync's future tasks
//! ([`Io::spawn_future`](crate::Io::spawn_future)), timers ([`zsync::time`](crate::time)) and
//! socket readiness; colorblind code then waits for the crate's futures with
//! [`Io::block_on`](crate::Io::block_on), on every model that runs tasks concurrently.

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "quinn")]
pub mod quinn;

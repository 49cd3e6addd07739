//! The async ecosystem on zsync: runtime traits of outside crates implemented with zsync's
//! future tasks, timers and readiness, each behind a cargo feature named after the crate.
//!
//! - [`hyper`] (feature `hyper`): hyper 1.x's `rt::{Executor, Timer, Read, Write}`.

#[cfg(feature = "hyper")]
pub mod hyper;

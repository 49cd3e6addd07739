//! Seeing inside a running program: what each task waits on ([`wait_point`]) and task dumps
//! ([`dump`], public as `zsync::dump`).
//!
//! Everything here costs nothing until someone looks, beyond a few relaxed stores into memory
//! the task owns (its cancellation node) when it enters a blocking operation or sleeps.

pub mod dump;
pub(crate) mod wait_point;

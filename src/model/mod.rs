//! The execution models. Each decides where tasks run; [`crate::io`] dispatches to them with one
//! `match`, and [`crate::park`] is how their tasks wait.
//!
//! - [`blocking`]: everything inline on the caller's thread.
//! - [`threaded`]: a work-stealing pool plus elastic threads for `concurrent` tasks.
//! - [`green`]: M:N stackful fibers on per-worker event loops.

pub(crate) mod blocking;
pub(crate) mod elastic;
pub(crate) mod green;
pub(crate) mod threaded;

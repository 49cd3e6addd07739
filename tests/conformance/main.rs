//! The conformance suite: every test body runs on every model (see `support::models`).

#[macro_use]
pub mod support;

mod dns;
mod fs;
mod sync;
mod tasks;
mod tcp;
mod udp;
mod unix;

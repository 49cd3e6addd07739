//! The conformance suite: every test body runs on every model (see `support::models`).

#[macro_use]
pub mod support;

mod bufio;
mod channel;
mod dns;
mod fs;
mod green;
mod pipe;
mod select;
mod shared_fd;
mod socket_timeouts;
mod sync;
mod task_api;
mod tasks;
mod tcp;
mod transfer;
mod udp;
mod unix;

//! The conformance suite: every test body runs on every model (see `support::models`).

#[macro_use]
pub mod support;

mod async_events;
mod async_io;
mod async_pipe;
mod async_sock_owned;
mod broadcast;
mod broken_pipe;

mod async_fs;
mod bufio;
mod channel;
mod dns;
mod fs;
mod green;
mod interval;
mod pipe;
mod pool;
mod process;
mod runtime;
mod select;
mod shared_fd;
mod signal;
mod socket_timeouts;
mod stackless;
mod sync;
mod task_api;
mod tasks;
mod tcp;
mod transfer;
mod udp;
mod unix;
mod watch;

//! Code shared by the example servers (`http_server`, `echo_server`), the load client and
//! `tests/servers.rs`, which includes this directory with `#[path]` so that the tests drive the
//! very server the examples run.
//!
//! - [`cli`]: a small `--flag value` parser and the runtime flags every program takes
//!   (`--model`, `--backend`, `--workers`, `--max-threads`).
//! - [`server`]: the accept loop (one task per connection, inline when the model refuses
//!   concurrency), the stop switch and the counters.
//! - [`http`]: the HTTP/1.1 connection handler and its routes.
//! - [`echo`]: the TCP echo handler.
//! - [`tls`]: HTTPS: rustls around the same HTTP handler, certificates.

// Each program uses a subset of this module; the tests use another.
#![allow(dead_code)]

pub mod cli;
pub mod echo;
pub mod http;
pub mod server;
pub mod tls;

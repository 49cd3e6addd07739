//! The simulation's tests, in one binary (one build of the examples' code they include):
//!
//! - `determinism`: determinism, virtual time, seed search, the simulated disk;
//! - `net`: hosts, the simulated network, partitions, crashes, futures, shrinking;
//! - `apps`: the echo and HTTP example servers and the pool under faults, and a planted bug;
//! - `microservices` (feature `hyper`): examples/microservices, one service per host.
//!
//! Nothing here measures real time: the only real-time bound is a generous watchdog.

#[path = "../support/watchdog.rs"]
mod watchdog;

#[path = "../../examples/common/mod.rs"]
mod common;

#[cfg(feature = "hyper")]
#[path = "../../examples/microservices/breaker.rs"]
#[allow(dead_code)]
mod breaker;
#[cfg(feature = "hyper")]
#[path = "../../examples/microservices/budget.rs"]
#[allow(dead_code)]
mod budget;
#[cfg(feature = "hyper")]
#[path = "../../examples/microservices/client.rs"]
#[allow(dead_code)]
mod client;
#[cfg(feature = "hyper")]
#[path = "../../examples/microservices/model.rs"]
mod model;
#[cfg(feature = "hyper")]
#[path = "../../examples/microservices/retry.rs"]
#[allow(dead_code)]
mod retry;
#[cfg(feature = "hyper")]
#[path = "../../examples/microservices/server.rs"]
#[allow(dead_code)]
mod server;
#[cfg(feature = "hyper")]
#[path = "../../examples/microservices/services.rs"]
#[allow(dead_code)]
mod services;

mod apps;
mod determinism;
#[cfg(feature = "hyper")]
mod microservices;
mod net;

//! Setup shared by the integration tests of the diagnostics (`tests/profile.rs`,
//! `tests/tracing.rs`): the runtimes each test runs on. Included with `mod common;`; a file
//! uses what it needs, hence the `dead_code` allowance.

#![allow(dead_code)]

use zsync::{Backend, Builder, Model};

/// The models with real concurrency (a task can be canceled while it sleeps): Threaded, Green
/// on epoll (forced) and Green on its default backend (io_uring where the kernel allows it),
/// two workers each.
pub fn concurrent_builders() -> Vec<(&'static str, Builder)> {
    vec![
        ("threaded", Builder::new(Model::Threaded).worker_threads(2)),
        (
            "green_epoll",
            Builder::new(Model::Green)
                .worker_threads(2)
                .backend(Backend::Epoll),
        ),
        ("green", Builder::new(Model::Green).worker_threads(2)),
    ]
}

/// Every model: Blocking, then [`concurrent_builders`].
pub fn all_builders() -> Vec<(&'static str, Builder)> {
    let mut all = vec![("blocking", Builder::new(Model::Blocking))];
    all.extend(concurrent_builders());
    all
}

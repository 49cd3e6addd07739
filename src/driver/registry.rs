//! The registered descriptors of one driver, by key.
//!
//! A key is the source's slab index in the low 32 bits and a generation in the high 32: the
//! epoll event of a descriptor carries its key, and an event still in flight for a source that
//! was removed meanwhile (its slab index possibly reused) finds a different generation and is
//! ignored. So no event ever reaches freed memory and nothing needs an `unsafe` pointer in the
//! event data (Tokio keeps a raw pointer there and defers the release of removed sources to the
//! driver's next turn; with several Green workers draining one driver there is no single turn
//! to defer to).

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

use slab::Slab;

use super::source::{raw, Ready, Source};
use super::Driver;

#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sources: Slab<Arc<Source>>,
    /// The generation of the next key.
    generation: u32,
}

impl Registry {
    /// A new source for `fd`, and its key.
    pub(super) fn insert(&self, driver: Arc<Driver>, fd: BorrowedFd<'_>) -> (u64, Arc<Source>) {
        let weak: Weak<Driver> = Arc::downgrade(&driver);
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        let generation = u64::from(inner.generation);
        let entry = inner.sources.vacant_entry();
        let key = generation << 32 | entry.key() as u64;
        let source = Arc::new(Source::new(key, raw(fd), weak));
        entry.insert(source.clone());
        (key, source)
    }

    /// Removes the source with `key`, if it is still there.
    pub(super) fn remove(&self, key: u64) -> Option<Arc<Source>> {
        let mut inner = self.lock();
        let index = (key & u64::from(u32::MAX)) as usize;
        match inner.sources.get(index) {
            Some(s) if s.key() == key => Some(inner.sources.remove(index)),
            _ => None,
        }
    }

    /// Records each event on its source and collects the wakers to call.
    pub(super) fn dispatch(&self, events: &[(u64, Ready)], wake: &mut Vec<Waker>) {
        if events.is_empty() {
            return;
        }
        let inner = self.lock();
        for &(key, ready) in events {
            let index = (key & u64::from(u32::MAX)) as usize;
            if let Some(source) = inner.sources.get(index) {
                if source.key() == key {
                    source.set_ready(ready, wake);
                }
            }
        }
    }

    /// Marks every source shut down and collects its waiters.
    pub(super) fn close_all(&self, wake: &mut Vec<Waker>) {
        let inner = self.lock();
        for (_, source) in inner.sources.iter() {
            source.shut_down(wake);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.lock().sources.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

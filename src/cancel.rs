//! The cancellation tree.
//!
//! Every task owns a [`CancelNode`]. A task spawned from another becomes a child of the spawner's
//! node, so canceling a task cancels everything it started (Zig: canceling a future cancels the
//! futures it owns). The protocol:
//!
//! 1. `cancel()` sets `CANCELED` with a `SeqCst` read-modify-write; only the first call proceeds.
//! 2. It wakes the task through the `Waker` the task registered at its first cancellation point
//!    (a task that never reaches one never needs waking, and never stores a waker). On the
//!    thread models that waker unparks the OS thread and, if the thread sits in `poll`, writes its
//!    eventfd (see [`crate::park`]); on Green it makes the fiber ready on its worker, and the
//!    resumed fiber asks the ring to cancel its in-flight op (keeping its buffer until the kernel's
//!    completion, see `model::green::reactor::op`) or drops its epoll registration.
//! 3. It snapshots the children, one shard at a time under that shard's lock, and cancels each,
//!    outside the lock.
//!
//! **Lazy registration.** Creating a child costs no lock: a node only points at its parent, and
//! [`is_canceled`](CancelNode::is_canceled) walks the chain of ancestors (pull). Only a task that
//! is about to *block* needs to be reachable from its ancestors' `cancel()` (push, to wake it):
//! [`ensure_registered`](CancelNode::ensure_registered), called on the way into every wait,
//! inserts the node — and, first, its unregistered ancestors — into the parent's `children`.
//! Most tasks never block and never touch a lock. A node is inserted under the parent's lock and
//! checks the chain's flags after its insertion; since `cancel()` sets the flag *before* taking
//! the lock, a registration racing a cancel is either seen by the snapshot or sees the flag.
//!
//! The blocked side checks `CANCELED` after announcing that it is about to wait (the parker's
//! `POLLING` state or the waker registration) and the canceler wakes after setting it, so a cancel
//! landing just before the wait begins is never lost. The waker registration itself races with a
//! cancel only at the task's first cancellation point; a `SeqCst` fence on each side (in
//! `set_waker` and `cancel`) makes sure one of them sees the other.
//!
//! **Where nodes live.** A task's node is a field of its cell (see [`crate::task`]), so a spawn
//! allocates once; the root's and groups' scope nodes stand alone. Links between nodes (a
//! child's `parent`, a parent's registered `children`) are [`NodeRef`]s, which keep the whole
//! allocation holding the node alive. A running task's context borrows its node through a
//! [`NodeSource`] and makes a `NodeRef` only when it needs one (to spawn a child or register).
//!
//! **Finishing.** A finished node leaves its parent's `children` — unless registered children of
//! its own still live there: those tasks outlive it (detached, or not yet joined) and are only
//! reachable by the push of an ancestor's `cancel` (`run`'s shutdown) through it. It then stays
//! registered, and the last of those children to leave removes it (and so on up a chain of
//! finished nodes). The decision "no registered children left, so leave" is taken under the
//! lock of the parent's shard that holds the node, and a descendant registering on the way up
//! reads the node's `key` under that same lock: either it sees the node still registered (and
//! the node, deciding after it, sees the child), or it finds the node gone and puts it back. A
//! node that never had a child has no descendant, so only its owner ever wrote its `key`: its
//! finish is one load.
//!
//! **Sharded children.** A node's registered children are split into `SHARDS` shards, each with
//! its own lock on its own cache lines, allocated together at the first registration. A node
//! always registers in the same shard of its parent, its *home* shard: the shard of the thread
//! its task runs on (a Green worker's index), recorded when the task starts and before it can
//! create a child, so every registration and the detach of one node agree on the shard without
//! encoding it in the key. When 100k tasks spawned from one parent block on two workers, each
//! worker then inserts into and removes from its own shard: no lock handed between cores. The
//! protocol is the one above, per shard; `cancel` snapshots every shard.
//!
//! **Shield**: a task may run a critical section with cancellation held back
//! ([`Io::shielded`](crate::Io::shielded)); the flag stays set and is delivered by the first
//! cancellation point after the shield ends. Only the owning task changes the shield depth.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use std::task::Waker;

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};
use crate::stackless::frame::{CellRef, Frame};

use slab::Slab;

/// Set once the node is canceled; never cleared.
const CANCELED: u32 = 1;
/// Set (under the parent's lock) when the node's task finished and left its parent's children;
/// it is then never registered again.
const FINISHED: u32 = 2;
/// `key` of a node that is not in its parent's `children`.
const UNREGISTERED: usize = usize::MAX;
/// Shards of a node's registered children (see the module docs). A power of two; threads beyond
/// that many share shards.
const SHARDS: usize = 4;

thread_local! {
    /// This thread's shard: set by a Green worker to its index, else handed out round-robin on
    /// first use. Only a placement hint: any value is correct, distinct ones avoid contention.
    static LOCAL_SHARD: Cell<u8> = const { Cell::new(u8::MAX) };
}

/// The shard of the calling thread (see [`set_local_shard`]).
#[inline]
pub(crate) fn local_shard() -> u8 {
    LOCAL_SHARD.with(|s| {
        let shard = s.get();
        if shard != u8::MAX {
            return shard;
        }
        // A plain std counter: a placement hint, not part of the protocol loom checks.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let shard = (NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS) as u8;
        s.set(shard);
        shard
    })
}

/// Makes `index` (modulo the shard count) the calling thread's shard: a Green worker calls this
/// with its worker index, so the workers of a runtime use distinct shards.
pub(crate) fn set_local_shard(index: usize) {
    LOCAL_SHARD.with(|s| s.set((index % SHARDS) as u8));
}

/// A task's place in the cancellation tree. Shared between the task, its handle and its children.
///
/// A task's node lives inside the task's cell (one allocation per task, see
/// [`crate::task`]); the root's and a group's scope node live alone. Either way it is reached
/// through a [`NodeRef`], which keeps the allocation holding it alive.
pub(crate) struct CancelNode {
    /// `CANCELED` bit. Written by any canceler, read by the owning task at each cancellation point.
    flags: AtomicU32,
    /// Depth of nested shields. Written and read only by the owning task.
    shield: AtomicU32,
    /// How to wake the owning task while it waits. Set by the task at its first cancellation
    /// point (see [`check_pending`](Self::check_pending)).
    waker: OnceLock<Waker>,
    /// Live registered children, removed when they finish: `0` until the first registration,
    /// then the address of a leaked `Box<Shards>`, set once and freed with the node.
    children: AtomicUsize,
    /// The parent, and this node's key in its home shard of the parent's `children`
    /// (`UNREGISTERED` until the task first blocks). `key` is read and written only under that
    /// shard's lock.
    parent: Option<NodeRef>,
    key: AtomicUsize,
    /// The shard of the parent's `children` this node registers in: set when the node is made
    /// and again by its task when it starts (see [`settle`](Self::settle)), always before
    /// anything registers the node, so all its registrations and its detach use one shard.
    home: AtomicU8,
    /// Set when a child is created. Children of a node are only ever created by code that runs
    /// before the node's owner finishes (its task, or the owner of a group's scope), so when
    /// the owner finishes the flag tells whether any descendant could be registering this node
    /// concurrently. Without one, nobody but the owner touches `key`.
    has_children: AtomicBool,
    /// What the owning task waits on, for a task dump (see [`crate::diag::wait_point`]):
    /// written by the task only, with relaxed stores; not part of the cancellation protocol.
    pub(crate) wait: crate::diag::wait_point::WaitSlot,
}

/// One shard of a node's registered children, on cache lines of its own (128 bytes: the
/// adjacent-line prefetcher pairs lines) so that two shards never share one.
#[repr(align(128))]
struct Shard(Mutex<Slab<NodeRef>>);

/// The registered children of a node. Allocated on the first registration: most nodes (every
/// task that never spawns a task that blocks) never have them, and the node lives in every
/// task's cell, so it stays small.
struct Shards([Shard; SHARDS]);

impl Shards {
    fn new() -> Shards {
        Shards(std::array::from_fn(|_| Shard(Mutex::new(Slab::new()))))
    }

    fn shard(&self, home: u8) -> MutexGuard<'_, Slab<NodeRef>> {
        lock(&self.0[home as usize % SHARDS].0)
    }
}

/// Whatever holds a [`CancelNode`] in a shared allocation: a node on its own (the root, a
/// group's scope) or a task's cell.
pub(crate) trait NodeOwner: Send + Sync + 'static {
    /// The node inside.
    fn node(&self) -> &CancelNode;

    /// The task owning the node, for a task dump: `None` for a node on its own (the root's, a
    /// group's scope).
    fn task_meta(&self) -> Option<&crate::task::id::Meta> {
        None
    }

    /// For a future task, what a task dump shows of it (see [`crate::diag::dump`]).
    fn future_state(&self) -> Option<crate::diag::dump::FutureSeen> {
        None
    }
}

impl NodeOwner for CancelNode {
    fn node(&self) -> &CancelNode {
        self
    }
}

/// An owning reference to a [`CancelNode`]: keeps the allocation holding it (a task's cell, or
/// the node alone) alive. Derefs to the node.
#[derive(Clone)]
pub(crate) struct NodeRef(CellRef<dyn NodeOwner>);

impl std::ops::Deref for NodeRef {
    type Target = CancelNode;

    #[inline]
    fn deref(&self) -> &CancelNode {
        self.0.node()
    }
}

/// A node as a running task's context holds it: borrowed, with a way to take an owning
/// reference when one is needed (registering with the parent, creating a child). A task's
/// cell is its own source, so running a task moves no reference count until it blocks or
/// spawns.
pub(crate) trait NodeSource {
    /// The node.
    fn cancel_node(&self) -> &CancelNode;
    /// An owning reference to the node.
    fn node_ref(&self) -> NodeRef;
}

impl NodeSource for NodeRef {
    fn cancel_node(&self) -> &CancelNode {
        self
    }

    fn node_ref(&self) -> NodeRef {
        self.clone()
    }
}

impl dyn NodeSource + '_ {
    /// [`CancelNode::check_pending`] for this node.
    #[inline]
    pub(crate) fn check_pending(&self) -> bool {
        self.cancel_node().check_pending(|| self.node_ref())
    }
}

impl std::ops::Deref for dyn NodeSource + '_ {
    type Target = CancelNode;

    #[inline]
    fn deref(&self) -> &CancelNode {
        self.cancel_node()
    }
}

impl NodeRef {
    /// What holds the node: a task's cell, or the node alone.
    pub(crate) fn owner(&self) -> &dyn NodeOwner {
        &*self.0
    }

    /// The address of the node: identifies a task across the references to it.
    pub(crate) fn addr(&self) -> usize {
        &**self as *const CancelNode as usize
    }

    /// A node with no parent: the root task of a `run`.
    pub(crate) fn root() -> NodeRef {
        NodeRef(CellRef::from_arc(Arc::new(CancelNode::new(None))))
    }

    /// A reference to the node inside `owner`.
    pub(crate) fn new(owner: Arc<dyn NodeOwner>) -> NodeRef {
        NodeRef(CellRef::from_arc(owner))
    }

    /// A reference to the node inside a future task's cell.
    pub(crate) fn from_frame(owner: Frame<dyn NodeOwner>) -> NodeRef {
        NodeRef(CellRef::from_frame(owner))
    }

    /// [`CancelNode::ensure_registered`] for this node.
    #[cfg(test)]
    pub(crate) fn ensure_registered(&self) -> bool {
        (**self).ensure_registered(|| self.clone())
    }

    /// [`CancelNode::check_pending`] for this node.
    #[cfg(all(test, loom))]
    pub(crate) fn check_pending(&self) -> bool {
        (**self).check_pending(|| self.clone())
    }
}

impl CancelNode {
    fn new(parent: Option<NodeRef>) -> CancelNode {
        CancelNode {
            flags: AtomicU32::new(0),
            shield: AtomicU32::new(0),
            waker: OnceLock::new(),
            children: AtomicUsize::new(0),
            parent,
            key: AtomicUsize::new(UNREGISTERED),
            home: AtomicU8::new(local_shard()),
            has_children: AtomicBool::new(false),
            wait: crate::diag::wait_point::WaitSlot::new(),
        }
    }

    /// The registered children, if any node was ever registered here.
    fn shards(&self) -> Option<&Shards> {
        let addr = self.children.load(Ordering::Acquire);
        // SAFETY: a non-zero value is the address of a `Box<Shards>` leaked by `shards_or_init`
        // and freed only when this node drops; the `Acquire` load pairs with its publication.
        (addr != 0).then(|| unsafe { &*std::ptr::with_exposed_provenance::<Shards>(addr) })
    }

    /// The registered children, allocated on first use.
    fn shards_or_init(&self) -> &Shards {
        if let Some(shards) = self.shards() {
            return shards;
        }
        let new = Box::into_raw(Box::new(Shards::new()));
        match self.children.compare_exchange(
            0,
            new.expose_provenance(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just published; freed only when this node drops.
            Ok(_) => unsafe { &*new },
            Err(_) => {
                // SAFETY: `new` lost the race and was never shared.
                drop(unsafe { Box::from_raw(new) });
                self.shards().expect("published by the winner")
            }
        }
    }

    /// Records the calling thread's shard as this node's home: called by a task when it starts,
    /// before it can block or create a child (so before anything registers the node).
    #[inline]
    pub(crate) fn settle(&self) {
        self.home.store(local_shard(), Ordering::Relaxed);
    }

    /// Sets this node's home shard explicitly (loom models: their threads share one OS thread).
    #[cfg(all(test, loom))]
    fn set_home(&self, shard: u8) {
        self.home.store(shard, Ordering::Relaxed);
    }

    /// A child of `parent`, to be embedded in its task's cell: canceled whenever an ancestor is
    /// (pull), registered with the parent only when its task first blocks (see
    /// [`ensure_registered`](Self::ensure_registered)).
    pub(crate) fn child_of(parent: NodeRef) -> CancelNode {
        if !parent.has_children.load(Ordering::Relaxed) {
            parent.has_children.store(true, Ordering::Release);
        }
        CancelNode::new(Some(parent))
    }

    /// A child of `parent` on its own (a group's scope).
    pub(crate) fn child(parent: &NodeRef) -> NodeRef {
        NodeRef(CellRef::from_arc(Arc::new(CancelNode::child_of(
            parent.clone(),
        ))))
    }

    /// Makes this node reachable from every ancestor's `cancel()`, so that a task about to block
    /// is woken by the cancellation of any ancestor. Returns whether the node is canceled, as
    /// seen *after* the registration: a caller that gets `true` must not block. `me` makes an
    /// owning reference to this node, for the parent's `children`.
    ///
    /// Idempotent; cheap once registered (one load per ancestor level).
    pub(crate) fn ensure_registered(&self, me: impl FnOnce() -> NodeRef) -> bool {
        if self.parent.is_none() || self.key.load(Ordering::SeqCst) != UNREGISTERED {
            return self.is_canceled();
        }
        // Walk up by reference: the only reference counts that move are those of the entries
        // inserted. (Cloning each parent on the way moved the root's count, one cache line
        // written by every worker for every task that blocks.) `link` is the `NodeRef`
        // pointing at `node` when `node` is an ancestor; for this node, `me` makes one.
        let mut me = Some(me);
        let mut node: &CancelNode = self;
        let mut link: Option<&NodeRef> = None;
        while let Some(parent) = &node.parent {
            {
                // The home was set by the node's task before it could block or spawn: before
                // this registration, on this thread or one this thread synchronized with.
                let home = node.home.load(Ordering::Relaxed);
                let mut children = parent.shards_or_init().shard(home);
                if node.key.load(Ordering::Relaxed) != UNREGISTERED {
                    // Registered, so were its ancestors (registration goes upwards from here).
                    break;
                }
                let entry = match link {
                    Some(link) => link.clone(),
                    None => me.take().expect("this node is inserted at most once")(),
                };
                // A finished ancestor is inserted too: it has a registered child now (the node
                // inserted just before it, down to this running task), and it leaves when the
                // last of its children does (see "Finishing" in the module docs).
                let key = children.insert(entry);
                node.key.store(key, Ordering::SeqCst);
            }
            // Store-buffering pair with `cancel` (it sets the flag, then loads the parent's
            // shards pointer, which a first registration publishes): either it finds this
            // entry, or the `is_canceled` below sees its flag.
            fence(Ordering::SeqCst);
            link = Some(parent);
            node = parent;
        }
        self.is_canceled()
    }

    /// The waker its task registered at its first cancellation point, if any: how a task
    /// dump wakes a task sleeping on a thread to ask for its stack (see
    /// `diag/thread_trace.rs`).
    pub(crate) fn waker(&self) -> Option<&Waker> {
        self.waker.get()
    }

    /// Whether the node's task finished (reliable for a node that had a child: only such a
    /// node's finish sets the flag, see `detach_from_parent`). For a task dump.
    pub(crate) fn is_finished(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & FINISHED != 0
    }

    /// The parent, if any.
    pub(crate) fn parent(&self) -> Option<&NodeRef> {
        self.parent.as_ref()
    }

    /// A snapshot of the registered children (the tasks below this node that have blocked at
    /// least once and not finished), taken one shard at a time under that shard's lock, as
    /// `cancel` does: for a task dump.
    pub(crate) fn registered_children(&self) -> Vec<NodeRef> {
        let Some(shards) = self.shards() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for shard in &shards.0 {
            out.extend(lock(&shard.0).iter().map(|(_, c)| c.clone()));
        }
        out
    }

    /// Requests cancellation of this node and all its descendants. Idempotent, thread-safe.
    pub(crate) fn cancel(&self) {
        if self.flags.fetch_or(CANCELED, Ordering::SeqCst) & CANCELED != 0 {
            return;
        }
        // Store-buffering pair with `set_waker`: the task stores its waker then loads the flag,
        // we store the flag then load the waker. The waker slot's own orderings are only
        // release/acquire, which would let both loads miss (task parks, nobody wakes it); a
        // `SeqCst` fence on each side forbids that. Found by the loom model below.
        fence(Ordering::SeqCst);
        if let Some(waker) = self.waker.get() {
            waker.wake_by_ref();
        }
        // The fence above also orders the flag before this load: a registration this misses
        // (the shards not yet published) sees the flag after its own fence.
        let Some(shards) = self.shards() else { return };
        for shard in &shards.0 {
            let children: Vec<NodeRef> = lock(&shard.0).iter().map(|(_, c)| c.clone()).collect();
            for child in children {
                child.cancel();
            }
        }
    }

    /// Whether cancellation was requested (shield or not), of this node or of an ancestor.
    pub(crate) fn is_canceled(&self) -> bool {
        let mut node = self;
        loop {
            if node.flags.load(Ordering::SeqCst) & CANCELED != 0 {
                return true;
            }
            match &node.parent {
                Some(parent) => node = parent,
                None => return false,
            }
        }
    }

    /// A cancellation point's check: registers the running task's waker and the node (a task
    /// reaching a cancellation point may block next, and must then be wakeable by `cancel` and
    /// reachable by its ancestors' `cancel`), then reports whether it must return `Canceled` now:
    /// cancellation requested (of this node or an ancestor) and no shield up.
    /// Every blocking wait passes a cancellation point after announcing itself and before it
    /// sleeps, so both registrations always precede the last look at the flags.
    ///
    /// The waker is registered here, lazily, rather than when the task starts: a task that
    /// never reaches a cancellation point (most short tasks) never clones or stores a waker.
    #[inline]
    pub(crate) fn check_pending(&self, me: impl FnOnce() -> NodeRef) -> bool {
        self.set_waker(crate::park::current_waker);
        // `ensure_registered` already walked the ancestors for the canceled flag.
        self.ensure_registered(me) && self.shield.load(Ordering::Relaxed) == 0
    }

    /// Registers how to wake the owning task. The first registration wins: a task runs on one
    /// thread (or fiber) for its whole life, so it never needs another. Called by the task
    /// itself, at its first cancellation point at the latest (see
    /// [`check_pending`](Self::check_pending)).
    #[inline]
    pub(crate) fn set_waker(&self, waker: impl FnOnce() -> Waker) {
        if self.waker.get().is_none() {
            let _ = self.waker.set(waker());
            // Pairs with the fence in `cancel`: a cancel either sees this waker or its flag is
            // seen by the task's next cancellation check. Once per task, so it costs nothing.
            fence(Ordering::SeqCst);
        }
    }

    pub(crate) fn shield_enter(&self) {
        self.shield.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn shield_exit(&self) {
        self.shield.fetch_sub(1, Ordering::Relaxed);
    }

    /// Removes this node from its parent once its task has finished, so a long-lived parent does
    /// not accumulate finished children — or, while registered children of its own still live,
    /// leaves that to the last of them (see "Finishing" in the module docs).
    ///
    /// Called by the node's owner when it finishes, after every child it created was created.
    pub(crate) fn detach_from_parent(&self) {
        let Some(parent) = &self.parent else { return };
        if self.has_children.load(Ordering::Acquire) {
            // From here on a child that leaves looks at this flag to remove this node after it.
            // A descendant may also be registering this node right now (`ensure_registered`
            // inserts unregistered ancestors too): if the load below misses its key, its
            // registration is seen by the flag's readers instead. `SeqCst` on both sides: the
            // child's `key` store and its later load of this flag are ordered around ours.
            self.flags.fetch_or(FINISHED, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        }
        // Without children nobody but the owner (this thread, earlier) ever wrote `key`, so the
        // common case, a task that never blocked, costs one load: no read-modify-write, no
        // fence, no lock.
        if self.key.load(Ordering::SeqCst) == UNREGISTERED {
            return;
        }
        let mut leaving: &CancelNode = self;
        let mut parent = parent;
        loop {
            if !leaving.leave(parent) {
                return;
            }
            // A finished parent whose last registered child that was leaves after it.
            // Store-buffering pair with the parent's finish (it sets FINISHED, then loads its
            // `key`; a registration by this thread stored that key before): with a fence on
            // each side, either the parent saw its key and decides under the lock, or this
            // load sees FINISHED.
            fence(Ordering::SeqCst);
            match &parent.parent {
                Some(grandparent) if parent.flags.load(Ordering::SeqCst) & FINISHED != 0 => {
                    leaving = parent;
                    parent = grandparent;
                }
                _ => return,
            }
        }
    }

    /// Takes this finished node out of `parent`'s children unless registered children of its
    /// own remain. Returns whether it left now.
    fn leave(&self, parent: &NodeRef) -> bool {
        let Some(shards) = parent.shards() else {
            return false; // never registered
        };
        // Lock order: a parent's shard before its children's (only here are two held).
        let mut siblings = shards.shard(self.home.load(Ordering::Relaxed));
        if self.has_registered_children() {
            return false; // the last of them removes this node
        }
        let key = self.key.swap(UNREGISTERED, Ordering::SeqCst);
        let removed = (key != UNREGISTERED).then(|| siblings.try_remove(key));
        drop(siblings);
        // The parent's reference to this node goes outside the lock. It is never the last one
        // (the node's own finishing task holds another, and in a cascade the child that left
        // holds its `parent` link), so no task cell, and no task output's `Drop`, is dropped
        // here; the lock is released first all the same.
        drop(removed);
        key != UNREGISTERED
    }

    /// Whether any child is registered here (taking each shard's lock in turn).
    fn has_registered_children(&self) -> bool {
        self.shards()
            .is_some_and(|s| s.0.iter().any(|shard| !lock(&shard.0).is_empty()))
    }

    /// Whether a cancellation point would return `Canceled` now (canceled, no shield up),
    /// without registering anything: what the tests and models check.
    #[cfg(test)]
    fn is_pending(&self) -> bool {
        self.is_canceled() && self.shield.load(Ordering::Relaxed) == 0
    }

    #[cfg(test)]
    fn child_count(&self) -> usize {
        self.shards()
            .map_or(0, |s| s.0.iter().map(|shard| lock(&shard.0).len()).sum())
    }
}

impl Drop for CancelNode {
    fn drop(&mut self) {
        // (A load rather than `get_mut`: loom's atomics have no `get_mut`.)
        let addr = self.children.load(Ordering::Acquire);
        if addr != 0 {
            // SAFETY: published by `shards_or_init` from a `Box`, freed only here.
            drop(unsafe { Box::from_raw(std::ptr::with_exposed_provenance_mut::<Shards>(addr)) });
        }
    }
}

/// Locks a mutex, ignoring poisoning: the protected data (a slab of `Arc`s) stays consistent even
/// if a panic unwound through a holder.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cancel_propagates_to_descendants_and_new_children() {
        let root = NodeRef::root();
        let a = CancelNode::child(&root);
        let b = CancelNode::child(&a);
        assert!(!b.is_canceled());
        root.cancel();
        assert!(a.is_canceled() && b.is_canceled());
        let late = CancelNode::child(&a);
        assert!(
            late.is_canceled(),
            "a child of a canceled node starts canceled"
        );
    }

    #[test]
    fn shield_holds_back_delivery() {
        let n = NodeRef::root();
        n.shield_enter();
        n.cancel();
        assert!(n.is_canceled() && !n.is_pending());
        n.shield_exit();
        assert!(n.is_pending());
    }

    #[test]
    fn finished_children_are_removed() {
        let root = NodeRef::root();
        let kids: Vec<_> = (0..10).map(|_| CancelNode::child(&root)).collect();
        assert_eq!(
            root.child_count(),
            0,
            "children register only when they block"
        );
        for k in &kids {
            assert!(!k.ensure_registered());
        }
        assert_eq!(root.child_count(), 10);
        for k in &kids {
            k.detach_from_parent();
        }
        assert_eq!(root.child_count(), 0);
    }

    #[test]
    fn finished_ancestors_stay_reachable_until_their_last_child_leaves() {
        let root = NodeRef::root();
        let a = CancelNode::child(&root);
        let b = CancelNode::child(&a);
        let c = CancelNode::child(&b);
        let d = CancelNode::child(&b);
        assert!(!c.ensure_registered() && !d.ensure_registered());
        b.detach_from_parent();
        a.detach_from_parent();
        assert_eq!((root.child_count(), a.child_count()), (1, 1));
        assert_eq!(b.child_count(), 2);
        c.detach_from_parent();
        assert_eq!(root.child_count(), 1, "d still lives below");
        root.cancel();
        assert!(
            d.flags.load(Ordering::SeqCst) & CANCELED != 0,
            "pushed through b and a"
        );
        d.detach_from_parent();
        assert_eq!(
            (root.child_count(), a.child_count(), b.child_count()),
            (0, 0, 0)
        );
    }

    #[test]
    fn registration_reaches_through_unregistered_ancestors() {
        let root = NodeRef::root();
        let child = CancelNode::child(&root);
        let grandchild = CancelNode::child(&child);
        assert!(!grandchild.ensure_registered());
        assert_eq!((root.child_count(), child.child_count()), (1, 1));
        // A finished node with a registered child stays, so the root's cancel reaches it.
        child.detach_from_parent();
        assert_eq!(root.child_count(), 1);
        grandchild.detach_from_parent();
        assert_eq!(root.child_count(), 0, "it left with its last child");
        // A child registering later puts its finished parent back, for as long as it lives.
        let other = CancelNode::child(&child);
        other.ensure_registered();
        assert_eq!((root.child_count(), child.child_count()), (1, 1));
        root.cancel();
        assert!(grandchild.is_canceled() && other.is_canceled());
        // Finish it as its task would: a registered node and its parent hold each other until
        // the node detaches (LeakSanitizer reports the cycle otherwise).
        other.detach_from_parent();
        assert_eq!(root.child_count(), 0);
    }

    #[test]
    fn concurrent_child_creation_never_escapes_cancel() {
        for _ in 0..200 {
            let root = NodeRef::root();
            let r2 = root.clone();
            let t = std::thread::spawn(move || {
                (0..50).map(|_| CancelNode::child(&r2)).collect::<Vec<_>>()
            });
            root.cancel();
            for c in t.join().unwrap() {
                assert!(c.is_canceled());
            }
        }
    }
}

/// Loom models of the cancellation protocol: `RUSTFLAGS="--cfg loom" cargo test --lib
/// loom_models`. The waker slot is a std `OnceLock`, which loom does not instrument: these models
/// treat it as sequentially consistent and check the flag, the children lock and the order of
/// operations around them.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::model::{counting_waker, model, thread_waker};
    use ::loom::thread;

    /// A grandchild that registers lazily (it is about to block) while the root is being
    /// canceled — and while a sibling finishes and unlinks itself — is always woken or sees the
    /// cancellation before it parks: either `cancel`'s snapshots reach it, or its check after
    /// the registration sees a canceled ancestor. Loom's deadlock check catches a lost wake-up.
    #[test]
    fn cancel_reaches_a_lazily_registered_grandchild() {
        model(|| {
            let root = NodeRef::root();
            let sibling = CancelNode::child(&root);
            sibling.ensure_registered();
            let blocked = {
                let root = root.clone();
                thread::spawn(move || {
                    let child = CancelNode::child(&root);
                    let grandchild = CancelNode::child(&child);
                    grandchild.set_waker(thread_waker);
                    while !grandchild.check_pending() {
                        thread::park();
                    }
                    assert!(
                        child.is_canceled(),
                        "a canceled root's child reports canceled"
                    );
                })
            };
            let finisher = thread::spawn(move || sibling.detach_from_parent());
            root.cancel();
            blocked.join().unwrap();
            finisher.join().unwrap();
        });
    }

    /// Two children of one parent, at home in different shards, register (they are about to
    /// block) while the parent is canceled: each is woken or sees the cancellation before it
    /// parks. Fails if `cancel` snapshots only some shards, or if a registration's shard is
    /// not the one its detach or the snapshot looks in.
    #[test]
    fn cancel_reaches_children_in_every_shard() {
        model(|| {
            let parent = NodeRef::root();
            let blocked: Vec<_> = (0..2u8)
                .map(|shard| {
                    let parent = parent.clone();
                    thread::spawn(move || {
                        let child = CancelNode::child(&parent);
                        child.set_home(shard);
                        child.set_waker(thread_waker);
                        while !child.check_pending() {
                            thread::park();
                        }
                        child.detach_from_parent();
                    })
                })
                .collect();
            parent.cancel();
            for b in blocked {
                b.join().unwrap();
            }
            assert_eq!(
                parent.child_count(),
                0,
                "a detached child stayed registered"
            );
        });
    }

    /// A node that finishes while a descendant registers it stays in its parent exactly while
    /// that descendant is registered: the root's cancel must still reach it (a detached
    /// grandchild at `run`'s shutdown).
    #[test]
    fn a_finished_node_stays_registered_while_its_child_is() {
        model(|| {
            let root = NodeRef::root();
            let child = CancelNode::child(&root);
            let grandchild = CancelNode::child(&child);
            let registrar = {
                let grandchild = grandchild.clone();
                thread::spawn(move || {
                    grandchild.ensure_registered();
                })
            };
            child.detach_from_parent();
            registrar.join().unwrap();
            assert_eq!(root.child_count(), 1, "the finished node left its parent");
            assert_eq!(child.child_count(), 1);
            root.cancel();
            assert!(
                grandchild.flags.load(Ordering::SeqCst) & CANCELED != 0,
                "not pushed"
            );
        });
    }

    /// A node that finishes while its child registers and then leaves never stays in its
    /// parent: whichever of the two looks last removes it.
    #[test]
    fn a_finished_node_leaves_with_its_last_child() {
        model(|| {
            let root = NodeRef::root();
            let child = CancelNode::child(&root);
            let grandchild = CancelNode::child(&child);
            let registrar = thread::spawn(move || {
                grandchild.ensure_registered();
                grandchild.detach_from_parent();
            });
            child.detach_from_parent();
            registrar.join().unwrap();
            assert_eq!(
                root.child_count(),
                0,
                "a finished node stayed in its parent"
            );
        });
    }

    /// The task registers its waker, then checks the flag before parking; two cancelers race
    /// with it. The task is woken exactly when it needs to be: never parked forever (loom's
    /// deadlock check), woken if it parked, and at most once however many cancelers there are.
    #[test]
    fn cancel_wakes_a_registered_task_exactly_once() {
        struct Both(Waker, Waker);
        impl std::task::Wake for Both {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.wake_by_ref();
                self.1.wake_by_ref();
            }
        }
        model(|| {
            let node = NodeRef::root();
            let (woken, counter) = counting_waker();
            let task = {
                let node = node.clone();
                thread::spawn(move || {
                    // A loom operation first, so the cancelers can run before the registration.
                    thread::yield_now();
                    node.set_waker(|| {
                        // Count and unpark: the model checks both "once" and "in time".
                        Waker::from(std::sync::Arc::new(Both(counter, thread_waker())))
                    });
                    let mut parked = false;
                    while !node.is_pending() {
                        parked = true;
                        thread::park();
                    }
                    parked
                })
            };
            let other = {
                let node = node.clone();
                thread::spawn(move || node.cancel())
            };
            node.cancel();
            let parked = task.join().unwrap();
            other.join().unwrap();
            let woken = woken.load(Ordering::SeqCst);
            assert!(woken <= 1, "woken {woken} times");
            assert!(!parked || woken == 1, "parked but never woken");
        });
    }

    /// A shielded task is not told about a cancel until the shield ends, and then is.
    #[test]
    fn shield_defers_a_concurrent_cancel() {
        model(|| {
            let node = NodeRef::root();
            node.shield_enter();
            let canceler = {
                let node = node.clone();
                thread::spawn(move || node.cancel())
            };
            assert!(!node.is_pending());
            node.shield_exit();
            canceler.join().unwrap();
            assert!(node.is_pending());
        });
    }
}

//! The timers' storage: a slab of nodes, each on at most one intrusive doubly-linked list.
//!
//! A node holds one armed timer (its waker and deadline tick) and the indices of its neighbours,
//! so a timer is unlinked from whatever list it is on in O(1), touching only its neighbours.
//! Vacant nodes form a free list through the same `next` field; a freed node is the next one
//! reused, so the slab only grows to the peak number of *live* timers and then allocates no more.
//!
//! Each node carries a generation, bumped when it is freed: a [`super::TimerId`] names a node
//! and the generation it had when armed, so a stale id (its timer fired or was canceled, and the
//! node may be armed again since) matches nothing. The generation is kept by the vacant node
//! too, which is why this is not the `slab` crate (its vacant entries hold only the free-list
//! link). It is 32 bits: a stale id could only alias if its node were reused exactly 2^32 times
//! before the id is used, and the worker cancels a timer as soon as its fiber resumes.

use std::task::Waker;

/// "No node": the end of a list, or an empty one.
pub(super) const NIL: u32 = u32::MAX;

/// The `list` of a vacant node.
const VACANT: u16 = u16::MAX;

/// One armed timer, or a vacant slot of the slab.
struct Node {
    /// `None` while vacant.
    waker: Option<Waker>,
    /// The deadline, in ticks, rounded up.
    tick: u64,
    generation: u32,
    /// Which list the node is on (an index into the caller's lists), or `VACANT`.
    list: u16,
    prev: u32,
    /// The next node on its list, or on the free list while vacant.
    next: u32,
}

/// The two ends of one intrusive list of nodes; both `NIL` when empty.
#[derive(Clone, Copy)]
pub(super) struct List {
    head: u32,
    tail: u32,
}

impl List {
    pub(super) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };

    pub(super) fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

/// The slab of nodes. Lists are owned by the caller and passed in; each node records the index
/// of its list (`list`) so that the caller can find it again on cancel.
pub(super) struct Nodes {
    nodes: Vec<Node>,
    /// Head of the free list of vacant nodes.
    free: u32,
    /// Occupied nodes.
    live: usize,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes {
            nodes: Vec::new(),
            free: NIL,
            live: 0,
        }
    }
}

impl Nodes {
    /// Stores a timer and appends it to `list` (whose index is `list_index`). Returns the
    /// node's index and generation.
    pub(super) fn insert(
        &mut self,
        waker: Waker,
        tick: u64,
        list: &mut List,
        list_index: u16,
    ) -> (u32, u32) {
        let index = if self.free != NIL {
            let index = self.free;
            let node = &mut self.nodes[index as usize];
            self.free = node.next;
            node.waker = Some(waker);
            node.tick = tick;
            index
        } else {
            let index = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("zsync: more than 2^32 - 1 timers armed on one worker");
            self.nodes.push(Node {
                waker: Some(waker),
                tick,
                generation: 0,
                list: VACANT,
                prev: NIL,
                next: NIL,
            });
            index
        };
        self.live += 1;
        self.push_back(list, list_index, index);
        (index, self.nodes[index as usize].generation)
    }

    /// The list of the live node `index` armed as `generation`, or `None` if that timer is no
    /// longer armed (fired, canceled, or the id is stale).
    pub(super) fn list_of(&self, index: u32, generation: u32) -> Option<u16> {
        let node = self.nodes.get(index as usize)?;
        (node.generation == generation && node.list != VACANT).then_some(node.list)
    }

    /// Unlinks the live node `index` from `list` (the one it is on) and frees it.
    pub(super) fn remove(&mut self, list: &mut List, index: u32) -> Waker {
        let (prev, next) = {
            let node = &self.nodes[index as usize];
            (node.prev, node.next)
        };
        match prev {
            NIL => list.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => list.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        self.release(index)
    }

    /// Empties `list` and returns its first node; follow the chain with [`Nodes::next_of`]. Every
    /// node on it must then be either relinked ([`Nodes::relink`]) or freed ([`Nodes::release`]).
    pub(super) fn take(list: &mut List) -> u32 {
        std::mem::replace(list, List::EMPTY).head
    }

    /// The node after `index` on its (possibly detached) list, and `index`'s deadline tick.
    pub(super) fn next_of(&self, index: u32) -> (u32, u64) {
        let node = &self.nodes[index as usize];
        (node.next, node.tick)
    }

    /// Appends the detached node `index` to `list`.
    pub(super) fn relink(&mut self, list: &mut List, list_index: u16, index: u32) {
        self.push_back(list, list_index, index);
    }

    /// Frees the detached node `index` (no list points at it any more) and returns its waker.
    pub(super) fn release(&mut self, index: u32) -> Waker {
        let node = &mut self.nodes[index as usize];
        node.list = VACANT;
        node.generation = node.generation.wrapping_add(1);
        node.prev = NIL;
        node.next = self.free;
        self.free = index;
        self.live -= 1;
        node.waker.take().expect("a live timer node has a waker")
    }

    fn push_back(&mut self, list: &mut List, list_index: u16, index: u32) {
        let tail = list.tail;
        let node = &mut self.nodes[index as usize];
        node.list = list_index;
        node.prev = tail;
        node.next = NIL;
        match tail {
            NIL => list.head = index,
            t => self.nodes[t as usize].next = index,
        }
        list.tail = index;
    }

    /// Live timers.
    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// Nodes the slab can hold without reallocating: bounded by the peak of live timers.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.nodes.capacity()
    }
}

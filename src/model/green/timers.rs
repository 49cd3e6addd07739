//! Per-worker timers: a hierarchical timing wheel over a slab of intrusively linked nodes.
//!
//! Time is counted in ticks of [`TICK_NS`] (2^16 ns ≈ 65.5 µs) since the `Timers` was created.
//! A deadline is rounded *up* to a tick, and `expire(now)` fires the timers whose tick is at most
//! `now` rounded *down*: a timer never fires before its deadline, and at most one tick after it.
//!
//! ```text
//! level 5: 64 slots × 2^30 ticks (~19.5 h)   covers ~52 days
//!   ...
//! level 1: 64 slots × 2^6 ticks  (~4.2 ms)   covers ~268 ms
//! level 0: 64 slots × 1 tick     (~65.5 µs)  covers ~4.2 ms
//! overflow: everything beyond the current 2^36-tick (~52 day) block
//! ```
//!
//! A timer goes on level `L` when its tick first differs from `elapsed` (the last tick
//! processed) in the `L`-th group of 6 bits, into slot `(tick >> 6L) % 64` of that level; each
//! slot is a doubly-linked list through the slab ([`nodes`]). Invariants that make the rest
//! simple: every slot occupied on level `L` lies after `elapsed`'s own digit on that level, and
//! every timer on a lower level is due before any timer on a higher one. So:
//!
//! 1. The next slot to process is the lowest occupied slot (`trailing_zeros` of the level's
//!    occupancy bitmap) on the lowest non-empty level; its start is when something may be due.
//! 2. `expire(now)` processes slots in that order while their start is at most `now`: it moves
//!    `elapsed` to the slot's start, detaches its list, fires the timers due exactly then and
//!    re-inserts the others, which now land on lower levels (a *cascade*: a timer moves down at
//!    most once per level, and never if canceled first). Then `elapsed` becomes `now`.
//! 3. `next_deadline` is that slot's start. On a higher level it is earlier than the timers in
//!    the slot: the worker wakes, the cascade moves them down, and the next answer is finer.
//!    The slot lies after `elapsed`, so the answer is never a past instant returned forever.
//! 4. A deadline at or before `elapsed` is already due: it goes to a `pending` list that the
//!    next `expire` fires first. A deadline beyond the top level's block goes to `overflow`,
//!    re-sorted each time `elapsed` crosses into a new 2^36-tick block.
//!
//! `insert` and `cancel` are O(1); canceling unlinks the node at once, so memory is bounded by
//! the number of live timers (the slab reuses freed nodes: no allocation in steady state). A
//! timer that fired needs no cancel: its node was freed, and the generation in the
//! [`TimerId`] no longer matches (see [`nodes`]).
//!
//! Why this tick: lateness is bounded by one tick, and 65.5 µs is of the order of what a
//! sleeping worker pays anyway to wake up (a kernel wake-up costs tens of microseconds on a VM),
//! so a `sleep(1 ms)` ends at most ~7% late, where Tokio's 1 ms tick could double it. A power
//! of two of nanoseconds makes the conversion a shift, and six
//! levels of 64 slots still reach ~52 days. The cost of a finer tick is one more level for
//! long deadlines: a 60 s I/O timeout sits on level 3 and, if it ever fires, cascades three
//! times; in an HTTP server nearly all are canceled before that. The Linux kernel's wheel
//! (since 4.8) avoids cascading altogether by firing a timer on a higher level at that
//! level's granularity (up to ~12% late); sleeps here need the exact answer, timeouts would
//! not, and the arguments cannot tell them apart.

mod nodes;

use std::task::Waker;
use std::time::{Duration, Instant};

use nodes::{List, Nodes, NIL};

/// Nanoseconds per tick, as a power of two: 2^16 ns ≈ 65.5 µs.
const TICK_SHIFT: u32 = 16;
/// Nanoseconds per tick.
#[cfg_attr(not(test), allow(dead_code))]
const TICK_NS: u64 = 1 << TICK_SHIFT;
/// Bits of the tick per level: 64 slots.
const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
const LEVELS: usize = 6;
/// Ticks covered by the whole wheel: a tick that differs from `elapsed` at or above this bit
/// goes to `overflow`.
const WHEEL_BITS: u32 = LEVEL_BITS * LEVELS as u32;

/// Indices of the lists: `level * SLOTS + slot` for the wheel's slots, then these two.
const OVERFLOW: usize = LEVELS * SLOTS;
const PENDING: usize = OVERFLOW + 1;
const LISTS: usize = PENDING + 1;

/// Identifies one armed timer, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    index: u32,
    generation: u32,
}

/// One worker's timers (see the module docs). Not thread-safe: the worker owns it.
pub(crate) struct Timers {
    /// log2 of the nanoseconds per tick: [`TICK_SHIFT`], or 0 for [`exact`](Timers::exact).
    shift: u32,
    /// Tick 0.
    origin: Instant,
    /// The last tick processed: every timer whose tick is at most this one has fired or is on
    /// the `PENDING` list.
    elapsed: u64,
    /// Bit `s` of `occupied[l]`: the list of slot `s` on level `l` is not empty.
    occupied: [u64; LEVELS],
    /// The wheel's slots, `OVERFLOW` and `PENDING`.
    lists: [List; LISTS],
    /// At most the earliest tick on `PENDING` while it is not empty.
    pending_tick: u64,
    nodes: Nodes,
}

impl Default for Timers {
    /// Timers starting now; exact to the nanosecond on a simulation's thread (see
    /// [`exact`](Timers::exact)).
    fn default() -> Self {
        let now = crate::clock::now();
        if crate::clock::is_virtual() {
            Timers::exact(now)
        } else {
            Timers::new(now)
        }
    }
}

impl Timers {
    /// Timers whose tick 0 is `origin`, with ticks of [`TICK_NS`].
    fn new(origin: Instant) -> Self {
        Timers::with_tick_shift(origin, TICK_SHIFT)
    }

    /// Timers whose tick is one nanosecond: a simulation's, whose clock jumps to the next
    /// deadline and must land on it exactly (a sleep of a minute lasts a minute, not a minute
    /// and a tick). The wheel then covers 2^36 ns (~69 s); later deadlines wait on `OVERFLOW`.
    pub(crate) fn exact(origin: Instant) -> Self {
        Timers::with_tick_shift(origin, 0)
    }

    fn with_tick_shift(origin: Instant, shift: u32) -> Self {
        Timers {
            shift,
            origin,
            elapsed: 0,
            occupied: [0; LEVELS],
            lists: [List::EMPTY; LISTS],
            pending_tick: u64::MAX,
            nodes: Nodes::default(),
        }
    }

    /// Arms a timer that wakes `waker` once `deadline` has passed (at the next `expire` if it
    /// already has). O(1).
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerId {
        let tick = nanos(deadline.saturating_duration_since(self.origin))
            .div_ceil(1 << self.shift)
            .min(u64::MAX >> self.shift);
        let list = if tick <= self.elapsed {
            self.pending_tick = self.pending_tick.min(tick);
            PENDING
        } else {
            self.list_for(tick)
        };
        let (index, generation) =
            self.nodes
                .insert(waker, tick, &mut self.lists[list], list as u16);
        TimerId { index, generation }
    }

    /// Disarms the timer `id` and drops its waker; a no-op if it already fired or was
    /// canceled. O(1).
    pub(crate) fn cancel(&mut self, id: TimerId) {
        drop(self.remove(id));
    }

    /// [`cancel`](Self::cancel), handing the timer's waker back instead of dropping it (a
    /// caller holding a lock drops it after releasing the lock: a waker's drop is foreign
    /// code). `None` if the timer already fired or was canceled. O(1).
    pub(crate) fn remove(&mut self, id: TimerId) -> Option<Waker> {
        let list = usize::from(self.nodes.list_of(id.index, id.generation)?);
        let waker = self.nodes.remove(&mut self.lists[list], id.index);
        if list < OVERFLOW && self.lists[list].is_empty() {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
        Some(waker)
    }

    /// When `expire` next has work: at or before the earliest armed deadline rounded up to a
    /// tick (the start of a slot whose timers then move down a level, when it is on a higher
    /// level), and after the last `expire`'s `now` unless a timer armed since is already due.
    /// `None` when no timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let tick = if self.lists[PENDING].is_empty() {
            self.next_expiration()?.1
        } else {
            self.pending_tick
        };
        Some(self.origin + Duration::from_nanos(tick << self.shift))
    }

    /// Removes every timer due at `now` and appends its waker to `due`: those armed already
    /// due first, then by tick (in arming order within a tick).
    /// `now` must not go back in time from one call to the next (an earlier `now` counts as
    /// the latest one).
    pub(crate) fn expire(&mut self, now: Instant, due: &mut Vec<Waker>) {
        let now_tick =
            (nanos(now.saturating_duration_since(self.origin)) >> self.shift).max(self.elapsed);
        if !self.lists[PENDING].is_empty() {
            let mut at = Nodes::take(&mut self.lists[PENDING]);
            while at != NIL {
                let (next, _) = self.nodes.next_of(at);
                due.push(self.nodes.release(at));
                at = next;
            }
        }
        self.pending_tick = u64::MAX;
        while let Some((list, start)) = self.next_expiration() {
            if start > now_tick {
                break;
            }
            self.elapsed = start;
            if list < OVERFLOW {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
            // The whole slot is detached before any timer is re-inserted: one from `OVERFLOW`
            // may go back there.
            let mut at = Nodes::take(&mut self.lists[list]);
            while at != NIL {
                let (next, tick) = self.nodes.next_of(at);
                if tick <= start {
                    due.push(self.nodes.release(at));
                } else {
                    let to = self.list_for(tick);
                    self.nodes.relink(&mut self.lists[to], to as u16, at);
                }
                at = next;
            }
        }
        self.elapsed = now_tick;
    }

    /// How many timers are armed.
    pub(crate) fn len(&self) -> usize {
        self.nodes.live()
    }

    /// Whether no timer is armed.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.live() == 0
    }

    /// The list for a timer due at `tick`, after `elapsed`; marks its slot occupied.
    fn list_for(&mut self, tick: u64) -> usize {
        debug_assert!(tick > self.elapsed);
        // The highest group of 6 bits in which `tick` and `elapsed` differ (level 0 if none
        // above the first).
        let differ = (self.elapsed ^ tick) | (SLOTS as u64 - 1);
        let level = (differ.ilog2() / LEVEL_BITS) as usize;
        if level >= LEVELS {
            return OVERFLOW;
        }
        let slot = (tick >> (level as u32 * LEVEL_BITS)) as usize % SLOTS;
        self.occupied[level] |= 1 << slot;
        level * SLOTS + slot
    }

    /// The next list to process and the tick at which it is due: the lowest occupied slot of
    /// the lowest non-empty level (all of its slots lie after `elapsed`, and before any slot of
    /// a higher level), else the start of the next 2^36-tick block if `OVERFLOW` has timers.
    fn next_expiration(&self) -> Option<(usize, u64)> {
        for (level, &occupied) in self.occupied.iter().enumerate() {
            if occupied != 0 {
                let slot = u64::from(occupied.trailing_zeros());
                let shift = level as u32 * LEVEL_BITS;
                let level_start = self.elapsed & !((1 << (shift + LEVEL_BITS)) - 1);
                return Some((level * SLOTS + slot as usize, level_start + (slot << shift)));
            }
        }
        if self.lists[OVERFLOW].is_empty() {
            return None;
        }
        let next_block = ((self.elapsed >> WHEEL_BITS) + 1) << WHEEL_BITS;
        Some((OVERFLOW, next_block.min(u64::MAX >> self.shift)))
    }
}

/// `d` in nanoseconds, saturating (at 584 years).
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    use crate::test_waker::{counter, wakes};

    const TICK: Duration = Duration::from_nanos(TICK_NS);

    /// Asserts that `t` would wake its worker no later than `deadline` rounded up to a tick
    /// (the old timers answered `deadline` exactly; a slot of the wheel may start earlier).
    fn assert_wakes_by(t: &Timers, deadline: Instant) {
        let next = t.next_deadline().expect("a timer is armed");
        assert!(
            next <= deadline + TICK,
            "{next:?} is after {deadline:?} + one tick"
        );
    }

    #[test]
    fn fires_in_deadline_order_and_skips_canceled() {
        let (_count, waker) = counter();
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.insert(now + Duration::from_millis(30), waker.clone());
        t.insert(now + Duration::from_millis(10), waker.clone());
        t.insert(now + Duration::from_millis(20), waker.clone());
        t.cancel(a);
        assert_wakes_by(&t, now + Duration::from_millis(10));
        let mut due = Vec::new();
        t.expire(now + Duration::from_millis(25), &mut due);
        assert_eq!(due.len(), 2);
        assert!(
            t.next_deadline().is_none(),
            "the canceled timer never fires"
        );
        assert!(t.is_empty());
    }

    /// Wakes by pushing its tag onto a shared list: shows which timers fired, in which order.
    struct Push(Arc<Mutex<Vec<u64>>>, u64);
    impl Wake for Push {
        fn wake(self: Arc<Self>) {
            self.0.lock().unwrap().push(self.1);
        }
    }

    fn tagged(order: &Arc<Mutex<Vec<u64>>>, tag: u64) -> Waker {
        Waker::from(Arc::new(Push(order.clone(), tag)))
    }

    #[test]
    fn in_order_and_out_of_order_deadlines_fire_together_in_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut t = Timers::default();
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut ids = Vec::new();
        // 10, 20, 30 arrive in order; 5, 15, 25 break it; 40 continues it.
        for d in [10, 20, 30, 5, 15, 25, 40] {
            ids.push(t.insert(now + ms(d), tagged(&order, d)));
        }
        t.cancel(ids[1]); // 20
        t.cancel(ids[4]); // 15
        assert_wakes_by(&t, now + ms(5));
        let mut due = Vec::new();
        // A deadline fires once its tick (rounded up) has begun.
        t.expire(now + ms(30) + TICK, &mut due);
        due.drain(..).for_each(Waker::wake);
        assert_eq!(*order.lock().unwrap(), [5, 10, 25, 30]);
        t.cancel(ids[0]); // already fired: a no-op
        assert_wakes_by(&t, now + ms(40));
        t.expire(now + ms(40) + TICK, &mut due);
        assert_eq!(due.len(), 1);
        assert!(t.is_empty() && t.next_deadline().is_none());
    }

    #[test]
    fn past_deadlines_fire_at_the_next_expire() {
        let (count, waker) = counter();
        let origin = Instant::now();
        let mut t = Timers::new(origin);
        let mut due = Vec::new();
        t.expire(origin + Duration::from_secs(1), &mut due);
        t.insert(origin + Duration::from_millis(500), waker.clone());
        t.insert(origin, waker.clone());
        assert!(t.next_deadline().unwrap() <= origin);
        // Even with the same `now`: the deadlines have passed.
        t.expire(origin + Duration::from_secs(1), &mut due);
        due.drain(..).for_each(Waker::wake);
        assert_eq!(wakes(&count), 2);
        assert!(t.is_empty() && t.next_deadline().is_none());
    }

    #[test]
    fn canceling_a_fired_timer_spares_the_timer_armed_in_its_node_since() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let mut t = Timers::new(origin);
        let ms = Duration::from_millis;
        let fired = t.insert(origin + ms(1), tagged(&order, 1));
        let mut due = Vec::new();
        t.expire(origin + ms(2), &mut due);
        assert_eq!(due.len(), 1);
        let reused = t.insert(origin + ms(3), tagged(&order, 2));
        assert_eq!(reused.index, fired.index, "the freed node is reused");
        t.cancel(fired); // stale: a no-op
        t.cancel(fired);
        t.expire(origin + ms(4), &mut due);
        due.drain(..).for_each(Waker::wake);
        assert_eq!(*order.lock().unwrap(), [1, 2]);
        t.cancel(reused); // fired too: still a no-op
        assert!(t.is_empty());
    }

    #[test]
    fn many_sleeps_of_one_duration_fire_together_in_arming_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let mut t = Timers::new(origin);
        // 100k sleeps of 10 ms armed over 50 ms, as the sleeps bench does.
        let n = 100_000u64;
        for i in 0..n {
            let armed = Duration::from_nanos(i * 500);
            t.insert(
                origin + armed + Duration::from_millis(10),
                tagged(&order, i),
            );
        }
        let mut due = Vec::new();
        let mut now = origin;
        let mut wake_ups = 0;
        while let Some(next) = t.next_deadline() {
            now = now.max(next);
            t.expire(now, &mut due);
            wake_ups += 1;
        }
        assert!(now <= origin + Duration::from_millis(60) + TICK);
        assert!(
            wake_ups < 1000,
            "{wake_ups} wake-ups for 100k timers over 50 ms"
        );
        due.drain(..).for_each(Waker::wake);
        let order = order.lock().unwrap();
        assert_eq!(order.len(), n as usize);
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "fired in arming order"
        );
    }

    /// xorshift64*: a seeded generator for the randomized tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        /// A duration in nanoseconds, from sub-tick to beyond the wheel's range.
        fn span(&mut self) -> u64 {
            const MS: u64 = 1_000_000;
            match self.below(100) {
                0..=9 => self.below(3 * TICK_NS),
                10..=39 => self.below(100 * MS),
                40..=69 => self.below(120_000 * MS),
                70..=89 => self.below(10 * 3_600_000 * MS),
                90..=96 => self.below(60 * 86_400_000 * MS),
                _ => 50 * 86_400_000 * MS + self.below(200 * 86_400_000 * MS),
            }
        }
    }

    /// Tick of a deadline in nanoseconds from the origin, rounded up.
    fn ceil_tick(ns: u64) -> u64 {
        ns.div_ceil(TICK_NS)
    }

    #[test]
    fn randomized_against_a_model() {
        for seed in 1..=8u64 {
            run_model(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 50_000);
        }
    }

    fn run_model(seed: u64, steps: usize) {
        let mut rng = Rng(seed);
        let origin = Instant::now();
        let mut t = Timers::new(origin);
        let fired = Arc::new(Mutex::new(Vec::new()));
        // Live timers: tag → (id, deadline in ns from the origin).
        let mut live: HashMap<u64, (TimerId, u64)> = HashMap::new();
        let mut dead: Vec<TimerId> = Vec::new();
        let mut now: u64 = 0;
        // Live timers armed with a deadline already due at the last `expire`.
        let mut early: HashSet<u64> = HashSet::new();
        let mut next_tag = 0u64;
        let mut due = Vec::new();
        // Expires at `now` and checks the outcome against the model.
        let mut expire = |t: &mut Timers,
                          now: u64,
                          live: &mut HashMap<u64, (TimerId, u64)>,
                          dead: &mut Vec<TimerId>,
                          early: &mut HashSet<u64>| {
            t.expire(origin + Duration::from_nanos(now), &mut due);
            due.drain(..).for_each(Waker::wake);
            let mut got = std::mem::take(&mut *fired.lock().unwrap());
            let mut want: Vec<u64> = live
                .iter()
                .filter(|(_, &(_, d))| ceil_tick(d) <= now / TICK_NS)
                .map(|(&tag, _)| tag)
                .collect();
            // Timers armed already due come first (in any order), then the others by tick.
            let mut last_tick = 0;
            let mut in_order = false;
            for tag in &got {
                let (id, d) = live.remove(tag).expect("only live timers fire, once");
                let armed_due = early.remove(tag);
                if !armed_due || in_order {
                    in_order = true;
                    assert!(ceil_tick(d) >= last_tick, "fired out of tick order");
                    last_tick = ceil_tick(d);
                }
                assert!(d <= now, "fired early: deadline {d} ns, now {now} ns");
                dead.push(id);
            }
            for (_, &(_, d)) in live.iter() {
                assert!(
                    d + TICK_NS > now,
                    "more than a tick late: deadline {d} ns, now {now} ns"
                );
            }
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "exactly the timers due at {now} ns fire");
            // Right after an expire the next answer lies ahead: the worker sleeps.
            if let Some(next) = t.next_deadline() {
                assert!(next > origin + Duration::from_nanos(now));
            }
        };
        // The clock's usual step, changed every 1000 steps: from sub-tick (timers pile up) to
        // days (they all come due).
        let mut step = 1;
        for i in 0..steps {
            if i % 1000 == 0 {
                const MS: u64 = 1_000_000;
                let steps = [
                    3 * TICK_NS,
                    5 * MS,
                    2_000 * MS,
                    3_600_000 * MS,
                    60 * 86_400_000 * MS,
                ];
                step = steps[rng.below(steps.len() as u64) as usize];
            }
            match rng.below(100) {
                0..=44 => {
                    let deadline = match rng.below(20) {
                        0 => now.saturating_sub(rng.span()),
                        _ => now + rng.span(),
                    };
                    let tag = next_tag;
                    next_tag += 1;
                    let id = t.insert(origin + Duration::from_nanos(deadline), tagged(&fired, tag));
                    live.insert(tag, (id, deadline));
                    if ceil_tick(deadline) <= now / TICK_NS {
                        early.insert(tag);
                    }
                }
                45..=59 if !live.is_empty() => {
                    let tag = *live
                        .keys()
                        .nth(rng.below(live.len() as u64) as usize)
                        .unwrap();
                    let (id, _) = live.remove(&tag).unwrap();
                    early.remove(&tag);
                    t.cancel(id);
                    dead.push(id);
                }
                60..=64 if !dead.is_empty() => {
                    // Fired or canceled already, and its node maybe armed again: a no-op.
                    let id = dead[rng.below(dead.len() as u64) as usize];
                    t.cancel(id);
                }
                65..=94 => {
                    now += match rng.below(10) {
                        0 => 0,
                        _ => rng.below(step),
                    };
                    expire(&mut t, now, &mut live, &mut dead, &mut early);
                }
                _ => {
                    // What the worker does: sleep until the next deadline, then expire. The
                    // earliest timer fires within a few such wake-ups (one per level it
                    // cascades through, plus the blocks `OVERFLOW` waits for).
                    let Some(earliest) = live.values().map(|&(_, d)| d).min() else {
                        assert!(t.next_deadline().is_none());
                        continue;
                    };
                    let earliest_tick = ceil_tick(earliest).max(now.div_ceil(TICK_NS));
                    let mut wake_ups = 0;
                    while live.values().any(|&(_, d)| d == earliest) {
                        let next = t.next_deadline().expect("a timer is armed");
                        let next = next.duration_since(origin).as_nanos() as u64;
                        assert!(
                            next <= earliest_tick * TICK_NS,
                            "next deadline {next} ns is after the earliest timer's tick"
                        );
                        now = now.max(next);
                        expire(&mut t, now, &mut live, &mut dead, &mut early);
                        wake_ups += 1;
                        assert!(wake_ups <= 16, "no progress towards {earliest} ns");
                    }
                }
            }
            assert_eq!(t.is_empty(), live.is_empty());
            // The slab holds the live timers and the nodes freed for reuse, no more.
            assert_eq!(t.nodes.live(), live.len());
        }
    }

    #[test]
    fn canceled_timers_free_their_memory_at_once() {
        // An HTTP server's pattern: 1024 connections, each op arming a 30–60 s deadline and
        // canceling it when it completes, 1 million times in ~7 s of (simulated) time.
        let (_count, waker) = counter();
        let origin = Instant::now();
        let mut t = Timers::new(origin);
        let mut rng = Rng(0x5EED);
        let mut armed: Vec<TimerId> = Vec::new();
        let mut due = Vec::new();
        let mut now = origin;
        for i in 0..1_000_000u32 {
            if armed.len() == 1024 {
                let victim = armed.swap_remove(rng.below(1024) as usize);
                t.cancel(victim);
            }
            let timeout = Duration::from_secs(30) + Duration::from_nanos(rng.below(30_000_000_000));
            armed.push(t.insert(now + timeout, waker.clone()));
            now += Duration::from_nanos(6_700);
            if i % 64 == 0 {
                t.expire(now, &mut due);
            }
        }
        assert!(due.is_empty());
        assert_eq!(t.nodes.live(), 1024);
        assert!(
            t.nodes.capacity() <= 2048,
            "{} nodes for 1024 live timers",
            t.nodes.capacity()
        );
    }
}

//! Unit tests of the fiber stack pool, and of the Green runtime on a kernel without
//! `MADV_GUARD_INSTALL` (forced with a [`GuardPolicy`]). Tests that measure process-wide figures
//! (maps, RSS) hold [`SERIAL`] so they do not disturb each other.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};

use super::slab::{self, GuardBudget, GuardPolicy};
use super::*;

/// Serialises the tests that read `/proc/self/maps`, RSS or the global mprotect count.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`], ignoring poisoning by a failed test.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Env var telling a re-executed test binary which child scenario to run.
const CHILD_ENV: &str = "ZSYNC_FIBER_STACK_CHILD";

/// Lines in `/proc/self/maps` (= VMAs).
fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Resident set size in bytes, from `/proc/self/statm`.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * page_size()
}

/// A policy forcing mprotect guards (as on a kernel without MADV_GUARD_INSTALL), counted in
/// the process's budget.
fn mprotect_policy() -> GuardPolicy {
    GuardPolicy {
        madvise: false,
        budget: GuardBudget::process(),
    }
}

/// A policy forcing mprotect guards from a budget of its own of `limit` guards: an old kernel
/// whose map count is nearly spent.
fn tiny_budget_policy(limit: usize) -> GuardPolicy {
    /// The budgets handed out, kept reachable for the process's life (a policy needs a
    /// `&'static` budget; LeakSanitizer does not count memory a static still refers to).
    static BUDGETS: std::sync::Mutex<Vec<&'static GuardBudget>> = std::sync::Mutex::new(Vec::new());
    let budget: &'static GuardBudget = Box::leak(Box::new(GuardBudget::new(limit)));
    BUDGETS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(budget);
    GuardPolicy {
        madvise: false,
        budget,
    }
}

/// Writes a byte to every usable page of `stack` (no coroutine on it).
fn dirty(stack: &PooledStack) {
    let bottom = stack.base().get() - stack.size();
    for off in (0..stack.size()).step_by(page_size()) {
        // SAFETY: inside the usable region of a stack we own and no coroutine uses.
        unsafe { std::ptr::write_volatile((bottom + off) as *mut u8, 0xAB) };
    }
}

/// Resident pages among the usable pages of `stack`.
fn resident_pages(stack: &PooledStack) -> usize {
    let bottom = stack.base().get() - stack.size();
    let mut vec = vec![0u8; stack.size() / page_size()];
    // SAFETY: queries a range of a mapping we hold alive into a buffer of one byte per page.
    let rc = unsafe { libc::mincore(bottom as *mut _, stack.size(), vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|b| *b & 1 != 0).count()
}

/// Returned stacks come back LIFO, aligned, and warm-up maps no more slabs.
#[test]
fn get_put_recycles_without_new_slabs() {
    let mut pool = StackPool::new(16 * 1024);
    assert_eq!(pool.stack_size(), 16 * 1024);
    let stacks: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    let bases: Vec<_> = stacks.iter().map(|s| s.base().get()).collect();
    for s in &stacks {
        assert_eq!(s.base().get() % corosensei::stack::STACK_ALIGNMENT, 0);
        assert_eq!(s.limit().get() % corosensei::stack::STACK_ALIGNMENT, 0);
        assert_eq!(s.base().get() - s.limit().get(), 16 * 1024 + page_size());
        assert_eq!(s.size(), 16 * 1024);
    }
    for s in stacks {
        pool.put(s);
    }
    // LIFO: the last one returned comes back first.
    assert_eq!(pool.get().unwrap().base().get(), bases[2]);
    let warm = pool.stats();
    assert_eq!(warm.slabs_mapped, 1);
    for _ in 0..10_000 {
        let s = pool.get().unwrap();
        pool.put(s);
    }
    let after = pool.stats();
    assert_eq!(after.slabs_mapped, 1);
    assert_eq!(after.carved, 3);
}

/// Slabs double in size; every stack gets the best guard the kernel offers.
#[test]
fn slabs_grow_and_have_one_guard_kind() {
    let mut pool = StackPool::new(4096);
    let stacks: Vec<_> = (0..100).map(|_| pool.get().unwrap()).collect();
    // 16 + 32 + 64 slots.
    assert_eq!(pool.stats().slabs_mapped, 3);
    let expected = if slab::madv_guard_supported() {
        GuardKind::GuardPage
    } else {
        GuardKind::Mprotect
    };
    assert!(stacks.iter().all(|s| s.guard_kind() == expected));
    let mut bases: Vec<_> = stacks.iter().map(|s| s.base().get()).collect();
    bases.sort_unstable();
    bases.dedup();
    assert_eq!(bases.len(), 100);
}

/// A corosensei coroutine runs on a pooled stack, which goes back to the pool afterwards.
#[test]
fn coroutine_runs_suspends_resumes_and_returns_its_stack() {
    let mut pool = StackPool::new(32 * 1024);
    let stack = pool.get().unwrap();
    let base = stack.base().get();
    let mut co = Coroutine::with_stack(stack, |y, start: u32| {
        let mut depth = [0u8; 1024];
        black_box(&mut depth);
        let next = y.suspend(start + 1);
        next * 10
    });
    assert!(matches!(co.resume(1), CoroutineResult::Yield(2)));
    assert!(matches!(co.resume(7), CoroutineResult::Return(70)));
    let stack = co.into_stack();
    pool.put(stack);
    assert_eq!(pool.get().unwrap().base().get(), base);
    assert_eq!(pool.stats().carved, 1);
}

/// A stack stays mapped and usable after its pool is dropped.
#[test]
fn stacks_outlive_their_pool() {
    let mut pool = StackPool::new(16 * 1024);
    let stack = pool.get().unwrap();
    drop(pool);
    let mut co = Coroutine::with_stack(stack, |_: &Yielder<u64, ()>, x| x + 1);
    assert!(matches!(co.resume(41), CoroutineResult::Return(42)));
    drop(co.into_stack());
}

/// Beyond `max_cached`, returned stacks lose their pages but are reused before carving.
#[test]
fn cold_stacks_release_pages_and_are_reused() {
    let mut pool = StackPool::new(64 * 1024).with_max_cached(2);
    let stacks: Vec<_> = (0..5).map(|_| pool.get().unwrap()).collect();
    stacks.iter().for_each(dirty);
    for s in stacks {
        pool.put(s);
    }
    let st = pool.stats();
    assert_eq!((st.hot, st.cold), (2, 3));
    let again: Vec<_> = (0..5).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.stats().carved, 5, "recycled, not carved");
    // The cold ones read as zeros again (their pages were dropped).
    let zeroed = again
        .iter()
        .filter(|s| {
            // SAFETY: the lowest usable byte of a stack we own (dirtied above).
            unsafe { std::ptr::read_volatile((s.base().get() - s.size()) as *const u8) == 0 }
        })
        .count();
    assert_eq!(zeroed, 3);
}

/// mprotect guards cost ~2 VMAs each and are counted in their budget until their slab goes.
#[test]
fn mprotect_fallback_costs_vmas_and_counts_its_guards() {
    let _serial = serial();
    let policy = tiny_budget_policy(5000);
    let mut pool = StackPool::with_policy(16 * 1024, policy);
    let before = map_count();
    let stacks: Vec<_> = (0..1000).map(|_| pool.get().unwrap()).collect();
    let grown = map_count() - before;
    println!("mprotect guards: 1000 stacks -> +{grown} VMAs");
    assert!(stacks.iter().all(|s| s.guard_kind() == GuardKind::Mprotect));
    assert!(grown >= 1500, "mprotect guards split the slab: +{grown}");
    assert_eq!(policy.budget.in_use(), 1000);
    drop(stacks);
    drop(pool);
    assert_eq!(
        policy.budget.in_use(),
        0,
        "unmapped slabs give their guards back"
    );
}

/// The regression test of the canary fallback: past the mprotect budget, `get` used to hand out
/// stacks without a guard page (a canary checked after the fact), whose overflow could write
/// into the neighbouring stack before anything noticed. Now it refuses, clearly, and the slots
/// it carved keep working.
#[test]
fn past_the_guard_budget_get_refuses_instead_of_handing_out_an_unguarded_stack() {
    let policy = tiny_budget_policy(10);
    let mut pool = StackPool::with_policy(16 * 1024, policy);
    let stacks: Vec<_> = (0..10).map(|_| pool.get().unwrap()).collect();
    assert!(stacks.iter().all(|s| s.guard_kind() == GuardKind::Mprotect));
    for _ in 0..3 {
        let err = pool.get().expect_err("no guard left: no stack");
        assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
        let msg = err.to_string();
        assert!(msg.contains("no guard page left"), "{msg}");
        assert!(msg.contains("MADV_GUARD_INSTALL"), "{msg}");
        assert!(msg.contains("10 mprotect guards"), "{msg}");
    }
    assert_eq!(pool.stats().carved, 10);
    // Returned stacks are recycled with their guards, budget or not.
    for s in stacks {
        pool.put(s);
    }
    let again: Vec<_> = (0..10).map(|_| pool.get().unwrap()).collect();
    assert!(again.iter().all(|s| s.guard_kind() == GuardKind::Mprotect));
    assert_eq!(pool.stats().carved, 10);
    assert!(pool.get().is_err());
    // Once a slab is gone, its guards are back in the budget and carving resumes.
    drop(again);
    drop(pool);
    assert_eq!(policy.budget.in_use(), 0);
    let mut pool = StackPool::with_policy(16 * 1024, policy);
    assert_eq!(pool.get().unwrap().guard_kind(), GuardKind::Mprotect);
}

/// A base time for the trim tests: `trim` reads no clock, the tests pass their own instants.
fn periods(t0: Instant, n: u32) -> Instant {
    t0 + TRIM_PERIOD * n
}

/// Stacks nobody took for `TRIM_AGE` periods lose their pages, all but the `keep_hot` most
/// recent; slabs left with cold stacks only are unmapped. Releases are batched per run of
/// adjacent slots.
#[test]
fn trim_releases_stacks_unused_for_a_while_and_unmaps_idle_slabs() {
    let mut pool = StackPool::new(16 * 1024).with_keep_hot(4);
    // 16 + 32 + 64 + 128 slots: four slabs, the last one not full.
    let stacks: Vec<_> = (0..200).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.stats().slabs_mapped, 4);
    stacks.iter().for_each(dirty);
    let tops: Vec<usize> = stacks.iter().map(|s| s.base().get()).collect();
    for s in stacks {
        pool.put(s);
    }
    let t0 = Instant::now();
    // The first call only starts the clock; nothing is old yet.
    assert_eq!(pool.trim(t0).next, Some(periods(t0, 1)));
    assert_eq!(
        pool.trim(periods(t0, 1) - Duration::from_millis(1)).next,
        Some(periods(t0, 1))
    );
    for n in 1..TRIM_AGE {
        assert_eq!(pool.trim(periods(t0, n)).next, Some(periods(t0, n + 1)));
        assert_eq!(pool.stats().hot, 200, "period {n}: too early");
    }
    // Old enough: everything but the 4 most recent goes, and the caller is told to stop.
    let trim = pool.trim(periods(t0, TRIM_AGE));
    assert_eq!(
        trim,
        Trim {
            next: None,
            released: 196
        }
    );
    let st = pool.stats();
    assert_eq!(st.hot, 4);
    println!(
        "trim of 196 stacks: {} madvise calls, {} slabs unmapped",
        st.release_calls, st.slabs_unmapped
    );
    // Sorted and batched: one call per run of adjacent slots (slabs may even be adjacent).
    assert!(
        st.release_calls <= 4 + 4,
        "{} calls for 4 slabs",
        st.release_calls
    );
    // The three full slabs held only cold stacks (the 4 kept hot ones are the last returned,
    // from the slab still being carved): unmapped.
    assert_eq!(st.slabs_unmapped, 3);
    assert_eq!(st.cold, 196 - (16 + 32 + 64));
    // The stacks still cached are the ones of the current slab; their pages are gone (cold)
    // or still there (hot).
    let hot: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    assert!(hot
        .iter()
        .all(|s| resident_pages(s) == s.size() / page_size()));
    assert!(hot.iter().all(|s| tops[196..].contains(&s.base().get())));
    let cold: Vec<_> = (0..st.cold).map(|_| pool.get().unwrap()).collect();
    assert!(cold.iter().all(|s| resident_pages(s) == 0));
    // Nothing left to trim: no more calls wanted.
    assert_eq!(pool.trim(periods(t0, 100)).next, None);
}

/// A pool whose stacks are reused every period keeps them all hot, however many.
#[test]
fn trim_keeps_the_stacks_a_steady_load_reuses() {
    let mut pool = StackPool::new(16 * 1024).with_keep_hot(0);
    let t0 = Instant::now();
    let mut at = pool.trim(t0).next;
    for n in 0..4 * TRIM_AGE {
        let stacks: Vec<_> = (0..100).map(|_| pool.get().unwrap()).collect();
        for s in stacks {
            pool.put(s);
        }
        at = pool.trim(periods(t0, n + 1)).next;
    }
    assert!(at.is_some());
    let st = pool.stats();
    assert_eq!(
        (st.hot, st.cold, st.carved, st.release_calls),
        (100, 0, 100, 0)
    );
    // Load gone: a period counts when the pool is looked at (a busy worker does not look), so
    // the stacks go `TRIM_AGE` looks after their last use (the loop's last look was one), all
    // at once and in few calls; the two full slabs (16 + 32 slots) are unmapped.
    let mut looks = 0;
    while let Some(next) = at {
        looks += 1;
        at = pool.trim(next).next;
    }
    assert_eq!(looks, TRIM_AGE - 1);
    let st = pool.stats();
    assert_eq!((st.hot, st.cold, st.slabs_unmapped), (0, 100 - 48, 2));
    // Batched: at most one call per slab (100 stacks in three slabs; the kernel places the
    // slabs' mappings, adjacent or not, so runs may or may not merge across them).
    assert!(st.release_calls <= 3, "{} calls", st.release_calls);
}

/// 100k fibers parked at once: VMA and RSS growth, and timing (`--nocapture` prints them).
#[test]
fn hundred_thousand_parked_fibers() {
    const N: usize = 100_000;
    let _serial = serial();
    let mut pool = StackPool::new(16 * 1024);
    let mut parked: Vec<Coroutine<(), (), (), PooledStack>> = Vec::with_capacity(N);
    let (maps0, rss0) = (map_count(), rss_bytes());
    let mut kind = None;
    let t0 = Instant::now();
    for _ in 0..N {
        let stack = pool.get().unwrap();
        kind.get_or_insert(stack.guard_kind());
        let mut co = Coroutine::with_stack(stack, |y, ()| {
            y.suspend(());
        });
        assert!(matches!(co.resume(()), CoroutineResult::Yield(())));
        parked.push(co);
    }
    let create = t0.elapsed();
    let (maps1, rss1) = (map_count(), rss_bytes());
    let kind = kind.unwrap();
    let t1 = Instant::now();
    for mut co in parked.drain(..) {
        assert!(matches!(co.resume(()), CoroutineResult::Return(())));
        pool.put(co.into_stack());
    }
    let finish = t1.elapsed();
    let rss2 = rss_bytes();
    let st = pool.stats();
    let vma = maps1 as isize - maps0 as isize;
    let rss_per = (rss1 as f64 - rss0 as f64) / N as f64;
    println!(
        "{N} parked fibers ({kind:?}, 16 KiB stacks): create+park {:.0} ms ({:.2} us/fiber), \
         VMAs {maps0} -> {maps1} ({vma:+}), RSS +{:.1} MiB ({:.2} KiB/fiber), slabs {}; \
         finish+put {:.0} ms, RSS after put {:+.1} MiB vs start (hot {}, cold {})",
        create.as_secs_f64() * 1e3,
        create.as_secs_f64() * 1e6 / N as f64,
        (rss1 as f64 - rss0 as f64) / (1 << 20) as f64,
        rss_per / 1024.0,
        st.slabs_mapped,
        finish.as_secs_f64() * 1e3,
        (rss2 as f64 - rss0 as f64) / (1 << 20) as f64,
        st.hot,
        st.cold,
    );
    if kind == GuardKind::GuardPage {
        assert!(
            vma < 300,
            "MADV guards should add no VMAs per stack: {vma:+}"
        );
    }
    assert!(rss_per < 8192.0, "{rss_per} bytes of RSS per parked fiber");
    assert_eq!((st.hot, st.cold), (N, 0));

    drop(parked);
    // Idle: trim until the pool has nothing left to release.
    let t0 = Instant::now();
    let mut at = pool.trim(t0).next;
    let (mut trim_time, mut longest, mut calls) = (Duration::ZERO, Duration::ZERO, 0);
    while let Some(next) = at {
        let t = Instant::now();
        at = pool.trim(next).next;
        trim_time += t.elapsed();
        longest = longest.max(t.elapsed());
        calls += 1;
    }
    let rss3 = rss_bytes();
    let st = pool.stats();
    println!(
        "trimmed {} stacks in {:.1} ms over {calls} calls (longest {:.1} ms): {} madvise calls, \
         {} of {} slabs unmapped; RSS {:+.1} MiB vs start",
        N - st.hot,
        trim_time.as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3,
        st.release_calls,
        st.slabs_unmapped,
        st.slabs_mapped,
        (rss3 as f64 - rss0 as f64) / (1 << 20) as f64,
    );
    assert_eq!(st.hot, DEFAULT_KEEP_HOT);
    assert!(st.release_calls < 200, "{} calls", st.release_calls);
    // What stays is the C allocator's (this test's vectors), not stacks.
    assert!(
        rss3.saturating_sub(rss0) < (rss2 - rss0) / 20,
        "RSS {rss0} before, {rss2} after put, {rss3} after the trim"
    );
}

/// Prints the cost of a recycled get+put (no assertion on time).
#[test]
fn recycled_get_put_cost() {
    let mut pool = StackPool::new(64 * 1024);
    let s = pool.get().unwrap();
    pool.put(s);
    const ROUNDS: u32 = 1_000_000;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        let s = black_box(pool.get().unwrap());
        pool.put(s);
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
    println!("recycled get+put: {ns:.1} ns/op");
    let t = Instant::now();
    for _ in 0..ROUNDS / 10 {
        let s = pool.get().unwrap();
        let mut co = Coroutine::with_stack(s, |_: &Yielder<u64, ()>, x| x + 1);
        assert!(matches!(co.resume(1), CoroutineResult::Return(2)));
        pool.put(co.into_stack());
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(ROUNDS / 10);
    println!("get + create/run/finish a coroutine + put: {ns:.1} ns/op");
    assert_eq!(pool.stats().carved, 1);
}

/// Recurses without bound (each frame writes half a KiB), until the stack runs out.
fn recurse_forever(n: usize) -> usize {
    let mut buf = [n as u8; 512];
    black_box(&mut buf);
    if n == usize::MAX {
        return 0;
    }
    recurse_forever(n + 1) + usize::from(buf[n % 512])
}

/// Child body: overflow a 16 KiB fiber stack from `pool`, named `deep-recursion`, after the
/// stack went through a release of its pages: alone (`MADV_DONTNEED` of its usable pages, the
/// cold list) or, with `batched`, in one `madvise` over three adjacent slots, guards included,
/// as `StackPool::trim` does. The guard must survive both.
fn child_overflow(pool: StackPool, batched: bool) {
    ensure_sigaltstack().unwrap();
    let mut pool = pool.with_max_cached(if batched { usize::MAX } else { 0 });
    let stack = if batched {
        let mut pool_ = pool.with_keep_hot(0);
        let three: Vec<_> = (0..3).map(|_| pool_.get().unwrap()).collect();
        for s in three {
            pool_.put(s);
        }
        let mut at = pool_.trim(Instant::now()).next;
        while let Some(next) = at {
            at = pool_.trim(next).next;
        }
        let st = pool_.stats();
        assert_eq!(
            (st.cold, st.release_calls),
            (3, 1),
            "one call for three slots"
        );
        // The highest of the three: its guard lay inside the released range.
        let mut three: Vec<_> = (0..3).map(|_| pool_.get().unwrap()).collect();
        three.sort_by_key(|s| s.base().get());
        pool = pool_;
        three.pop().unwrap()
    } else {
        let s = pool.get().unwrap();
        pool.put(s);
        pool.get().unwrap()
    };
    eprintln!("child: guard kind {:?}", stack.guard_kind());
    let mut co = Coroutine::with_stack(stack, |_: &Yielder<(), ()>, ()| recurse_forever(0));
    set_current_task_name(Some("deep-recursion"));
    let r = co.resume(());
    eprintln!(
        "child: coroutine survived its overflow: {}",
        matches!(r, CoroutineResult::Return(_))
    );
    drop(pool);
    std::process::exit(3);
}

/// Runs the current test binary on `test` with [`CHILD_ENV`]`=scenario`; returns the exit
/// status and stderr.
fn run_child(test: &str, scenario: &str) -> (std::process::ExitStatus, String) {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("{module}::{test}"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Dispatches to a child body when this process is a re-executed child.
fn maybe_child() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, batched) = match scenario.split_once('-') {
        Some((kind, "batched")) => (kind, true),
        _ => (scenario.as_str(), false),
    };
    match kind {
        "auto" => child_overflow(StackPool::new(16 * 1024), batched),
        "mprotect" => child_overflow(
            StackPool::with_policy(16 * 1024, mprotect_policy()),
            batched,
        ),
        "runaway_thread" | "runaway_fiber" => child_runaway_without_spare_guards(kind),
        _ => {}
    }
}

/// Asserts the child was killed by SIGABRT after printing the overflow report.
fn assert_overflow_report(status: std::process::ExitStatus, stderr: &str, name: &str, what: &str) {
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "status {status:?}, stderr:\n{stderr}"
    );
    let expected = format!("zsync: fiber task '{name}' overflowed its stack of 16 KiB ({what}");
    assert!(stderr.contains(&expected), "stderr:\n{stderr}");
    assert!(
        stderr.contains("raise the stack size with Builder::stack_size"),
        "{stderr}"
    );
}

/// A runaway recursion hits the guard page; the child aborts with the report.
#[test]
fn overflow_hits_the_guard_and_is_reported() {
    maybe_child();
    let (status, stderr) = run_child("overflow_hits_the_guard_and_is_reported", "auto");
    assert_overflow_report(status, &stderr, "deep-recursion", "fault at 0x");
    println!("child stderr:\n{stderr}");
}

/// Same with a forced mprotect guard.
#[test]
fn overflow_hits_an_mprotect_guard_and_is_reported() {
    maybe_child();
    let (status, stderr) = run_child(
        "overflow_hits_an_mprotect_guard_and_is_reported",
        "mprotect",
    );
    assert!(stderr.contains("guard kind Mprotect"), "{stderr}");
    assert_overflow_report(status, &stderr, "deep-recursion", "fault at 0x");
}

/// `trim` releases runs of adjacent stacks in one `madvise` that spans the guards between
/// them: both kinds of guard must still fault afterwards.
#[test]
fn overflow_after_a_batched_release_still_hits_the_guard() {
    maybe_child();
    let test = "overflow_after_a_batched_release_still_hits_the_guard";
    let (status, stderr) = run_child(test, "auto-batched");
    assert_overflow_report(status, &stderr, "deep-recursion", "fault at 0x");
    let (status, stderr) = run_child(test, "mprotect-batched");
    assert!(stderr.contains("guard kind Mprotect"), "{stderr}");
    assert_overflow_report(status, &stderr, "deep-recursion", "fault at 0x");
}

// ---- the Green runtime without guard pages to spare ----------------------------------------

/// An address in the caller's stack frame.
#[inline(never)]
fn stack_marker() -> usize {
    let local = 0u8;
    black_box(&local) as *const u8 as usize
}

/// The memory area holding `addr` (its lowest address), and whether an inaccessible area
/// (`---p`: a guard) ends right where it begins, from `/proc/self/maps`.
fn area_and_guard_below(addr: usize) -> (usize, bool) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let areas: Vec<(usize, usize, bool)> = maps
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let (lo, hi) = fields.next().unwrap().split_once('-').unwrap();
            let inaccessible = fields.next().unwrap().starts_with("---");
            let hex = |s| usize::from_str_radix(s, 16).unwrap();
            (hex(lo), hex(hi), inaccessible)
        })
        .collect();
    let (start, _, _) = *areas
        .iter()
        .find(|&&(lo, hi, _)| lo <= addr && addr < hi)
        .unwrap();
    let guarded = areas.iter().any(|&(_, hi, none)| hi == start && none);
    (start, guarded)
}

/// Green's stack fallback on an old kernel at its map limit: no `MADV_GUARD_INSTALL`, room for 8
/// mprotect guards. 40 tasks alive at once: the first 7 get fibers (the root fiber holds the
/// 8th guard), the others run on helper threads. Every task finds a guard page right below its
/// own stack. Before the fix, tasks past the budget ran as fibers on unguarded stacks (their
/// memory area continued into the neighbouring stack).
#[test]
fn no_green_fiber_runs_without_a_guard_page_past_the_budget() {
    const TASKS: usize = 40;
    const STACK: usize = 64 * 1024;
    /// What a task saw: on a fiber?, its stack marker, the area holding it, guard below?
    type Seen = (bool, usize, usize, bool);
    let _serial = serial();
    let policy = tiny_budget_policy(8);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let started = Arc::new(AtomicUsize::new(0));
    let all_started = Arc::new(crate::sync::ResetEvent::new());
    let gate = Arc::new(crate::sync::ResetEvent::new());
    crate::Builder::new(crate::Model::Green)
        .worker_threads(2)
        .stack_size(STACK)
        .guard_policy(policy)
        .run(|io| {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (seen, started) = (seen.clone(), started.clone());
                    let (all_started, gate) = (all_started.clone(), gate.clone());
                    io.spawn(move |_| {
                        let marker = stack_marker();
                        let (area, guarded) = area_and_guard_below(marker);
                        let on_fiber = crate::model::green::fiber::on_fiber();
                        seen.lock().unwrap().push((on_fiber, marker, area, guarded));
                        if started.fetch_add(1, Ordering::AcqRel) + 1 == TASKS {
                            all_started.set();
                        }
                        gate.wait().unwrap();
                    })
                })
                .collect();
            all_started.wait().unwrap();
            gate.set();
            for t in tasks {
                t.join().unwrap();
            }
        });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), TASKS);
    let fibers = seen.iter().filter(|s| s.0).count();
    println!("{fibers} of {TASKS} tasks ran on fibers, the others on helper threads");
    assert_eq!(fibers, 7, "the budget of 8 guards, one of them the root's");
    for &(on_fiber, marker, area, guarded) in seen.iter() {
        // A fiber's stack is its own memory area above its guard, at most a stack long; a
        // helper thread's likewise (std's 2 MiB, or RUST_MIN_STACK).
        let own = if on_fiber { STACK } else { 64 << 20 };
        assert!(
            guarded && marker - area <= own,
            "task on a {} at {marker:#x}: area from {area:#x} ({} KiB below), guard below: \
             {guarded}",
            if on_fiber { "fiber" } else { "thread" },
            (marker - area) / 1024
        );
    }
    assert_eq!(
        policy.budget.in_use(),
        0,
        "the runtime's slabs are unmapped"
    );
}

/// Recurses without bound like [`recurse_forever`]; on a fiber, says so (once) if a frame lies
/// more than a stack below `start`: it would be writing into memory that is not its stack.
fn recurse_checked(start: usize, n: usize) -> usize {
    static SAID: AtomicBool = AtomicBool::new(false);
    let mut buf = [n as u8; 512];
    black_box(&mut buf);
    let here = buf.as_ptr() as usize;
    if start - here > 64 * 1024 + 4096
        && crate::model::green::fiber::on_fiber()
        && !SAID.swap(true, Ordering::Relaxed)
    {
        eprintln!("child: a fiber wrote below its own stack");
    }
    if n == usize::MAX {
        return 0;
    }
    recurse_checked(start, n + 1) + usize::from(buf[n % 512])
}

/// Child body: a Green runtime on one worker with 64 KiB stacks and no `MADV_GUARD_INSTALL`;
/// its guard budget has room for the root fiber only (`runaway_thread`: the task runs on a
/// helper thread) or for one more fiber (`runaway_fiber`). A task recurses without bound.
fn child_runaway_without_spare_guards(scenario: &str) -> ! {
    let policy = tiny_budget_policy(if scenario == "runaway_thread" { 1 } else { 2 });
    crate::Builder::new(crate::Model::Green)
        .worker_threads(1)
        .stack_size(64 * 1024)
        .guard_policy(policy)
        .run(|io| {
            let started = Arc::new(crate::sync::ResetEvent::new());
            let s = started.clone();
            let task = io.spawn(move |_| {
                eprintln!(
                    "child: runaway on a fiber: {}",
                    crate::model::green::fiber::on_fiber()
                );
                s.set();
                recurse_checked(stack_marker(), 0)
            });
            // Not inline on the root's fiber: let it start as a task of its own first.
            started.wait().unwrap();
            let r = task.join();
            eprintln!("child: the runaway task returned: {}", r.is_ok());
        });
    std::process::exit(3);
}

/// An overflow on the no-guard fallback aborts at a guard page and is reported, without ever
/// writing below its own stack: on a helper thread (budget spent: Rust's own report) and on a
/// fiber with an mprotect guard (zsync's report). Before the fix, the task past the budget ran
/// as a fiber on an unguarded stack and wrote through its neighbour's stack.
#[test]
fn overflow_on_the_no_guard_fallback_is_reported_and_corrupts_nothing() {
    maybe_child();
    let test = "overflow_on_the_no_guard_fallback_is_reported_and_corrupts_nothing";
    let (status, stderr) = run_child(test, "runaway_thread");
    println!("child stderr (runaway_thread):\n{stderr}");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}\n{stderr}");
    assert!(stderr.contains("runaway on a fiber: false"), "{stderr}");
    assert!(stderr.contains("has overflowed its stack"), "{stderr}");
    assert!(!stderr.contains("below its own stack"), "{stderr}");
    assert!(!stderr.contains("returned"), "{stderr}");

    let (status, stderr) = run_child(test, "runaway_fiber");
    println!("child stderr (runaway_fiber):\n{stderr}");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}\n{stderr}");
    assert!(stderr.contains("runaway on a fiber: true"), "{stderr}");
    assert!(
        stderr.contains("overflowed its stack of 64 KiB (fault at 0x"),
        "{stderr}"
    );
    assert!(!stderr.contains("below its own stack"), "{stderr}");
}

/// Faults outside our guards still reach the previous handler and kill with SIGSEGV.
#[test]
fn foreign_faults_still_kill_with_sigsegv() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("foreign") {
        let mut pool = StackPool::new(16 * 1024);
        let _s = pool.get().unwrap(); // installs our handler
                                      // SAFETY: deliberately faults on an unmapped address (this is the child process).
        unsafe { std::ptr::write_volatile(16 as *mut u8, 1) };
        std::process::exit(3);
    }
    let (status, stderr) = run_child("foreign_faults_still_kill_with_sigsegv", "foreign");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status:?}\n{stderr}");
    assert!(!stderr.contains("overflowed its stack"), "{stderr}");
}

/// Stacks can move between threads (a fiber's stack is handed to the worker that runs it).
#[test]
fn pooled_stack_is_send() {
    fn send<T: Send>() {}
    send::<PooledStack>();
    send::<StackPool>();
}

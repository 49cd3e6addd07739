//! Unit tests of the fiber stack pool. Tests that measure process-wide figures (maps, RSS,
//! the mprotect budget) hold [`SERIAL`] so they do not disturb each other.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use corosensei::{Coroutine, CoroutineResult, Yielder};

use super::slab::{self, GuardPolicy};
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

/// A policy forcing mprotect guards (as on a kernel without MADV_GUARD_INSTALL).
fn mprotect_policy() -> GuardPolicy {
    GuardPolicy {
        madvise: false,
        mprotect_budget: slab::default_mprotect_budget(),
    }
}

/// A policy forcing canaries (as with the VMA budget exhausted).
fn canary_policy() -> GuardPolicy {
    GuardPolicy {
        madvise: false,
        mprotect_budget: 0,
    }
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
        stacks[0].guard_kind()
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
    assert!(stack.check_canary());
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
    for s in &stacks {
        // Dirty every usable page.
        let bottom = s.base().get() - s.size();
        for off in (0..s.size()).step_by(page_size()) {
            // SAFETY: inside the usable region of a stack we own and no coroutine uses.
            unsafe { std::ptr::write_volatile((bottom + off) as *mut u8, 0xAB) };
        }
    }
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

/// `check_canary` sees a clobbered canary; a cold round trip rewrites it.
#[test]
fn canary_detects_a_clobbered_stack_and_survives_recycling() {
    let mut pool = StackPool::with_policy(16 * 1024, canary_policy()).with_max_cached(0);
    let stack = pool.get().unwrap();
    assert_eq!(stack.guard_kind(), GuardKind::Canary);
    assert!(stack.check_canary());
    // Cold round trip: MADV_DONTNEED zeroes the canary, get rewrites it.
    pool.put(stack);
    let stack = pool.get().unwrap();
    assert!(stack.check_canary());
    let bottom = stack.base().get() - stack.size();
    // SAFETY: the canary words of a stack we own, no coroutine on it.
    unsafe { std::ptr::write_volatile((bottom + 8) as *mut u64, 0) };
    assert!(!stack.check_canary());
    drop(stack); // not put: put would abort with a report (see the subprocess test).
}

/// mprotect guards cost ~2 VMAs each; past the budget, stacks get canaries.
#[test]
fn mprotect_fallback_costs_vmas_and_canaries_beyond_the_budget() {
    let _serial = serial();
    let mut pool = StackPool::with_policy(16 * 1024, mprotect_policy());
    let before = map_count();
    let stacks: Vec<_> = (0..1000).map(|_| pool.get().unwrap()).collect();
    let grown = map_count() - before;
    println!("mprotect guards: 1000 stacks -> +{grown} VMAs");
    assert!(stacks.iter().all(|s| s.guard_kind() == GuardKind::Mprotect));
    assert!(grown >= 1500, "mprotect guards split the slab: +{grown}");
    drop(stacks);
    drop(pool);

    // A budget of 10 more guards: the 11th stack gets a canary.
    let budget_now = slab::mprotect_guards_in_use() + 10;
    let mut pool = StackPool::with_policy(
        16 * 1024,
        GuardPolicy {
            madvise: false,
            mprotect_budget: budget_now,
        },
    );
    let stacks: Vec<_> = (0..20).map(|_| pool.get().unwrap()).collect();
    let kinds: Vec<_> = stacks.iter().map(|s| s.guard_kind()).collect();
    assert!(
        kinds[..10].iter().all(|k| *k == GuardKind::Mprotect),
        "{kinds:?}"
    );
    assert!(
        kinds[10..].iter().all(|k| *k == GuardKind::Canary),
        "{kinds:?}"
    );
    assert!(stacks.iter().all(|s| s.check_canary()));
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
    assert_eq!(
        (st.hot, st.cold),
        (DEFAULT_MAX_CACHED, N - DEFAULT_MAX_CACHED)
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

/// Recurses until a frame lies below `stop`, then returns.
fn recurse_below(stop: usize) -> usize {
    let mut buf = [0x55u8; 256];
    black_box(&mut buf);
    let here = buf.as_ptr() as usize;
    if here < stop {
        return here;
    }
    recurse_below(stop) + usize::from(buf[0])
}

/// Child body: overflow a 16 KiB fiber stack from `pool`, named `deep-recursion`.
fn child_overflow(mut pool: StackPool) {
    ensure_sigaltstack().unwrap();
    // Through the cold list: the guard must survive MADV_DONTNEED of the stack.
    let s = pool.get().unwrap();
    pool.put(s);
    let stack = pool.get().unwrap();
    eprintln!("child: guard kind {:?}", stack.guard_kind());
    let mut co = Coroutine::with_stack(stack, |_: &Yielder<(), ()>, ()| recurse_forever(0));
    set_current_task_name(Some("deep-recursion"));
    let r = co.resume(());
    eprintln!(
        "child: coroutine survived its overflow: {}",
        matches!(r, CoroutineResult::Return(_))
    );
    std::process::exit(3);
}

/// Child body for the canary: overflow past the canary (within the unguarded page below the
/// stack), then return the stack to the pool, which must report and abort.
fn child_canary() {
    let mut pool = StackPool::with_policy(16 * 1024, canary_policy());
    let stack = pool.get().unwrap();
    let stop = stack.base().get() - stack.size() - 1024;
    let mut co = Coroutine::with_stack(stack, move |_: &Yielder<(), ()>, ()| recurse_below(stop));
    set_current_task_name(Some("canary-victim"));
    assert!(matches!(co.resume(()), CoroutineResult::Return(_)));
    let stack = co.into_stack();
    if stack.check_canary() {
        eprintln!("child: canary intact after overflow");
        std::process::exit(4);
    }
    pool.put(stack);
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
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("auto") => child_overflow(StackPool::new(16 * 1024).with_max_cached(0)),
        Ok("mprotect") => {
            child_overflow(StackPool::with_policy(16 * 1024, mprotect_policy()).with_max_cached(0))
        }
        Ok("canary") => child_canary(),
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

/// An overflow of a canary stack is reported when the stack is returned.
#[test]
fn overflow_past_a_canary_is_reported_after_the_fact() {
    maybe_child();
    let (status, stderr) = run_child(
        "overflow_past_a_canary_is_reported_after_the_fact",
        "canary",
    );
    assert_overflow_report(status, &stderr, "canary-victim", "canary at 0x");
    println!("child stderr:\n{stderr}");
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

#!/usr/bin/env bash
# AddressSanitizer and LeakSanitizer over the test suite (nightly Rust, x86_64 Linux).
#
#   ci/asan.sh                  the whole suite: unit tests, every integration test binary
#                               (conformance, green_fibers, leaks, servers, alloc) and doctests
#   ci/asan.sh ARGS...          `cargo test ARGS...` under ASan instead, e.g.
#                               `ci/asan.sh --test conformance -- bufio` (the two tests that
#                               need options of their own, below, need them in ASAN_OPTIONS)
#
# Any ASan report (heap/stack-use-after-free, overflow, stack-use-after-return, a leak at exit)
# makes the test binary exit non-zero, so the script fails. It needs the nightly toolchain
# (`-Zsanitizer` is unstable); std comes precompiled, so only zsync, its dependencies and the
# tests are instrumented (without rust-src, `-Zbuild-std` is not an option). llvm-symbolizer on
# PATH (Debian: `llvm`) turns the reports' addresses into file:line.
#
# How it is set up:
# - `-Zsanitizer=address` makes rustc set `cfg(sanitize = "address")`, which turns on
#   corosensei's `sanitizer` feature (Cargo.toml): every fiber switch is announced to ASan, which
#   would otherwise report false stack errors (stack-use-after-scope) on recycled fiber stacks.
# - `--cfg zsync_asan` tells tests that assert RSS figures that ASan's shadow memory is in them.
# - Release profile with line tables and debug assertions: the Green tests spawn up to 100k
#   fibers, which optimized code keeps to minutes on 2 cores; assertions still check invariants.
# - Its own target directory (target/asan), so the normal build is left alone.
# - Options per test (ASAN_OPTIONS; yours are appended and win):
#   detect_leaks=1 and detect_stack_use_after_return=1 everywhere (the latter is ASan's default
#   on Linux, stated for the record); handle_segv=0 only for the tests whose children must die by
#   a signal (with ASan's handler they exit with status 1 instead); detect_stack_use_after_return=0
#   only for the two 100k-parked-fibers tests (each fiber would get a fake stack of its own:
#   gigabytes).
#
# Run times and the reasons behind these choices: docs/ARCHITECTURE.md, "Sanitizers".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes --cfg zsync_asan"
export RUSTDOCFLAGS="$RUSTFLAGS"
export CARGO_TARGET_DIR=target/asan
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true

if ! cargo +nightly --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        rustup toolchain install nightly --profile minimal
    else
        echo "the nightly toolchain is missing and rustup is not available to add it" >&2
        exit 1
    fi
fi
if ! command -v llvm-symbolizer >/dev/null 2>&1; then
    echo "note: llvm-symbolizer not on PATH: ASan reports will show bare addresses" >&2
fi

# Tests whose re-executed children must die by a signal from a fault that ASan's SEGV handler
# would turn into an exit with status 1: a fault outside zsync's guard pages, and a stack
# overflow on a helper thread that std's own guard-page handler must report.
SEGV_TEST=fiber_stack::tests::foreign_faults_still_kill_with_sigsegv
SEGV_TEST2=fiber_stack::tests::overflow_on_the_no_guard_fallback_is_reported_and_corrupts_nothing
# 100k fibers parked at once: run without fake stacks (see above).
MANY_FIBERS_TEST=hundred_thousand_parked_fibers
MANY_FIBERS_TEST2=rss_returns_to_its_pre_spike_level_after_100k_parked_tasks_finish

base="detect_leaks=1:detect_stack_use_after_return=1"
asan() { # asan EXTRA_OPTIONS CARGO_TEST_ARGS...
    local extra=$1
    shift
    ASAN_OPTIONS="$base${extra:+:$extra}${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
        timeout --kill-after=30 1800 \
        cargo +nightly test --release --target "$TARGET" "$@"
}

section() {
    printf '\n==== %s ====\n' "$*"
}

if [ $# -gt 0 ]; then
    section "cargo test $* (ASan)"
    asan "" "$@"
    exit
fi

section "build (ASan, target/asan)"
cargo +nightly test --release --target "$TARGET" --lib --tests --no-run

# Every step runs even if one before it failed; the failures are listed at the end.
failed=()
step() { # step NAME EXTRA_OPTIONS CARGO_TEST_ARGS...
    local name=$1
    shift
    section "$name"
    asan "$@" || failed+=("$name")
}

step "unit and integration tests" "" \
    --no-fail-fast --lib --tests -- --skip "$SEGV_TEST" --skip "$SEGV_TEST2" \
    --skip "$MANY_FIBERS_TEST" --skip "$MANY_FIBERS_TEST2"
step "the child-dies-by-signal tests (handle_segv=0)" "handle_segv=0" \
    --lib -- --exact "$SEGV_TEST" "$SEGV_TEST2"
step "$MANY_FIBERS_TEST (detect_stack_use_after_return=0)" "detect_stack_use_after_return=0" \
    --test green_fibers -- --exact "$MANY_FIBERS_TEST" "$MANY_FIBERS_TEST2"
step "doctests" "" --doc

if [ ${#failed[@]} -gt 0 ]; then
    section "ASan run FAILED"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
section "ASan: all clean"

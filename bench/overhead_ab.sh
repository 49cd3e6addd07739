#!/usr/bin/env bash
# Overhead side by side: two builds of zsync, A and B, measured in interleaved runs (A, B, A,
# B, ...), so that the load of a shared machine falls on both alike. Written for issue 14's
# item 5 (the diagnostics against the commit before them); see docs/debugging.md, "Overhead".
#
#   bench/overhead_ab.sh build WORKTREE OUT [CARGO_ARGS...]
#       builds benches/green.rs, examples/hot_paths.rs and examples/http_server.rs in release
#       (line tables on, for callgrind_annotate) in WORKTREE and copies them into OUT.
#   bench/overhead_ab.sh micro A B [PAIRS]      wall time of the benches/green.rs children
#       (each run a fresh process: `green --child zsync|threaded BENCH`), the best of its warm
#       iterations; spawn_join, yield, ping_pong, sleeps on Green and Threaded.
#   bench/overhead_ab.sh callgrind A B          instructions per operation of
#       examples/hot_paths.rs (one Green epoll worker): (I(2n) - I(n)) / n, n = 20000, the
#       monitor thread left out (see `instructions`). No noise; files kept in CG_DIR (/tmp).
#   bench/overhead_ab.sh http A B [PAIRS]       examples/http_server (Green, 2 workers, default
#       backend) under `wrk -t1 -c64 -d5s` after a 1 s warm-up: req/s, and the server's CPU
#       (user+sys from /proc/PID/stat) per request in µs.
#
# A and B are OUT directories of `build`. A_FLAGS / B_FLAGS add server flags to A's / B's
# http_server (profile on against off: both built with `--features profile`, B_FLAGS=--profile).
# PAIRS defaults to 5. Each run is printed, then per figure the medians of A and B and the
# ratio B/A of every pair: median, best and worst ("best" is the pair most favourable to B).
set -euo pipefail

mode=${1:?usage: see the header of $0}
shift

build() {
    local wt=$1 out=$2
    shift 2
    mkdir -p "$out"
    [ -f "$wt/examples/hot_paths.rs" ] || { echo "$wt has no examples/hot_paths.rs: copy it in" >&2; exit 1; }
    (cd "$wt" && CARGO_PROFILE_RELEASE_DEBUG=line-tables-only nice -n 19 cargo build --release \
        --bench green --example hot_paths --example http_server --message-format=json "$@") |
        grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | while read -r exe; do
            case $(basename "$exe") in
                green-*) cp "$exe" "$out/green" ;;
                hot_paths | http_server) cp "$exe" "$out/" ;;
            esac
        done
    ls -l "$out"
}

# summary FILE: lines "figure side pair value" -> medians and B/A ratios per figure. `higher`
# in a figure's name means higher is better (req/s); otherwise lower is.
summary() {
    awk '
    function median(arr, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && arr[j-1] > arr[j]; j--) { t = arr[j]; arr[j] = arr[j-1]; arr[j-1] = t }
        return n % 2 ? arr[(n+1)/2] : (arr[n/2] + arr[n/2+1]) / 2
    }
    { v[$1, $2, $3] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++nf] = $1 } if ($3 > np[$1]) np[$1] = $3 }
    END {
        printf "%-28s %12s %12s %8s %8s %8s  (B/A per pair)\n", "figure", "A median", "B median", "median", "best", "worst"
        for (f = 1; f <= nf; f++) {
            name = order[f]; na = nb = nr = 0
            for (p = 1; p <= np[name]; p++) {
                if ((name, "A", p) in v) a[++na] = v[name, "A", p]
                if ((name, "B", p) in v) b[++nb] = v[name, "B", p]
                if ((name, "A", p) in v && (name, "B", p) in v && v[name, "A", p] > 0) r[++nr] = v[name, "B", p] / v[name, "A", p]
            }
            if (nr == 0) continue
            ma = median(a, na); mb = median(b, nb); mr = median(r, nr)
            higher = name ~ /req\/s/
            best = higher ? r[nr] : r[1]; worst = higher ? r[1] : r[nr]
            printf "%-28s %12.1f %12.1f %8.3f %8.3f %8.3f\n", name, ma, mb, mr, best, worst
        }
    }' "$1"
}

# micro DIR RUNTIME BENCH -> the best of the warm iterations (ns per op, or ms for sleeps): on
# a machine shared with other work the best is the figure least disturbed by it
micro_once() {
    "$1/green" --child "$2" "$3" 2>/dev/null | awk '/^RESULT/ {
        best = $3; for (i = 4; i <= NF; i++) if ($i + 0 < best + 0) best = $i
        print best }'
}

# instructions DIR OP N -> instructions callgrind counted in every thread but the Green
# monitor's (zsync-sysmon: it wakes on a timer, so under valgrind's slow clock its count grows
# with the run's length, not with the operations)
instructions() {
    local out
    out="${CG_DIR:-/tmp}/callgrind.$(basename "$1").$2.$3"
    rm -f "$out"-*
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out" \
        "$1/hot_paths" "$2" "$3" >/dev/null 2>&1
    for f in "$out"-*; do
        grep -q 'sysmon::watch' "$f" || awk '/^totals:/ { print $2 }' "$f"
    done | awk '{ s += $1 } END { print s }'
}

# http_once DIR FLAGS -> "req/s cpu_us_per_request"
http_once() {
    local dir=$1 flags=$2 log addr pid
    log=$(mktemp)
    # shellcheck disable=SC2086 # FLAGS is a list of words
    "$dir/http_server" --addr 127.0.0.1:0 --model green --workers 2 $flags >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$log")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    [ -n "$addr" ] || { cat "$log" >&2; kill "$pid"; exit 1; }
    wrk -t1 -c64 -d1s "http://$addr/" >/dev/null
    local t0 out t1
    t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    out=$(wrk -t1 -c64 -d5s "http://$addr/")
    t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$log" "${TMPDIR:-/tmp}/zsync-http-server-$pid" # the file it serves on GET /file
    echo "$out" | awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
        /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 }
        END { printf "%.0f %.3f\n", rps, ticks / hz * 1e6 / n }'
}

run_pairs() {
    local what=$1 a=$2 b=$3 pairs=$4 results
    results=$(mktemp)
    for p in $(seq "$pairs"); do
        for side in A B; do
            local dir=$a flags=${A_FLAGS:-}
            [ $side = B ] && dir=$b flags=${B_FLAGS:-}
            case $what in
                micro)
                    for rt in zsync threaded; do
                        for bench in spawn_join yield ping_pong sleeps; do
                            [ $rt = threaded ] && [ $bench = sleeps ] && continue
                            v=$(micro_once "$dir" $rt $bench)
                            echo "$rt/$bench $side $p $v" | tee -a "$results"
                        done
                    done
                    ;;
                http)
                    read -r rps cpu < <(http_once "$dir" "$flags")
                    echo "http_req/s $side $p $rps" | tee -a "$results"
                    echo "http_cpu_us/req $side $p $cpu" | tee -a "$results"
                    ;;
            esac
        done
    done
    echo
    summary "$results"
    rm -f "$results"
}

case $mode in
    build) build "$@" ;;
    micro | http) run_pairs "$mode" "$1" "$2" "${3:-5}" ;;
    callgrind)
        printf "%-10s %12s %12s %8s\n" op "A ins/op" "B ins/op" "B/A"
        for op in spawn pingpong yield sleep0; do
            n=20000
            row=""
            for dir in "$1" "$2"; do
                i1=$(instructions "$dir" $op $n)
                i2=$(instructions "$dir" $op $((2 * n)))
                row="$row $(((i2 - i1) / n))"
            done
            echo "$op$row" | awk '{ printf "%-10s %12d %12d %8.3f\n", $1, $2, $3, $3 / $2 }'
        done
        ;;
    *) echo "unknown mode $mode (build, micro, callgrind, http)" >&2; exit 2 ;;
esac

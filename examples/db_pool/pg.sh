#!/usr/bin/env bash
# A private PostgreSQL server for the db_pool example, its test and its benchmark.
#
#   examples/db_pool/pg.sh start    # init (first time) and start; idempotent
#   examples/db_pool/pg.sh stop     # fast shutdown; idempotent
#   examples/db_pool/pg.sh status   # exit 0 if it answers, 1 if not
#   examples/db_pool/pg.sh url      # print the connection string
#
# The cluster listens on 127.0.0.1 only, on a private port (ZSYNC_PG_PORT, default 54329), with
# a private data directory and socket directory under ZSYNC_PG_DIR (default
# /tmp/zsync-pg-<port>), trust authentication for user `postgres`, database `postgres`. It is a
# throwaway test cluster: fsync and synchronous_commit are off, so a benchmark measures the
# clients and the server's query path rather than this machine's disk flushes.
#
# initdb refuses to run as root: as root, the server runs as the `postgres` system user (the
# Debian package creates it); as anyone else, as that user. The binaries are found in
# PG_BIN, else the newest /usr/lib/postgresql/*/bin, else on PATH.
set -euo pipefail

port="${ZSYNC_PG_PORT:-54329}"
base="${ZSYNC_PG_DIR:-/tmp/zsync-pg-$port}"
data="$base/data"
sock="$base/sock"
log="$base/server.log"

find_bin() {
    if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/pg_ctl" ]; then
        echo "$PG_BIN"
        return
    fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then
        echo "$d"
        return
    fi
    if command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    echo "PostgreSQL not installed: no pg_ctl in PG_BIN, /usr/lib/postgresql/*/bin or PATH (Debian: apt-get install postgresql)" >&2
    exit 3
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

is_up() {
    [ -d "$data" ] && as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2
}

start() {
    mkdir -p "$base"
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "running as root and there is no postgres user to run the server as" >&2
            exit 3
        fi
        chown postgres: "$base"
    fi
    # One start at a time (a test and CI may both ask).
    exec 9>"$base/.lock"
    flock 9
    if is_up; then
        echo "PostgreSQL already running on 127.0.0.1:$port ($data)"
        return
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        rm -rf "$data"
        as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >"$base/initdb.log" 2>&1 || {
            cat "$base/initdb.log" >&2
            exit 1
        }
    fi
    as_owner mkdir -p "$sock"
    # The server must not inherit the lock (fd 9), or it would hold it for its whole life.
    # A server killed outright leaves its pid file behind; pg_ctl start copes with a stale one.
    as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
        "-p $port -k $sock -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB" \
        >/dev/null 9>&- || {
        echo "PostgreSQL did not start; its log ($log):" >&2
        tail -n 30 "$log" >&2 || true
        exit 1
    }
    echo "PostgreSQL started on 127.0.0.1:$port ($data)"
}

stop() {
    if [ -f "$data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$data" -w -t 60 -m fast stop >/dev/null 2>&1 || true
        echo "PostgreSQL on port $port stopped"
    else
        echo "PostgreSQL on port $port was not running"
    fi
}

bin="$(find_bin)"
case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if is_up; then
        echo "PostgreSQL running on 127.0.0.1:$port ($data)"
    else
        echo "PostgreSQL not running on 127.0.0.1:$port"
        exit 1
    fi
    ;;
url) echo "host=127.0.0.1 port=$port user=postgres dbname=postgres" ;;
*)
    echo "usage: $0 start|stop|status|url" >&2
    exit 2
    ;;
esac

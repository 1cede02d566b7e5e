#!/usr/bin/env bash
# Binary upgrades under keep-alive load (issue 18, item 3): what a client
# sees of asyncd's SIGUSR2, next to nginx's binary upgrade, with wrk.
#
# For each worker count: wrk (keep-alive, -c32) against asyncd + http while
# UPGRADES SIGUSR2s each start a new asyncd from the same binary: each
# waits for the old process's "is ready; this one ... stops accepting"
# line, then for the old process to exit, before the next.  Then wrk
# against nginx (worker_processes = the worker count) while UPGRADES times
# `kill -USR2` the master (a new master from the binary, the sockets
# inherited through NGINX's environment variable), wait for the new
# master's pid file, `kill -QUIT` the old master and wait for it to exit.
# Each block prints wrk's socket errors and the non-2xx answers (counted
# by a wrk script), and the requests served.
#
#   bench/reload/upgrade.sh                     20 upgrades, 1 and 2 workers
#   UPGRADES=5 WORKERS="1" bench/reload/upgrade.sh
#   NGINX=0 bench/reload/upgrade.sh             asyncd only
#   PROCESSES=2 NGINX=0 bench/reload/upgrade.sh asyncd as a master of 2 worker processes
#
# Needs wrk and nginx (Debian packages).  Polling waits are bounded (10 s,
# or 30 s for an old process to drain).
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-$here/build}"
UPGRADES="${UPGRADES:-20}"
WORKERS="${WORKERS:-1 2}"
CONNS="${CONNS:-32}"
NGINX="${NGINX:-1}"

[ -x "$BUILD/asyncd" ] && [ -f "$BUILD/modules/http.so" ] ||
    { echo "build first: make build (or BUILD=dir)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
if [ "$NGINX" = 1 ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    echo "needs nginx (apt-get install nginx), or NGINX=0" >&2; exit 1
fi
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"

work="$(mktemp -d /tmp/async_io-upgrade.XXXXXX)"
cleanup() {
    kill $(jobs -p) 2>/dev/null
    [ -n "${asyncd_pid:-}" ] && kill -TERM "$asyncd_pid" 2>/dev/null
    kill -QUIT "$(cat "$work/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null
    kill -QUIT "$(cat "$work/nginx/nginx.pid.oldbin" 2>/dev/null)" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT
echo "work folder: $work" >&2

. "$here/bench/reload/wrk.sh"

# Waits (bound seconds) until the command succeeds.
wait_for() {  # bound command...
    local until=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -lt $until ] || return 1
        sleep 0.01 # polling a bounded wait
    done
}
gone() { ! kill -0 "$1" 2>/dev/null; }

# ---- asyncd ----

ready_lines() { grep -c 'is ready; this one' "$work/asyncd/log" || true; }
seen_more() { [ "$(ready_lines)" -gt "$1" ]; }

run_asyncd() {  # workers
    local w=$1 port i before new
    rm -rf "$work/asyncd" && mkdir -p "$work/asyncd/modules"
    port="$(free_port)"
    ln -s "$BUILD/modules/http.so" "$work/asyncd/modules/http.so"
    cat > "$work/asyncd/asyncd.json" <<EOF
{"modules_dir": "modules", "shutdown_timeout_ms": 10000, "log_level": "notice",
 "runtime": {"workers": $w}, "processes": ${PROCESSES:-1},
 "modules": {"http": {"listen": ["127.0.0.1:$port"],
   "routes": [{"path": "/hello", "status": 200, "content_type": "text/plain", "body": "hi"}]}}}
EOF
    "$BUILD/asyncd" --config "$work/asyncd/asyncd.json" 2> "$work/asyncd/log" &
    asyncd_pid=$!
    wait_for 10 grep -q 'asyncd: ready: ' "$work/asyncd/log" ||
        { echo "asyncd did not start" >&2; return; }

    start_wrk "$port"
    for i in $(seq "$UPGRADES"); do
        before="$(ready_lines)"
        kill -USR2 "$asyncd_pid"
        wait_for 10 seen_more "$before" || { echo "upgrade $i: no new process ready" >&2; break; }
        new="$(grep -o 'upgrading: started .* (pid [0-9]*)' "$work/asyncd/log" | tail -1 |
               sed 's/.*(pid \([0-9]*\))/\1/')"
        wait_for 30 gone "$asyncd_pid" || { echo "upgrade $i: old pid $asyncd_pid still there" >&2; break; }
        asyncd_pid="$new"
    done
    stop_wrk "asyncd, $w worker(s), $UPGRADES upgrades:"
    kill -TERM "$asyncd_pid"; wait_for 30 gone "$asyncd_pid"
    asyncd_pid=
    echo "    upgrades that failed: $(grep -c 'upgrade failed\|cannot upgrade' "$work/asyncd/log")"
}

# ---- nginx ----

run_nginx() {  # workers
    local w=$1 port i old
    rm -rf "$work/nginx" && mkdir -p "$work/nginx/logs"
    port="$(free_port)"
    cat > "$work/nginx/nginx.conf" <<EOF
worker_processes $w;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$port;
        location /hello { default_type text/plain; return 200 "hi"; }
    }
}
EOF
    "$NGINX_BIN" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon on;' 2>/dev/null ||
        { echo "nginx would not start" >&2; return; }
    start_wrk "$port"
    for i in $(seq "$UPGRADES"); do
        old="$(cat "$work/nginx/nginx.pid")"
        kill -USR2 "$old"
        new_master() { local p; p="$(cat "$work/nginx/nginx.pid" 2>/dev/null)" && [ -n "$p" ] && [ "$p" != "$old" ]; }
        wait_for 10 new_master || { echo "nginx upgrade $i: no new master" >&2; break; }
        kill -QUIT "$old"
        wait_for 30 gone "$old" || { echo "nginx upgrade $i: old master still there" >&2; break; }
    done
    stop_wrk "nginx, $w worker(s), $UPGRADES upgrades:"
    kill -QUIT "$(cat "$work/nginx/nginx.pid")"
}

echo "wrk -t1 -c$CONNS (keep-alive) on /hello; errors = wrk's socket errors; non2xx from its script"
for w in $WORKERS; do
    run_asyncd "$w"
    [ "$NGINX" = 1 ] && run_nginx "$w"
done

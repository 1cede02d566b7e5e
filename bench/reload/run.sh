#!/usr/bin/env bash
# Reloads under keep-alive load (issue 18): what a client sees of asyncd's
# reloads, next to nginx's, with wrk.
#
# For each worker count: wrk (keep-alive, -c32) against asyncd + http while
#   - RELOADS SIGHUPs, each with a changed http config (another /hello body);
#   - REPLACES replacements of http.so (alternately the build's bytes and
#     the same bytes plus a few zero bytes, renamed in, then SIGHUP: the
#     daemon compares content, so each one loads a new generation);
# then wrk against nginx (worker_processes = the worker count) while
# RELOADS `nginx -s reload`, each with a changed return body.  Each block
# prints wrk's socket errors and the non-2xx answers (counted by a wrk
# script), and the requests served.
#
#   bench/reload/run.sh                         100 + 100 reloads, 1 and 2 workers
#   RELOADS=20 REPLACES=20 WORKERS="1" bench/reload/run.sh
#   NGINX=0 bench/reload/run.sh                 asyncd only
#   PROCESSES=2 NGINX=0 bench/reload/run.sh     asyncd as a master of 2 worker processes
#
# asyncd: each reload waits for the daemon's "reloaded:" line before the
# next.  nginx's reload is asynchronous (the signal returns at once), so it
# is paced at NGINX_PACE seconds (default 0.1, about asyncd's own pace
# here).  Needs wrk and nginx (Debian packages).
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-$here/build}"
RELOADS="${RELOADS:-100}"
REPLACES="${REPLACES:-100}"
WORKERS="${WORKERS:-1 2}"
CONNS="${CONNS:-32}"
NGINX="${NGINX:-1}"
NGINX_PACE="${NGINX_PACE:-0.1}"

[ -x "$BUILD/asyncd" ] && [ -f "$BUILD/modules/http.so" ] ||
    { echo "build first: make build (or BUILD=dir)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
if [ "$NGINX" = 1 ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    echo "needs nginx (apt-get install nginx), or NGINX=0" >&2; exit 1
fi
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"

work="$(mktemp -d /tmp/async_io-reload.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null; kill "$(cat "$work/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null; wait 2>/dev/null' EXIT
echo "work folder: $work" >&2

. "$here/bench/reload/wrk.sh"

# ---- asyncd ----

asyncd_config() {  # workers port body
    cat > "$work/asyncd/asyncd.json" <<EOF
{"modules_dir": "modules", "shutdown_timeout_ms": 10000, "log_level": "notice",
 "runtime": {"workers": $1}, "processes": ${PROCESSES:-1},
 "modules": {"http": {"listen": ["127.0.0.1:$2"],
   "routes": [{"path": "/hello", "status": 200, "content_type": "text/plain", "body": "$3"}]}}}
EOF
}

install_http() {  # tail bytes
    cp "$BUILD/modules/http.so" "$work/asyncd/modules/.http.tmp"
    head -c "$1" /dev/zero >> "$work/asyncd/modules/.http.tmp"
    mv "$work/asyncd/modules/.http.tmp" "$work/asyncd/modules/http.so"
}

# the daemon's own line (a master's, not its workers' "asyncd/N: reloaded:")
reloads_seen() { grep -c 'asyncd: reloaded: ' "$work/asyncd/log" || true; }

# SIGHUP, then wait (10 s bound) for the next "reloaded:" line.
hup_and_wait() {
    local before; before="$(reloads_seen)"
    kill -HUP "$asyncd_pid"
    local until=$((SECONDS + 10))
    while [ "$(reloads_seen)" -le "$before" ]; do
        [ $SECONDS -lt $until ] || { echo "no reload line within 10 s" >&2; return 1; }
        sleep 0.01 # polling a bounded wait
    done
}

run_asyncd() {  # workers
    local w=$1 port i
    rm -rf "$work/asyncd" && mkdir -p "$work/asyncd/modules"
    port="$(free_port)"
    install_http 0
    asyncd_config "$w" "$port" "r0"
    "$BUILD/asyncd" --config "$work/asyncd/asyncd.json" 2> "$work/asyncd/log" &
    asyncd_pid=$!
    for _ in $(seq 100); do grep -q 'asyncd: ready: ' "$work/asyncd/log" && break; sleep 0.05; done

    start_wrk "$port"
    for i in $(seq "$RELOADS"); do
        asyncd_config "$w" "$port" "r$i"
        hup_and_wait || break
    done
    stop_wrk "asyncd, $w worker(s), $RELOADS config reloads:"

    start_wrk "$port"
    for i in $(seq "$REPLACES"); do
        install_http $((1 + i % 2))
        hup_and_wait || break
    done
    stop_wrk "asyncd, $w worker(s), $REPLACES http.so replacements:"
    kill -TERM "$asyncd_pid"; wait "$asyncd_pid"
    echo "    generations: $(grep -c 'a new generation takes over' "$work/asyncd/log") for a" \
         "config, $(grep -c 'loading its new bytes' "$work/asyncd/log") for new .so bytes"
}

# ---- nginx ----

nginx_config() {  # workers port body
    mkdir -p "$work/nginx/logs"
    cat > "$work/nginx/nginx.conf" <<EOF
worker_processes $1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$2;
        location /hello { default_type text/plain; return 200 "$3"; }
    }
}
EOF
}

run_nginx() {  # workers
    local w=$1 port i
    rm -rf "$work/nginx" && mkdir -p "$work/nginx"
    port="$(free_port)"
    nginx_config "$w" "$port" "r0"
    "$NGINX_BIN" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon on;' 2>/dev/null ||
        { echo "nginx would not start" >&2; return; }
    start_wrk "$port"
    for i in $(seq "$RELOADS"); do
        nginx_config "$w" "$port" "r$i"
        "$NGINX_BIN" -p "$work/nginx" -c "$work/nginx/nginx.conf" -s reload 2>/dev/null
        sleep "$NGINX_PACE"
    done
    stop_wrk "nginx, $w worker(s), $RELOADS reloads:"
    kill -QUIT "$(cat "$work/nginx/nginx.pid")"
}

echo "wrk -t1 -c$CONNS (keep-alive) on /hello; errors = wrk's socket errors; non2xx from its script"
for w in $WORKERS; do
    run_asyncd "$w"
    [ "$NGINX" = 1 ] && run_nginx "$w"
done

#!/usr/bin/env bash
# The proxy's reloads under keep-alive load (issue 15, item 7): wrk -c32
# through asyncd + http + proxy to an nginx backend while RELOADS SIGHUPs
# each change the upstream's configuration (its keepalive alternates), so
# every reload starts a new generation of the proxy module.  Prints the
# requests served, wrk's socket errors and the answers that were not 200
# (counted by a wrk script).
#
#   bench/proxy/reload.sh                 RELOADS=100 WORKERS=2
#
# Each reload waits for the daemon's "reloaded:" line before the next.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
RELOADS="${RELOADS:-100}"
WORKERS="${WORKERS:-2}"
BACKEND_PORT="${BACKEND_PORT:-18851}"
PORT="${PORT:-18852}"
for c in wrk nginx curl; do
    command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }
done
[ -x "$here/build/asyncd" ] && [ -f "$here/build/modules/proxy.so" ] ||
    { echo "build first: make build" >&2; exit 1; }

work="$(mktemp -d /tmp/async_io-proxy-reload.XXXXXX)"
echo "scratch: $work" >&2
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done' EXIT
PORT="$BACKEND_PORT" "$here/bench/http/nginx.sh" > "$work/backend.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do  # bounded: up to 5 s for the backend
    curl -s -o /dev/null "http://127.0.0.1:$BACKEND_PORT/hello" && break
    sleep 0.05
done

mkdir -p "$work/modules"
ln -s "$here/build/modules/http.so" "$here/build/modules/proxy.so" "$work/modules/"
config() {  # config KEEPALIVE: written aside, then renamed in
    cat > "$work/asyncd.json.new" <<JSON
{
  "runtime": { "workers": $WORKERS },
  "modules_dir": "modules",
  "modules": {
    "proxy": { "upstreams": { "app": { "servers": ["127.0.0.1:$BACKEND_PORT"], "keepalive": $1 } } },
    "http": { "listen": ["127.0.0.1:$PORT"], "routes": [ { "prefix": "/", "handler": "app" } ],
              "access_log": false }
  }
}
JSON
    mv "$work/asyncd.json.new" "$work/asyncd.json"
}
config 32
"$here/build/asyncd" --config "$work/asyncd.json" > "$work/asyncd.log" 2>&1 &
daemon=$!
pids+=("$daemon")
for _ in $(seq 100); do  # bounded: up to 5 s for the proxy
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/hello")" = 200 ] && break
    sleep 0.05
done
cat > "$work/count.lua" <<'LUA'
local bad = 0
response = function(status) if status ~= 200 then bad = bad + 1 end end
done = function() io.write(string.format("non-200 answers: %d\n", bad)) end
LUA
wrk -t1 -c32 -d3600s -s "$work/count.lua" "http://127.0.0.1:$PORT/hello" > "$work/wrk.txt" 2>&1 &
load=$!
pids+=("$load")
for i in $(seq "$RELOADS"); do
    config $((32 + i % 2))
    before=$(grep -c "reloaded\|reload rejected" "$work/asyncd.log" || true)
    kill -HUP "$daemon"
    for _ in $(seq 600); do  # bounded: up to 30 s per reload
        [ "$(grep -c "reloaded\|reload rejected" "$work/asyncd.log" || true)" -gt "$before" ] && break
        sleep 0.05
    done
done
kill -INT "$load"; wait "$load" || true
echo "asyncd + proxy, $WORKERS worker(s), $RELOADS reloads changing the upstream, wrk -t1 -c32:"
grep -E "requests in|Socket errors|non-200" "$work/wrk.txt"
grep -q "Socket errors" "$work/wrk.txt" || echo "socket errors: none"
echo "reloads applied: $(grep -c "reloaded" "$work/asyncd.log" || true), rejected: $(grep -c "reload rejected" "$work/asyncd.log" || true)"

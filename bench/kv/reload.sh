#!/usr/bin/env bash
# Reloads the kv module RELOADS times (default 100) under wrk load and
# prints what wrk saw: the issue's target is 0 socket errors and 0
# non-2xx.  Each reload rewrites the config with another sync_interval_ms
# (a changed config restarts the module), sends SIGHUP, and waits
# (bounded) for the new instance's "kv: serving" line before the next.
#
#   bench/kv/reload.sh                  GET of a 64-byte value
#   METHOD=PUT bench/kv/reload.sh       PUTs over 1,000 keys
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
RELOADS="${RELOADS:-100}"
METHOD="${METHOD:-GET}"
PORT="${PORT:-18813}"
WORKERS="${WORKERS:-2}"
command -v wrk >/dev/null || { echo "needs wrk" >&2; exit 1; }
[ -f "$here/build/modules/kv.so" ] || { echo "build first: make build" >&2; exit 1; }

work="$(mktemp -d /tmp/async_io-kv-reload.XXXXXX)"
mkdir -p "$work/modules" "$work/www"
ln -s "$here/build/modules/http.so" "$here/build/modules/kv.so" "$work/modules/"
config() {  # sync_interval_ms
    cat > "$work/asyncd.json.tmp" <<JSON
{
  "runtime": { "workers": $WORKERS },
  "modules_dir": "modules",
  "log_level": "notice",
  "modules": {
    "http": { "listen": ["127.0.0.1:$PORT"], "root": "www", "access_log": false,
              "routes": [ { "prefix": "/kv/", "handler": "kv" } ] },
    "kv": { "file": "kv.log", "sync_interval_ms": $1 }
  }
}
JSON
    mv "$work/asyncd.json.tmp" "$work/asyncd.json"
}
config 100
(cd "$work" && exec "$here/build/asyncd" --config asyncd.json) 2> "$work/asyncd.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
value="$(printf '%064d' 7)"
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "$value" \
          "http://127.0.0.1:$PORT/kv/k64")" = 204 ] && break
    sleep 0.05
done
cat > "$work/put.lua" <<LUA
local n = 0
request = function()
  n = (n + 1) % 1000
  return wrk.format("PUT", "/kv/p" .. n, nil, "$value")
end
LUA
args=("http://127.0.0.1:$PORT/kv/k64")
[ "$METHOD" = PUT ] && args=(-s "$work/put.lua" "http://127.0.0.1:$PORT/")
wrk -t1 -c32 -d600s "${args[@]}" > "$work/wrk.txt" &
wrk_pid=$!
sleep 1
for i in $(seq "$RELOADS"); do
    before=$(grep -c "kv: serving" "$work/asyncd.log" || true)
    config $((100 + i % 2))
    kill -HUP "$pid"
    for _ in $(seq 500); do  # bounded: 10 s per reload
        [ "$(grep -c "kv: serving" "$work/asyncd.log" || true)" -gt "$before" ] && break
        sleep 0.02
    done
    [ "$(grep -c "kv: serving" "$work/asyncd.log" || true)" -gt "$before" ] ||
        { echo "reload $i: kv did not come back; log in $work/asyncd.log" >&2; exit 1; }
done
kill -INT "$wrk_pid"; wait "$wrk_pid" || true
echo "$RELOADS reloads of kv under wrk ($METHOD):"
grep -E "requests in|Socket errors|Non-2xx" "$work/wrk.txt" || true
grep -q -E "Socket errors|Non-2xx" "$work/wrk.txt" || echo "  0 socket errors, 0 non-2xx"

#!/usr/bin/env bash
# What host routing costs per request: user-space instructions (callgrind,
# as bench/http/instructions.sh counts them) of asyncd answering GET
# /hello, with one site against 1,000 exact names and 100 wildcards.
#
#   bench/http/sites_instructions.sh [TREE]     (TREE/build/asyncd, .../http.so; default: this tree)
#   FEW=2000 MANY=12000 bench/http/sites_instructions.sh
#
# Configs, each with the same /hello route on the site asked:
#   flat         the flat config: one default server without names (the
#                host is not even hashed)
#   one-name     one server with one exact name and one wildcard, so each
#                host below meets the same probes as among 1,100 names:
#                the ratio's base ("1,000 names cost what one does")
#   1100-exact   100 servers of 10 exact names and 10 servers of 10
#                wildcards; Host: the 500th exact name, in upper case and
#                with a port (so the case-folding and port paths run)
#   1100-wild    the same servers; Host: a name two wildcards match
#                (*.w03-0.example.net and the longer *.deep.w03-0.example.net,
#                which wins; one suffix tried before it)
#   1100-default the same servers; Host: a name nobody has (its five
#                suffixes tried, then the default)
# (Ir(MANY) - Ir(FEW)) / (MANY - FEW) cancels start-up (building the
# tables) and exit; one worker, one keep-alive connection.  Needs valgrind.
#
# Only the instructions under the engine's serve_buffered are counted (the
# request's parse, the handler, the head, the log line, the hooks): what a
# worker does between requests (spinning, then sleeping in its loop)
# depends on how long the client takes to send the next one, and on a
# loaded machine that moved whole-process counts by ±8 % between two runs
# of the same config.  TOGGLE= counts the whole process instead.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
tree="${1:-$here}"
FEW="${FEW:-2000}"
MANY="${MANY:-12000}"
PORT="${PORT:-18793}"
TOGGLE="${TOGGLE-serve_buffered}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
dir="$(mktemp -d /tmp/asyncd-sites.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/modules"
ln -s "$tree"/build/modules/http.so "$dir/modules/"

hello='"routes": [ { "path": "/hello", "content_type": "text/plain", "body": "Hello, World!" } ]'
daemon_json() {  # daemon_json HTTP_OBJECT_TEXT
    cat <<JSON
{ "runtime": { "workers": 1 }, "modules_dir": "modules", "log_level": "warning",
  "modules": { "http": $1 } }
JSON
}
daemon_json "{ \"listen\": [\"127.0.0.1:$PORT\"], $hello, \"access_log\": false,
  \"keepalive_timeout_ms\": 1800000 }" > "$dir/flat.json"
python3 - "$PORT" "$hello" > "$dir/many.http" <<'PY'
import json, sys
port, hello = sys.argv[1], json.loads("{" + sys.argv[2] + "}")
servers = []
for s in range(100):  # 1,000 exact names
    srv = {"names": ["site-%04d.example" % (s * 10 + k) for k in range(10)]}
    srv.update(hello)
    servers.append(srv)
for s in range(10):   # 100 wildcards, some nested under others
    srv = {"names": ["*.w%02d-%d.example.net" % (s, k) for k in range(9)] +
                    ["*.deep.w%02d-0.example.net" % s]}
    srv.update(hello)
    servers.append(srv)
print(json.dumps({"listen": ["127.0.0.1:%s" % port], "access_log": False,
                  "keepalive_timeout_ms": 1800000, "servers": servers}))
PY
daemon_json "$(cat "$dir/many.http")" > "$dir/1100.json"
daemon_json "{ \"listen\": [\"127.0.0.1:$PORT\"], \"access_log\": false,
  \"keepalive_timeout_ms\": 1800000, \"servers\": [ { \"names\": [\"site-0500.example\",
  \"*.deep.w03-0.example.net\"], $hello } ] }" > "$dir/one-name.json"

ask() {  # ask HOST N: N requests for /hello, one at a time, on one keep-alive connection
    python3 "$here/bench/http/ask.py" "$PORT" /hello "$2" "$1"
}

instructions() {  # instructions CONFIG HOST N: total Ir of asyncd answering N requests
    local out pid
    out="$(mktemp /tmp/asyncd-cg.XXXXXX)"
    valgrind --tool=callgrind --callgrind-out-file="$out" ${TOGGLE:+--toggle-collect="$TOGGLE"} \
        "$tree/build/asyncd" --config "$dir/$1.json" > /dev/null 2>&1 &
    pid=$!
    ask "$2" "$3"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    awk '/^summary:|^totals:/ {print $2; exit}' "$out"
    rm -f "$out"
}

# Each host three times (the same request bytes, so the Host's length and
# the parser's work on it cancel out): flat, one name (the ratio's base),
# 1,100 names.
printf '%-14s %-36s %12s %7s\n' config host "Ir/request" ratio
for host in SITE-0500.EXAMPLE:8080 a.b.deep.w03-0.example.net x.y.z.nobody.example.com; do
    base=""
    for cfg in one-name flat 1100; do
        label=$cfg
        [ "$cfg" = 1100 ] && case "$host" in SITE*) label=1100-exact ;;
                                             *deep*) label=1100-wild ;; *) label=1100-default ;; esac
        a=$(instructions "$cfg" "$host" "$FEW")
        b=$(instructions "$cfg" "$host" "$MANY")
        per=$(awk -v a="$a" -v b="$b" -v f="$FEW" -v m="$MANY" 'BEGIN {printf "%.0f", (b - a) / (m - f)}')
        [ -n "$base" ] || base=$per
        printf '%-14s %-36s %12s %7.3f\n' "$label" "$host" "$per" \
            "$(awk -v p="$per" -v f="$base" 'BEGIN {print p / f}')"
    done
done

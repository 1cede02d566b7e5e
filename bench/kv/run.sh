#!/usr/bin/env bash
# asyncd + http + kv against the Go peer (bench/kv/go: net/http, a map
# under sync.RWMutex, the same log append and 100 ms fsync), with wrk, side
# by side in one sitting.  Two cells:
#   get  GET /kv/k64 of a 64-byte value
#   put  PUT /kv/p<N> of a 64-byte value (1000 keys in turn), the log on
#        a tmpfs ($SHM, default /dev/shm) so the disk is not what is measured
# Pinned as bench/http: the server on CPU 1 (one asyncd worker, GOMAXPROCS=1),
# wrk -t1 -c64 on CPU 0.  Repetitions alternate the servers.  Server CPU
# per request = (utime + stime of the server process, from /proc/PID/stat,
# over the measured run) / wrk's request count.  Prints each run, then per
# cell the medians and asyncd's ratios to Go (req/s: higher is better;
# CPU/request: lower is better).
#
#   bench/kv/run.sh                         REPS=3 DURATION=10
#   REPS=1 DURATION=5 CELLS=get bench/kv/run.sh
#
# Needs wrk and go (golang-go: installed when missing and root, as
# bench/http/run.sh does for its Go peer), and a build with kv.so.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
REPS="${REPS:-3}"
DURATION="${DURATION:-10}"
DURATION="${DURATION%s}"
CELLS="${CELLS:-get put}"
SHM="${SHM:-/dev/shm}"
PORT_A="${PORT_A:-18811}"
PORT_G="${PORT_G:-18812}"

[ -x "$here/build/asyncd" ] && [ -f "$here/build/modules/http.so" ] &&
    [ -f "$here/build/modules/kv.so" ] || { echo "build first: make build" >&2; exit 1; }
need() {  # command package
    if ! command -v "$1" >/dev/null; then
        [ "$(id -u)" = 0 ] || { echo "install $2 first" >&2; return 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
            { echo "cannot install $2" >&2; return 1; }
    fi
}
need wrk wrk && need go golang-go && need curl curl || exit 1

work="$(mktemp -d /tmp/async_io-kv-bench.XXXXXX)"
data="$(mktemp -d "$SHM/async_io-kv-bench.XXXXXX")"
trap 'rm -rf "$data"' EXIT
echo "scratch: $work, logs in $data" >&2
cp -r "$here/bench/kv/go" "$work/go"
(cd "$work/go" && GOFLAGS=-mod=mod GOPROXY=off go build -o kv-go .) ||
    { echo "go build failed" >&2; exit 1; }

mkdir -p "$work/asyncd/modules" "$work/asyncd/www"
ln -s "$here/build/modules/http.so" "$here/build/modules/kv.so" "$work/asyncd/modules/"
cat > "$work/asyncd/asyncd.json" <<JSON
{
  "runtime": { "workers": 1 },
  "modules_dir": "modules",
  "log_level": "warning",
  "modules": {
    "http": {
      "listen": ["127.0.0.1:$PORT_A"],
      "root": "www",
      "routes": [ { "prefix": "/kv/", "handler": "kv" } ],
      "access_log": false,
      "keepalive_timeout_ms": 1800000
    },
    "kv": { "file": "$data/kv-asyncd.log", "sync_interval_ms": 100 }
  }
}
JSON

value="$(printf '%064d' 7)"   # 64 bytes
cat > "$work/put.lua" <<LUA
local n = 0
request = function()
  n = (n + 1) % 1000
  return wrk.format("PUT", "/kv/p" .. n, nil, "$value")
end
LUA

start_server() {  # name -> pid in $pid, port in $port
    case "$1" in
        asyncd) port=$PORT_A
                rm -f "$data/kv-asyncd.log"
                (cd "$work/asyncd" && exec taskset -c 1 "$here/build/asyncd" --config asyncd.json) \
                    > "$work/asyncd.log" 2>&1 & ;;
        go)     port=$PORT_G
                PORT=$PORT_G LOG="$data/kv-go.log" GOMAXPROCS=1 taskset -c 1 "$work/go/kv-go" \
                    > "$work/go.log" 2>&1 & ;;
    esac
    pid=$!
    for _ in $(seq 100); do  # bounded: up to 5 s for the handler to answer
        [ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "$value" \
              "http://127.0.0.1:$port/kv/k64")" = 204 ] && return 0
        sleep 0.05
    done
    echo "$1 did not come up; its log:" >&2
    cat "$work/$1.log" >&2
    kill "$pid" 2>/dev/null
    exit 1
}

ticks() {  # utime + stime of pid, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

hz=$(getconf CLK_TCK)
out="$work/results.txt"
: > "$out"
for cell in $CELLS; do
    for rep in $(seq "$REPS"); do
        for server in asyncd go; do
            start_server "$server"
            case "$cell" in
                get) args=("http://127.0.0.1:$port/kv/k64") ;;
                put) args=(-s "$work/put.lua" "http://127.0.0.1:$port/") ;;
            esac
            taskset -c 0 wrk -t1 -c64 -d1s "${args[@]}" > /dev/null   # warm-up
            a=$(ticks "$pid")
            res=$(taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" "${args[@]}")
            b=$(ticks "$pid")
            kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
            reqs=$(awk '/requests in/ {print $1}' <<<"$res")
            errs=$(awk '/Socket errors|Non-2xx/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i} END {print s + 0}' <<<"$res")
            rps=$(awk '/Requests\/sec/ {print $2}' <<<"$res")
            us=$(awk -v a="$a" -v b="$b" -v n="$reqs" -v hz="$hz" \
                     'BEGIN {printf "%.3f", (b - a) * 1e6 / hz / n}')
            echo "$cell $server $rep $rps $us $errs" | tee -a "$out" >&2
        done
    done
done

python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("wrk -t1 -c64 on CPU 0, server on CPU 1 (1 worker / GOMAXPROCS=1); medians")
print(f"{'cell':<6}{'asyncd req/s':>13}{'go req/s':>10}{'ratio':>7}"
      f"{'asyncd us/req':>15}{'go us/req':>11}{'ratio':>7}{'errors':>8}{'runs':>6}")
for cell in dict.fromkeys(r[0] for r in rows):
    m = {}
    for s in ("asyncd", "go"):
        v = [r for r in rows if r[0] == cell and r[1] == s]
        m[s] = (statistics.median(float(r[3]) for r in v),
                statistics.median(float(r[4]) for r in v), sum(int(r[5]) for r in v), len(v))
    a, g = m["asyncd"], m["go"]
    print(f"{cell:<6}{a[0]:>13.0f}{g[0]:>10.0f}{a[0] / g[0]:>7.2f}"
          f"{a[1]:>15.2f}{g[1]:>11.2f}{a[1] / g[1]:>7.2f}{a[2] + g[2]:>8}{a[3]:>6}")
PY

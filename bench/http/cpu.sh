#!/usr/bin/env bash
# Server CPU per request, asyncd trees side by side in one sitting: for
# changes that must not make a request path slower, where req/s cannot
# tell (wrk on one core saturates before a one-worker server does, so
# every server sits at parity; README "Benchmarks").
#
#   bench/http/cpu.sh TREE_A TREE_B ...      each TREE holds build/asyncd and
#                                            build/modules/http.so
#   REPS=6 DURATION=5 PATHS="/hello /static/4k.bin" bench/http/cpu.sh ...
#
# For each path, REPS rounds; in each round every tree in turn: a fresh
# asyncd with one worker on CPU 1 (bench/http/server.sh: no access log),
# a 1 s warm-up, then wrk -t1 -c64 for DURATION seconds on CPU 0.  The
# server's CPU is the sum of its threads' run time from
# /proc/PID/task/*/schedstat (nanoseconds) over the measured run, divided
# by wrk's request count.  Prints each run, then per path and tree the
# median in microseconds per request and its ratio to the first tree.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
REPS="${REPS:-6}"
DURATION="${DURATION:-5}"
PATHS="${PATHS:-/hello /static/4k.bin}"
PORT="${PORT:-18790}"
[ $# -ge 1 ] || { sed -n '2,18p' "$0" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
for t in "$@"; do
    [ -x "$t/build/asyncd" ] && [ -f "$t/build/modules/http.so" ] ||
        { echo "$t: no build/asyncd or build/modules/http.so" >&2; exit 1; }
done

cpu_ns() {  # total run time of every thread of pid, in ns
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'
}

out="$(mktemp /tmp/asyncd-cpu.XXXXXX)"
for path in $PATHS; do
    for rep in $(seq "$REPS"); do
        for tree in "$@"; do
            ASYNCD_TREE="$tree" PORT="$PORT" WORKERS=1 taskset -c 1 \
                "$here/bench/http/server.sh" > /dev/null 2>&1 &
            pid=$!
            for _ in $(seq 100); do  # bounded: up to 5 s for the port
                curl -s -o /dev/null "http://127.0.0.1:$PORT$path" && break
                sleep 0.05
            done
            taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$PORT$path" > /dev/null
            a=$(cpu_ns "$pid")
            reqs=$(taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" "http://127.0.0.1:$PORT$path" |
                   awk '/requests in/ {print $1}')
            b=$(cpu_ns "$pid")
            kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
            us=$(awk -v a="$a" -v b="$b" -v n="$reqs" 'BEGIN {printf "%.3f", (b - a) / 1000 / n}')
            echo "$path $tree $rep $reqs $us" | tee -a "$out" >&2
        done
    done
done

python3 - "$out" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
trees = sys.argv[2:]
print(f"{'path':<16}{'tree':<40}{'us/request':>11}{'ratio':>7}{'runs':>6}")
for path in dict.fromkeys(r[0] for r in rows):
    base = None
    for t in trees:
        v = [float(r[4]) for r in rows if r[0] == path and r[1] == t]
        m = statistics.median(v)
        base = base or m
        print(f"{path:<16}{t[-39:]:<40}{m:>11.3f}{m / base:>7.3f}{len(v):>6}")
PY

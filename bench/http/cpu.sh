#!/usr/bin/env bash
# Server CPU per request, asyncd trees side by side in one sitting: for
# changes that must not make a request path slower, where req/s cannot
# tell (wrk on one core saturates before a one-worker server does, so
# every server sits at parity; README "Benchmarks").
#
#   bench/http/cpu.sh TREE_A TREE_B ...      each TREE holds build/asyncd and
#                                            build/modules/http.so; the word
#                                            nginx runs bench/http/nginx.sh
#   bench/http/cpu.sh . nginx                this tree against nginx
#   REPS=6 DURATION=5 PATHS="/hello /static/4k.bin" bench/http/cpu.sh ...
#
# For each path, REPS rounds; in each round every tree in turn: a fresh
# asyncd with one worker on CPU 1 (bench/http/server.sh: no access log),
# a 1 s warm-up, then wrk -t1 -c64 for DURATION seconds on CPU 0.  The
# server's CPU is the sum of its threads' run time from
# /proc/PID/task/*/schedstat (nanoseconds) over the measured run, divided
# by wrk's request count.  Prints each run, then per path and tree the
# median in microseconds per request, its ratio to the first tree and
# the median system calls per request (perf's raw_syscalls tracepoint;
# 0 where perf cannot count it).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
REPS="${REPS:-6}"
DURATION="${DURATION:-5}"
PATHS="${PATHS:-/hello /static/4k.bin}"
PORT="${PORT:-18790}"
[ $# -ge 1 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
for t in "$@"; do
    [ "$t" = nginx ] && continue
    [ -x "$t/build/asyncd" ] && [ -f "$t/build/modules/http.so" ] ||
        { echo "$t: no build/asyncd or build/modules/http.so" >&2; exit 1; }
done

cpu_ns() {  # total run time of every thread of pid, in ns
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'
}

out="$(mktemp /tmp/asyncd-cpu.XXXXXX)"
# The server's system calls per request as well, where perf can count the
# raw_syscalls tracepoint (it can on this VM, which has no hardware counters).
SYSCALLS=0
perf stat -e raw_syscalls:sys_enter -o /dev/null -- true > /dev/null 2>&1 && SYSCALLS=1
for path in $PATHS; do
    for rep in $(seq "$REPS"); do
        for tree in "$@"; do
            if [ "$tree" = nginx ]; then
                PORT="$PORT" taskset -c 1 "$here/bench/http/nginx.sh" > /dev/null 2>&1 &
            else
                ASYNCD_TREE="$tree" PORT="$PORT" WORKERS=1 taskset -c 1 \
                    "$here/bench/http/server.sh" > /dev/null 2>&1 &
            fi
            pid=$!
            perf=""
            [ "$SYSCALLS" = 1 ] &&
                perf="perf stat -e raw_syscalls:sys_enter -p $pid -o $out.perf --"
            for _ in $(seq 100); do  # bounded: up to 5 s for the port
                curl -s -o /dev/null "http://127.0.0.1:$PORT$path" && break
                sleep 0.05
            done
            taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$PORT$path" > /dev/null
            a=$(cpu_ns "$pid")
            reqs=$($perf taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" "http://127.0.0.1:$PORT$path" |
                   awk '/requests in/ {print $1}')
            b=$(cpu_ns "$pid")
            calls=$(awk '/raw_syscalls/ {gsub(",", "", $1); print $1}' "$out.perf" 2>/dev/null)
            kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
            us=$(awk -v a="$a" -v b="$b" -v n="$reqs" 'BEGIN {printf "%.3f", (b - a) / 1000 / n}')
            sc=$(awk -v c="${calls:-0}" -v n="$reqs" 'BEGIN {printf "%.3f", c / n}')
            echo "$path $tree $rep $reqs $us $sc" | tee -a "$out" >&2
        done
    done
done

python3 - "$out" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
trees = sys.argv[2:]
print(f"{'path':<16}{'tree':<40}{'us/request':>11}{'ratio':>7}{'syscalls/req':>13}{'runs':>6}")
for path in dict.fromkeys(r[0] for r in rows):
    base = None
    for t in trees:
        v = [float(r[4]) for r in rows if r[0] == path and r[1] == t]
        m = statistics.median(v)
        base = base or m
        sc = statistics.median(float(r[5]) for r in rows if r[0] == path and r[1] == t)
        print(f"{path:<16}{t[-39:]:<40}{m:>11.3f}{m / base:>7.3f}{sc:>13.3f}{len(v):>6}")
PY

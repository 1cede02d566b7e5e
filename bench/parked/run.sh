#!/usr/bin/env bash
# parked_million, async_io against Go doing the same work (go/main.go),
# interleaved run by run in one sitting, since this machine's noise moves
# whole sittings: REPS runs of each (default 3), then the median and the
# min-max of every figure and the ratio of the medians.
#   bench/parked/run.sh [N]        N fibers / goroutines (default 1000000)
#   REPS=5 bench/parked/run.sh     more runs
# Peak RSS is the kernel's (GNU time's %M, the process's VmHWM).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n="${1:-1000000}"
reps="${REPS:-3}"
c_bin="${ASYNC_BENCH:-$root/build/bench/async_bench}"
go_bin="${GO_PARKED:-/tmp/async_io-go-parked}"
[ -x "$c_bin" ] || { echo "build first: make build" >&2; exit 1; }
(cd "$here/go" && GOFLAGS=-mod=mod GOPROXY=off go build -o "$go_bin" .)
raw="$(mktemp /tmp/parked-raw.XXXXXX)"
one() { # peer binary args...
    local peer="$1" out
    shift
    out="$( { /usr/bin/time -f 'peak_rss: %M KiB' "$@"; } 2>&1)" || { echo "$peer failed: $out" >&2; exit 1; }
    printf '%s\n' "$out" | awk -v p="$peer" -F': ' 'NF==2 { split($2,a," "); print p, $1, a[1] }' >> "$raw"
}
for r in $(seq 1 "$reps"); do
    echo "-- run $r of $reps" >&2
    one async_io "$c_bin" parked_million "$n"
    one go "$go_bin" "$n"
done
echo "raw: $raw" >&2
python3 - "$raw" "$n" <<'PY'
import sys, statistics, collections
raw, n = sys.argv[1], int(sys.argv[2])
v = collections.defaultdict(list)
for line in open(raw):
    p, k, x = line.split()
    v[(p, k)].append(float(x))
rows = [("spawn+park", "parked_million_spawn", "s", 1),
        ("wake+join", "parked_million_wake_join", "s", 1),
        ("RSS after spawn", "parked_million", "B/fiber", 1),
        ("peak RSS", "peak_rss", "MiB", 1 / 1024)]
print(f"parked_million, N = {n:,}, {len(v[('go', 'peak_rss')])} runs each, median (min-max)")
print(f"{'figure':<16}{'unit':<9}{'async_io':>24}{'Go':>24}{'async_io/Go':>13}")
for name, key, unit, scale in rows:
    a = [x * scale for x in v[("async_io", key)]]
    g = [x * scale for x in v[("go", key)]]
    cell = lambda xs: f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})" if unit == "s" \
        else f"{statistics.median(xs):.0f} ({min(xs):.0f}-{max(xs):.0f})"
    print(f"{name:<16}{unit:<9}{cell(a):>24}{cell(g):>24}{statistics.median(a) / statistics.median(g):>13.2f}")
PY

#!/usr/bin/env bash
# parked_million, async_io against Go doing the same work (go/main.go),
# interleaved run by run in one sitting, since this machine's noise moves
# whole sittings: REPS runs of each (default 3), then the median and the
# min-max of every figure and each peer's ratio of medians to Go's.
#   bench/parked/run.sh [N]        N fibers / goroutines (default 1000000)
#   REPS=5 bench/parked/run.sh     more runs
#   C_PEERS="before=/tmp/old/async_bench after=build/bench/async_bench" bench/parked/run.sh
#                                  several async_bench binaries side by side
#   C_PEERS="async_io=build/bench/async_bench async_io_16k=build/bench/async_bench:16384" ...
#                                  ":BYTES": that peer's fibers get stacks of BYTES
#                                  (async_config.stack_size) instead of 64 KiB
# Peak RSS is the kernel's (GNU time's %M, the process's VmHWM).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n="${1:-1000000}"
reps="${REPS:-3}"
c_peers="${C_PEERS:-async_io=$root/build/bench/async_bench}"
go_bin="${GO_PARKED:-/tmp/async_io-go-parked}"
bin_of() { local b="${1#*=}"; echo "${b%%:*}"; }
stack_of() { local b="${1#*=}"; [ "${b#*:}" != "$b" ] && echo "${b#*:}" || echo 0; }
for p in $c_peers; do
    [ -x "$(bin_of "$p")" ] || { echo "not built: $(bin_of "$p") (make build)" >&2; exit 1; }
done
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
    for p in $c_peers; do
        if [ "$(stack_of "$p")" = 0 ]; then
            one "${p%%=*}" "$(bin_of "$p")" parked_million "$n"
        else
            one "${p%%=*}" "$(bin_of "$p")" parked_million "$n" "$(stack_of "$p")"
        fi
    done
    one go "$go_bin" "$n"
done
echo "raw: $raw" >&2
python3 - "$raw" "$n" $(for p in $c_peers; do echo "${p%%=*}"; done) <<'PY'
import sys, statistics, collections
raw, n, peers = sys.argv[1], int(sys.argv[2]), sys.argv[3:] + ["go"]
v = collections.defaultdict(list)
for line in open(raw):
    p, k, x = line.split()
    v[(p, k)].append(float(x))
rows = [("spawn+park", "parked_million_spawn", "s"),
        ("wake+join", "parked_million_wake_join", "s"),
        ("RSS after spawn", "parked_million", "B/fiber"),
        ("peak RSS", "peak_rss", "MiB")]
print(f"parked_million, N = {n:,}, {len(v[('go', 'peak_rss')])} runs each, median (min-max); ratio = median / Go's")
print(f"{'figure':<16}{'unit':<8}" + "".join(f"{p:>24}" for p in peers) +
      "".join(f"{p + '/go':>12}" for p in peers[:-1]))
for name, key, unit in rows:
    scale = 1 / 1024 if unit == "MiB" else 1
    col = {p: [x * scale for x in v[(p, key)]] for p in peers}
    fmt = "{:.2f}" if unit == "s" else "{:.0f}"
    cell = lambda xs: f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"
    print(f"{name:<16}{unit:<8}" + "".join(f"{cell(col[p]):>24}" for p in peers) +
          "".join(f"{statistics.median(col[p]) / statistics.median(col['go']):>12.2f}" for p in peers[:-1]))
PY

#!/usr/bin/env bash
# Runs the micro benchmarks of ../shared/peers/micro with async_io as an
# extra peer, side by side in one run: medians of REPS (default 3).
#   bench/run.sh                  all peers that are built or buildable
#   PEERS="go tokio" bench/run.sh a subset of the peers
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/build/bench/async_bench"
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 1; }
work="${WORK:-/tmp/async_io-micro}"
rm -rf "$work" && cp -r "$here/../shared/peers/micro" "$work"
chmod -R u+w "$work"
cd "$work"
EXTRA_PEERS="async_io=$bin" ./run.sh

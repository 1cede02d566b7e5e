#!/usr/bin/env bash
# User-space instructions per request, asyncd trees side by side: the
# noise-free companion of cpu.sh on a machine without hardware counters
# (a VM) and with neighbours that move CPU time by ±30 % between runs.
#
#   bench/http/instructions.sh TREE_A TREE_B ...   (each with build/asyncd, build/modules/http.so;
#                                                   the word nginx: bench/http/nginx.sh)
#   PATHS="/hello /static/4k.bin" FEW=2000 MANY=12000 bench/http/instructions.sh ...
#
# For each tree and path: asyncd with one worker under callgrind
# (bench/http/server.sh, ASYNCD_WRAP), one keep-alive connection asking
# FEW requests, then another run asking MANY; (Ir(MANY) - Ir(FEW)) /
# (MANY - FEW) cancels start-up and exit.  The kernel's share (most of a
# /hello: the recv and the send) is not counted: this measures what the
# server's own code costs per request.  Needs valgrind.
# TOOL=strace counts the system calls per request instead (strace -c),
# the kernel's side of the same comparison.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
PATHS="${PATHS:-/hello /static/4k.bin}"
FEW="${FEW:-2000}"
MANY="${MANY:-12000}"
PORT="${PORT:-18791}"
WORKERS="${WORKERS:-1}"
TOOL="${TOOL:-callgrind}"
[ $# -ge 1 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
if [ "$TOOL" = strace ]; then
    command -v strace >/dev/null || { echo "needs strace (apt-get install strace)" >&2; exit 1; }
else
    command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
fi

ask() {  # ask PATH N: N requests, one at a time, on one keep-alive connection
    python3 "$here/bench/http/ask.py" "$PORT" "$1" "$2"
}

count() {  # count TREE PATH N: what TOOL counts of the server answering N requests
    local out wrap
    out="$(mktemp /tmp/asyncd-count.XXXXXX)"
    if [ "$TOOL" = strace ]; then
        wrap="strace -f -c -o $out"
    else
        wrap="valgrind --tool=callgrind --callgrind-out-file=$out"
    fi
    if [ "$1" = nginx ]; then
        PORT="$PORT" NGINX_WRAP="$wrap" "$here/bench/http/nginx.sh" > /dev/null 2>&1 &
    else
        ASYNCD_TREE="$1" PORT="$PORT" WORKERS="$WORKERS" ASYNCD_WRAP="$wrap" \
            "$here/bench/http/server.sh" > /dev/null 2>&1 &
    fi
    local pid=$!
    ask "$2" "$3"
    # valgrind is the server's process; strace is its parent and, told
    # to stop, would only detach: the signal goes to the server itself
    kill -TERM "$(pgrep -P "$pid" || echo "$pid")"
    wait "$pid" 2>/dev/null || true
    if [ "$TOOL" = strace ]; then
        awk '$NF == "total" {print $4}' "$out"
    else
        awk '/^summary:|^totals:/ {print $2; exit}' "$out"
    fi
    rm -f "$out"
}

unit=Ir
[ "$TOOL" = strace ] && unit=syscalls
printf '%-15s %-40s %12s %7s\n' path tree "$unit/request" ratio
for path in $PATHS; do
    first=""
    for tree in "$@"; do
        a=$(count "$tree" "$path" "$FEW")
        b=$(count "$tree" "$path" "$MANY")
        per=$(awk -v a="$a" -v b="$b" -v f="$FEW" -v m="$MANY" 'BEGIN {printf "%.2f", (b - a) / (m - f)}')
        [ -n "$first" ] || first=$per
        printf '%-15s %-40s %12s %7.3f\n' "$path" "$tree" "$per" "$(awk -v p="$per" -v f="$first" 'BEGIN {print p / f}')"
    done
done

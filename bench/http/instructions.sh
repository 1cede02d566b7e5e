#!/usr/bin/env bash
# User-space instructions per request, asyncd trees side by side: the
# noise-free companion of cpu.sh on a machine without hardware counters
# (a VM) and with neighbours that move CPU time by ±30 % between runs.
#
#   bench/http/instructions.sh TREE_A TREE_B ...   (each with build/asyncd, build/modules/http.so)
#   PATHS="/hello /static/4k.bin" FEW=2000 MANY=12000 bench/http/instructions.sh ...
#
# For each tree and path: asyncd with one worker under callgrind
# (bench/http/server.sh, ASYNCD_WRAP), one keep-alive connection asking
# FEW requests, then another run asking MANY; (Ir(MANY) - Ir(FEW)) /
# (MANY - FEW) cancels start-up and exit.  The kernel's share (most of a
# /hello: the recv and the send) is not counted: this measures what the
# server's own code costs per request.  Needs valgrind.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
PATHS="${PATHS:-/hello /static/4k.bin}"
FEW="${FEW:-2000}"
MANY="${MANY:-12000}"
PORT="${PORT:-18791}"
WORKERS="${WORKERS:-1}"
[ $# -ge 1 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

ask() {  # ask PATH N: N requests, one at a time, on one keep-alive connection
    python3 - "$PORT" "$1" "$2" <<'PY'
import socket, sys, time
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for _ in range(600):  # bounded: up to 60 s for valgrind to start asyncd
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("no server on port %d" % port)
req = ("GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path).encode()
buf = b""
for _ in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(buf) < length:
        buf += s.recv(65536)
    buf = buf[length:]
s.close()
PY
}

instructions() {  # instructions TREE PATH N: total Ir of asyncd answering N requests
    local out
    out="$(mktemp /tmp/asyncd-cg.XXXXXX)"
    ASYNCD_TREE="$1" PORT="$PORT" WORKERS="$WORKERS" \
        ASYNCD_WRAP="valgrind --tool=callgrind --callgrind-out-file=$out" \
        "$here/bench/http/server.sh" > /dev/null 2>&1 &
    local pid=$!
    ask "$2" "$3"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    awk '/^summary:|^totals:/ {print $2; exit}' "$out"
    rm -f "$out"
}

printf '%-15s %-40s %12s %7s\n' path tree "Ir/request" ratio
for path in $PATHS; do
    first=""
    for tree in "$@"; do
        a=$(instructions "$tree" "$path" "$FEW")
        b=$(instructions "$tree" "$path" "$MANY")
        per=$(awk -v a="$a" -v b="$b" -v f="$FEW" -v m="$MANY" 'BEGIN {printf "%.0f", (b - a) / (m - f)}')
        [ -n "$first" ] || first=$per
        printf '%-15s %-40s %12s %7.3f\n' "$path" "$tree" "$per" "$(awk -v p="$per" -v f="$first" 'BEGIN {print p / f}')"
    done
done

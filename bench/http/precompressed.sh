#!/usr/bin/env bash
# A precompressed .gz of a 100 KiB text file: asyncd (precompressed, on by
# default) against nginx with gzip_static on, serving the same file, side
# by side in one sitting, pinned as in bench/http/run.sh: each server on
# CPU 1 with one worker, wrk -t1 -c64 on CPU 0, every request with
# "Accept-Encoding: gzip".  Both answers are checked to be the .gz bytes
# (Content-Encoding: gzip, the .gz's length) before anything is measured.
#
#   bench/http/precompressed.sh
#   REPS=5 DURATION=10 bench/http/precompressed.sh
#
# Prints each run, then per server the medians of req/s and of the
# server's CPU per request (the run time of every thread of its process
# tree from /proc/PID/task/*/schedstat over the measured run, divided by
# wrk's request count): when wrk saturates its core, req/s says more
# about wrk than about the server, and CPU per request is the comparison
# that holds (README "Benchmarks").  Servers are stopped by the PID this
# script started.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
REPS="${REPS:-5}"
DURATION="${DURATION:-10}"
PORT_A="${PORT_A:-18891}"
PORT_N="${PORT_N:-18892}"
[ -x "$here/build/asyncd" ] && [ -f "$here/build/modules/http.so" ] ||
    { echo "build first: make build" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null ||
    { echo "needs wrk and nginx (apt-get install wrk nginx)" >&2; exit 1; }

dir="$(mktemp -d /tmp/asyncd-precomp.XXXXXX)"
mkdir -p "$dir/www" "$dir/modules" "$dir/nginx/tmp"
# 100 KiB of text that compresses like text (numbered lines of words)
python3 - "$dir/www/page.txt" <<'PY'
import sys
words = "the quick brown fox jumps over a lazy dog while seven wise owls watch".split()
out, i = [], 0
while sum(len(l) for l in out) < 102400:
    out.append(f"{i:06d} " + " ".join(words[(i + k) % len(words)] for k in range(9)) + "\n")
    i += 1
open(sys.argv[1], "w").write("".join(out)[:102400])
PY
gzip -9 -k -n "$dir/www/page.txt"
gz_size=$(stat -c %s "$dir/www/page.txt.gz")
echo "page.txt $(stat -c %s "$dir/www/page.txt") bytes, page.txt.gz $gz_size bytes" >&2

ln -s "$here"/build/modules/http.so "$dir/modules/"
cat > "$dir/asyncd.json" <<JSON
{ "runtime": { "workers": 1 }, "modules_dir": "modules", "log_level": "warning",
  "modules": { "http": { "listen": ["127.0.0.1:$PORT_A"], "root": "www",
      "access_log": false, "keepalive_timeout_ms": 1800000, "max_connections": 19500 } } }
JSON
cat > "$dir/nginx/nginx.conf" <<CONF
daemon off;
master_process on;
user root;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 19000; }
http {
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 1800s;
    keepalive_requests 1000000000;
    client_body_temp_path $dir/nginx/tmp/client_body;
    proxy_temp_path $dir/nginx/tmp/proxy;
    fastcgi_temp_path $dir/nginx/tmp/fastcgi;
    uwsgi_temp_path $dir/nginx/tmp/uwsgi;
    scgi_temp_path $dir/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT_N backlog=4096;
        root $dir/www;
        gzip_static on;
        gzip_vary on;
    }
}
CONF

pid=""
stop() {
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}
trap stop EXIT

descendants() { echo "$1"; for c in $(pgrep -P "$1" 2>/dev/null); do descendants "$c"; done; }
cpu_ns() {  # run time of every thread of pid's process tree, ns
    local p
    for p in $(descendants "$1"); do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
        awk '{s += $1} END {printf "%d\n", s}'
}

start() {  # name -> pid, port; waits (bounded) for the .gz answer
    ulimit -n 20000
    case "$1" in
        asyncd) port=$PORT_A; taskset -c 1 "$here/build/asyncd" --config "$dir/asyncd.json" \
                    > "$dir/asyncd.log" 2>&1 & ;;
        nginx)  port=$PORT_N; taskset -c 1 nginx -p "$dir/nginx/" -c "$dir/nginx/nginx.conf" \
                    -e "$dir/nginx/error.log" > /dev/null 2>&1 & ;;
    esac
    pid=$!
    local i head
    for i in $(seq 100); do
        head="$(curl -s -D- -o /dev/null -H 'Accept-Encoding: gzip' \
                "http://127.0.0.1:$port/page.txt" 2>/dev/null || true)"
        if echo "$head" | grep -qi '^content-encoding: gzip' &&
           echo "$head" | grep -qi "^content-length: $gz_size"; then
            return 0
        fi
        sleep 0.05
    done
    echo "$1 never served the .gz:" >&2; echo "$head" >&2
    exit 1
}

out="$dir/runs.txt"
for rep in $(seq "$REPS"); do
    for name in nginx asyncd; do
        start "$name"
        url="http://127.0.0.1:$port/page.txt"
        taskset -c 0 wrk -t1 -c64 -d2s -H 'Accept-Encoding: gzip' "$url" > /dev/null
        a=$(cpu_ns "$pid")
        res="$(taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" -H 'Accept-Encoding: gzip' "$url")"
        b=$(cpu_ns "$pid")
        stop
        reqs=$(echo "$res" | awk '/requests in/ {print $1}')
        rps=$(echo "$res" | awk '/^Requests\/sec:/ {print $2}')
        errs=$(echo "$res" | awk '/Socket errors|Non-2xx/ {print}' | tr '\n' ' ')
        us=$(awk -v a="$a" -v b="$b" -v n="$reqs" 'BEGIN {printf "%.3f", (b - a) / 1000 / n}')
        echo "$name $rep $rps $us $errs" | tee -a "$out" >&2
    done
done

python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
print(f"{'server':<8}{'req/s':>10}{'us CPU/req':>12}{'runs':>6}")
for name in ("nginx", "asyncd"):
    v = [r for r in rows if r[0] == name]
    med[name] = (statistics.median(float(r[2]) for r in v), statistics.median(float(r[3]) for r in v))
    print(f"{name:<8}{med[name][0]:>10.0f}{med[name][1]:>12.3f}{len(v):>6}")
print(f"asyncd/nginx req/s: {med['asyncd'][0] / med['nginx'][0]:.2f}; "
      f"nginx/asyncd CPU per request: {med['nginx'][1] / med['asyncd'][1]:.2f}")
PY

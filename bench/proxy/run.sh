#!/usr/bin/env bash
# The proxy module against nginx proxy_pass (keepalive) and HAProxy
# (mode http, keep-alive to the server), each as a one-thread proxy in
# front of the same backend, side by side in one sitting.
#
#   bench/proxy/run.sh                         REPS=3 DURATION=5
#   REPS=1 CELLS="hello" PROXIES="asyncd nginx" bench/proxy/run.sh
#
# Cells: hello (GET /hello, a 13-byte answer), 1m (GET /static/1m.bin).
# The backend is nginx (bench/http/nginx.sh) with one worker on CPU 0,
# next to wrk -t1 -c64 on CPU 0; the proxy has CPU 1 to itself: asyncd
# with one worker (http + proxy modules, keepalive 64), nginx with one
# worker in one process (proxy_pass to an upstream with keepalive 64,
# HTTP/1.1, no buffering of the 13 bytes worth mentioning), HAProxy
# with nbthread 1 (mode http, http-reuse always).  No access logs.
# Per run: wrk's req/s and p99, the proxy's CPU per request (its
# threads' schedstat over the run / requests) and, where perf counts the
# raw_syscalls tracepoint, its system calls per request.  Then per cell
# and proxy the medians and the ratios to asyncd.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
REPS="${REPS:-3}"
DURATION="${DURATION:-5}"
CELLS="${CELLS:-hello 1m}"
PROXIES="${PROXIES:-asyncd nginx haproxy}"
BACKEND_PORT="${BACKEND_PORT:-18831}"
PORT="${PORT:-18832}"
for c in wrk nginx haproxy curl; do
    command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }
done
[ -x "$here/build/asyncd" ] && [ -f "$here/build/modules/proxy.so" ] ||
    { echo "build first: make build" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d /tmp/async_io-proxy-bench.XXXXXX)"
out="$work/runs"
: > "$out"
echo "scratch: $work" >&2
SYSCALLS=0
perf stat -e raw_syscalls:sys_enter -o /dev/null -- true > /dev/null 2>&1 && SYSCALLS=1

# The backend: the same files bench/http serves, one nginx worker on CPU 0.
PORT="$BACKEND_PORT" taskset -c 0 "$here/bench/http/nginx.sh" > "$work/backend.log" 2>&1 &
backend=$!
trap 'kill -TERM "$backend" 2>/dev/null || true' EXIT

mkdir -p "$work/asyncd/modules" "$work/asyncd/www"
ln -s "$here/build/modules/http.so" "$here/build/modules/proxy.so" "$work/asyncd/modules/"
cat > "$work/asyncd/asyncd.json" <<JSON
{
  "runtime": { "workers": 1 },
  "modules_dir": "modules",
  "log_level": "warning",
  "modules": {
    "proxy": { "upstreams": { "app": { "servers": ["127.0.0.1:$BACKEND_PORT"], "keepalive": 64 } } },
    "http": { "listen": ["127.0.0.1:$PORT"], "routes": [ { "prefix": "/", "handler": "app" } ],
              "access_log": false, "keepalive_timeout_ms": 600000 }
  }
}
JSON
mkdir -p "$work/nginx/tmp"
cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
user root;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 19000; }
http {
    access_log off;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
    client_body_temp_path $work/nginx/tmp/client_body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    upstream app { server 127.0.0.1:$BACKEND_PORT; keepalive 64; keepalive_requests 1000000000; }
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CONF
cat > "$work/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 9000
defaults
    mode http
    timeout connect 2s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s
    option forwardfor
    http-reuse always
frontend f
    bind 127.0.0.1:$PORT
    default_backend app
backend app
    server s1 127.0.0.1:$BACKEND_PORT maxconn 64
CONF

start_proxy() {  # start_proxy NAME: in the background on CPU 1; sets pid
    {   # exec: $! is then the proxy itself
        case "$1" in
        asyncd) exec taskset -c 1 "$here/build/asyncd" --config "$work/asyncd/asyncd.json" ;;
        nginx) exec taskset -c 1 nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" \
                                 -e "$work/nginx/error.log" ;;
        haproxy) exec taskset -c 1 haproxy -f "$work/haproxy.cfg" -db ;;
        esac
    } > "$work/$1.log" 2>&1 &
    pid=$!
}

cpu_ns() {  # total run time of every thread of pid, in ns
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'
}

path_of() { case "$1" in hello) echo /hello ;; 1m) echo /static/1m.bin ;; esac; }

for _ in $(seq 100); do  # bounded: up to 5 s for the backend
    curl -s -o /dev/null "http://127.0.0.1:$BACKEND_PORT/hello" && break
    sleep 0.05
done
for cell in $CELLS; do
    path=$(path_of "$cell")
    for rep in $(seq "$REPS"); do
        for proxy in $PROXIES; do
            start_proxy "$proxy"
            ok=0
            for _ in $(seq 100); do  # bounded: up to 5 s for the proxy
                kill -0 "$pid" 2>/dev/null || break
                if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$path")" = 200 ]; then
                    ok=1; break
                fi
                sleep 0.05
            done
            [ "$ok" = 1 ] || { echo "$proxy did not answer 200 on $path" >&2; tail -5 "$work/$proxy.log" >&2; exit 1; }
            taskset -c 0 wrk -t1 -c64 -d1s "http://127.0.0.1:$PORT$path" > /dev/null
            perf=""
            [ "$SYSCALLS" = 1 ] && perf="perf stat -e raw_syscalls:sys_enter -p $pid -o $work/perf --"
            a=$(cpu_ns "$pid")
            $perf taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$path" > "$work/wrk"
            b=$(cpu_ns "$pid")
            kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
            reqs=$(awk '/requests in/ {print $1}' "$work/wrk")
            rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk")
            p99=$(awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+/, "", v);
                   print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v)}' "$work/wrk")
            errs=$(awk '/Socket errors|Non-2xx/ {n++} END {print n + 0}' "$work/wrk")
            calls=$(awk '/raw_syscalls/ {gsub(",", "", $1); print $1}' "$work/perf" 2>/dev/null || echo 0)
            echo "$cell $proxy $rep $rps $p99 $(awk -v a="$a" -v b="$b" -v n="$reqs" 'BEGIN {printf "%.3f", (b - a) / 1000 / n}') $(awk -v c="${calls:-0}" -v n="$reqs" 'BEGIN {printf "%.2f", c / n}') $errs" |
                tee -a "$out" >&2
        done
    done
done

echo "wrk -t1 -c64 and the backend on CPU 0, the proxy on CPU 1 (one thread); medians"
python3 - "$out" $PROXIES <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
proxies = sys.argv[2:]
print(f"{'cell':<7}{'proxy':<9}{'req/s':>10}{'ratio':>7}{'p99 ms':>9}{'us/req':>9}{'ratio':>7}{'sys/req':>9}{'err.runs':>9}{'runs':>5}")
for cell in dict.fromkeys(r[0] for r in rows):
    base = {}
    for p in proxies:
        sel = [r for r in rows if r[0] == cell and r[1] == p]
        if not sel:
            continue
        med = lambda i: statistics.median(float(r[i]) for r in sel)
        rps, p99, us, sc = med(3), med(4), med(5), med(6)
        base = base or {"rps": rps, "us": us}
        errs = sum(1 for r in sel if r[7] != "0")
        print(f"{cell:<7}{p:<9}{rps:>10.0f}{rps / base['rps']:>7.2f}{p99:>9.2f}{us:>9.2f}{us / base['us']:>7.2f}{sc:>9.2f}{errs:>9}{len(sel):>5}")
PY

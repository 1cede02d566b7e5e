#!/usr/bin/env bash
# Server CPU per request for keep-alive GET /hello over TLS: asyncd + http
# against nginx, same certificate and key (ECDSA P-256, made here), same
# body ("Hello, World!"), one worker each, in one sitting.
#
#   bench/tls/cpu.sh                  (this tree's build/)
#   REPS=5 DURATION=5 bench/tls/cpu.sh
#
# Each round, each server in turn: started with one worker on CPU 1, a
# 1 s warm-up, then wrk -t1 -c64 over https for DURATION seconds on CPU 0
# (64 keep-alive connections: the handshakes are the warm-up's, the
# measured part is records).  CPU is the sum of the server's threads' run
# time (/proc/PID/task/*/schedstat) over the measured run divided by wrk's
# request count.  Prints each run, then per server the median in
# microseconds per request, its ratio to nginx and the median req/s.
# Needs wrk (built with OpenSSL, as Debian's is), nginx and openssl.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
REPS="${REPS:-5}"
DURATION="${DURATION:-5}"
PORT="${PORT:-18943}"
for c in wrk nginx openssl curl; do
    command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }
done
[ -x "$here/build/asyncd" ] && [ -f "$here/build/modules/http.so" ] ||
    { echo "build first: make build" >&2; exit 1; }

dir="$(mktemp -d /tmp/async_io-tls-bench.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
    -out cert.pem -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    >/dev/null 2>&1
mkdir modules tmp
ln -s "$here"/build/modules/http.so modules/
cat > asyncd.json <<JSON
{ "runtime": { "workers": 1 }, "modules_dir": "modules", "log_level": "warning",
  "modules": { "http": {
    "listen": [ { "address": "127.0.0.1:$PORT",
                  "tls": { "cert": "cert.pem", "key": "key.pem" } } ],
    "routes": [ { "path": "/hello", "content_type": "text/plain", "body": "Hello, World!" } ],
    "access_log": false, "keepalive_timeout_ms": 1800000 } } }
JSON
# nginx as Mozilla's intermediate config has it, tickets on, one worker.
cat > nginx.conf <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type text/plain;
    keepalive_timeout 1800s;
    keepalive_requests 1000000000;
    client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
    server {
        listen 127.0.0.1:$PORT ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers off;
        ssl_session_tickets on;
        location = /hello { return 200 "Hello, World!"; }
    }
}
CONF

cpu_ns() {  # total run time of every thread of pid, in ns
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'
}

out="$dir/runs"
url="https://127.0.0.1:$PORT/hello"
for rep in $(seq "$REPS"); do
    for server in nginx asyncd; do
        if [ "$server" = nginx ]; then
            taskset -c 1 nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" &
        else
            (ulimit -n 20000; exec taskset -c 1 "$here/build/asyncd" --config "$dir/asyncd.json") &
        fi
        pid=$!
        for _ in $(seq 100); do  # bounded: up to 5 s for the port
            curl -sk -o /dev/null "$url" && break
            sleep 0.05
        done
        taskset -c 0 wrk -t1 -c64 -d1s "$url" > /dev/null
        a=$(cpu_ns "$pid")
        res=$(taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" "$url")
        b=$(cpu_ns "$pid")
        kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
        reqs=$(echo "$res" | awk '/requests in/ {print $1}')
        rps=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
        errs=$(echo "$res" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
        us=$(awk -v a="$a" -v b="$b" -v n="$reqs" 'BEGIN {printf "%.3f", (b - a) / 1000 / n}')
        echo "$server $rep $reqs $rps $us $errs" | tee -a "$out" >&2
    done
done

python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"{'server':<10}{'us/request':>11}{'ratio':>7}{'req/s':>11}{'ratio':>7}{'runs':>6}")
base = {}
for s in ("nginx", "asyncd"):
    us = statistics.median(float(r[4]) for r in rows if r[0] == s)
    rps = statistics.median(float(r[3]) for r in rows if r[0] == s)
    base.setdefault("us", us)
    base.setdefault("rps", rps)
    n = sum(1 for r in rows if r[0] == s)
    print(f"{s:<10}{us:>11.3f}{us / base['us']:>7.3f}{rps:>11.0f}{rps / base['rps']:>7.3f}{n:>6}")
PY

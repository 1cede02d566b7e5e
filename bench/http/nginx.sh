#!/usr/bin/env bash
# nginx as the peer of bench/http/server.sh: the same answers on the same
# paths (/hello a fixed 13-byte text/plain body, /static/4k.bin and
# /static/1m.bin files), one worker in one process (master_process off,
# so the PID a script holds is the one that serves), no access log,
# sendfile and keep-alive as the peer config in ../shared/peers/http.
#   PORT=18790 bench/http/nginx.sh            (foreground; SIGTERM stops it)
#   NGINX_WRAP="valgrind --tool=callgrind ..." (bench/http/instructions.sh)
set -euo pipefail
: "${PORT:?}"
command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx)" >&2; exit 1; }
dir="$(mktemp -d /tmp/nginx-bench.XXXXXX)"
mkdir -p "$dir/www/static" "$dir/tmp"
head -c 4096 /dev/urandom > "$dir/www/static/4k.bin"
head -c 1048576 /dev/urandom > "$dir/www/static/1m.bin"
cat > "$dir/nginx.conf" <<CONF
daemon off;
master_process off;
user root;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 19000; }
http {
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 1800s;
    keepalive_requests 1000000000;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location = /hello { return 200 "Hello, World!"; }
        location /static/ { root $dir/www; }
    }
}
CONF
ulimit -n "$(ulimit -Hn)"
exec ${NGINX_WRAP:-} nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"

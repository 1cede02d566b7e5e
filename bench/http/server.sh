#!/usr/bin/env bash
# asyncd + http as a server for ../shared/peers/http/run.sh (SERVER_CMD):
# serves /hello (route) and /static/4k.bin, /static/1m.bin (files) on
# 127.0.0.1:$PORT with $WORKERS workers, no access log, like the nginx peer.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
tree="${ASYNCD_TREE:-$here}"    # another tree's build (bench/http/cpu.sh)
: "${PORT:?}" "${WORKERS:=1}"
dir="$(mktemp -d /tmp/asyncd-bench.XXXXXX)"
mkdir -p "$dir/www/static"
head -c 4096 /dev/urandom > "$dir/www/static/4k.bin"
head -c 1048576 /dev/urandom > "$dir/www/static/1m.bin"
cat > "$dir/asyncd.json" <<JSON
{
  "runtime": { "workers": $WORKERS },
  "modules_dir": "$tree/build/modules",
  "log_level": "warning",
  "modules": {
    "echo": { "enabled": false, "listen": ["127.0.0.1:0"] },
    "kv": { "enabled": false },
    "http": {
      "listen": ["127.0.0.1:$PORT"],
      "root": "www",
      "routes": [ { "path": "/hello", "content_type": "text/plain", "body": "Hello, World!" } ],
      "access_log": false,
      "keepalive_timeout_ms": 1800000,
      "max_connections": 19500
    }
  }
}
JSON
ulimit -n "$(ulimit -Hn)"
# ASYNCD_WRAP: a command to run asyncd under (bench/http/instructions.sh: valgrind)
exec ${ASYNCD_WRAP:-} "$tree/build/asyncd" --config "$dir/asyncd.json"

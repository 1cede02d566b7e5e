#!/usr/bin/env bash
# asyncd + http as a server for ../shared/peers/http/run.sh (SERVER_CMD):
# serves /hello (route) and /static/4k.bin, /static/1m.bin (files) on
# 127.0.0.1:$PORT with $WORKERS workers, no access log, like the nginx peer.
# With the test fixture greeter.so built (tests/fixtures), /hi is the same
# kind of answer from a module's handler (async_module_add_http_handler).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
tree="${ASYNCD_TREE:-$here}"    # another tree's build (bench/http/cpu.sh)
: "${PORT:?}" "${WORKERS:=1}"
dir="$(mktemp -d /tmp/asyncd-bench.XXXXXX)"
mkdir -p "$dir/www/static"
head -c 4096 /dev/urandom > "$dir/www/static/4k.bin"
head -c 1048576 /dev/urandom > "$dir/www/static/1m.bin"
mkdir "$dir/modules"
ln -s "$tree"/build/modules/*.so "$dir/modules/"
handler_route="" greeter=""
if [ -f "$tree/build/tests/fixtures/greeter.so" ]; then
    ln -s "$tree/build/tests/fixtures/greeter.so" "$dir/modules/"
    handler_route=', { "path": "/hi", "handler": "greet" }'
    greeter='"greeter": {},'
fi
cat > "$dir/asyncd.json" <<JSON
{
  "runtime": { "workers": $WORKERS },
  "modules_dir": "modules",
  "log_level": "warning",
  "modules": {
    $greeter
    "echo": { "enabled": false, "listen": ["127.0.0.1:0"] },
    "kv": { "enabled": false },
    "http": {
      "listen": ["127.0.0.1:$PORT"],
      "root": "www",
      "routes": [ { "path": "/hello", "content_type": "text/plain", "body": "Hello, World!" }$handler_route ],
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

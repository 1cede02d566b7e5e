#!/usr/bin/env bash
# asyncd + http against nginx, with wrk, side by side in one sitting, through
# the peers' own script (../shared/peers/http/run.sh) with asyncd plugged in
# as its custom server (bench/http/server.sh).  Prints req/s, p99 and the
# ratio to nginx for /hello, a 4 KiB and a 1 MiB file, pinned and unpinned,
# then RSS per idle keep-alive connection at several connection counts.
#
#   bench/http/run.sh                       everything (about 15 minutes)
#   REPS=1 DURATION=5s bench/http/run.sh    a quicker look
#   CELLS="hello" IDLE_SIZES="" ...         a subset
#   PEERS_HELLO="tokio h2o go"              other servers in the /hello cell
#                                           (default "tokio h2o"; "" for none)
#
# Needs wrk and nginx, and h2o, cargo (Tokio from Debian's crates), go for
# the /hello peers (the Debian packages are installed when missing and
# root).  The peers' folder is read-only: it is copied to $WORK and built
# there.
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
REPS="${REPS:-3}"
DURATION="${DURATION:-10s}"
CELLS="${CELLS:-hello 4k 1m}"
IDLE_SIZES="${IDLE_SIZES-1000 10000 19000}"
PEERS_HELLO="${PEERS_HELLO-tokio h2o}"
WORK="${WORK:-/tmp/async_io-http-peers}"
rm -rf "$WORK" && cp -r "$here/../shared/peers/http" "$WORK" && chmod -R u+w "$WORK"
peers="$WORK"

[ -x "$here/build/asyncd" ] && [ -f "$here/build/modules/http.so" ] ||
    { echo "build first: make build" >&2; exit 1; }
[ -x "$peers/run.sh" ] || { echo "no peers at $peers" >&2; exit 1; }
need() {  # command package
    if ! command -v "$1" >/dev/null; then
        [ "$(id -u)" = 0 ] || { echo "install $2 first" >&2; return 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
            { echo "cannot install $2" >&2; return 1; }
    fi
}
need wrk wrk && need nginx nginx || exit 1
hello_peers=""
for p in $PEERS_HELLO; do
    case "$p" in
        tokio) need cargo cargo && (cd "$peers/tokio" && cargo build --release --offline -q) &&
                   hello_peers="$hello_peers tokio" ;;
        go)    need go golang-go && (cd "$peers/go" && GOFLAGS=-mod=mod GOPROXY=off go build -o go-http .) &&
                   hello_peers="$hello_peers go" ;;
        h2o)   need h2o h2o && hello_peers="$hello_peers h2o" ;;
    esac || echo "peer $p unavailable, left out" >&2
done

out="$(mktemp -d /tmp/async_io-http.XXXXXX)"
echo "results in $out" >&2

# One peers run per cell: nginx and asyncd alternate within each rep.
for cell in $CELLS; do
    others=""
    case "$cell" in
        hello) ngx=nginx;    path=/hello; others="$hello_peers" ;;
        4k)    ngx=nginx_4k; path=/static/4k.bin ;;
        1m)    ngx=nginx_1m; path=/static/1m.bin ;;
        *) echo "unknown cell $cell" >&2; exit 1 ;;
    esac
    echo "== $cell" >&2
    SERVERS="$ngx$others" IDLE_SERVERS="" IDLE_CONNS=1 NO_BUILD=1 REPS="$REPS" DURATION="$DURATION" \
        SERVER_CMD="$here/bench/http/server.sh" SERVER_NAME="asyncd_$cell" SERVER_PATH="$path" \
        RESULTS="$out/wrk-$cell.txt" "$peers/run.sh" > "$out/wrk-$cell.table" 2> "$out/wrk-$cell.log"
done

# Idle keep-alive memory, nginx then asyncd, at each size.
for n in $IDLE_SIZES; do
    echo "== idle $n" >&2
    SERVERS="" IDLE_SERVERS="nginx" IDLE_CONNS="$n" NO_BUILD=1 REPS=0 \
        SERVER_CMD="$here/bench/http/server.sh" SERVER_NAME="asyncd" SERVER_PATH=/hello \
        RESULTS="$out/idle-$n.txt" "$peers/run.sh" > "$out/idle-$n.table" 2> "$out/idle-$n.log"
done

python3 - "$out" "$CELLS" "$IDLE_SIZES" <<'PY'
import os, statistics, sys
out, cells, sizes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def rows(path):
    res = {}
    if not os.path.exists(path):
        return res
    for line in open(path):
        f = line.split()
        if len(f) == 6:
            res.setdefault((f[0], f[1]), []).append([float(x) for x in f[2:]])
    return res

print("wrk, medians; pinned: server on CPU1 with 1 worker, wrk -t1 -c64 on CPU0; "
      "unpinned: 2 workers, wrk -t2 -c256")
hdr = f"{'cell':<7}{'setup':<10}{'nginx req/s':>12}{'asyncd req/s':>13}{'ratio':>7}" \
      f"{'nginx p99':>11}{'asyncd p99':>11}{'errors':>8}{'runs':>6}"
print(hdr)
print("-" * len(hdr))
for cell in cells:
    r = rows(f"{out}/wrk-{cell}.txt")
    ngx = {"hello": "nginx", "4k": "nginx_4k", "1m": "nginx_1m"}[cell]
    for setup in ("pinned", "unpinned"):
        a, n = r.get((f"asyncd_{cell}", setup)), r.get((ngx, setup))
        if not a or not n:
            continue
        med = lambda v, i: statistics.median(x[i] for x in v)
        errors = sum(x[3] for x in a) + sum(x[3] for x in n)
        print(f"{cell:<7}{setup:<10}{med(n, 0):>12.0f}{med(a, 0):>13.0f}"
              f"{med(a, 0) / med(n, 0):>7.2f}{med(n, 1):>9.2f}ms{med(a, 1):>9.2f}ms"
              f"{errors:>8.0f}{len(a):>6}")
        for peer in ("tokio", "h2o", "go"):
            p = r.get((peer, setup))
            if p:
                print(f"{'':<7}{'  vs ' + peer:<10}{med(p, 0):>12.0f}{'':>13}"
                      f"{med(a, 0) / med(p, 0):>7.2f}{med(p, 1):>9.2f}ms{'':>11}"
                      f"{sum(x[3] for x in p):>8.0f}{len(p):>6}")

if sizes:
    print()
    print("idle keep-alive connections: server RSS growth per connection (2 workers)")
    hdr = f"{'conns':>7}{'nginx ok':>10}{'nginx B/conn':>14}{'asyncd ok':>11}{'asyncd B/conn':>15}{'ratio':>7}"
    print(hdr)
    print("-" * len(hdr))
    for n in sizes:
        per = {}
        path = f"{out}/idle-{n}.txt.idle"
        for line in open(path) if os.path.exists(path) else []:
            f = line.split()
            if len(f) == 5 and int(f[1]) > 0:
                per[f[0]] = (int(f[1]), (int(f[4]) - int(f[3])) / int(f[1]))
        if "nginx" in per and "asyncd" in per:
            print(f"{n:>7}{per['nginx'][0]:>10}{per['nginx'][1]:>14.0f}"
                  f"{per['asyncd'][0]:>11}{per['asyncd'][1]:>15.0f}"
                  f"{per['asyncd'][1] / per['nginx'][1]:>7.2f}")
PY

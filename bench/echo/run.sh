#!/usr/bin/env bash
# TCP echo benchmark: async_io against Go and Tokio echo servers, driven by the
# neutral C load generator echo_client (pthreads + epoll, no async_io).
#
# For every repetition (REPS, default 3), every worker count (WORKERS_LIST,
# default "1 2") and every server: start the server fresh on its own port on
# 127.0.0.1, poll (bounded) until the port accepts connections, run
#   echo_client 127.0.0.1:PORT $CONNS $DURATION $CLIENT_THREADS
# (100 connections, strict ping-pong of 64-byte messages, 1 s warm-up not
# counted, 2 client threads), stop the server by its PID. Repetitions are the
# outer loop so that machine noise spreads over all servers alike. Prints the
# median msg/s, p50 and p99 per server and worker count, and the ratio of
# async_io to each other server. All traffic stays on 127.0.0.1; every step is
# bounded (timeouts), and only processes this script started are signalled.
#
# Env knobs:
#   SERVERS="go tokio async_io"   servers to run, in this order
#   WORKERS_LIST="1 2"            worker counts (server threads / GOMAXPROCS)
#   REPS=3  DURATION=10 (seconds measured per run)  CONNS=100  CLIENT_THREADS=2
#   ASYNC_IO_ECHO=<repo>/build/echo_server
#       run as `$ASYNC_IO_ECHO 127.0.0.1:$PORT $WORKERS` (env PORT and WORKERS
#       are set too); skipped with a message if the file is missing.
#   EXTRA_SERVERS="name=/path/to/bin other=/path/bin2"
#       more servers, run exactly like async_io: `bin 127.0.0.1:$PORT $WORKERS`
#   BASE_PORT=18300   first port tried; ports that already accept are skipped
#   NO_BUILD=1        use the binaries already built
#   RESULTS=file      keep raw results there (default: in the scratch dir)
# A server must stay in the foreground, listen on 127.0.0.1:$PORT, echo every
# byte back, and exit on SIGTERM (it gets SIGKILL, with its children, after 5 s).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE" || exit 1
REPS="${REPS:-3}"
DURATION="${DURATION:-10}"
DURATION="${DURATION%s}"
SERVERS="${SERVERS-go tokio async_io}"
WORKERS_LIST="${WORKERS_LIST:-1 2}"
CONNS="${CONNS:-100}"
CLIENT_THREADS="${CLIENT_THREADS:-2}"
ASYNC_IO_ECHO="${ASYNC_IO_ECHO:-$(cd "$HERE/../.." && pwd)/build/echo_server}"
NEXT_PORT="${BASE_PORT:-18300}"
SCRATCH="$(mktemp -d /tmp/echo-bench.XXXXXX)"
RESULTS="${RESULTS:-$SCRATCH/results.txt}"
: > "$RESULTS"
CLIENT="$HERE/echo_client"
ulimit -n "$(ulimit -Hn)" 2>/dev/null
log() { echo "$*" >&2; }
log "scratch: $SCRATCH"

case "$DURATION$REPS$CONNS$CLIENT_THREADS" in
  *[!0-9]*) log "DURATION, REPS, CONNS and CLIENT_THREADS must be whole numbers"; exit 2 ;;
esac

# ---- build ------------------------------------------------------------------
declare -A UNAVAILABLE   # server -> reason
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "== building"
  gcc -O2 -Wall -Wextra -pthread -o "$CLIENT" echo_client.c || { log "echo_client build failed"; exit 1; }
  if command -v go > /dev/null 2>&1; then
    ( cd go && GOFLAGS=-mod=mod GOPROXY=off go build -o go-echo . ) || UNAVAILABLE[go]="go build failed"
  else
    UNAVAILABLE[go]="Go toolchain not found (apt-get install golang-go)"
  fi
  if command -v cargo > /dev/null 2>&1; then
    ( cd tokio && cargo build --release --offline -q ) || UNAVAILABLE[tokio]="tokio build failed"
  else
    UNAVAILABLE[tokio]="cargo not found (needs rustc/cargo and apt-get install librust-tokio-dev)"
  fi
fi
[ -x "$CLIENT" ] || { log "echo_client is not built ($CLIENT)"; exit 1; }

# ---- servers ----------------------------------------------------------------
declare -A EXTRA_BIN
ALL_SERVERS=()
for s in $SERVERS; do ALL_SERVERS+=("$s"); done
for e in ${EXTRA_SERVERS:-}; do
  n="${e%%=*}"; b="${e#*=}"
  if [ -z "$n" ] || [ "$n" = "$e" ]; then log "EXTRA_SERVERS entry '$e' is not name=/path"; continue; fi
  EXTRA_BIN[$n]="$b"; ALL_SERVERS+=("$n")
done

server_bin() {  # name -> path of the binary to check
  case "$1" in
    go)       echo "$HERE/go/go-echo" ;;
    tokio)    echo "$HERE/tokio/target/release/tokio-echo" ;;
    async_io) echo "$ASYNC_IO_ECHO" ;;
    *)        [ -n "${EXTRA_BIN[$1]+x}" ] && echo "${EXTRA_BIN[$1]}" ;;
  esac
}

RUN_SERVERS=()
for s in "${ALL_SERVERS[@]}"; do
  if [ -n "${UNAVAILABLE[$s]+x}" ]; then log "skip $s: ${UNAVAILABLE[$s]}"; continue; fi
  b="$(server_bin "$s")"
  if [ -z "$b" ]; then log "skip $s: unknown server (known: go tokio async_io, or EXTRA_SERVERS=name=/path)"; continue; fi
  if [ ! -f "$b" ] || [ ! -x "$b" ]; then log "skip $s: $b does not exist or is not executable"; continue; fi
  RUN_SERVERS+=("$s")
done
[ "${#RUN_SERVERS[@]}" -gt 0 ] || { log "no server to run"; exit 1; }

port_accepts() {  # PORT -> 0 if something on 127.0.0.1:PORT accepts a connection
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" > /dev/null 2>&1
}

pick_port() {  # sets SPORT to the next port nobody is listening on
  for _ in $(seq 1 200); do
    SPORT="$NEXT_PORT"; NEXT_PORT=$((NEXT_PORT + 1))
    port_accepts "$SPORT" || return 0
    log "   port $SPORT is in use, trying the next one"
  done
  log "no free port found"; return 1
}

SPID=""
start_server() {  # name workers -> sets SPID; waits (bounded) until SPORT accepts
  local name="$1" w="$2" logf cmd
  pick_port || return 1
  logf="$SCRATCH/server-$name-w$w-$SPORT.log"
  case "$name" in
    go)    cmd=(env "PORT=$SPORT" "WORKERS=$w" "GOMAXPROCS=$w" "$HERE/go/go-echo") ;;
    tokio) cmd=(env "PORT=$SPORT" "WORKERS=$w" "$HERE/tokio/target/release/tokio-echo") ;;
    *)     cmd=(env "PORT=$SPORT" "WORKERS=$w" "$(server_bin "$name")" "127.0.0.1:$SPORT" "$w") ;;
  esac
  "${cmd[@]}" > "$logf" 2>&1 < /dev/null &
  SPID=$!
  for _ in $(seq 1 200); do        # at most ~10 s (+1 s per probe in the worst case)
    port_accepts "$SPORT" && return 0
    kill -0 "$SPID" 2> /dev/null || break
    sleep 0.05
  done
  log "   $name (workers $w) did not start accepting on 127.0.0.1:$SPORT: ${cmd[*]}"
  tail -5 "$logf" >&2
  stop_server; return 1
}

descendants() {  # PID -> PID and all its descendants
  local p="$1" c
  echo "$p"
  for c in $(pgrep -P "$p" 2> /dev/null); do descendants "$c"; done
}

stop_server() {
  [ -n "$SPID" ] || return 0
  local pids p
  pids="$(descendants "$SPID")"
  kill -TERM "$SPID" 2> /dev/null
  for _ in $(seq 1 100); do kill -0 "$SPID" 2> /dev/null || break; sleep 0.05; done
  for p in $pids; do kill -KILL "$p" 2> /dev/null; done
  wait "$SPID" 2> /dev/null
  SPID=""
}
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

# ---- runs -------------------------------------------------------------------
log "== $CONNS connections, 64-byte ping-pong, ${DURATION}s + 1s warm-up, $CLIENT_THREADS client threads, $REPS rep(s)"
for rep in $(seq 1 "$REPS"); do
  for w in $WORKERS_LIST; do
    for s in "${RUN_SERVERS[@]}"; do
      start_server "$s" "$w" || { echo "$s $w 0 0 0 0 start_failed" >> "$RESULTS"; continue; }
      clog="$SCRATCH/client-$s-w$w-r$rep.log"
      out="$(timeout $((DURATION + 45)) "$CLIENT" "127.0.0.1:$SPORT" "$CONNS" "$DURATION" "$CLIENT_THREADS" 2> "$clog")"
      rc=$?
      stop_server
      # echo: <msgs_per_sec> msg/s p50 <us> us p99 <us> us errors <n>
      set -- $out
      if [ "$#" -eq 11 ] && [ "$1" = "echo:" ]; then
        echo "$s $w $2 $5 $8 ${11} $rc" >> "$RESULTS"
        log "   rep $rep  $s  workers $w: $2 msg/s  p50 $5 us  p99 $8 us  errors ${11}  exit $rc"
      else
        echo "$s $w 0 0 0 0 $rc" >> "$RESULTS"
        log "   rep $rep  $s  workers $w: no result line (exit $rc)"
      fi
      [ "$rc" = 0 ] || tail -3 "$clog" >&2
    done
  done
done

# ---- table ------------------------------------------------------------------
log "raw results: $RESULTS"
python3 - "$RESULTS" "$DURATION" "$CONNS" "$CLIENT_THREADS" "${RUN_SERVERS[@]}" <<'PY'
import sys, statistics, collections
path, dur, conns, cthr, servers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
ok = collections.defaultdict(list)      # (server, workers) -> [(msgs, p50, p99)]
bad = collections.Counter()
workers = []
for line in open(path):
    f = line.split()
    if len(f) != 7:
        continue
    s, w, rc = f[0], int(f[1]), f[6]
    if w not in workers:
        workers.append(w)
    if rc == "0":
        ok[(s, w)].append(tuple(float(x) for x in f[2:5]))
    else:
        bad[(s, w)] += 1
print(f"TCP echo, {conns} connections x 64-byte ping-pong, {cthr} client threads, "
      f"{dur} s per run; medians over successful runs")
hdr = (f"{'server':<12}{'workers':>8}{'msg/s':>11}{'(min-max)':>21}"
       f"{'p50 us':>9}{'p99 us':>10}{'runs':>6}{'failed':>8}")
print(hdr); print("-" * len(hdr))
med = {}
for w in workers:
    for s in servers:
        v, nb = ok.get((s, w), []), bad.get((s, w), 0)
        if not v and not nb:
            continue
        if v:
            m = [statistics.median(x[i] for x in v) for i in range(3)]
            med[(s, w)] = m
            lo, hi = min(x[0] for x in v), max(x[0] for x in v)
            print(f"{s:<12}{w:>8}{m[0]:>11.0f}{f'({lo:.0f}-{hi:.0f})':>21}"
                  f"{m[1]:>9.1f}{m[2]:>10.1f}{len(v):>6}{nb:>8}")
        else:
            print(f"{s:<12}{w:>8}{'-':>11}{'':>21}{'-':>9}{'-':>10}{0:>6}{nb:>8}")
print()
others = [s for s in servers if s != "async_io"]
if not any(("async_io", w) in med for w in workers):
    print("async_io vs peers: no async_io results, no ratios")
else:
    print("async_io vs peers, from the medians (msg/s: >1 = async_io faster; p99: <1 = async_io lower)")
    hdr = f"{'workers':>8}  {'peer':<12}{'msg/s ratio':>12}{'p99 ratio':>11}"
    print(hdr); print("-" * len(hdr))
    for w in workers:
        a = med.get(("async_io", w))
        for s in others:
            p = med.get((s, w))
            if not a or not p:
                continue
            r = a[0] / p[0] if p[0] else float("nan")
            q = a[2] / p[2] if p[2] else float("nan")
            print(f"{w:>8}  {s:<12}{r:>12.2f}{q:>11.2f}")
if bad:
    sys.exit(1)
PY

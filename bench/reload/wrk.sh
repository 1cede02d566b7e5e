# bench/reload/wrk.sh — sourced by run.sh and upgrade.sh: a free port, and
# wrk under keep-alive load counting what a client sees (socket errors and
# non-2xx answers).  Needs $work (a scratch folder) and $CONNS.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The wrk script: counts answers whose status is not 2xx, over all threads.
cat > "$work/count.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0 end
function response(status, headers, body)
    if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
    local n = 0
    for _, t in ipairs(threads) do n = n + t:get("non2xx") end
    local e = summary.errors
    io.write(string.format("RESULT requests=%d seconds=%.1f connect=%d read=%d write=%d " ..
                           "timeout=%d status=%d non2xx=%d\n", summary.requests,
                           summary.duration / 1e6, e.connect, e.read, e.write, e.timeout,
                           e.status, n))
end
EOF

# wrk in the background until stop_wrk; its output in $work/wrk.out.
start_wrk() {  # port
    wrk -t1 -c"$CONNS" -d3600s -s "$work/count.lua" "http://127.0.0.1:$1/hello" \
        > "$work/wrk.out" 2>&1 &
    wrk_pid=$!
    sleep 1 # wrk's connections are up and busy before the first reload or upgrade
}
stop_wrk() {  # label
    kill -INT "$wrk_pid"
    wait "$wrk_pid" 2>/dev/null
    local r
    r="$(grep '^RESULT' "$work/wrk.out")" || { echo "$1: wrk printed no result" >&2; cat "$work/wrk.out" >&2; return; }
    # shellcheck disable=SC2086
    set -- "$1" $r
    printf '%-44s %s\n' "$1" "${*:3}"
}

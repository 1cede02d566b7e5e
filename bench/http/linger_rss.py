#!/usr/bin/env python3
"""RSS that lingering connections cost asyncd + http.

Starts build/asyncd with one http module (2 workers; lingering_timeout_ms and
lingering_time_ms long enough to hold), opens N connections that each send a
request the server refuses (an HTTP/2.0 request line: 505), reads each answer
to the server's end of stream (so every connection is lingering: the server
has shut its write side and waits for ours), then reads the daemon's VmRSS
and prints the growth per connection.  Also prints the same for N silent
connections (connected, never a byte).

Usage: bench/http/linger_rss.py [N=10000]
Bounded: 5 s per socket operation, 120 s per phase.
"""
import os, resource, signal, socket, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
top = os.path.normpath(os.path.join(here, "..", ".."))
n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if hard < n + 100:
    sys.exit("need %d descriptors, the hard limit is %d" % (n + 100, hard))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start():
    d = tempfile.mkdtemp(prefix="asyncd-linger.")
    os.mkdir(os.path.join(d, "www"))
    with open(os.path.join(d, "asyncd.json"), "w") as f:
        f.write("""{"runtime": {"workers": 2}, "modules_dir": "%s/build/modules",
 "log_level": "notice",
 "modules": {"echo": {"enabled": false},
  "http": {"listen": ["127.0.0.1:0"], "root": "www", "access_log": false,
   "status_path": "/status", "header_timeout_ms": 300000,
   "lingering_time_ms": 300000, "lingering_timeout_ms": 300000}}}
""" % top)
    p = subprocess.Popen([os.path.join(top, "build", "asyncd"), "--config",
                          os.path.join(d, "asyncd.json")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if "(port " in line:
            return p, int(line.split("(port ")[1].split(")")[0])
    p.kill()
    sys.exit("asyncd did not start")


def open_conns(port, count, payload):
    socks, deadline = [], time.monotonic() + 120
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if payload:
            s.sendall(payload)
            buf = b""
            while True:  # the answer, then the server's end of stream
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            if not buf.startswith(b"HTTP/1.1 505"):
                sys.exit("unexpected answer: %r" % buf[:80])
        socks.append(s)
    return socks


def measure(what, payload):
    p, port = start()
    try:
        warm = open_conns(port, 200, payload)  # the allocator's first growth
        for s in warm:
            s.close()
        time.sleep(1)  # a measurement pause, not a synchronisation: RSS settles
        before = rss_kb(p.pid)
        socks = open_conns(port, n, payload)
        time.sleep(1)
        after = rss_kb(p.pid)
        print("%-9s %6d connections: VmRSS %d -> %d KiB, %.0f bytes each"
              % (what, len(socks), before, after, (after - before) * 1024.0 / len(socks)))
        for s in socks:
            s.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


measure("lingering", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
measure("silent", None)

#!/usr/bin/env python3
"""asyncd start-up and reload latency, as issue 4 states its targets:
start to READY=1 with the http and echo modules, and SIGHUP to READY=1 with
10 modules loaded and none changed.  Builds 10 copies of the echo module
under different names into a scratch folder, listens on its own
NOTIFY_SOCKET, and prints medians.

    bench/daemon/startup_reload.py [BUILD_DIR]      (default: build)
"""
import json, os, signal, socket, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build"))
work = tempfile.mkdtemp(prefix="asyncd-bench-")
os.mkdir(os.path.join(work, "modules"))
for i in range(1, 11):
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", f'-DECHO_NAME="echo{i}"',
                    "-I", os.path.join(root, "include"), "-o",
                    os.path.join(work, "modules", f"echo{i}.so"),
                    os.path.join(root, "modules", "echo", "echo.c"), "-L", build, "-lasync_io"],
                   check=True)
config = os.path.join(work, "asyncd.json")
json.dump({"modules_dir": "modules", "log_level": "warning",
           "modules": {f"echo{i}": {"listen": ["127.0.0.1:0"]} for i in range(1, 11)}},
          open(config, "w"))
notify = os.path.join(work, "notify")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(notify)
sock.settimeout(10)

def ready():
    while "READY=1" not in sock.recv(4096).decode():
        pass

def start(cfg, into):
    """Starts asyncd on cfg, appends the ms to READY=1 to into."""
    env = dict(os.environ, NOTIFY_SOCKET=notify)
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(build, "asyncd"), "--config", cfg], env=env,
                         stderr=subprocess.DEVNULL)
    ready()
    into.append((time.monotonic() - t0) * 1e3)
    return p

starts, reloads = [], []
for _ in range(5):
    p = start(config, starts)
    for _ in range(5):
        t0 = time.monotonic()
        p.send_signal(signal.SIGHUP)
        ready()
        reloads.append((time.monotonic() - t0) * 1e3)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)

# http + echo, as `make run` starts them
os.mkdir(os.path.join(work, "real"))
os.mkdir(os.path.join(work, "www"))
open(os.path.join(work, "www", "index.html"), "w").write("hi\n")
for m in ("http", "echo"):
    os.symlink(os.path.join(build, "modules", m + ".so"), os.path.join(work, "real", m + ".so"))
real = os.path.join(work, "real.json")
json.dump({"modules_dir": "real", "log_level": "warning",
           "modules": {"echo": {"listen": ["127.0.0.1:0"]},
                       "http": {"listen": ["127.0.0.1:0"], "root": "www", "status_path": "/status",
                                "routes": [{"path": "/hello", "body": "Hello, World!"}]}}},
          open(real, "w"))
real_starts = []
for _ in range(10):
    p = start(real, real_starts)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
subprocess.run(["rm", "-rf", work])
print(f"asyncd start to READY=1, http + echo: median {statistics.median(real_starts):.1f} ms "
      f"(min {min(real_starts):.1f}, max {max(real_starts):.1f}, n={len(real_starts)})")
print(f"asyncd start to READY=1, 10 modules: median {statistics.median(starts):.1f} ms "
      f"(min {min(starts):.1f}, max {max(starts):.1f}, n={len(starts)})")
print(f"SIGHUP to READY=1, 10 modules unchanged: median {statistics.median(reloads):.2f} ms "
      f"(min {min(reloads):.2f}, max {max(reloads):.2f}, n={len(reloads)})")

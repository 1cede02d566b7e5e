#!/usr/bin/env python3
"""N requests, one at a time, on one keep-alive connection to 127.0.0.1:PORT
(bench/http/instructions.sh, sites_instructions.sh: the client whose
requests a server's counted work is divided by).

    bench/http/ask.py PORT PATH N [HOST]

Waits up to 60 s for the server (valgrind starts slowly); each answer must
be a 200 with a Content-Length."""
import socket
import sys
import time

port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
host = sys.argv[4] if len(sys.argv) > 4 else "b"
for _ in range(600):  # bounded
    try:
        s = socket.create_connection(("127.0.0.1", port))
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("no server on port %d" % port)
req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode()
buf = b""
for _ in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit("not a 200: %r" % head)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:")][0])
    while len(buf) < length:
        buf += s.recv(65536)
    buf = buf[length:]
s.close()

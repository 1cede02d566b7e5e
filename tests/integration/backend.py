#!/usr/bin/env python3
"""An application server for the proxy tests: Python's own HTTP/1.1 server
(keep-alive), on 127.0.0.1, port 0; prints "port N" once it listens.

  backend.py NAME [SICK_FILE]       (SICK_FILE "-": none)
  BACKEND_TLS=CERT:KEY backend.py …  the same over TLS
  BACKEND_PORT=N backend.py …        on port N (a backend brought back)

  GET  /conns       the connections accepted so far

  GET  /id          "backend NAME"
  GET  /health      200, or 503 while SICK_FILE exists
  ANY  /headers     the request's fields, one "name: value" per line
  POST /echo        the body back (Content-Length)
  GET  /sleep?ms=N  200 after N ms (with &on=NAME: only backend NAME
                    sleeps, the others answer at once)
  GET  /inflight    the requests inside the server now, this one not counted
  GET  /big?n=N     N bytes of 'x', chunked
  POST /early?status=N  N at once, the body never read, then the connection
                    closed (with the body still arriving: a reset)
  POST /stream_echo the body back chunked, each piece sent as it is read
                    (an application that answers while it still reads)
  GET  /trickle?gate=PATH  "data: one", then (once the file PATH exists)
                    "data: two", as two chunks (server-sent events)
  GET  /twolengths  an answer with two Content-Lengths (a smuggling shape)
  GET  /both        an answer with Content-Length and Transfer-Encoding
"""
import http.server
import os
import ssl
import sys
import threading
import time
import urllib.parse

NAME = sys.argv[1]
SICK = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
CONNS = 0
CONNS_LOCK = threading.Lock()
INFLIGHT = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):  # once per connection
        global CONNS
        with CONNS_LOCK:
            CONNS += 1
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", NAME)
        self.send_header("Connection", "keep-alive, X-Secret")
        self.send_header("X-Secret", "hop-by-hop, must not pass")
        # the head and the body in one send: a kill never splits them
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def body(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def route(self):
        global INFLIGHT
        with CONNS_LOCK:
            INFLIGHT += 1
        try:
            return self.answer()
        finally:
            with CONNS_LOCK:
                INFLIGHT -= 1

    def answer(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/early":
            self.close_connection = True
            return self.reply(int(q.get("status", ["413"])[0]), b"early answer")
        if url.path == "/stream_echo":
            return self.stream_echo()
        if url.path == "/trickle":
            return self.trickle(q["gate"][0])
        data = self.body()
        if url.path == "/id":
            return self.reply(200, ("backend %s" % NAME).encode())
        if url.path == "/inflight":
            with CONNS_LOCK:
                return self.reply(200, b"%d" % (INFLIGHT - 1))
        if url.path == "/conns":
            with CONNS_LOCK:
                return self.reply(200, b"%d" % CONNS)
        if url.path == "/health":
            sick = SICK is not None and os.path.exists(SICK)
            return self.reply(503 if sick else 200, b"sick" if sick else b"ok")
        if url.path == "/headers":
            text = "".join("%s: %s\n" % (k, v) for k, v in self.headers.items())
            return self.reply(200, text.encode())
        if url.path == "/echo":
            return self.reply(200, data, "application/octet-stream")
        if url.path == "/sleep":
            if q.get("on", [NAME])[0] == NAME:
                time.sleep(int(q.get("ms", ["100"])[0]) / 1000)
            return self.reply(200, b"slept")
        if url.path in ("/twolengths", "/both"):
            second = b"Content-Length: 6" if url.path == "/twolengths" else b"Transfer-Encoding: chunked"
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + second + b"\r\n\r\nhello!")
            self.close_connection = True
            return
        if url.path == "/big":
            n = int(q.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            left = n
            while left:
                k = min(left, 65536)
                self.wfile.write(b"%x\r\n" % k + b"x" * k + b"\r\n")
                left -= k
            self.wfile.write(b"0\r\n\r\n")
            return
        return self.reply(404, b"no such thing")

    def trickle(self, gate):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(b"data: one\n\n"), b"data: one\n\n"))
        for _ in range(3000):  # the test opens the gate once "one" reached it
            if os.path.exists(gate):
                break
            time.sleep(0.01)
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(b"data: two\n\n"), b"data: two\n\n"))

    def stream_echo(self):
        left = int(self.headers.get("Content-Length", "0") or 0)
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while left:
            piece = self.rfile.read1(min(left, 65536))
            if not piece:
                break
            left -= len(piece)
            self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = route


server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(os.environ.get("BACKEND_PORT", "0"))), Handler)
if os.environ.get("BACKEND_TLS"):
    cert, key = os.environ["BACKEND_TLS"].split(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("port %d" % server.server_address[1], flush=True)
server.serve_forever()

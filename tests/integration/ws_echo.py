#!/usr/bin/env python3
"""WebSocket peers for the proxy tests (python3-websockets).

  ws_echo.py serve            an echo server on 127.0.0.1:0; prints "port N"
  WS_TLS=CERT:KEY ws_echo.py serve
                              the same over TLS (wss)
  ws_echo.py talk URL [IDLE_MS]
                              (a wss URL: WS_CA names the CA file)
                              through URL: text, a 200 KB binary message and
                              a ping, each echoed back, then a close by the
                              client (prints "talked"); on a new connection
                              "bye", which the server answers with a close
                              (prints "closed by the server").  With IDLE_MS
                              (the proxy's tunnel_idle_timeout_ms), on a
                              third connection: ticks the server sends for
                              2.5 x IDLE_MS while the client says nothing
                              (the tunnel must stay: prints "ticks"), then
                              silence both ways, which the proxy must cut
                              (prints "cut after N ms").  Exits 0 when all
                              went so.

The echo server's messages: "bye" closes (1000, "bye"); "tick N MS" sends
N messages "tick I", MS apart; anything else comes back as it came.
"""
import asyncio
import logging
import os
import ssl
import sys
import time

import websockets


async def echo(ws, path=None):
    async for message in ws:
        if message == "bye":
            await ws.close(1000, "bye")
            return
        if isinstance(message, str) and message.startswith("tick "):
            _, n, ms = message.split()
            for i in range(int(n)):
                await asyncio.sleep(int(ms) / 1000)
                await ws.send("tick %d" % i)
            continue
        await ws.send(message)


async def serve():
    # a tunnel the proxy cuts ends without a close frame: expected here
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    ctx = None
    if os.environ.get("WS_TLS"):
        cert, key = os.environ["WS_TLS"].split(":")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, ssl=ctx,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("port %d" % port, flush=True)
        await asyncio.Future()


def connect(url):
    ctx = None
    if url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=os.environ["WS_CA"])
    return websockets.connect(url, max_size=None, open_timeout=10, ping_interval=None, ssl=ctx)


async def talk(url, idle_ms):
    async with connect(url) as ws:
        await ws.send("hello through the proxy")
        assert await asyncio.wait_for(ws.recv(), 10) == "hello through the proxy"
        blob = bytes(range(256)) * 800
        await ws.send(blob)
        assert await asyncio.wait_for(ws.recv(), 10) == blob
        pong = await ws.ping()
        await asyncio.wait_for(pong, 10)
    print("talked", flush=True)

    async with connect(url) as ws:
        await ws.send("bye")
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("a message after bye")
        except websockets.ConnectionClosedOK:
            pass
        assert ws.close_code == 1000 and ws.close_reason == "bye", (ws.close_code, ws.close_reason)
    print("closed by the server", flush=True)

    if idle_ms is None:
        return
    async with connect(url) as ws:
        step = idle_ms // 4
        n = idle_ms * 5 // 2 // step
        await ws.send("tick %d %d" % (n, step))
        for i in range(n):
            assert await asyncio.wait_for(ws.recv(), 10) == "tick %d" % i
        print("ticks", flush=True)
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(ws.recv(), idle_ms * 10 / 1000)
            raise AssertionError("a message in the silence")
        except websockets.ConnectionClosedError:
            pass
        print("cut after %d ms" % ((time.monotonic() - t0) * 1000), flush=True)


if sys.argv[1] == "serve":
    asyncio.run(serve())
else:
    asyncio.run(talk(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None))

#!/usr/bin/env python3
"""WebSocket peers for the proxy tests (python3-websockets).

  ws_echo.py serve            an echo server on 127.0.0.1:0; prints "port N"
  ws_echo.py talk URL         through URL: text, a 200 KB binary message and
                              a ping, each echoed back; a clean close; prints
                              "talked" and exits 0
"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def serve():
    async with websockets.serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("port %d" % port, flush=True)
        await asyncio.Future()


async def talk(url):
    async with websockets.connect(url, max_size=None, open_timeout=10) as ws:
        await ws.send("hello through the proxy")
        assert await asyncio.wait_for(ws.recv(), 10) == "hello through the proxy"
        blob = bytes(range(256)) * 800
        await ws.send(blob)
        assert await asyncio.wait_for(ws.recv(), 10) == blob
        pong = await ws.ping()
        await asyncio.wait_for(pong, 10)
    print("talked", flush=True)


if sys.argv[1] == "serve":
    asyncio.run(serve())
else:
    asyncio.run(talk(sys.argv[2]))

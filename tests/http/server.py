#!/usr/bin/python3
"""A real HTTP server on loopback for troupe's HTTP tests (aiohttp, Debian's
python3-aiohttp; run it with /usr/bin/python3, not a pyenv python).

    /usr/bin/python3 tests/http/server.py [--port N] [--tls CERT KEY] [--exit-on-stdin-eof]

Binds 127.0.0.1 on a free port (or --port N), prints `PORT <n>` as its first stdout line,
then serves until killed (or, with --exit-on-stdin-eof, until its stdin
closes: a test that dies leaves no server behind).

Endpoints (any method unless said; N, M, P are integers):
  /ok?size=N               200, a body of N bytes "x" (default: "ok\\n")
  /echo                    200, JSON {method, path, query, headers, body}
  /status/<code>           that status, body "status <code>\\n"
  /flaky/<key>?fails=2&status=500
                           the first `fails` requests for <key> get `status`,
                           then 200 with JSON {"attempt": n}
  /limited/<key>?fails=1&after=1
                           the first `fails` requests for <key> get 429 with
                           `Retry-After: <after>`, then 200 {"attempt": n}
  /hang                    accepts the request, never answers
  /trickle?bytes=N         200 with Content-Length N, one byte per second
  /reset                   200 with Content-Length 1000, 10 bytes, then a
                           TCP reset (SO_LINGER 0)
  /loop?n=N                302 to /loop?n=N+1, forever
  /to-ftp                  302 to ftp://127.0.0.1/file
  /redirect?to=URL&status=302
                           `status` (default 302) to URL
  /big?size=N&chunked=0    200, N bytes (default 64 MiB); chunked=1 sends no
                           Content-Length
  /binary                  200, bytes 0..255 twice (not UTF-8)
  /chunked?chunks=N        200, chunked transfer of N lines "chunk <i>\\n"
  /delay?ms=N              200 "ok\\n" after N ms
  /items?page=N&per=M&pages=P
                           page N < P: a JSON array of M objects {"id": k},
                           k = N*M .. N*M+M-1; page >= P: []
  /lines?page=N&per=M&pages=P
                           the same items as lines "item <k>\\n"; "" at the end
  /mirror/<name>?delay_ms=N
                           200 JSON {"mirror": name} after N ms
  /_stats                  JSON, see below (not counted itself)
  /_reset                  clears the statistics and the flaky/limited counters

/_stats:
  {"requests": {path: count}, "total": n,
   "max_in_progress": n, "max_in_progress_by_prefix": {"/mirror": n, ...},
   "in_progress": n,
   "arrivals": [[monotonic_seconds, path], ...]  (the last 100000),
   "cancelled": n, "cancelled_by_path": {path: n},
   "connections": n   (distinct client connections seen),
   "now": monotonic_seconds}
A prefix is a path's first segment ("/mirror/a" -> "/mirror"). A request is
"cancelled" when the client closed the connection before the handler
finished: the waiting handlers (/hang, /trickle, /delay, /mirror) watch
their connection every 5 ms, writes to a closed one fail (/big, /chunked).
"""

import argparse
import asyncio
import collections
import json
import socket
import ssl
import struct
import sys
import threading
import os
import time

from aiohttp import web

MAX_ARRIVALS = 100000


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.requests = collections.Counter()
        self.total = 0
        self.in_progress = 0
        self.max_in_progress = 0
        self.by_prefix = collections.Counter()
        self.max_by_prefix = collections.Counter()
        self.arrivals = collections.deque(maxlen=MAX_ARRIVALS)
        self.cancelled = 0
        self.cancelled_by_path = collections.Counter()
        self.connections = set()
        self.attempts = collections.Counter()  # flaky/limited keys

    def as_json(self):
        return {
            "requests": dict(self.requests),
            "total": self.total,
            "in_progress": self.in_progress,
            "max_in_progress": self.max_in_progress,
            "max_in_progress_by_prefix": dict(self.max_by_prefix),
            "arrivals": list(self.arrivals),
            "cancelled": self.cancelled,
            "cancelled_by_path": dict(self.cancelled_by_path),
            "connections": len(self.connections),
            "now": time.monotonic(),
        }


STATS = Stats()


def prefix_of(path):
    parts = path.split("/")
    return "/" + parts[1] if len(parts) > 1 else "/"


class ClientGone(Exception):
    """The client closed the connection while the handler was waiting."""


def gone(request):
    transport = request.transport
    return transport is None or transport.is_closing()


async def sleep_unless_gone(request, seconds):
    # Debian's aiohttp 3.8 does not cancel a handler whose client left (it
    # only fails the request's payload), so waiting handlers watch for it.
    deadline = time.monotonic() + seconds
    while True:
        if gone(request):
            raise ClientGone()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.005))


def qint(request, name, default):
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text="bad %s\n" % name)


@web.middleware
async def stats_middleware(request, handler):
    path = request.path
    if path in ("/_stats", "/_reset"):
        return await handler(request)
    prefix = prefix_of(path)
    STATS.requests[path] += 1
    STATS.total += 1
    STATS.arrivals.append([time.monotonic(), path])
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer is not None:
        STATS.connections.add(tuple(peer[:2]))
    STATS.in_progress += 1
    STATS.by_prefix[prefix] += 1
    STATS.max_in_progress = max(STATS.max_in_progress, STATS.in_progress)
    STATS.max_by_prefix[prefix] = max(STATS.max_by_prefix[prefix],
                                      STATS.by_prefix[prefix])
    try:
        return await handler(request)
    except asyncio.CancelledError:
        STATS.cancelled += 1
        STATS.cancelled_by_path[path] += 1
        raise
    except (ClientGone, ConnectionResetError):
        STATS.cancelled += 1
        STATS.cancelled_by_path[path] += 1
        # Nobody is left to answer; 499 goes nowhere.
        return web.Response(status=499)
    finally:
        STATS.in_progress -= 1
        STATS.by_prefix[prefix] -= 1


async def ok(request):
    size = request.query.get("size")
    if size is None:
        return web.Response(text="ok\n")
    return web.Response(body=b"x" * int(size))


async def echo(request):
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": body.decode("utf-8", "replace"),
    })


async def status(request):
    code = int(request.match_info["code"])
    return web.Response(status=code, text="status %d\n" % code)


async def flaky(request):
    key = "flaky/" + request.match_info["key"]
    STATS.attempts[key] += 1
    attempt = STATS.attempts[key]
    if attempt <= qint(request, "fails", 2):
        code = qint(request, "status", 500)
        return web.Response(status=code, text="attempt %d fails\n" % attempt)
    return web.json_response({"attempt": attempt})


async def limited(request):
    key = "limited/" + request.match_info["key"]
    STATS.attempts[key] += 1
    attempt = STATS.attempts[key]
    if attempt <= qint(request, "fails", 1):
        return web.Response(status=429, text="slow down\n",
                            headers={"Retry-After": request.query.get("after", "1")})
    return web.json_response({"attempt": attempt})


async def hang(request):
    await sleep_unless_gone(request, 3600)
    return web.Response(text="late\n")


async def trickle(request):
    n = qint(request, "bytes", 10)
    resp = web.StreamResponse()
    resp.content_length = n
    await resp.prepare(request)
    for _ in range(n):
        await resp.write(b"x")
        await sleep_unless_gone(request, 1)
    await resp.write_eof()
    return resp


async def reset(request):
    resp = web.StreamResponse()
    resp.content_length = 1000
    await resp.prepare(request)
    await resp.write(b"0123456789")
    await asyncio.sleep(0.05)
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()
    return resp


async def loop(request):
    n = qint(request, "n", 0)
    raise web.HTTPFound("/loop?n=%d" % (n + 1))


async def to_ftp(request):
    raise web.HTTPFound("ftp://127.0.0.1/file")


async def redirect(request):
    code = qint(request, "status", 302)
    to = request.query.get("to", "/ok")
    return web.Response(status=code, headers={"Location": to}, text="see %s\n" % to)


async def big(request):
    size = qint(request, "size", 64 << 20)
    block = b"b" * 65536
    resp = web.StreamResponse()
    if request.query.get("chunked", "0") != "1":
        resp.content_length = size
    else:
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    left = size
    while left > 0:
        n = min(left, len(block))
        await resp.write(block[:n])
        left -= n
    await resp.write_eof()
    return resp


async def binary(request):
    # Every byte value once, then again: a body that is not UTF-8.
    return web.Response(body=bytes(range(256)) * 2,
                        content_type="application/octet-stream")


async def chunked(request):
    n = qint(request, "chunks", 5)
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(n):
        await resp.write(b"chunk %d\n" % i)
        await asyncio.sleep(0.001)
    await resp.write_eof()
    return resp


async def delay(request):
    await sleep_unless_gone(request, qint(request, "ms", 100) / 1000.0)
    return web.Response(text="ok\n")


def page_items(request):
    page = qint(request, "page", 0)
    per = qint(request, "per", 10)
    pages = qint(request, "pages", 3)
    if page < 0 or page >= pages:
        return []
    return list(range(page * per, page * per + per))


async def items(request):
    return web.json_response([{"id": k} for k in page_items(request)])


async def lines(request):
    return web.Response(text="".join("item %d\n" % k for k in page_items(request)))


async def mirror(request):
    await sleep_unless_gone(request, qint(request, "delay_ms", 0) / 1000.0)
    return web.json_response({"mirror": request.match_info["name"]})


async def stats(request):
    return web.json_response(STATS.as_json())


async def reset_stats(request):
    STATS.reset()
    return web.Response(text="reset\n")


def make_app():
    app = web.Application(middlewares=[stats_middleware],
                          client_max_size=64 << 20)
    routes = [
        ("/ok", ok), ("/echo", echo), ("/status/{code:\\d+}", status),
        ("/flaky/{key}", flaky), ("/limited/{key}", limited), ("/hang", hang),
        ("/trickle", trickle), ("/reset", reset), ("/loop", loop),
        ("/to-ftp", to_ftp), ("/redirect", redirect), ("/big", big),
        ("/chunked", chunked), ("/delay", delay), ("/items", items),
        ("/lines", lines), ("/mirror/{name}", mirror), ("/_stats", stats),
        ("/_reset", reset_stats), ("/binary", binary),
    ]
    for path, handler in routes:
        app.router.add_route("*", path, handler)
    return app


def watch_stdin(loop):
    # Blocks on stdin in a thread; EOF (the parent is gone) stops the server.
    sys.stdin.buffer.read()
    loop.call_soon_threadsafe(loop.stop)


async def serve(args):
    ctx = None
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ctx, backlog=1024)
    await site.start()
    print("PORT %d" % sock.getsockname()[1], flush=True)
    return runner


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--port", type=int, default=0,
                        help="port to listen on (default: a free one)")
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = loop.run_until_complete(serve(args))
    if args.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, args=(loop,), daemon=True).start()
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        loop.run_until_complete(runner.cleanup())
    os._exit(0)


if __name__ == "__main__":
    main()

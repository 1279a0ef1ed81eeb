"""The servers the benchmark measures pingproxy against, each run as its own process.

``python -m bench.servers endpoint --port P`` and so on; every server listens on 127.0.0.1
only, logs nothing per request, and keeps a listen backlog large enough for the 1 000
connections of the slow-endpoint scenario, so the kernel never drops a SYN and adds a
retransmit second to what is measured.
"""

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

LISTEN_BACKLOG_CONNECTIONS = 4096
ENDPOINT_PATH = "/webmention"
TARGET_PAGE_PREFIX = "/post/"
# What webmention.io answers when it queues a mention: small, JSON, 202.
ENDPOINT_REPLY = {"status": "queued", "summary": "Webmention was queued"}
BARE_REPLY_BYTES = b"OK"

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def endpoint_app(*, delay_seconds: float = 0.0) -> web.Application:
    """A WebMention endpoint that queues everything; it also serves target pages for discovery."""

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        return web.json_response(ENDPOINT_REPLY, status=202)

    async def target_page(request: web.Request) -> web.Response:
        # W3C WebMention section 3.1.2: the Link header names the endpoint; the HTML agrees.
        link = f'<{ENDPOINT_PATH}>; rel="webmention"'
        html = f'<!doctype html><link rel="webmention" href="{ENDPOINT_PATH}"><p>a post</p>'
        return web.Response(text=html, content_type="text/html", headers={"Link": link})

    app = web.Application()
    app.router.add_post(ENDPOINT_PATH, receive)
    app.router.add_get(TARGET_PAGE_PREFIX + "{name}", target_page)
    return app


def pass_through_app(upstream: str) -> web.Application:
    """The thinnest forwarder: raw body to the upstream on one shared session, its body back."""

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        session = request.app[SESSION]
        async with session.post(request.app[UPSTREAM], data=body,
                                headers={"Content-Type": "text/xml"}) as reply:
            return web.Response(body=await reply.read(), status=reply.status,
                                content_type=reply.content_type)

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        # Pooled like pingproxy's session: no pool limit below the concurrency measured.
        connector = aiohttp.TCPConnector(limit=1024, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            app[SESSION] = session
            yield

    app = web.Application()
    app[UPSTREAM] = upstream
    app.cleanup_ctx.append(session_context)
    app.router.add_post("/{tail:.*}", forward)
    return app


def bare_app() -> web.Application:
    """A handler that reads the body and answers a fixed 200: the floor for rejecting junk."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BARE_REPLY_BYTES, content_type="text/plain")

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Serve one of the helper apps on 127.0.0.1 until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("kind", choices=("endpoint", "pass-through", "bare"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-seconds", type=float, default=0.0,
                        help="endpoint only: wait this long before answering")
    parser.add_argument("--upstream", help="pass-through only: the URL to forward to")
    args = parser.parse_args(argv)
    if args.kind == "endpoint":
        app = endpoint_app(delay_seconds=args.delay_seconds)
    elif args.kind == "pass-through":
        if not args.upstream:
            parser.error("pass-through needs --upstream")
        app = pass_through_app(args.upstream)
    else:
        app = bare_app()
    web.run_app(app, host="127.0.0.1", port=args.port, backlog=LISTEN_BACKLOG_CONNECTIONS,
                access_log=None, print=None, loop=_new_loop())


def _new_loop() -> asyncio.AbstractEventLoop | None:
    """uvloop when installed, as pingproxy itself takes it: the baselines run on the same loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop()


if __name__ == "__main__":
    sys.exit(main())

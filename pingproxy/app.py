"""The aiohttp application: routes, pages, and the shared client session.

Handlers only translate HTTP to calls and back. Every XML-RPC answer, success or fault, is
HTTP 200 with text/xml: clients such as Python's xmlrpc.client and WordPress's IXR treat any
other status as a transport error and never read the fault.
"""

import asyncio
import functools
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import HttpVersion11, StreamReader, hdrs, web
from aiohttp_remotes import ForwardedRelaxed, XForwardedRelaxed

from pingproxy import diagnose, inbound, outbound, pages, pingback, report
from pingproxy.config import Settings
from pingproxy.errors import Outcome, PingproxyError, RequestError, Throttled
from pingproxy.limits import Limits, limits_for
from pingproxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pingproxy.metrics import Metrics
from pingproxy.netguard import DestinationPolicy
from pingproxy.relay import Relay
from pingproxy.send.feed_report import FeedReport, as_feed_json
from pingproxy.send.gate import GateRefusal, SendGate
from pingproxy.send.post import Sender
from pingproxy.send.report import as_json
from pingproxy.send.run import SourceUnusable
from pingproxy.send.site import AlsoWithFeed, FeedUnreadable, SiteSender
from pingproxy.urls import endpoint_from_forward, endpoint_from_path, http_url

SETTINGS = web.AppKey("settings", Settings)
RELAY = web.AppKey("relay", Relay)
METRICS = web.AppKey("metrics", Metrics)
SENDER = web.AppKey("sender", Sender)
SEND_GATE = web.AppKey("send_gate", SendGate)
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
POLICY = web.AppKey("policy", DestinationPolicy)
CHECK_GATE = web.AppKey("check_gate", diagnose.CheckGate)
LIMITS = web.AppKey("limits", Limits)

# --trust-forwarded: which front-proxy headers name the client, the scheme and the host. Only
# the values the nearest proxy added count (aiohttp-remotes' "relaxed" readers, one hop).
FRONT_PROXY_READERS = {"x-forwarded": XForwardedRelaxed, "forwarded": ForwardedRelaxed}

XML_CONTENT_TYPE = "text/xml; charset=utf-8"
PATHS_REMEMBERED = 256
# A platform router's request id (Heroku sets one) is reused when it looks like one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

logger = logging.getLogger("pingproxy.app")
check_logger = logging.getLogger("pingproxy.check")


def create_app(settings: Settings) -> web.Application:
    """The pingproxy application for these settings."""
    app = web.Application(client_max_size=settings.max_body_bytes + 1,
                          handler_args=inbound.handler_args(settings),
                          middlewares=[inbound.track_requests])
    if settings.trust_forwarded in FRONT_PROXY_READERS:  # off: no middleware, no cost
        app.middlewares.append(FRONT_PROXY_READERS[settings.trust_forwarded]().middleware)
    pages.setup(app)
    app[SETTINGS] = settings
    app[METRICS] = Metrics(multiprocess_dir=settings.metrics_dir if settings.workers > 1 else None)
    app[LIMITS] = _limits(settings, app[METRICS])
    app[SEND_GATE] = SendGate(settings, app[LIMITS])
    app.on_startup.append(inbound.quiet_accept_failures)
    app.on_cleanup.append(_close_limits)
    app.cleanup_ctx.append(_relay_context)
    app.router.add_get("/healthz", healthz)
    if settings.metrics:
        app.router.add_get("/metrics", metrics)
    app.router.add_get("/", landing)
    app.router.add_post("/", ping_without_endpoint, expect_handler=_expect_body)
    app.router.add_get("/webmention", forward_page)
    app.router.add_post("/webmention", ping_forward, expect_handler=_expect_body)
    app.router.add_post("/api/send", api_send)
    if settings.max_checks:
        app[CHECK_GATE] = diagnose.CheckGate(settings, app[LIMITS])
    app.router.add_get("/check", check_page)
    app.router.add_get("/{endpoint:.+}", endpoint_page)
    app.router.add_post("/{endpoint:.+}", ping_path, expect_handler=_expect_body)
    return app


async def _relay_context(app: web.Application) -> AsyncIterator[None]:
    """One client session for the application's life; forwards in flight finish first."""
    settings = app[SETTINGS]
    policy = outbound.policy_for(settings)
    async with outbound.open_session(settings, policy) as session:
        app[CLIENT_SESSION], app[POLICY] = session, policy  # checks share them
        app[RELAY] = Relay(settings, session, policy, app[METRICS], limits=app[LIMITS])
        app[SENDER] = Sender(session, policy, settings)
        yield
        await app[RELAY].drain(settings.forward_timeout_seconds)


def _limits(settings: Settings, metrics: Metrics) -> Limits:
    """Where this application counts its limits: chosen once, here."""
    limits = limits_for(settings, on_fallback=metrics.count_shared_fallback,
                        on_switch=metrics.count_shared_switch)
    if settings.redis_url is not None:
        logger.info("limits are counted in Redis at %s, keys under %s", limits.location,
                    settings.redis_prefix)
    return limits


async def _close_limits(app: web.Application) -> None:
    await app[LIMITS].close()


async def healthz(request: web.Request) -> web.Response:
    """For platform health checks: answers without touching any upstream; "degraded", still
    200, while shared limits are counted in memory for want of Redis (a router must not drain
    every instance because Redis blinked)."""
    limits = request.app[LIMITS]
    if limits.degraded:
        await limits.probe()
    return web.Response(text="degraded: Redis does not answer; limits counted per process"
                        if limits.degraded else "ok")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(),
                        headers={hdrs.CONTENT_TYPE: METRICS_CONTENT_TYPE})


async def landing(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    context = pages.landing(_public_base(request), request.query.get("endpoint"),
                            request.app[POLICY], checks=bool(settings.max_checks))
    return pages.render("landing.html", request, _public_base(request), context)


async def check_page(request: web.Request) -> web.StreamResponse:
    """GET /check?url=...: the check report as a page, or as JSON when that is asked for."""
    if CHECK_GATE not in request.app:  # --max-checks 0
        raise web.HTTPNotFound(text="checks are turned off on this pingproxy")
    url_text = request.query.get("url", "").strip()
    url = http_url(url_text)
    if url is None:
        problem = "Enter the full address of a page, starting with https:// or http://."
        if not url_text and not _wants_json(request):
            problem = None  # the bare form
        return _check_answer(request, url_text, problem, None, 400 if problem else 200)
    started = time.perf_counter()
    try:
        async with request.app[CHECK_GATE].admitted(request.remote):
            found = await diagnose.check(request.app[CLIENT_SESSION], request.app[POLICY],
                                         request.app[SETTINGS], url,
                                         proxy_base=_public_base(request))
    except Throttled as refusal:
        return _check_refused(request, refusal)
    check_logger.info("check status=%s client=%s duration_ms=%.1f url=%s", found.status.value,
                      request.remote, (time.perf_counter() - started) * 1000,
                      json.dumps(url_text))
    return _check_answer(request, url_text, None, report.check_json(found))


def _check_answer(request: web.Request, url_text: str, problem: str | None,
                  document: dict | None, status: int = 200) -> web.Response:
    if _wants_json(request):
        return web.json_response(document if problem is None else
                                 {"error": "invalid_url", "error_description": problem},
                                 status=status)
    return pages.render("check.html", request, _public_base(request),
                        pages.check(url_text, problem, document), status=status)


def _check_refused(request: web.Request, refusal: Throttled) -> web.Response:
    """429 for a client over its rate, 503 when too many checks run; Retry-After on both."""
    headers = {hdrs.RETRY_AFTER: str(refusal.retry_after_seconds)}
    if _wants_json(request):
        return web.json_response({"error": refusal.outcome.value,
                                  "error_description": str(refusal)},
                                 status=refusal.http_status, headers=headers)
    response = pages.render("refused.html", request, _public_base(request),
                            pages.refused("Try again later", f"{str(refusal).capitalize()}."),
                            status=refusal.http_status)
    response.headers.update(headers)
    return response


def _wants_json(request: web.Request) -> bool:
    """Accept: application/json (without text/html) asks for the JSON report."""
    accept = request.headers.get(hdrs.ACCEPT, "")
    return "application/json" in accept and "text/html" not in accept


async def endpoint_page(request: web.Request) -> web.Response:
    return _endpoint_page(request, _path_endpoint(request))


async def forward_page(request: web.Request) -> web.Response:
    return _endpoint_page(request, _forward_endpoint(request))


async def ping_path(request: web.Request) -> web.Response:
    return await _answer(request, _path_endpoint(request))


async def ping_forward(request: web.Request) -> web.Response:
    return await _answer(request, _forward_endpoint(request))


async def ping_without_endpoint(request: web.Request) -> web.Response:
    return await _answer(request, None)


async def api_send(request: web.Request) -> web.Response:
    """A send for a deploy hook (a post's URL or a feed's), answered with its JSON report;
    404 without a valid token, exactly as for a path that does not exist."""
    gate = request.app[SEND_GATE]
    token = gate.token(request.headers.get(hdrs.AUTHORIZATION))
    if token is None:
        raise web.HTTPNotFound()
    try:
        send_request = await gate.admit(token, await request.post())
        report = await SiteSender(request.app[SENDER]).send(send_request)
    except GateRefusal as refusal:
        headers = ({} if refusal.retry_after_seconds is None
                   else {hdrs.RETRY_AFTER: str(refusal.retry_after_seconds)})
        return web.json_response({"error": refusal.error, "message": str(refusal)},
                                 status=refusal.status, headers=headers)
    except AlsoWithFeed as error:  # the request's own mistake, not the source's
        return web.json_response({"error": "also_with_feed", "message": str(error)}, status=400)
    except SourceUnusable as error:
        name = "feed_unreadable" if isinstance(error, FeedUnreadable) else "source_unusable"
        return web.json_response({"error": name, "message": str(error)}, status=502)
    return web.json_response(as_feed_json(report) if isinstance(report, FeedReport)
                             else as_json(report))


def _path_endpoint(request: web.Request) -> str:
    return _endpoint_from_path(request.rel_url.raw_path, request.rel_url.raw_query_string)


# Pingback URLs come in a few dozen forms at most: each path is read once (a pure function).
_endpoint_from_path = functools.lru_cache(maxsize=PATHS_REMEMBERED)(endpoint_from_path)


def _forward_endpoint(request: web.Request) -> str:
    return endpoint_from_forward(list(request.rel_url.query.items()))


def _public_base(request: web.Request) -> str:
    """The address people reach this pingproxy at: --public-url, else the one the request
    came to (with --trust-forwarded, as the front proxy says it came)."""
    return request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"


def _endpoint_page(request: web.Request, endpoint_text: str) -> web.Response:
    """Where this pingback URL's pingbacks go; or, when every one would get a fault before
    any forward, a 404 (or 403) page that says which and why, with no tag to copy."""
    base, settings = _public_base(request), request.app[SETTINGS]
    unusable = pages.unusable_endpoint(base, endpoint_text, request.app[POLICY],
                                       max_url_characters=settings.max_url_characters)
    if unusable is not None:
        status, context = unusable
        return pages.render("no_endpoint.html", request, base, context, status=status)
    return pages.render("endpoint.html", request, base, pages.endpoint(base, endpoint_text))


async def _answer(request: web.Request, endpoint_text: str | None) -> web.Response:
    """Run one XML-RPC call and answer it; every failure becomes a fault, never a 500.

    endpoint_text None: the pingback URL names no endpoint (discovery mode).
    """
    relay = request.app[RELAY]
    try:
        if relay.limits_clients:
            await relay.admit(request.remote)
        call = pingback.parse_call(await _read_body(request))
        if call.method != pingback.PING_METHOD:
            return _xml(pingback.render_success(pingback.introspect(call)))
        source, target = pingback.ping_arguments(call)
    except PingproxyError as error:
        request.app[METRICS].count_rejected(error.outcome)
        return _fault(error)
    request_id = _request_id(request)
    try:
        text = await relay.ping(source, target, endpoint_text, sender=request.remote,
                                via=request.headers.getall(hdrs.VIA, []),
                                request_id=request_id, proxy_host=request.host)
    except PingproxyError as error:
        return _fault(error, request_id)
    except Exception:
        logger.exception("unexpected error answering a pingback")
        return _fault(RequestError(Outcome.INTERNAL_ERROR, "internal error in pingproxy"),
                      request_id)
    return _xml(pingback.render_success(text), request_id)


def _request_id(request: web.Request) -> str:
    """The id a pingback's log line, its forward and its answer share."""
    given = request.headers.get("X-Request-Id")
    if given and _REQUEST_ID.match(given):
        return given
    # A correlation id, not a secret: Python's own generator, no system call per pingback.
    return f"{random.getrandbits(128):032x}"


async def _expect_body(request: web.Request) -> web.StreamResponse | None:
    """Expect: 100-continue (RFC 9110 section 10.1.1): a body announced over the size cap
    gets its 413 at once, so the client never sends it; any other, aiohttp's default
    answer (100 Continue on HTTP/1.1), as aiohttp's documentation writes it."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        error = _too_large(limit)
        request.app[METRICS].count_rejected(error.outcome)
        return _fault(error)
    if request.version != HttpVersion11:
        return None
    expectation = request.headers.get(hdrs.EXPECT, "")
    if expectation.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expectation}")
    if request.transport is not None:  # None: the client has gone already
        request.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


async def _read_body(request: web.Request) -> bytes:
    """The body, within the size cap and, so a trickling sender holds no handler, in time.

    At most the cap plus one byte is ever read, of a compressed body too: aiohttp inflates
    it as it is read, so what a small gzip or deflate body inflates to past the cap is
    never produced."""
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        if request.content.is_eof():  # all arrived with the headers: no timer needed
            body = await _read_at_most(request.content, limit + 1)
        else:
            async with asyncio.timeout(settings.request_timeout_seconds):
                body = await _read_at_most(request.content, limit + 1)
    except TimeoutError:
        raise RequestError(Outcome.REQUEST_TIMEOUT, "the request body arrived too slowly") from None
    except web.RequestPayloadError:  # a corrupt gzip or deflate body, or broken chunks
        raise RequestError(Outcome.NOT_WELL_FORMED, "the request body could not be decoded: "
                           "its Content-Encoding or chunked framing is broken") from None
    if len(body) > limit:
        raise _too_large(limit)
    return body


async def _read_at_most(stream: StreamReader, max_bytes: int) -> bytes:
    """The stream's first max_bytes, or all of it if shorter."""
    try:
        return await stream.readexactly(max_bytes)
    except asyncio.IncompleteReadError as short:
        return short.partial


def _too_large(limit: int) -> RequestError:
    return RequestError(Outcome.BODY_TOO_LARGE, f"the request body is over {limit} bytes")


def _xml(body: bytes, request_id: str | None = None, status: int = 200) -> web.Response:
    headers = {hdrs.CONTENT_TYPE: XML_CONTENT_TYPE}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return web.Response(body=body, status=status, headers=headers)


def _fault(error: PingproxyError, request_id: str | None = None) -> web.Response:
    response = _xml(pingback.render_fault(error.fault_code, str(error)), request_id,
                    error.http_status)
    if error.retry_after_seconds is not None:
        response.headers[hdrs.RETRY_AFTER] = str(error.retry_after_seconds)
    return response

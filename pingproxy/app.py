"""The aiohttp application: routes, pages, and the shared client session.

Handlers only translate HTTP to calls and back. Every XML-RPC answer, success or fault, is
HTTP 200 with text/xml: clients such as Python's xmlrpc.client and WordPress's IXR treat any
other status as a transport error and never read the fault.
"""

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator

from aiohttp import hdrs, web

from pingproxy import outbound, pages, pingback
from pingproxy.config import Settings
from pingproxy.errors import Outcome, PingproxyError, RequestError
from pingproxy.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pingproxy.metrics import Metrics
from pingproxy.relay import Relay
from pingproxy.send import Sender, SourceUnusable
from pingproxy.send_gate import GateRefusal, SendGate
from pingproxy.send_report import as_json
from pingproxy.urls import endpoint_from_forward, endpoint_from_path, pingback_url

SETTINGS = web.AppKey("settings", Settings)
RELAY = web.AppKey("relay", Relay)
METRICS = web.AppKey("metrics", Metrics)
SENDER = web.AppKey("sender", Sender)
SEND_GATE = web.AppKey("send_gate", SendGate)

XML_CONTENT_TYPE = "text/xml; charset=utf-8"
# A platform router's request id (Heroku sets one) is reused when it looks like one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

logger = logging.getLogger("pingproxy.app")


def create_app(settings: Settings) -> web.Application:
    """The pingproxy application for these settings."""
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    app[SETTINGS] = settings
    app[METRICS] = Metrics(multiprocess_dir=settings.metrics_dir if settings.workers > 1 else None)
    app[SEND_GATE] = SendGate(settings)
    app.cleanup_ctx.append(_relay_context)
    app.router.add_get("/healthz", healthz)
    if settings.metrics:
        app.router.add_get("/metrics", metrics)
    app.router.add_get("/", landing)
    app.router.add_post("/", ping_without_endpoint)
    app.router.add_get("/webmention", forward_page)
    app.router.add_post("/webmention", ping_forward)
    app.router.add_post("/api/send", api_send)
    app.router.add_get("/{endpoint:.+}", endpoint_page)
    app.router.add_post("/{endpoint:.+}", ping_path)
    return app


async def _relay_context(app: web.Application) -> AsyncIterator[None]:
    """One client session for the application's life; forwards in flight finish first."""
    settings = app[SETTINGS]
    policy = outbound.policy_for(settings)
    async with outbound.open_session(settings, policy) as session:
        app[RELAY] = Relay(settings, session, policy, app[METRICS])
        app[SENDER] = Sender(session, policy, settings)
        yield
        await app[RELAY].drain(settings.forward_timeout_seconds)


async def healthz(request: web.Request) -> web.Response:
    """For platform health checks: answers without touching any upstream."""
    return web.Response(text="ok")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(),
                        headers={hdrs.CONTENT_TYPE: METRICS_CONTENT_TYPE})


async def landing(request: web.Request) -> web.Response:
    return web.Response(text=pages.landing(_origin(request)), content_type="text/html")


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
    """A send for a deploy hook, answered with its JSON report; 404 without a valid token,
    exactly as for a path that does not exist."""
    gate = request.app[SEND_GATE]
    token = gate.token(request.headers.get(hdrs.AUTHORIZATION))
    if token is None:
        raise web.HTTPNotFound()
    try:
        send_request = await gate.admit(token, await request.post())
        report = await request.app[SENDER].send(send_request)
    except GateRefusal as refusal:
        headers = ({} if refusal.retry_after_seconds is None
                   else {hdrs.RETRY_AFTER: str(refusal.retry_after_seconds)})
        return web.json_response({"error": refusal.error, "message": str(refusal)},
                                 status=refusal.status, headers=headers)
    except SourceUnusable as error:
        return web.json_response({"error": "source_unusable", "message": str(error)},
                                 status=502)
    return web.json_response(as_json(report))


def _path_endpoint(request: web.Request) -> str:
    return endpoint_from_path(request.rel_url.raw_path, request.rel_url.raw_query_string)


def _forward_endpoint(request: web.Request) -> str:
    return endpoint_from_forward(list(request.rel_url.query.items()))


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _endpoint_page(request: web.Request, endpoint_text: str) -> web.Response:
    origin = _origin(request)
    address = pingback_url(origin, endpoint_text)
    return web.Response(text=pages.endpoint(origin, endpoint_text, address),
                        content_type="text/html")


async def _answer(request: web.Request, endpoint_text: str | None) -> web.Response:
    """Run one XML-RPC call and answer it; every failure becomes a fault, never a 500.

    endpoint_text None: the pingback URL names no endpoint (discovery mode).
    """
    relay = request.app[RELAY]
    try:
        if relay.limits_clients:
            await relay.admit(request.remote)
        via = request.headers.getall(hdrs.VIA, [])
        relay.check_loop(via)
        call = pingback.parse_call(await _read_body(request))
        if call.method != pingback.PING_METHOD:
            return _xml(pingback.render_success(pingback.introspect(call)))
        source, target = pingback.ping_arguments(call)
    except PingproxyError as error:
        request.app[METRICS].count_rejected(error.outcome)
        return _fault(error)
    request_id = _request_id(request)
    try:
        text = await relay.ping(source, target, endpoint_text, sender=request.remote, via=via,
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
    given = request.headers.get("X-Request-Id", "")
    return given if _REQUEST_ID.match(given) else secrets.token_hex(16)


async def _read_body(request: web.Request) -> bytes:
    """The body, within the size cap and, so a trickling sender holds no handler, in time."""
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        if request.content.is_eof():  # all arrived with the headers: no timer needed
            body = await request.read()
        else:
            async with asyncio.timeout(settings.request_timeout_seconds):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    except TimeoutError:
        raise RequestError(Outcome.REQUEST_TIMEOUT, "the request body arrived too slowly") from None
    if len(body) > limit:  # aiohttp's own check is ">" or ">=" depending on its version
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> RequestError:
    return RequestError(Outcome.BODY_TOO_LARGE, f"the request body is over {limit} bytes")


def _xml(body: bytes, request_id: str | None = None, status: int = 200) -> web.Response:
    response = web.Response(body=body, status=status,
                            headers={hdrs.CONTENT_TYPE: XML_CONTENT_TYPE})
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
    return response


def _fault(error: PingproxyError, request_id: str | None = None) -> web.Response:
    response = _xml(pingback.render_fault(error.fault_code, str(error)), request_id,
                    error.http_status)
    if error.retry_after_seconds is not None:
        response.headers[hdrs.RETRY_AFTER] = str(error.retry_after_seconds)
    return response

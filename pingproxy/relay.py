"""One pingback's journey: check it, forward it as a WebMention, turn the reply into an answer.

A forward, once started, runs to its end in its own task even when the sender hangs up
(WordPress waits only 3 s): a mention is never dropped because its sender was impatient.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from pingproxy import __version__, webmention
from pingproxy.config import Settings
from pingproxy.errors import (
    FAULT_CODES,
    Outcome,
    PingbackRejected,
    PingproxyError,
    RequestError,
    UpstreamError,
)
from pingproxy.metrics import Metrics
from pingproxy.netguard import DestinationPolicy
from pingproxy.urls import http_url

logger = logging.getLogger("pingproxy.relay")

USER_AGENT = f"pingproxy/{__version__} (Pingback to Webmention proxy)"
RETRY_AFTER_SECONDS = 5
# Longer than any honest page address; keeps a 60 KiB "URL" from travelling further.
MAX_URL_CHARACTERS = 4096
_SAFE_LOG_VALUE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:/")


@dataclass(frozen=True, slots=True)
class _Journey:
    """What a pingback's log line and metrics need to know from its start."""

    source: str
    target: str
    request_id: str
    started: float


class Relay:
    """Carries pingbacks to WebMention endpoints for one application."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession,
                 policy: DestinationPolicy, metrics: Metrics) -> None:
        self._settings = settings
        self._session = session
        self._policy = policy
        self._metrics = metrics
        self._forwards: set[asyncio.Task] = set()
        self._via_name = f"pingproxy-{settings.instance_id}"

    def check_loop(self, via: list[str]) -> None:
        """Refuse a request that this instance already forwarded (RFC 9110 section 7.6.3)."""
        for entry in ",".join(via).split(","):
            if self._via_name in entry.split()[1:2]:
                raise PingbackRejected(
                    Outcome.LOOP, "forwarding loop: this pingproxy already forwarded this request"
                )

    async def ping(self, source: str, target: str, endpoint_text: str, *,
                   sender: str | None, via: list[str], request_id: str) -> str:
        """Forward one pingback and return the success text, or raise its fault."""
        journey = _Journey(source, target, request_id, time.perf_counter())
        try:
            endpoint = self._checked_endpoint(source, target, endpoint_text)
            if len(self._forwards) >= self._settings.max_inflight:
                raise RequestError(
                    Outcome.OVER_CAPACITY,
                    f"pingproxy is at capacity; retry after {RETRY_AFTER_SECONDS} s",
                )
        except PingproxyError as error:
            self._report(journey, _host(endpoint_text), error=error)
            raise
        headers = self._forward_headers(sender, via, request_id)
        task = asyncio.get_running_loop().create_task(self._forward(endpoint, journey, headers))
        self._forwards.add(task)
        self._metrics.inflight.inc()
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    async def drain(self, timeout_seconds: float) -> None:
        """Wait for the forwards in flight to finish, at most timeout_seconds."""
        if self._forwards:
            await asyncio.wait(set(self._forwards), timeout=timeout_seconds)

    def _checked_endpoint(self, source: str, target: str, endpoint_text: str) -> URL:
        source_url, target_url = _bounded_http_url(source), _bounded_http_url(target)
        if source_url is None:
            raise PingbackRejected(
                Outcome.INVALID_SOURCE,
                f"the source is not an absolute http(s) URL of at most {MAX_URL_CHARACTERS} "
                "characters",
            )
        if target_url is None:
            raise PingbackRejected(
                Outcome.INVALID_TARGET,
                f"the target is not an absolute http(s) URL of at most {MAX_URL_CHARACTERS} "
                "characters",
            )
        if source_url.with_fragment(None) == target_url.with_fragment(None):
            raise PingbackRejected(Outcome.INVALID_TARGET, "the source and target are the same")
        endpoint = http_url(endpoint_text)
        if endpoint is None:
            raise PingbackRejected(
                Outcome.INVALID_ENDPOINT,
                "this pingback URL names no valid WebMention endpoint: it should be "
                "https://PROXY/ followed by the endpoint's absolute http(s) URL",
            )
        self._policy.check_url(endpoint)
        return endpoint.with_fragment(None)

    def _forward_headers(self, sender: str | None, via: list[str],
                         request_id: str) -> dict[str, str]:
        return {
            "User-Agent": USER_AGENT,
            "Forwarded": f"for={_forwarded_node(sender)}",
            "Via": ", ".join([*via, f"1.1 {self._via_name}"]),
            "X-Request-Id": request_id,
        }

    async def _forward(self, endpoint: URL, journey: _Journey, headers: dict[str, str]) -> str:
        timeout = self._settings.forward_timeout_seconds
        source, target = journey.source, journey.target
        try:
            try:
                async with asyncio.timeout(timeout):
                    reply = await webmention.send(
                        self._session, self._policy, endpoint, source, target,
                        headers=headers, max_reply_bytes=self._settings.max_reply_bytes,
                    )
            except TimeoutError:
                raise UpstreamError(f"the endpoint did not answer within {timeout:g} s") from None
            text = webmention.read_reply(reply, source, target)
        except PingproxyError as error:
            self._report(journey, endpoint.host, error=error, forwarded=True)
            raise
        except Exception:
            logger.exception("forward to %s failed unexpectedly", endpoint.host)
            error = RequestError(Outcome.INTERNAL_ERROR, "internal error in pingproxy")
            self._report(journey, endpoint.host, error=error, forwarded=True)
            raise error from None
        self._report(journey, endpoint.host, upstream_status=reply.status, forwarded=True)
        return text

    def _forget(self, task: asyncio.Task) -> None:
        self._forwards.discard(task)
        self._metrics.inflight.dec()
        if not task.cancelled():
            task.exception()  # retrieved: a sender that hung up leaves nobody to read it

    def _report(self, journey: _Journey, endpoint_host: str | None, *,
                error: PingproxyError | None = None, upstream_status: int | None = None,
                forwarded: bool = False) -> None:
        """Log the one line a pingback leaves and count it: never its body, and newlines
        in its URLs cannot forge a line."""
        outcome = error.outcome if error else Outcome.SUCCESS
        if error is not None:
            upstream_status = error.upstream_status
        duration_seconds = time.perf_counter() - journey.started
        self._metrics.count_pingback(outcome, upstream_status, duration_seconds,
                                     forwarded=forwarded)
        fields = {
            "outcome": outcome.value,
            "fault": FAULT_CODES.get(outcome),
            "upstream_status": upstream_status,
            "duration_ms": round(duration_seconds * 1000, 1),
            "endpoint": endpoint_host,
            "source": journey.source,
            "target": journey.target,
            "request_id": journey.request_id,
        }
        logger.info(
            "pingback %s", " ".join(f"{key}={_log_value(value)}" for key, value in fields.items()),
            extra={"pingback": fields},
        )


def _bounded_http_url(text: str) -> URL | None:
    return http_url(text) if len(text) <= MAX_URL_CHARACTERS else None


def _forwarded_node(address: str | None) -> str:
    """A node for the Forwarded header's for= (RFC 7239 section 6): IPv6 quoted in brackets."""
    if not address:
        return "unknown"
    return f'"[{address}]"' if ":" in address else address


def _host(endpoint_text: str) -> str | None:
    url = http_url(endpoint_text)
    return url.host if url is not None else None


def _log_value(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if text and _SAFE_LOG_VALUE.issuperset(text):
        return text
    return json.dumps(text)

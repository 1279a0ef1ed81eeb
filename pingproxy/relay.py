"""One pingback's journey: check it, find its endpoint, forward it, turn the reply into an answer.

The endpoint is the one the pingback URL names, else the configured default endpoint, else
the one the target advertises (discovery, through the cache). A forward, once started, runs
to its end in its own task even when the sender hangs up (WordPress waits only 3 s): a
mention is never dropped because its sender was impatient. Its discovery and its POST share
one forward timeout.
"""

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from pingproxy import __version__, discovery, logs, webmention
from pingproxy.config import Settings
from pingproxy.discovery_cache import EndpointCache
from pingproxy.errors import (
    FAULT_CODES,
    Outcome,
    PingbackRejected,
    PingproxyError,
    RequestError,
    Throttled,
    UpstreamError,
)
from pingproxy.limits import HostBusy, Limits, MemoryLimits, client_key
from pingproxy.metrics import Metrics
from pingproxy.netguard import DestinationPolicy
from pingproxy.outbound import Reply
from pingproxy.urls import http_url, is_served_here

logger = logging.getLogger("pingproxy.relay")

USER_AGENT = f"pingproxy/{__version__} (Pingback to Webmention proxy)"
RETRY_AFTER_SECONDS = 5
ENDPOINTS_REMEMBERED = 256
# With --max-per-endpoint-host, how long a pingback waits for its endpoint host's turn: a
# short burst is smoothed, a flood is answered "busy" well within WordPress's 3 s.
ENDPOINT_HOST_WAIT_SECONDS = 1.0
# Log values with anything else (spaces, quotes, control characters) are written quoted.
_UNSAFE_LOG_CHARACTER = re.compile(r"[^A-Za-z0-9._:/-]")


@dataclass(frozen=True, slots=True)
class _Journey:
    """What a pingback's log line and metrics need to know from its start."""

    source: str
    target: str
    request_id: str
    started: float
    client: str | None  # the sender's address (the real client's, with --trust-forwarded)


class Relay:
    """Carries pingbacks to WebMention endpoints for one application."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession,
                 policy: DestinationPolicy, metrics: Metrics, *,
                 limits: Limits | None = None) -> None:
        self._settings = settings
        self._session = session
        self._policy = policy
        self._metrics = metrics
        # Each forward's task, with the future its handler awaits and its deadline's timer.
        self._forwards: dict[asyncio.Task, tuple[asyncio.Future, asyncio.TimerHandle]] = {}
        self._expired: set[asyncio.Task] = set()
        self._via_name = f"pingproxy-{settings.instance_id}"
        self._via_entry = f"1.1 {self._via_name}"
        self._lines = logs.LineQueue(logger)
        # Most pingbacks name one of a few endpoints: each one's text is read and checked
        # once (a pure function of it and the policy); a refused one is checked every time.
        self._checked_endpoint = functools.lru_cache(maxsize=ENDPOINTS_REMEMBERED)(
            self._check_endpoint)
        # Opt-in limits for public instances; None when off, so they cost nothing then (not
        # even a Redis call). A slot is held within the forward's timeout, so that is as long
        # as a crashed instance's slot can stay counted.
        limits = limits or MemoryLimits()
        self._client_limits = (
            limits.rate("relay", settings.rate_limit, burst=settings.rate_limit_burst)
            if settings.rate_limit else None
        )
        self._endpoint_slots = (
            limits.slots("endpoint", settings.max_per_endpoint_host,
                         hold_seconds=settings.forward_timeout_seconds)
            if settings.max_per_endpoint_host else None
        )
        self._endpoints = EndpointCache(
            self._examine,
            timeout_seconds=settings.forward_timeout_seconds,
            ttl_seconds=settings.discovery_cache_seconds,
            count=metrics.count_discovery_lookup,
        )

    @property
    def limits_clients(self) -> bool:
        """Whether requests must pass admit() first (--rate-limit is set)."""
        return self._client_limits is not None

    async def admit(self, sender: str | None) -> None:
        """Count a request against its client's rate; Throttled (HTTP 429) when over it."""
        if not await self._client_limits.admit(client_key(sender)):
            seconds = self._client_limits.retry_after_seconds
            raise Throttled(
                Outcome.CLIENT_RATE_LIMITED,
                f"too many requests from your address; retry after {seconds} s",
                retry_after_seconds=seconds,
            )

    def _check_loop(self, via: list[str]) -> None:
        """Refuse a request that this instance already forwarded (RFC 9110 section 7.6.3)."""
        if not via:
            return
        for entry in ",".join(via).split(","):
            if self._via_name in entry.split()[1:2]:
                raise PingbackRejected(
                    Outcome.LOOP, "forwarding loop: this pingproxy already forwarded this request"
                )

    async def ping(self, source: str, target: str, endpoint_text: str | None, *,
                   sender: str | None, via: list[str], request_id: str, proxy_host: str) -> str:
        """Forward one pingback and return the success text, or raise its fault.

        endpoint_text None: the pingback URL names no endpoint, so the default endpoint is
        used, or else the target's is discovered; proxy_host (the Host this request came
        to) tells a discovered endpoint that is this proxy itself.
        """
        journey = _Journey(source, target, request_id, time.perf_counter(), sender)
        if endpoint_text is None:
            endpoint_text = self._settings.default_endpoint
        try:
            self._check_loop(via)
            self._check_pingback(source, target)
            endpoint = None if endpoint_text is None else self._checked_endpoint(endpoint_text)
            if len(self._forwards) >= self._settings.max_inflight:
                raise RequestError(
                    Outcome.OVER_CAPACITY,
                    f"pingproxy is at capacity; retry after {RETRY_AFTER_SECONDS} s",
                    retry_after_seconds=RETRY_AFTER_SECONDS,
                )
        except PingproxyError as error:
            self._refused(journey, endpoint_text, error)
            raise
        headers = self._forward_headers(sender, via, request_id)
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._forward(endpoint, journey, headers, proxy_host))
        # What asyncio.shield(task) and asyncio.timeout() inside it would do, at a third of
        # their cost a pingback: the handler awaits a future of its own, which the task's
        # end settles, so a handler cancelled (at shutdown) leaves the forward running; and
        # one timer cancels the task at its deadline, which _forward reads as a timeout.
        answer = loop.create_future()
        deadline = loop.call_later(self._settings.forward_timeout_seconds, self._expire, task)
        self._forwards[task] = answer, deadline
        self._metrics.inflight.inc()
        task.add_done_callback(self._forget)
        return await answer

    async def drain(self, timeout_seconds: float) -> None:
        """Wait for the forwards in flight to finish, at most timeout_seconds, then cancel
        any discovery still running, and log every line still queued."""
        if self._forwards:
            await asyncio.wait(set(self._forwards), timeout=timeout_seconds)
        await self._endpoints.close()
        self.flush_log()

    def flush_log(self) -> None:
        """Log the pingbacks' lines still queued (they are logged in bursts, soon after)."""
        self._lines.flush()

    def _check_pingback(self, source: str, target: str) -> None:
        source_url, target_url = self._bounded_http_url(source), self._bounded_http_url(target)
        longest = self._settings.max_url_characters
        if source_url is None:
            raise PingbackRejected(
                Outcome.INVALID_SOURCE,
                f"the source is not an absolute http(s) URL of at most {longest} characters",
            )
        if target_url is None:
            raise PingbackRejected(
                Outcome.INVALID_TARGET,
                f"the target is not an absolute http(s) URL of at most {longest} characters",
            )
        if _same_resource(source_url, target_url):
            raise PingbackRejected(Outcome.INVALID_TARGET, "the source and target are the same")

    def _check_endpoint(self, endpoint_text: str) -> URL:
        endpoint = self._bounded_http_url(endpoint_text)
        if endpoint is None:
            raise PingbackRejected(
                Outcome.INVALID_ENDPOINT,
                "this pingback URL names no valid WebMention endpoint: it should be "
                "https://PROXY/ followed by the endpoint's absolute http(s) URL, of at most "
                f"{self._settings.max_url_characters} characters",
            )
        self._policy.check_url(endpoint)
        return endpoint.with_fragment(None) if endpoint.raw_fragment else endpoint

    def _bounded_http_url(self, text: str) -> URL | None:
        """The absolute http(s) URL text names, unless it is longer than the URL cap."""
        return http_url(text) if len(text) <= self._settings.max_url_characters else None

    def _forward_headers(self, sender: str | None, via: list[str],
                         request_id: str) -> dict[str, str]:
        return {
            "User-Agent": USER_AGENT,
            "Forwarded": f"for={_forwarded_node(sender)}",
            "Via": ", ".join([*via, self._via_entry]) if via else self._via_entry,
            "X-Request-Id": request_id,
        }

    async def _forward(self, endpoint: URL | None, journey: _Journey, headers: dict[str, str],
                       proxy_host: str) -> str:
        timeout = self._settings.forward_timeout_seconds
        source, target = journey.source, journey.target
        try:
            try:
                if endpoint is None:
                    endpoint = await self._discovered_endpoint(target, proxy_host)
                if self._endpoint_slots is None:
                    reply = await self._post(endpoint, source, target, headers)
                else:
                    reply = await self._post_in_turn(endpoint, source, target, headers)
            except (TimeoutError, asyncio.CancelledError) as error:
                if isinstance(error, asyncio.CancelledError) and not self._timed_out():
                    raise
                if endpoint is None:
                    raise discovery.too_slow(timeout) from None
                raise UpstreamError(f"the endpoint did not answer within {timeout:g} s") from None
            text = webmention.read_reply(reply, source, target)
        except PingproxyError as error:
            self._report(journey, _url_host(endpoint), error=error, forwarded=True)
            raise
        except Exception:
            logger.exception("forward to %s failed unexpectedly", _url_host(endpoint))
            error = RequestError(Outcome.INTERNAL_ERROR, "internal error in pingproxy")
            self._report(journey, _url_host(endpoint), error=error, forwarded=True)
            raise error from None
        self._report(journey, endpoint.host, upstream_status=reply.status, forwarded=True)
        return text

    def _post(self, endpoint: URL, source: str, target: str,
              headers: dict[str, str]) -> Awaitable[Reply]:
        return webmention.send(self._session, self._policy, endpoint, source, target,
                               headers=headers, max_reply_bytes=self._settings.max_reply_bytes,
                               checked=True)

    async def _post_in_turn(self, endpoint: URL, source: str, target: str,
                            headers: dict[str, str]) -> Reply:
        """_post within the endpoint host's share of forwards in flight."""
        try:
            async with self._endpoint_slots.slot(endpoint.host,
                                                 wait_seconds=ENDPOINT_HOST_WAIT_SECONDS):
                return await self._post(endpoint, source, target, headers)
        except HostBusy:
            raise Throttled(
                Outcome.ENDPOINT_BUSY,
                f"{endpoint.host} already has {self._endpoint_slots.per_host} pingbacks in "
                "flight through this pingproxy: busy, try again later",
            ) from None

    async def _discovered_endpoint(self, target: str, proxy_host: str) -> URL:
        endpoint = await self._endpoints.endpoint(http_url(target))
        if len(str(endpoint)) > self._settings.max_url_characters:
            raise PingbackRejected(
                Outcome.INVALID_ENDPOINT,
                "the target's WebMention endpoint URL is longer than "
                f"{self._settings.max_url_characters} characters",
            )
        self._policy.check_url(endpoint)  # every endpoint is checked once before its POST
        if is_served_here(endpoint, proxy_host):
            raise PingbackRejected(
                Outcome.LOOP,
                "forwarding loop: the target's WebMention endpoint is this pingproxy itself",
            )
        return endpoint

    def _examine(self, target: URL) -> Awaitable[discovery.Discovery]:
        return discovery.examine(
            self._session, self._policy, target,
            max_page_bytes=self._settings.discovery_max_page_bytes,
            headers={"User-Agent": USER_AGENT},
        )

    def _expire(self, task: asyncio.Task) -> None:
        """The forward's deadline: cancel its task, marked as timed out."""
        self._expired.add(task)
        task.cancel()

    def _timed_out(self) -> bool:
        """Whether the running forward was cancelled by its deadline (and is no longer)."""
        task = asyncio.current_task()
        if task not in self._expired:
            return False
        task.uncancel()
        return True

    def _forget(self, task: asyncio.Task) -> None:
        answer, deadline = self._forwards.pop(task)
        deadline.cancel()
        self._expired.discard(task)
        self._metrics.inflight.dec()
        if task.cancelled():
            answer.cancel()
            return
        error = task.exception()  # retrieved: a sender that hung up leaves nobody to read it
        if answer.done():  # its handler was cancelled
            return
        if error is None:
            answer.set_result(task.result())
        else:
            answer.set_exception(error)

    def _refused(self, journey: _Journey, endpoint_text: str | None,
                 error: PingproxyError) -> None:
        """Count a pingback refused before any forward and log its one line, at INFO as a
        forwarded one's: every answered pingback leaves one line, whatever its form or
        outcome (the lines of a flood are made in bursts, as all pingback lines are)."""
        self._metrics.count_pingback(error.outcome, None, 0.0, forwarded=False)
        if logger.isEnabledFor(logging.INFO):
            self._lines.put(logging.INFO, _pingback_line, journey, error.outcome, None,
                            _host(endpoint_text), 0.0)

    def _report(self, journey: _Journey, endpoint_host: str | None, *,
                error: PingproxyError | None = None, upstream_status: int | None = None,
                forwarded: bool = False) -> None:
        """Count a forwarded pingback and log the one line it leaves."""
        outcome = error.outcome if error else Outcome.SUCCESS
        if error is not None:
            upstream_status = error.upstream_status
        duration_seconds = time.perf_counter() - journey.started
        self._metrics.count_pingback(outcome, upstream_status, duration_seconds,
                                     forwarded=forwarded)
        if logger.isEnabledFor(logging.INFO):
            self._lines.put(logging.INFO, _pingback_line, journey, outcome, upstream_status,
                            endpoint_host, duration_seconds)

def _pingback_line(journey: _Journey, outcome: Outcome, upstream_status: int | None,
                   endpoint_host: str | None,
                   duration_seconds: float) -> tuple[str, dict[str, object]]:
    """A pingback's line and its fields: never its body, and newlines in its URLs cannot
    forge a line. Only the URLs, the endpoint host and the client can need quoting."""
    fault = FAULT_CODES.get(outcome)
    duration_ms = round(duration_seconds * 1000, 1)
    name = outcome.value
    fields = {
        "outcome": name,
        "fault": fault,
        "upstream_status": upstream_status,
        "duration_ms": duration_ms,
        "endpoint": endpoint_host,
        "source": journey.source,
        "target": journey.target,
        "request_id": journey.request_id,
        "client": journey.client,
    }
    line = (
        f"pingback outcome={name} fault={_or_dash(fault)} "
        f"upstream_status={_or_dash(upstream_status)} duration_ms={duration_ms} "
        f"endpoint={_log_value(endpoint_host)} source={_log_value(journey.source)} "
        f"target={_log_value(journey.target)} request_id={journey.request_id} "
        f"client={_log_value(journey.client)}"
    )
    return line, {"pingback": fields}


def _same_resource(one: URL, other: URL) -> bool:
    """Whether two URLs name the same resource: equal but perhaps for their fragments."""
    return (one.scheme, one.host, one.port, one.raw_path, one.raw_query_string) == (
        other.scheme, other.host, other.port, other.raw_path, other.raw_query_string)


def _forwarded_node(address: str | None) -> str:
    """A node for the Forwarded header's for= (RFC 7239 section 6): IPv6 quoted in brackets."""
    if not address:
        return "unknown"
    address = address.strip("[]")  # a front proxy's Forwarded: for= may bracket IPv6 already
    return f'"[{address}]"' if ":" in address else address


def _host(endpoint_text: str | None) -> str | None:
    return _url_host(http_url(endpoint_text or ""))


def _url_host(url: URL | None) -> str | None:
    return url.host if url is not None else None


def _or_dash(number: int | None) -> str | int:
    return "-" if number is None else number


def _log_value(text: str | None) -> str:
    if text is None:
        return "-"
    if text and not _UNSAFE_LOG_CHARACTER.search(text):
        return text
    return json.dumps(text)

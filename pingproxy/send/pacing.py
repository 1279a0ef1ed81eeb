"""How a send paces its requests: a bound on all of them, a share per host, one retry.

A sender that fires every request at once can take a small site down, or be taken down
itself by one host that hangs its requests; careful senders bound concurrency per host and
honour Retry-After, and the ones that retry every 4xx cause resend loops. So each request
waits for one of its host's slots (limits.HostSlots) and then one of the run's; a 429, a 5xx
or a connection that never happened is retried once, after Retry-After (cut to a cap) or a
short backoff, outside any slot. Never a 4xx, nor a timeout: the endpoint may have taken it.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime

import aiohttp
from yarl import URL

from pingproxy.config import Settings
from pingproxy.errors import UpstreamError
from pingproxy.limits import HostSlots
from pingproxy.outbound import Reply

MAX_ATTEMPTS = 2

Retried = Callable[[str], None]
"""Told why a request is retried and how long it waits first."""


class Pacer:
    """The pace of one send's requests."""

    def __init__(self, settings: Settings) -> None:
        self._hosts = HostSlots(settings.send_per_host)
        self._overall = asyncio.Semaphore(settings.send_concurrency)
        self._backoff_seconds = settings.send_retry_backoff_seconds
        self._max_wait_seconds = settings.send_retry_max_wait_seconds

    async def request(self, url: URL, make: Callable[[], Awaitable[Reply]], *,
                      retried: Retried | None = None) -> Reply:
        """make()'s reply from url in its turn, retried once when that is worth it."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            last = attempt == MAX_ATTEMPTS
            try:
                async with self._turn(url.host):
                    reply = await make()
            except UpstreamError as error:
                if last or not _connection_failed(error):
                    raise
                wait, why = min(self._backoff_seconds, self._max_wait_seconds), str(error)
            else:
                if last or not (reply.status == 429 or reply.status >= 500):
                    return reply
                wait, why = self._retry_wait(reply), f"HTTP {reply.status}"
            if retried is not None:
                retried(f"{why}; waited {wait:g} s")
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @asynccontextmanager
    async def _turn(self, host: str | None) -> AsyncIterator[None]:
        """A slot of the host, then one of the run's: waiting for a busy host holds none."""
        async with self._hosts.slot(host or ""), self._overall:
            yield

    def _retry_wait(self, reply: Reply) -> float:
        """Retry-After (seconds, or an HTTP date: RFC 9110 section 10.2.3), cut to the cap;
        the backoff when there is none."""
        seconds = _retry_after_seconds(reply.headers.get("Retry-After", ""))
        if seconds is None:
            seconds = self._backoff_seconds
        return min(max(seconds, 0.0), self._max_wait_seconds)


def _connection_failed(error: UpstreamError) -> bool:
    """Whether no exchange took place (refused, reset, unresolved); not a timeout."""
    cause = error.__cause__
    return isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError)


def _retry_after_seconds(text: str) -> float | None:
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - time.time()

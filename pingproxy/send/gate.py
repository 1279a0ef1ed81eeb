"""Who may start a send over HTTP (POST /api/send), from which sources, and how often.

A deploy hook sends after each build; nobody else may make this server send mentions for
them, or it becomes a relay for spam. So the route answers 404, as for any unknown path,
unless a token is configured and the request carries one as a bearer token (compared in
constant time); each token has its own rate; sources may be limited to some hosts; and a
source is sent at most once per interval unless the hook says force=1, so a hook that fires
on every build does not spray the same mentions. A feed's URL is a source like any other:
its interval is the feed's, and its entries are on its own site. The token rates and the
interval are kept where the application's limits are (limits.Limits): in memory, bounded, or
in Redis, so that a hook retried on another instance is refused as on the first.
"""

import hashlib
import hmac
import math
from datetime import UTC, datetime

from multidict import MultiMapping
from yarl import URL

from pingproxy import feeds
from pingproxy.config import Settings
from pingproxy.limits import Limits, MemoryLimits
from pingproxy.links import normalised
from pingproxy.netguard import host_matches
from pingproxy.send.post import DEFAULT_ENTRIES, SendRequest
from pingproxy.urls import http_url

_YES = frozenset({"1", "true", "yes", "on"})


class GateRefusal(Exception):
    """A request the gate turns away: its HTTP status, an error name, and why."""

    def __init__(self, status: int, error: str, message: str, *,
                 retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.retry_after_seconds = retry_after_seconds


class SendGate:
    """The rules of POST /api/send for one server."""

    def __init__(self, settings: Settings, limits: Limits | None = None) -> None:
        limits = limits or MemoryLimits()
        self._tokens = tuple(_digest(token) for token in settings.send_tokens)
        self._allowed_sources = settings.send_allowed_sources
        self._max_entries = settings.send_max_entries
        self._rate = limits.rate("send", settings.send_rate_limit)
        self._sent = limits.intervals("sent", settings.send_source_interval_seconds)

    def token(self, authorization: str | None) -> int | None:
        """Which configured token the Authorization header carries (RFC 6750 section 2.1),
        or None; every token is compared, each in constant time."""
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        given_digest = _digest(given.strip())
        matched = None
        for index, token in enumerate(self._tokens):
            if hmac.compare_digest(given_digest, token):
                matched = index
        return matched

    async def admit(self, token: int, form: MultiMapping) -> SendRequest:
        """The send a token holder asks for; GateRefusal when it may not run now."""
        if not await self._rate.admit(str(token)):
            seconds = self._rate.retry_after_seconds
            raise GateRefusal(429, "rate_limited",
                              f"too many sends with this token; retry after {seconds} s",
                              retry_after_seconds=seconds)
        source = http_url(_text(form, "source"))
        if source is None:
            raise GateRefusal(400, "invalid_source", "source must be an absolute http(s) URL")
        if self._allowed_sources and not host_matches(source.host, self._allowed_sources):
            raise GateRefusal(403, "source_not_allowed",
                              f"{source.host} is not among this server's allowed sources")
        entries, since = self._entries(form), self._since(form)
        dry_run = _text(form, "dry_run").lower() in _YES
        if not dry_run:
            await self._claim(source, force=_text(form, "force").lower() in _YES)
        also = tuple(value for value in form.getall("also", ()) if isinstance(value, str))
        return SendRequest(source, also=also, dry_run=dry_run, entries=entries, since=since)

    def _entries(self, form: MultiMapping) -> int:
        """A feed's newest entries to take: entries=N, 1 to --send-max-entries."""
        text = _text(form, "entries").strip()
        if not text:
            return min(DEFAULT_ENTRIES, self._max_entries)
        if not text.isdigit() or not 1 <= int(text) <= self._max_entries:
            raise GateRefusal(400, "invalid_entries",
                              f"entries must be a number from 1 to {self._max_entries}")
        return int(text)

    @staticmethod
    def _since(form: MultiMapping) -> datetime | None:
        text = _text(form, "since")
        if not text.strip():
            return None
        try:
            return feeds.parse_since(text, datetime.now(UTC))
        except ValueError as error:
            raise GateRefusal(400, "invalid_since", f"since: {error}") from None

    async def _claim(self, source: URL, *, force: bool) -> None:
        """Note the source as sent now, unless it was sent within the interval."""
        left = await self._sent.claim(str(normalised(source)), force=force)
        if left is not None:
            ago, wait = self._sent.interval_seconds - left, math.ceil(left)
            raise GateRefusal(429, "sent_recently",
                              f"this source was sent {ago:.0f} s ago; send it again in "
                              f"{wait} s, or now with force=1", retry_after_seconds=wait)


def _digest(token: str) -> bytes:
    """Tokens are compared as digests, all of one length: compare_digest's time then tells
    nothing, not even a token's length."""
    return hashlib.sha256(token.encode()).digest()


def _text(form: MultiMapping, name: str) -> str:
    """A form field's text; a file upload in its place counts as absent."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""

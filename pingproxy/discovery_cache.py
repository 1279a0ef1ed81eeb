"""Bounded discovery: remembered endpoints, one fetch per target at a time, few per host.

Discovery makes the proxy fetch a page that a stranger names, and pingback's history of
reflection attacks shows what an unbounded fetcher becomes. So, all in memory:

- a found endpoint, or a target's "no endpoint", is remembered for ttl_seconds, less when the
  target's Cache-Control max-age says so, not at all for no-store or no-cache; at most
  max_entries targets are remembered, the least recently used forgotten first;
- failures (target gone, failing, unreachable) are not remembered: the next pingback retries;
- pingbacks for a target already being discovered wait for that discovery's result;
- at most MAX_DISCOVERIES_PER_HOST discoveries run at once per host; the rest queue.

A burst of pingbacks to one target therefore costs one fetch.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from yarl import URL

from pingproxy.discovery import Discovery, too_slow
from pingproxy.limits import HostSlots

MAX_CACHED_TARGETS = 10_000
MAX_DISCOVERIES_PER_HOST = 2


def cache_seconds(cache_control: str, ttl_seconds: float) -> float:
    """How long a target's discovery may be reused, given its Cache-Control header."""
    for directive in cache_control.split(","):
        name, _, value = directive.partition("=")
        name = name.strip().lower()
        # RFC 9111 section 5.2.2.4 and 5.2.2.5: no-cache must not be reused unvalidated,
        # and this cache never revalidates; no-store must not be kept at all.
        if name in ("no-store", "no-cache"):
            return 0.0
        # Section 5.2.2.1; a max-age that is not a number leaves the reply stale (4.2.1).
        if name == "max-age":
            age = value.strip().strip('"')
            ttl_seconds = min(ttl_seconds, int(age)) if age.isdigit() else 0.0
    return ttl_seconds


class EndpointCache:
    """Endpoints by target URL, discovered through examine and remembered as the target allows."""

    def __init__(
        self,
        examine: Callable[[URL], Awaitable[Discovery]],
        *,
        count: Callable[[str], None],
        timeout_seconds: float,
        ttl_seconds: float,
        max_entries: int = MAX_CACHED_TARGETS,
        per_host: int = MAX_DISCOVERIES_PER_HOST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._examine = examine
        self._count = count
        self._timeout_seconds = timeout_seconds
        self._ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Discovery]] = OrderedDict()
        self._flights: dict[str, asyncio.Task[Discovery]] = {}
        self._host_slots = HostSlots(per_host)

    async def endpoint(self, target: URL) -> URL:
        """The target's endpoint, remembered or discovered; DiscoveryFailed when there is none.

        Each look-up is counted as a "hit", a "miss" (it starts a discovery) or "joined"
        (it waits for the discovery another pingback started).
        """
        key = str(target.with_fragment(None))
        found = self._remembered(key)
        if found is None:
            # Shielded: a pingback that gives up must not cancel the others' discovery.
            found = await asyncio.shield(self._flight(key, target))
        else:
            self._count("hit")
        return found.required_endpoint()

    async def close(self) -> None:
        """Cancel the discoveries still running; for shutdown, after the forwards are done."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)

    def _remembered(self, key: str) -> Discovery | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, found = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found

    def _remember(self, key: str, found: Discovery) -> None:
        seconds = cache_seconds(found.cache_control, self._ttl_seconds)
        if seconds <= 0:
            return
        self._entries[key] = (self._clock() + seconds, found)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _flight(self, key: str, target: URL) -> asyncio.Task[Discovery]:
        flight = self._flights.get(key)
        if flight is not None:
            self._count("joined")
            return flight
        self._count("miss")
        flight = asyncio.get_running_loop().create_task(self._discover(key, target))
        self._flights[key] = flight
        flight.add_done_callback(lambda done: self._landed(key, done))
        return flight

    async def _discover(self, key: str, target: URL) -> Discovery:
        # Bounded by itself: the pingbacks waiting for it may all give up before it ends.
        try:
            async with asyncio.timeout(self._timeout_seconds):
                async with self._host_slots.slot(target.host or ""):
                    found = await self._examine(target)
        except TimeoutError:
            raise too_slow(self._timeout_seconds) from None
        self._remember(key, found)
        return found

    def _landed(self, key: str, flight: asyncio.Task[Discovery]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: every pingback waiting for it may have given up

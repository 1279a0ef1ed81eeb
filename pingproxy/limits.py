"""Limits that relay, check and send share: rates per client and concurrency per host.

A sidecar serves one site, so all its pingbacks go to one endpoint host and come through one
front proxy: nothing here may throttle it by default, and the relay uses these limits only
when an operator turns them on. A public instance turns them on so that it can be neither a
flood's amplifier against one receiver nor a free scanner for one client.

Where the limits are counted is chosen once, at start-up (limits_for): in this process's
memory (this module: the default, with no dependency beyond aiolimiter), or in Redis so that
every instance counts against the same limits (limits_shared, with --redis-url). Callers see
one interface, Limits, and never know which:

    Limits.rate(name, rate)        -> RateLimit:  admit(key) -> bool
    Limits.slots(name, n, hold)    -> Slots:      async with slot(key, wait_seconds=...)
    Limits.intervals(name, every)  -> Intervals:  claim(key, force=...) -> seconds left or None
"""

import asyncio
import ipaddress
import math
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiolimiter import AsyncLimiter

if TYPE_CHECKING:
    from pingproxy.config import Settings

# Clients remembered by a rate limit, least recently seen forgotten first: a forgotten
# client's bucket has long drained, unless a flood of distinct clients pushed it out.
MAX_TRACKED_CLIENTS = 10_000
# One IPv6 subscriber gets a whole /64 (RFC 6177): its addresses count as one client.
IPV6_CLIENT_PREFIX = 64
# Sources (or other keys) an interval remembers, least recently claimed forgotten first.
MAX_REMEMBERED_KEYS = 10_000


_RATE_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True, slots=True)
class Rate:
    """So many events per so many seconds."""

    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h"}[int(self.seconds)]
        return f"{self.count}/{unit}"

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """'10/s', '30/min' or '500/h'; ValueError for anything else."""
        count, _, unit = text.strip().lower().partition("/")
        if not count.isdigit() or int(count) < 1 or unit not in _RATE_UNITS:
            raise ValueError("must be a count per unit: 10/s, 30/min or 500/h")
        return cls(int(count), _RATE_UNITS[unit])


class HostBusy(Exception):
    """No slot of a host freed within the wait."""


def client_key(address: str | None) -> str:
    """The client a rate limit counts: the IPv4 address, or the IPv6 address's /64."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/{IPV6_CLIENT_PREFIX}", strict=False))


class RateLimiter:
    """A token bucket per key (aiolimiter's leaky bucket): rate.count per rate.seconds on
    average, burst at once (rate.count unless given)."""

    def __init__(self, rate: Rate, *, burst: int | None = None,
                 max_keys: int = MAX_TRACKED_CLIENTS) -> None:
        self._rate = rate
        self._burst = burst or rate.count
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, AsyncLimiter] = OrderedDict()
        # Never longer than it takes the bucket to drain one event's worth.
        self.retry_after_seconds = max(1, math.ceil(1 / rate.per_second))

    async def admit(self, key: str) -> bool:
        """Count one event for key and say True, or say False (counting nothing) when its
        bucket is full."""
        bucket = self._bucket(key)
        if not bucket.has_capacity():
            return False
        await bucket.acquire()  # has capacity: returns without waiting
        return True

    def _bucket(self, key: str) -> AsyncLimiter:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = AsyncLimiter(self._burst, self._burst / self._rate.per_second)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket


class HostSlots:
    """At most per_host holders at once for each host; a host's semaphore lives only while
    someone holds or waits for one of its slots."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._users: Counter[str] = Counter()  # holding or waiting
        self._holders: Counter[str] = Counter()

    @asynccontextmanager
    async def slot(self, host: str, *, wait_seconds: float | None = None) -> AsyncIterator[None]:
        """Hold one of host's slots; HostBusy when none frees within wait_seconds."""
        slots = self._slots.setdefault(host, asyncio.Semaphore(self.per_host))
        if wait_seconds == 0 and slots.locked():  # no wait at all: not even one loop turn
            raise HostBusy(host)
        self._users[host] += 1
        try:
            try:
                async with asyncio.timeout(wait_seconds):
                    await slots.acquire()
            except TimeoutError:
                raise HostBusy(host) from None
            self._holders[host] += 1
            try:
                yield
            finally:
                self._holders[host] -= 1
                slots.release()
        finally:
            self._users[host] -= 1
            if not self._users[host]:
                del self._users[host], self._slots[host], self._holders[host]

    def __len__(self) -> int:
        """How many hosts have a slot held or awaited now."""
        return len(self._slots)

    def holders(self, host: str) -> int:
        """How many hold one of host's slots now."""
        return self._holders[host]


class Intervals:
    """At most one claim per key and interval; the keys remembered are bounded."""

    def __init__(self, interval_seconds: float, *, max_keys: int = MAX_REMEMBERED_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_seconds = interval_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._claimed: OrderedDict[str, float] = OrderedDict()

    async def claim(self, key: str, *, force: bool = False) -> float | None:
        """Claim key now and say None, or say the seconds left before it may be claimed
        again (claiming nothing); force claims it in any case."""
        now = self._clock()
        last = self._claimed.get(key)
        if last is not None and not force and now - last < self.interval_seconds:
            return self.interval_seconds - (now - last)
        self._claimed[key] = now
        self._claimed.move_to_end(key)
        if len(self._claimed) > self._max_keys:
            self._claimed.popitem(last=False)
        return None


class RateLimit(Protocol):
    retry_after_seconds: int

    async def admit(self, key: str) -> bool:
        """Count one event for key and say True, or False when key is over its rate."""


class Slots(Protocol):
    per_host: int

    def slot(self, host: str, *,
             wait_seconds: float | None = None) -> AbstractAsyncContextManager[None]:
        """Hold one of host's slots; HostBusy when none frees within wait_seconds."""


class Claims(Protocol):
    interval_seconds: float

    async def claim(self, key: str, *, force: bool = False) -> float | None:
        """None once claimed, or the seconds left before key may be claimed again."""


class Limits(Protocol):
    """Where limits are counted: one object per application, chosen once at start-up."""

    def rate(self, name: str, rate: Rate, *, burst: int | None = None) -> RateLimit:
        """A rate per key; name keeps one limit's keys apart from another's."""

    def slots(self, name: str, per_host: int, *, hold_seconds: float) -> Slots:
        """per_host holders at once per key; a holder that vanishes (a crashed instance)
        counts for hold_seconds at most."""

    def intervals(self, name: str, interval_seconds: float) -> Claims:
        """One claim per key and interval."""

    @property
    def degraded(self) -> bool:
        """Whether shared limits are being counted in this process for want of their store."""

    async def probe(self) -> None:
        """Try the shared store again if it is due (for /healthz); nothing in memory."""

    async def close(self) -> None:
        """Release the store's connections."""


class MemoryLimits:
    """Every limit in this process's memory: the embedded default, free when unused."""

    degraded = False

    def rate(self, name: str, rate: Rate, *, burst: int | None = None) -> RateLimiter:
        return RateLimiter(rate, burst=burst)

    def slots(self, name: str, per_host: int, *, hold_seconds: float) -> HostSlots:
        return HostSlots(per_host)

    def intervals(self, name: str, interval_seconds: float) -> Intervals:
        return Intervals(interval_seconds)

    async def probe(self) -> None:
        return None

    async def close(self) -> None:
        return None


def limits_for(settings: "Settings", *, on_fallback: Callable[[], None] = lambda: None,
               on_switch: Callable[[bool], None] = lambda degraded: None) -> Limits:
    """In Redis when --redis-url is set, else in memory; limits_shared (and its libraries) is
    imported only then. on_fallback counts each decision made in memory for want of Redis,
    on_switch each change between the two (True: to memory)."""
    if settings.redis_url is None:
        return MemoryLimits()
    from pingproxy.limits_shared import SharedLimits

    return SharedLimits(settings.redis_url, prefix=settings.redis_prefix,
                        on_fallback=on_fallback, on_switch=on_switch)

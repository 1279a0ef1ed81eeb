"""Limits that relay, check and send share: rates per client and concurrency per host.

A sidecar serves one site, so all its pingbacks go to one endpoint host and come through one
front proxy: nothing here may throttle it by default, and the relay uses these limits only
when an operator turns them on. A public instance turns them on so that it can be neither a
flood's amplifier against one receiver nor a free scanner for one client.
"""

import asyncio
import ipaddress
import math
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

# Clients remembered by a rate limit, least recently seen forgotten first: a forgotten
# client's bucket has long drained, unless a flood of distinct clients pushed it out.
MAX_TRACKED_CLIENTS = 10_000
# One IPv6 subscriber gets a whole /64 (RFC 6177): its addresses count as one client.
IPV6_CLIENT_PREFIX = 64


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

"""Limits counted in Redis, so that every instance of a fleet counts against the same ones.

Imported only with --redis-url (the redis extra: limits, redis-py, hiredis). The rates are the
limits library's moving windows (its strategy, its keys and its Lua script, in its async Redis
storage); slots and intervals are a few Redis commands of our own, each key under the prefix
and with a TTL, so one Redis serves several deployments, nothing grows without bound, and no
client address is kept longer than its window.

Every command goes through one RedisPipe (redis_pipe): the commands that the pingbacks of one
event-loop turn need are written together on one connection, and their answers read in order.

Redis down or slow never stops a pingback: each call has a short timeout; when one fails,
limits are counted in this process's memory (limits.MemoryLimits' kinds, exactly as without
Redis), logged at most once a second and counted in /metrics; a second later one call tries
Redis again, and the first that answers brings every limit back to Redis.
"""

import asyncio
import hashlib
import itertools
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from yarl import URL

from pingproxy.limits import HostBusy, HostSlots, Intervals, Rate, RateLimiter
from pingproxy.redis_pipe import RedisPipe, RedisReplyError

# Each Redis call's bound: a pingback waits at most this long for a limit before it is
# counted in memory instead (a round trip on a network takes about a millisecond).
REDIS_CALL_TIMEOUT_SECONDS = 0.25
# After a failure, how long limits stay in memory before one call tries Redis again.
RETRY_REDIS_AFTER_SECONDS = 1.0
# The fallback's warning is logged at most this often.
LOG_INTERVAL_SECONDS = 1.0
# While a host's slots are all held, how often a waiting pingback asks again.
SLOT_POLL_SECONDS = 0.05
_FAILURES = (RedisReplyError, OSError, TimeoutError)

# One holder of a slot: a member of the key's sorted set, scored with its expiry (Redis's own
# clock, so every instance agrees); expired holders (a crashed instance's) are dropped first.
_TAKE_SLOT = b"""
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# A claim: -1 when claimed now, else the milliseconds left of the last claim's interval.
_CLAIM = b"""
if ARGV[2] == '1' then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) return -1 end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return -1 end
return redis.call('PTTL', KEYS[1])
"""

logger = logging.getLogger("pingproxy.limits")
T = TypeVar("T")


def redis_location(url: str) -> str:
    """The Redis a URL names, for logs: never its user name or password."""
    parsed = URL(url)
    return str(parsed.with_user(None).with_query(None)) if parsed.host else parsed.path


class Fallback:
    """Whether to ask Redis: yes while it answers; after a failure, one call a second."""

    def __init__(self, location: str, *, on_fallback: Callable[[], None],
                 on_switch: Callable[[bool], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.degraded = False
        self._location = location
        self._on_fallback = on_fallback
        self._on_switch = on_switch
        self._clock = clock
        self._retry_at = 0.0
        self._logged_at = -math.inf

    async def call(self, in_redis: Callable[[], Awaitable[T]],
                   in_memory: Callable[[], Awaitable[T]]) -> T:
        """in_redis's answer within the call timeout, else in_memory's."""
        if self.due():
            try:
                async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
                    answer = await in_redis()
            except _FAILURES as error:
                self.failed(error)
            else:
                self.answered()
                return answer
        self._on_fallback()
        return await in_memory()

    def due(self) -> bool:
        """Whether this call should ask Redis; when degraded, one call a second does."""
        if not self.degraded:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + RETRY_REDIS_AFTER_SECONDS
        return True

    def failed(self, error: BaseException) -> None:
        now = self._clock()
        self._retry_at = now + RETRY_REDIS_AFTER_SECONDS
        if not self.degraded:
            self.degraded = True
            self._on_switch(True)
        if now - self._logged_at >= LOG_INTERVAL_SECONDS:
            self._logged_at = now
            logger.warning("shared limits: Redis at %s did not answer (%s%s); limits are "
                           "counted in this process until it does", self._location,
                           type(error).__name__, f": {error}" if str(error) else "")

    def answered(self) -> None:
        if self.degraded:
            self.degraded = False
            self._on_switch(False)
            logger.warning("shared limits: Redis at %s answers again; limits are counted "
                           "in Redis", self._location)


class PipedRedisStorage(RedisStorage):
    """The limits library's async Redis storage (redis-py), its moving-window hits sent on the
    RedisPipe: the library's own script and key, without a round trip of their own."""

    def __init__(self, url: str, pipe: RedisPipe, *, key_prefix: str) -> None:
        super().__init__(f"async+{url}", implementation="redispy", key_prefix=key_prefix)
        self._pipe = pipe
        self._script = self.bridge.SCRIPT_ACQUIRE_MOVING_WINDOW  # bytes, as read

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return bool(await _eval(self._pipe, self._script, [self.bridge.prefixed_key(key)],
                                [time.time(), limit, expiry, amount]))


class SharedRateLimit:
    """A moving window per key in Redis (the limits library): burst events per
    burst / rate seconds, in whole seconds; RateLimiter's bucket while Redis is away."""

    def __init__(self, strategy: MovingWindowRateLimiter, fallback: Fallback, name: str,
                 rate: Rate, burst: int | None) -> None:
        self._local = RateLimiter(rate, burst=burst)
        self.retry_after_seconds = self._local.retry_after_seconds
        self._item = moving_window(rate, burst)
        self._strategy = strategy
        self._fallback = fallback
        self._name = name

    async def admit(self, key: str) -> bool:
        return await self._fallback.call(lambda: self._strategy.hit(self._item, self._name, key),
                                         lambda: self._local.admit(key))


def moving_window(rate: Rate, burst: int | None) -> RateLimitItemPerSecond:
    """The window closest to a token bucket of burst at rate: burst / rate seconds long (at
    least one), holding that many seconds' worth of events."""
    window_seconds = max(1, round((burst or rate.count) / rate.per_second))
    return RateLimitItemPerSecond(max(1, round(rate.per_second * window_seconds)),
                                  window_seconds)


class SharedSlots:
    """per_host holders at once per host in every instance together; each holder counts for
    hold_seconds at most, so a crashed instance's slots free themselves."""

    def __init__(self, pipe: RedisPipe, fallback: Fallback, key_prefix: str,
                 per_host: int, hold_seconds: float) -> None:
        self.per_host = per_host
        self._local = HostSlots(per_host)
        self._pipe = pipe
        self._fallback = fallback
        self._key_prefix = key_prefix
        self._hold_ms = str(math.ceil(hold_seconds * 1000))
        self._holder_ids = (f"{secrets.token_hex(6)}:{n}" for n in itertools.count())

    @asynccontextmanager
    async def slot(self, host: str, *, wait_seconds: float | None = None) -> AsyncIterator[None]:
        key, holder = self._key_prefix + host, next(self._holder_ids)
        deadline = time.monotonic() + (wait_seconds if wait_seconds is not None else math.inf)
        while True:
            taken = await self._fallback.call(lambda: self._take_slot(key, holder),
                                              lambda: _none())
            if taken is None:  # Redis is away: this process's slots
                async with self._local.slot(host, wait_seconds=_left(deadline)):
                    yield
                return
            if taken:
                break
            if time.monotonic() + SLOT_POLL_SECONDS > deadline:
                raise HostBusy(host)
            await asyncio.sleep(SLOT_POLL_SECONDS)
        try:
            yield
        finally:
            self._release(key, holder)

    async def _take_slot(self, key: str, holder: str) -> bool:
        return bool(await _eval(self._pipe, _TAKE_SLOT, [key],
                                [holder, self.per_host, self._hold_ms]))

    def _release(self, key: str, holder: str) -> None:
        """Free the slot, without waiting for Redis's answer: the ZREM is written before any
        later command of this process, so this process's next take sees the slot free; if
        Redis cannot be told, the slot frees itself at its expiry."""
        self._pipe.call("ZREM", key, holder).add_done_callback(self._released)

    def _released(self, answer: asyncio.Future) -> None:
        if not answer.cancelled() and answer.exception() is not None:
            self._fallback.failed(answer.exception())


class SharedIntervals:
    """One claim per key and interval across instances; the key lives for the interval."""

    def __init__(self, pipe: RedisPipe, fallback: Fallback, key_prefix: str,
                 interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._local = Intervals(interval_seconds)
        self._pipe = pipe
        self._fallback = fallback
        self._key_prefix = key_prefix
        self._interval_ms = str(math.ceil(interval_seconds * 1000))

    async def claim(self, key: str, *, force: bool = False) -> float | None:
        if not self.interval_seconds:
            return None
        return await self._fallback.call(lambda: self._claim_in_redis(key, force),
                                         lambda: self._local.claim(key, force=force))

    async def _claim_in_redis(self, key: str, force: bool) -> float | None:
        # Keys are digests: short, of one alphabet, whatever the source URL holds.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        left_ms = await _eval(self._pipe, _CLAIM, [self._key_prefix + digest],
                              [self._interval_ms, "1" if force else "0"])
        return None if left_ms < 0 else left_ms / 1000


class SharedLimits:
    """Every limit in Redis, under one key prefix; in memory while Redis cannot answer."""

    def __init__(self, url: str, *, prefix: str, on_fallback: Callable[[], None],
                 on_switch: Callable[[bool], None]) -> None:
        self.location = redis_location(url)
        self._prefix = prefix
        self._pipe = RedisPipe(url, stale_after_seconds=REDIS_CALL_TIMEOUT_SECONDS)
        self._strategy = MovingWindowRateLimiter(
            PipedRedisStorage(url, self._pipe, key_prefix=f"{prefix}rate"))
        self._fallback = Fallback(self.location, on_fallback=on_fallback, on_switch=on_switch)

    @property
    def degraded(self) -> bool:
        return self._fallback.degraded

    def rate(self, name: str, rate: Rate, *, burst: int | None = None) -> SharedRateLimit:
        return SharedRateLimit(self._strategy, self._fallback, name, rate, burst)

    def slots(self, name: str, per_host: int, *, hold_seconds: float) -> SharedSlots:
        return SharedSlots(self._pipe, self._fallback, f"{self._prefix}slots:{name}:",
                           per_host, hold_seconds)

    def intervals(self, name: str, interval_seconds: float) -> SharedIntervals:
        return SharedIntervals(self._pipe, self._fallback, f"{self._prefix}{name}:",
                               interval_seconds)

    async def probe(self) -> None:
        """PING Redis if the fallback is due to try it: /healthz brings the limits back to
        Redis even when no request needs a limit."""
        if self._fallback.degraded and self._fallback.due():
            try:
                async with asyncio.timeout(REDIS_CALL_TIMEOUT_SECONDS):
                    await self._pipe.call("PING")
            except _FAILURES as error:
                self._fallback.failed(error)
            else:
                self._fallback.answered()

    async def close(self) -> None:
        await self._pipe.close()


def _left(deadline: float) -> float | None:
    return None if deadline == math.inf else max(0.0, deadline - time.monotonic())


async def _none() -> None:
    return None


def _eval(pipe: RedisPipe, script: bytes, keys: list[str], args: list[Any]) -> Awaitable[Any]:
    """A Lua script's answer. EVAL rather than EVALSHA: Redis caches the compiled script by
    its digest, and a restarted Redis needs nothing loaded again."""
    return pipe.call("EVAL", script, len(keys), *keys, *args)

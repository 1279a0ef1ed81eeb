"""Limits counted in a real Redis (Debian's redis-server): two SharedLimits stand for two
instances; Redis stopped, frozen or refusing stands for Redis down or slow."""

import asyncio
import logging
import os
import signal

import pytest

from pingproxy import config
from pingproxy.limits import HostBusy, MemoryLimits, Rate, limits_for
from pingproxy.limits_shared import (
    RETRY_REDIS_AFTER_SECONDS,
    SharedLimits,
    moving_window,
    redis_location,
)


class Switches:
    """What a SharedLimits reports: decisions made in memory, and moves between the two."""

    def __init__(self) -> None:
        self.fallbacks = 0
        self.moves: list[str] = []

    def fallback(self) -> None:
        self.fallbacks += 1

    def switch(self, degraded: bool) -> None:
        self.moves.append("memory" if degraded else "redis")


@pytest.fixture
async def open_limits(redis_server, redis_prefix):
    opened: list[SharedLimits] = []

    def make(url: str = redis_server.url, switches: Switches | None = None) -> SharedLimits:
        switches = switches or Switches()
        limits = SharedLimits(url, prefix=redis_prefix, on_fallback=switches.fallback,
                              on_switch=switches.switch)
        opened.append(limits)
        return limits

    yield make
    for limits in opened:
        await limits.close()


def test_pingproxy_redis_url_wins_over_the_platform_s_redis_url():
    both = {"REDIS_URL": "redis://platform:6379/0", "PINGPROXY_REDIS_URL": "redis://own:6379/1"}

    assert config.load([], both).redis_url == "redis://own:6379/1"
    assert config.load([], {"REDIS_URL": "rediss://platform:6380/0"}).redis_url == \
        "rediss://platform:6380/0"


def test_the_settings_never_show_the_redis_password():
    settings = config.load([], {"REDIS_URL": "redis://:s3cret@cache.internal:6379/0"})

    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("prefix", ["", "with space", "x" * 65, "tab\there"])
def test_an_unusable_key_prefix_is_refused_naming_the_setting(prefix):
    with pytest.raises(config.ConfigError, match="PINGPROXY_REDIS_PREFIX"):
        config.load([], {"PINGPROXY_REDIS_PREFIX": prefix})


def test_without_a_redis_url_limits_stay_in_memory():
    assert isinstance(limits_for(config.Settings()), MemoryLimits)


@pytest.mark.parametrize(("rate", "burst", "amount", "seconds"), [
    (Rate(60, 60), None, 60, 60),
    (Rate(60, 60), 30, 30, 30),
    (Rate(10, 1), 30, 30, 3),
    (Rate(10, 1), 3, 10, 1),  # a window is a whole second at least
    (Rate(30, 3600), None, 30, 3600),
])
def test_a_token_bucket_becomes_the_moving_window_closest_to_it(rate, burst, amount, seconds):
    window = moving_window(rate, burst)

    assert (window.amount, window.get_expiry()) == (amount, seconds)


def test_the_redis_location_logged_never_holds_the_password():
    assert redis_location("redis://user:s3cret@cache.internal:6380/2") == \
        "redis://cache.internal:6380/2"


async def test_a_rate_counts_the_events_of_every_instance(open_limits):
    one, other = open_limits().rate("relay", Rate(4, 60)), open_limits().rate("relay", Rate(4, 60))

    admitted = [await limit.admit("203.0.113.7") for limit in (one, other, one, other, one)]

    assert admitted == [True, True, True, True, False]
    assert await other.admit("203.0.113.8")


async def test_a_client_address_is_kept_no_longer_than_its_window(open_limits, redis_server,
                                                                  redis_prefix):
    limit = open_limits().rate("relay", Rate(5, 60))
    await limit.admit("203.0.113.7")

    (key,) = redis_server.keys(f"{redis_prefix}*")
    assert "203.0.113.7" in key
    assert 0 < int(redis_server.command("TTL", key).lstrip(":")) <= 60


async def test_a_slot_held_by_one_instance_counts_at_the_other(open_limits):
    one = open_limits().slots("endpoint", 1, hold_seconds=5)
    other = open_limits().slots("endpoint", 1, hold_seconds=5)

    async with one.slot("receiver.example"):
        with pytest.raises(HostBusy):
            async with other.slot("receiver.example", wait_seconds=0.1):
                pytest.fail("the other instance's slot should count")
        async with other.slot("elsewhere.example", wait_seconds=0):
            pass
    # The release is written without waiting for its answer: free within a round trip.
    async with other.slot("receiver.example", wait_seconds=1):
        pass


async def test_a_waiting_holder_gets_the_slot_freed_at_another_instance(open_limits):
    one = open_limits().slots("endpoint", 1, hold_seconds=5)
    other = open_limits().slots("endpoint", 1, hold_seconds=5)
    released = asyncio.Event()

    async def hold() -> None:
        async with one.slot("receiver.example"):
            await released.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.05)
    asyncio.get_running_loop().call_later(0.1, released.set)
    async with other.slot("receiver.example", wait_seconds=2):
        assert released.is_set()  # the slot came only once the first holder gave it back
    await holder


async def test_a_slot_never_released_frees_itself_after_its_hold(open_limits, redis_server,
                                                                 redis_prefix):
    crashed = open_limits().slots("endpoint", 1, hold_seconds=0.3)
    held = crashed.slot("receiver.example")
    await held.__aenter__()  # and never leaves: a crash

    other = open_limits().slots("endpoint", 1, hold_seconds=0.3)
    with pytest.raises(HostBusy):
        async with other.slot("receiver.example", wait_seconds=0):
            pass
    async with other.slot("receiver.example", wait_seconds=2):
        pass
    await asyncio.sleep(0.4)
    assert redis_server.keys(f"{redis_prefix}*") == []  # the key went with its last holder
    del held


async def test_a_source_claimed_at_one_instance_is_refused_at_the_other(open_limits):
    one = open_limits().intervals("sent", 300)
    other = open_limits().intervals("sent", 300)

    assert await one.claim("https://blog.example/post") is None
    left = await other.claim("https://blog.example/post")

    assert 299 < left <= 300
    assert await other.claim("https://blog.example/post", force=True) is None
    assert await other.claim("https://blog.example/other") is None


async def test_every_key_is_under_the_prefix_and_expires(open_limits, redis_server,
                                                        redis_prefix):
    limits = open_limits()
    await limits.rate("check", Rate(6, 60)).admit("198.51.100.1")
    await limits.intervals("sent", 300).claim("https://blog.example/post")
    async with limits.slots("check", 4, hold_seconds=12).slot("running"):
        keys = redis_server.keys(f"{redis_prefix}*")
        ttls = [int(redis_server.command("PTTL", key).lstrip(":")) for key in keys]

    assert len(keys) == 3
    assert all(ttl > 0 for ttl in ttls)


async def test_redis_down_leaves_limits_in_memory_and_they_return_when_it_answers(
        open_limits, own_redis_server, caplog):
    switches = Switches()
    limits = open_limits(own_redis_server.url, switches)
    rate = limits.rate("relay", Rate(2, 60))
    assert await rate.admit("a")
    own_redis_server.stop()

    with caplog.at_level(logging.WARNING, "pingproxy.limits"):
        admitted = [await rate.admit("a") for _ in range(4)]
    assert admitted == [True, True, False, False]  # memory's own bucket, from empty
    assert limits.degraded and switches.moves == ["memory"] and switches.fallbacks == 4
    assert len(caplog.records) == 1  # at most once a second

    own_redis_server.start()
    await asyncio.sleep(RETRY_REDIS_AFTER_SECONDS)
    with caplog.at_level(logging.WARNING, "pingproxy.limits"):
        assert await rate.admit("b")
    assert not limits.degraded and switches.moves == ["memory", "redis"]
    assert "answers again" in caplog.records[-1].getMessage()


async def test_redis_frozen_costs_a_pingback_one_short_timeout_then_nothing(
        open_limits, own_redis_server):
    limits = open_limits(own_redis_server.url)
    slots = limits.slots("endpoint", 1, hold_seconds=5)
    async with slots.slot("receiver.example", wait_seconds=0):
        pass
    os.kill(own_redis_server.process.pid, signal.SIGSTOP)
    try:
        async with slots.slot("receiver.example", wait_seconds=0):
            assert limits.degraded
        async with slots.slot("receiver.example", wait_seconds=0):
            pass  # no Redis call: memory until the retry is due
    finally:
        os.kill(own_redis_server.process.pid, signal.SIGCONT)


async def test_a_refused_password_is_never_logged(open_limits, redis_server, caplog):
    url = redis_server.url.replace("redis://", "redis://:s3cret-password@")
    limits = open_limits(url)

    with caplog.at_level(logging.WARNING, "pingproxy.limits"):
        assert await limits.rate("relay", Rate(1, 60)).admit("a")

    assert limits.degraded
    assert caplog.records and "s3cret" not in caplog.text

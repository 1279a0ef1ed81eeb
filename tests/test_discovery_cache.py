"""The discovery cache without sockets: a counting examine, a hand-turned clock."""

import asyncio
from collections import Counter

import pytest
from yarl import URL

from pingproxy.discovery import Discovery
from pingproxy.discovery_cache import EndpointCache, cache_seconds
from pingproxy.errors import DiscoveryFailed, Outcome

ENDPOINT = URL("https://site.example/webmention")
TARGET = URL("https://site.example/post/1")


@pytest.mark.parametrize(("cache_control", "expected"), [
    ("", 300),
    ("public", 300),
    ("max-age=60", 60),
    ("public, max-age=60", 60),
    ("MAX-AGE=60", 60),
    ('max-age="60"', 60),
    ("max-age=3600", 300),
    ("max-age=0", 0),
    ("max-age=60, max-age=30", 30),
    ("max-age=soon", 0),
    ("max-age=-5", 0),
    ("no-store", 0),
    ("no-cache", 0),
    ("max-age=60, no-cache", 0),
    ('no-cache="Set-Cookie"', 0),
])
def test_cache_seconds_honour_the_targets_cache_control(cache_control, expected):
    assert cache_seconds(cache_control, 300) == expected


FOUND = Discovery(ENDPOINT)


class Target:
    """A stand-in for fetching targets: counts fetches, answers as told, can be held."""

    def __init__(self, found: Discovery | Exception = FOUND) -> None:
        self.found = found
        self.fetched: list[URL] = []
        self.running = 0
        self.most_running = 0
        self.release = asyncio.Event()
        self.release.set()

    async def examine(self, target: URL) -> Discovery:
        self.fetched.append(target)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tally(Counter):
    """Counts the look-up results a cache reports."""

    def __call__(self, result: str) -> None:
        self[result] += 1


def cache_for(target: Target, clock: Clock | None = None, tally: Tally | None = None,
              **options) -> EndpointCache:
    options = {"ttl_seconds": 300, "timeout_seconds": 5, **options}
    tally = Tally() if tally is None else tally
    return EndpointCache(target.examine, clock=clock or Clock(), count=tally, **options)


async def test_an_endpoint_is_remembered_until_its_ttl_ends():
    target, clock, tally = Target(), Clock(), Tally()
    cache = cache_for(target, clock, tally)

    assert await cache.endpoint(TARGET) == ENDPOINT
    clock.now += 299
    assert await cache.endpoint(TARGET.with_fragment("comments")) == ENDPOINT
    assert len(target.fetched) == 1
    clock.now += 1
    assert await cache.endpoint(TARGET) == ENDPOINT

    assert len(target.fetched) == 2
    assert tally == {"hit": 1, "miss": 2}


async def test_a_shorter_max_age_shortens_the_memory():
    target, clock = Target(Discovery(ENDPOINT, "max-age=10")), Clock()
    cache = cache_for(target, clock)

    await cache.endpoint(TARGET)
    clock.now += 9
    await cache.endpoint(TARGET)
    clock.now += 1
    await cache.endpoint(TARGET)

    assert len(target.fetched) == 2


@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "max-age=0"])
async def test_a_target_that_forbids_caching_is_fetched_every_time(cache_control):
    target = Target(Discovery(ENDPOINT, cache_control))
    cache = cache_for(target)

    await cache.endpoint(TARGET)
    await cache.endpoint(TARGET)

    assert len(target.fetched) == 2


async def test_a_ttl_of_zero_turns_the_memory_off():
    target, tally = Target(), Tally()
    cache = cache_for(target, tally=tally, ttl_seconds=0)

    await cache.endpoint(TARGET)
    await cache.endpoint(TARGET)

    assert len(target.fetched) == 2 and tally == {"miss": 2}


async def test_no_endpoint_is_remembered_too():
    target = Target(Discovery(None))
    cache = cache_for(target)

    for _ in range(2):
        with pytest.raises(DiscoveryFailed) as caught:
            await cache.endpoint(TARGET)
        assert caught.value.outcome is Outcome.NO_ENDPOINT

    assert len(target.fetched) == 1


async def test_failures_are_not_remembered():
    target = Target(DiscoveryFailed(Outcome.TARGET_NOT_FOUND, "gone"))
    cache = cache_for(target)

    for _ in range(2):
        with pytest.raises(DiscoveryFailed):
            await cache.endpoint(TARGET)

    assert len(target.fetched) == 2


async def test_the_least_recently_used_target_is_forgotten_beyond_the_cap():
    target = Target()
    cache = cache_for(target, max_entries=2)
    first, second, third = (TARGET.with_path(f"/post/{n}") for n in (1, 2, 3))

    for url in (first, second, first, third, first, second):
        await cache.endpoint(url)

    assert target.fetched == [first, second, third, second]


async def test_concurrent_look_ups_of_one_target_share_one_fetch():
    target, tally = Target(), Tally()
    target.release.clear()
    cache = cache_for(target, tally=tally)

    waiting = [asyncio.create_task(cache.endpoint(TARGET)) for _ in range(10)]
    await asyncio.sleep(0.01)
    target.release.set()
    found = await asyncio.wait_for(asyncio.gather(*waiting), 5)

    assert found == [ENDPOINT] * 10
    assert len(target.fetched) == 1
    assert tally == {"miss": 1, "joined": 9}


async def test_at_most_two_discoveries_run_at_once_per_host():
    target = Target()
    target.release.clear()
    cache = cache_for(target)
    pages = [TARGET.with_path(f"/post/{n}") for n in range(6)]
    other_host = URL("https://other.example/post")

    waiting = [asyncio.create_task(cache.endpoint(url)) for url in [*pages, other_host]]
    await asyncio.sleep(0.01)
    assert target.running == 3  # two for site.example, one for other.example
    target.release.set()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)

    assert target.most_running == 3
    assert len(target.fetched) == 7
    assert len(cache._host_slots) == 0


async def test_a_pingback_that_gives_up_leaves_the_discovery_to_the_others():
    target = Target()
    target.release.clear()
    cache = cache_for(target)

    impatient = asyncio.create_task(cache.endpoint(TARGET))
    patient = asyncio.create_task(cache.endpoint(TARGET))
    await asyncio.sleep(0.01)
    impatient.cancel()
    target.release.set()

    assert await asyncio.wait_for(patient, 5) == ENDPOINT
    assert len(target.fetched) == 1


async def test_a_discovery_that_outlasts_its_timeout_fails_as_target_failed():
    target = Target()
    target.release.clear()
    cache = cache_for(target, timeout_seconds=0.05)

    with pytest.raises(DiscoveryFailed) as caught:
        await asyncio.wait_for(cache.endpoint(TARGET), 5)

    assert caught.value.outcome is Outcome.TARGET_FAILED
    assert "0.05 s" in str(caught.value)


async def test_closing_cancels_discoveries_still_running():
    target = Target()
    target.release.clear()
    cache = cache_for(target)
    waiting = asyncio.create_task(cache.endpoint(TARGET))
    await asyncio.sleep(0.01)

    await asyncio.wait_for(cache.close(), 5)

    with pytest.raises(asyncio.CancelledError):
        await waiting

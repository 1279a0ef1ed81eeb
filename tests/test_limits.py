"""Rate limits per client and slots per host, on a real event loop without sockets."""

import asyncio

import pytest

from pingproxy.limits import HostBusy, HostSlots, Intervals, Rate, RateLimiter, client_key


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, "unknown"),
    ("a-unix-socket", "a-unix-socket"),
])
def test_a_client_is_its_ipv4_address_or_its_ipv6_slash_64(address, key):
    assert client_key(address) == key


async def test_a_burst_passes_then_the_client_waits_while_others_pass():
    limiter = RateLimiter(Rate(count=2, seconds=60), burst=3)

    admitted = [await limiter.admit("a") for _ in range(5)]

    assert admitted == [True, True, True, False, False]
    assert await limiter.admit("b")
    assert limiter.retry_after_seconds == 30


async def test_a_full_bucket_drains_at_the_rate():
    limiter = RateLimiter(Rate(count=20, seconds=1), burst=1)
    assert await limiter.admit("a")
    assert not await limiter.admit("a")

    await asyncio.sleep(0.1)  # two events' worth at 20 a second

    assert await limiter.admit("a")


async def test_the_clients_remembered_are_bounded():
    limiter = RateLimiter(Rate(count=1, seconds=60), max_keys=2)
    for key in ("a", "b", "c"):
        assert await limiter.admit(key)

    assert await limiter.admit("a")  # forgotten, so a fresh bucket
    assert not await limiter.admit("c")


async def test_a_host_has_at_most_its_slots_and_others_are_not_held_up():
    slots = HostSlots(2)
    release = asyncio.Event()
    most = 0

    async def hold(host: str) -> None:
        nonlocal most
        async with slots.slot(host):
            most = max(most, slots.holders("busy.example"))
            await release.wait()

    holders = [asyncio.create_task(hold("busy.example")) for _ in range(5)]
    await asyncio.sleep(0.01)
    async with slots.slot("other.example"):
        assert slots.holders("other.example") == 1
    release.set()
    await asyncio.gather(*holders)

    assert most == 2
    assert len(slots) == 0


async def test_a_wait_past_its_bound_is_host_busy_and_leaves_nothing_behind():
    slots = HostSlots(1)
    async with slots.slot("busy.example"):
        with pytest.raises(HostBusy):
            async with slots.slot("busy.example", wait_seconds=0.05):
                pytest.fail("no slot should have been free")
        assert slots.holders("busy.example") == 1

    assert len(slots) == 0


@pytest.mark.parametrize(("text", "rate"), [
    ("10/s", Rate(10, 1)), ("30/min", Rate(30, 60)), ("500/H", Rate(500, 3600)),
    (" 5/second ", Rate(5, 1)),
])
def test_a_rate_is_a_count_per_unit(text, rate):
    assert Rate.parse(text) == rate
    assert Rate.parse(str(rate)) == rate


@pytest.mark.parametrize("text", ["10", "0/s", "-1/s", "ten/s", "10/day", "1.5/s", ""])
def test_anything_else_is_not_a_rate(text):
    with pytest.raises(ValueError):
        Rate.parse(text)


async def test_a_full_host_with_no_wait_is_busy_at_once():
    slots = HostSlots(1)
    async with slots.slot("busy.example", wait_seconds=0):
        with pytest.raises(HostBusy):
            async with slots.slot("busy.example", wait_seconds=0):
                pytest.fail("no slot should have been free")
    async with slots.slot("busy.example", wait_seconds=0):
        assert slots.holders("busy.example") == 1


async def test_a_key_is_claimed_once_per_interval_unless_forced():
    now = [1000.0]
    intervals = Intervals(300, clock=lambda: now[0])

    assert await intervals.claim("a") is None
    now[0] += 100
    assert await intervals.claim("a") == 200
    assert await intervals.claim("a", force=True) is None
    now[0] += 300
    assert await intervals.claim("a") is None


async def test_the_keys_an_interval_remembers_are_bounded():
    intervals = Intervals(300, max_keys=2)
    for key in ("a", "b", "c"):
        assert await intervals.claim(key) is None

    assert await intervals.claim("a") is None  # forgotten
    assert await intervals.claim("c") is not None

"""Opt-in abuse limits for public instances, over real sockets: per endpoint host, per client.

Off by default: a sidecar sends every pingback to one endpoint host from one front proxy
(tests/test_limits_functional.py shows 500 pingbacks in flight at once to one endpoint).
"""

import asyncio

from pingproxy.limits import Rate
from pingproxy.relay import ENDPOINT_HOST_WAIT_SECONDS
from tests.conftest import fault_of, metric_value, ping_body, read_answer

SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"


async def send_at_once(proxy, url: str, count: int) -> list:
    return await asyncio.gather(*(proxy.post(url, data=ping_body(f"{SOURCE}/{n}", TARGET))
                                  for n in range(count)))


async def test_a_flood_at_one_endpoint_host_never_exceeds_its_share(make_proxy, endpoint):
    # The endpoint holds each mention longer than a pingback may wait for its turn.
    endpoint.reply(202, delay=ENDPOINT_HOST_WAIT_SECONDS + 0.5)
    proxy = await make_proxy(max_per_endpoint_host=2)

    answers = await send_at_once(proxy, "/" + endpoint.url(), 8)

    assert [answer.status for answer in answers] == [200] * 8
    faults = []
    for answer in answers:
        body = await answer.read()
        if b"<fault>" in body:
            faults.append(await fault_of(answer))
        else:
            assert "forwarded" in read_answer(body)
    assert endpoint.most_receiving_at_once == 2
    assert len(endpoint.received) == 2
    assert [fault.faultCode for fault in faults] == [0x32] * 6
    assert all("busy, try again later" in fault.faultString for fault in faults)
    metrics = await (await proxy.get("/metrics")).text()
    assert metric_value(metrics, "pingproxy_pingbacks_total", outcome="endpoint_busy",
                        fault_code="50") == 6


async def test_a_pingback_waits_its_turn_within_the_bound(make_proxy, endpoint):
    endpoint.reply(202, delay=0.2)
    proxy = await make_proxy(max_per_endpoint_host=1)

    answers = await send_at_once(proxy, "/" + endpoint.url(), 3)

    assert ["forwarded" in read_answer(await answer.read()) for answer in answers] == [True] * 3
    assert endpoint.most_receiving_at_once == 1 and len(endpoint.received) == 3


async def test_other_endpoint_hosts_are_not_held_up_by_a_busy_one(make_proxy, endpoint, site):
    endpoint.reply(202, delay=0.5)
    proxy = await make_proxy(max_per_endpoint_host=1)
    busy = asyncio.create_task(proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET)))
    while not endpoint.received:
        await asyncio.sleep(0.01)

    other = await proxy.post("/" + site.url().replace("127.0.0.1", "localhost"),
                             data=ping_body(SOURCE, TARGET))

    assert "forwarded" in read_answer(await other.read())
    assert "forwarded" in read_answer(await (await busy).read())


async def test_a_client_over_its_rate_gets_429_with_retry_after(make_proxy, endpoint):
    proxy = await make_proxy(rate_limit=Rate(2, 60))
    url = "/" + endpoint.url()

    first = [await proxy.post(url, data=ping_body(SOURCE, TARGET)) for _ in range(2)]
    refused = await proxy.post(url, data=ping_body(SOURCE, TARGET))

    assert [answer.status for answer in first] == [200, 200]
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "30"
    fault = await fault_of(refused)
    assert fault.faultCode == 0x31 and "too many requests" in fault.faultString
    assert len(endpoint.received) == 2
    metrics = await (await proxy.get("/metrics")).text()
    assert metric_value(metrics, "pingproxy_rejected_requests_total",
                        outcome="client_rate_limited", fault_code="49") == 1


async def test_junk_counts_against_the_rate_too(make_proxy, endpoint):
    proxy = await make_proxy(rate_limit=Rate(1, 60), rate_limit_burst=2)

    statuses = [(await proxy.post("/" + endpoint.url(), data=b"<junk")).status
                for _ in range(3)]

    assert statuses == [200, 200, 429]


async def test_by_default_no_client_is_rate_limited(proxy, endpoint):
    answers = [await proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET))
               for _ in range(100)]

    assert {answer.status for answer in answers} == {200}
    assert len(endpoint.received) == 100

"""Bounds over real sockets: body size, slow senders, forwards in flight, connection pool."""

import asyncio
import resource
import xmlrpc.client
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from pingproxy.config import Settings
from tests.conftest import fault_of, ping_body, read_answer

SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"
LIMIT_BYTES = Settings().max_body_bytes


def padded_ping(size: int) -> bytes:
    """A valid pingback padded with trailing whitespace to exactly size bytes."""
    body = ping_body(SOURCE, TARGET)
    return body + b" " * (size - len(body))


async def test_a_body_at_the_limit_is_accepted(proxy, endpoint):
    response = await proxy.post("/" + endpoint.url(), data=padded_ping(LIMIT_BYTES))

    assert response.status == 200 and "forwarded" in read_answer(await response.read())


async def test_a_body_over_the_limit_gets_413_with_a_fault(proxy, endpoint):
    response = await proxy.post("/" + endpoint.url(), data=padded_ping(LIMIT_BYTES + 1))

    assert response.status == 413
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        read_answer(await response.read())
    assert caught.value.faultCode == -32600
    assert endpoint.received == []


async def test_a_chunked_body_over_the_limit_gets_413(proxy, endpoint):
    async def chunks():
        body = padded_ping(LIMIT_BYTES + 1)
        for start in range(0, len(body), 4096):
            yield body[start:start + 4096]

    response = await proxy.post("/" + endpoint.url(), data=chunks())

    assert response.status == 413
    assert endpoint.received == []


async def status_line_for(proxy, head_and_partial_body: bytes) -> bytes:
    """Send a request that never completes over a raw socket; return the status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(head_and_partial_body)
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return status_line


async def test_a_declared_huge_body_is_refused_before_it_is_sent(proxy):
    status_line = await status_line_for(proxy, b"POST /https://site.example/wm HTTP/1.1\r\n"
                                               b"Host: x\r\nContent-Length: 1000000000\r\n\r\n")

    assert status_line.startswith(b"HTTP/1.1 413")


async def test_a_trickling_sender_gets_408(make_proxy):
    proxy = await make_proxy(request_timeout_seconds=0.3)

    status_line = await status_line_for(proxy, b"POST /https://site.example/wm HTTP/1.1\r\n"
                                               b"Host: x\r\nContent-Length: 100\r\n\r\n<method")

    assert status_line.startswith(b"HTTP/1.1 408")


async def test_beyond_the_inflight_cap_the_answer_is_503_at_once(make_proxy, endpoint):
    endpoint.reply(202, delay=0.5)
    proxy = await make_proxy(max_inflight=2)
    url = "/" + endpoint.url()

    first = [asyncio.create_task(proxy.post(url, data=ping_body(SOURCE, TARGET)))
             for _ in range(2)]
    while len(endpoint.received) < 2:
        await asyncio.sleep(0.01)
    shed = await proxy.post(url, data=ping_body(SOURCE, TARGET))

    assert shed.status == 503 and shed.headers["Retry-After"].isdigit()
    assert "capacity" in (await fault_of(shed)).faultString
    assert [r.status for r in await asyncio.gather(*first)] == [200, 200]
    assert len(endpoint.received) == 2


CONCURRENT_PINGBACKS = 500


def raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def test_500_concurrent_pingbacks_are_all_in_flight_at_once(proxy, endpoint):
    raise_open_file_limit(4 * CONCURRENT_PINGBACKS + 200)
    all_arrived = asyncio.Event()

    async def hold_until_all_arrive(request):
        if len(endpoint.received) >= CONCURRENT_PINGBACKS:
            all_arrived.set()
        await asyncio.wait_for(all_arrived.wait(), 20)
        return web.Response(status=202)

    endpoint.answer = hold_until_all_arrive
    url = proxy.make_url("/" + endpoint.url())

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as senders:
        async def send(number: int) -> int:
            async with senders.post(url, data=ping_body(f"{SOURCE}/{number}", TARGET)) as answer:
                await answer.read()
                return answer.status

        statuses = await asyncio.wait_for(
            asyncio.gather(*(send(n) for n in range(CONCURRENT_PINGBACKS))), 30)

    assert statuses == [200] * CONCURRENT_PINGBACKS
    assert all_arrived.is_set()
    assert len({r.form["source"] for r in endpoint.received}) == CONCURRENT_PINGBACKS


LONGEST_URL = Settings().max_url_characters


def padded_url(url: str, characters: int) -> str:
    """url with a query that makes it exactly this many characters long."""
    return url + "?pad=" + "a" * (characters - len(url) - len("?pad="))


@pytest.mark.parametrize("form", ["path", "percent-encoded path", "forward"])
async def test_an_endpoint_url_over_the_cap_is_refused_before_any_connection(proxy, endpoint,
                                                                             form):
    long_endpoint = padded_url(endpoint.url(), LONGEST_URL + 1)
    path = {"path": "/" + long_endpoint,
            "percent-encoded path": "/" + quote(long_endpoint, safe=""),
            "forward": "/webmention?forward=" + quote(long_endpoint, safe="")}[form]

    response = await proxy.post(path, data=ping_body(SOURCE, TARGET))

    fault = await fault_of(response)
    assert fault.faultCode == 33 and f"at most {LONGEST_URL} characters" in fault.faultString
    assert endpoint.received == []


async def test_an_endpoint_url_at_the_cap_is_forwarded(proxy, endpoint):
    response = await proxy.post("/" + padded_url(endpoint.url(), LONGEST_URL),
                                data=ping_body(SOURCE, TARGET))

    assert "forwarded" in read_answer(await response.read())
    assert len(endpoint.received) == 1


async def test_a_discovered_endpoint_url_over_the_cap_is_refused_before_any_connection(
        proxy, site, endpoint):
    long_endpoint = padded_url(endpoint.url(), LONGEST_URL + 1)
    target = site.page("/post", f'<link rel="webmention" href="{long_endpoint}">')

    response = await proxy.post("/", data=ping_body(SOURCE, target))

    fault = await fault_of(response)
    assert fault.faultCode == 33 and str(LONGEST_URL) in fault.faultString
    assert len(site.fetched) == 1 and endpoint.received == []

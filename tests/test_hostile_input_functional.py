"""Hostile XML over real sockets: each gets its fault at once, and nothing is read or fetched."""

import asyncio
import io

import pytest
from aiohttp import web

from bench.hostile_bodies import hostile_bodies, nested
from tests.conftest import fault_of

HANG_GUARD_SECONDS = 5


@pytest.fixture
async def decoy(aiohttp_server):
    """A loopback server that no hostile document may ever make the proxy contact."""
    hits = []

    async def record(request):
        hits.append(request.path)
        return web.Response(text="<!ENTITY x 'pwned'>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield server, hits
    assert hits == [], "a hostile document made the proxy fetch a URL"


HOSTILE_NAMES = list(hostile_bodies("http://x", "/x"))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_bodies_get_a_fault_and_fetch_nothing(proxy, endpoint, decoy, tmp_path,
                                                           name):
    server, _ = decoy
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    body, codes = hostile_bodies(str(server.make_url("")).rstrip("/"), str(secret))[name]

    response = await asyncio.wait_for(proxy.post("/" + endpoint.url(), data=io.BytesIO(body)),
                                      HANG_GUARD_SECONDS)

    assert response.status == 200
    fault = await fault_of(response)
    assert fault.faultCode in codes
    assert "TOP-SECRET" not in fault.faultString and "Traceback" not in fault.faultString
    assert endpoint.received == []


async def test_100000_levels_of_nesting_are_refused_without_recursion(make_proxy, endpoint):
    body = nested(100_000)
    proxy = await make_proxy(max_body_bytes=len(body))

    response = await asyncio.wait_for(proxy.post("/" + endpoint.url(), data=io.BytesIO(body)),
                                      HANG_GUARD_SECONDS)

    assert response.status == 200
    fault = await fault_of(response)
    assert fault.faultCode == -32600 and "deeper" in fault.faultString


async def test_100000_levels_of_nesting_are_over_the_default_size_limit(proxy, endpoint):
    response = await proxy.post("/" + endpoint.url(), data=io.BytesIO(nested(100_000)))

    assert response.status == 413
    assert (await fault_of(response)).faultCode == -32600

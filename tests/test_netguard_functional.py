"""The address guard over real sockets: refused destinations are never contacted."""

import dataclasses
import ipaddress
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from pingproxy import outbound
from pingproxy.app import create_app
from pingproxy.config import Settings
from pingproxy.errors import AccessDenied
from pingproxy.netguard import DestinationPolicy, GuardedResolver
from tests.conftest import TEST_SETTINGS, fault_of, ping_body

# A policy for tests: 127.0.0.1 plays a public address, 127.0.0.2 a forbidden one.
TEST_NETWORKS = ((ipaddress.ip_network("127.0.0.2/32"), "a forbidden test address"),)
TEST_POLICY = DestinationPolicy(allow_private=False, allowed_ports=frozenset(range(1, 65536)),
                                blocked_networks=TEST_NETWORKS)


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next address of a script, as a rebinding DNS server does."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = list(addresses)
        self.lookups = 0

    async def resolve(self, host, port=0, family=socket.AF_INET):
        address = self.addresses[min(self.lookups, len(self.addresses) - 1)]
        self.lookups += 1
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


class Counter:
    def __init__(self) -> None:
        self.hits = 0

    async def handle(self, request):
        self.hits += 1
        return web.Response(status=202, text="ok")

    def app(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def twin_servers(aiohttp_server):
    """A server on 127.0.0.1 and a decoy on 127.0.0.2, on the same port."""
    allowed, decoy = Counter(), Counter()
    allowed_server = await aiohttp_server(allowed.app(), host="127.0.0.1")
    await aiohttp_server(decoy.app(), host="127.0.0.2", port=allowed_server.port)
    return allowed, decoy, allowed_server.port


async def test_the_address_connected_is_the_address_checked(twin_servers):
    allowed, decoy, port = twin_servers
    resolver = ScriptedResolver(["127.0.0.1", "127.0.0.2"])
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(TEST_POLICY, resolver),
                                     use_dns_cache=False, force_close=True)

    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://rebind.test:{port}/") as response:
            assert response.status == 202
        with pytest.raises(AccessDenied) as caught:
            await session.get(f"http://rebind.test:{port}/")

    assert "rebind.test resolves to a forbidden test address" in str(caught.value)
    assert (allowed.hits, decoy.hits, resolver.lookups) == (1, 0, 2)


async def test_only_allowed_addresses_of_a_mixed_answer_are_used(twin_servers):
    allowed, decoy, port = twin_servers

    class Mixed(ScriptedResolver):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            return [(await ScriptedResolver(["127.0.0.2"]).resolve(host, port))[0],
                    (await ScriptedResolver(["127.0.0.1"]).resolve(host, port))[0]]

    connector = aiohttp.TCPConnector(resolver=GuardedResolver(TEST_POLICY, Mixed([])))
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):
            async with session.get(f"http://mixed.test:{port}/") as response:
                assert response.status == 202

    assert (allowed.hits, decoy.hits) == (3, 0)


async def test_every_redirect_hop_is_checked(twin_servers, aiohttp_server):
    allowed, decoy, port = twin_servers

    async def redirect(request):
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.2:{port}/stolen")

    app = web.Application()
    app.router.add_post("/wm", redirect)
    first_hop = await aiohttp_server(app, host="127.0.0.1")
    settings = dataclasses.replace(TEST_SETTINGS, allow_private=False)

    async with outbound.open_session(settings, TEST_POLICY) as session:
        with pytest.raises(AccessDenied) as caught:
            await outbound.request(session, TEST_POLICY, "POST", first_hop.make_url("/wm"),
                                   headers={}, data=b"x", follow={307}, max_redirects=3,
                                   max_bytes=1000)

    assert "127.0.0.2 is a forbidden test address" in str(caught.value)
    assert decoy.hits == 0


async def test_the_default_settings_refuse_loopback_and_never_contact_it(aiohttp_client, endpoint):
    proxy = await aiohttp_client(create_app(Settings()))

    for url in (endpoint.url(), endpoint.url().replace("127.0.0.1", "localhost")):
        fault = await fault_of(await proxy.post("/" + url, data=ping_body(
            "http://a.example/1", "http://b.example/2")))
        assert fault.faultCode == 49
    assert endpoint.received == []


@pytest.mark.parametrize(("host", "reason"), [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("localhost", "localhost resolves to a loopback address"),
])
async def test_loopback_is_refused_by_address_even_on_an_allowed_port(make_proxy, endpoint, host,
                                                                      reason):
    proxy = await make_proxy(allow_private=False,
                             allowed_ports=frozenset({endpoint.server.port}))
    url = endpoint.url().replace("127.0.0.1", host)

    fault = await fault_of(await proxy.post("/" + url, data=ping_body(
        "http://a.example/1", "http://b.example/2")))

    assert fault.faultCode == 49 and reason in fault.faultString
    assert endpoint.received == []


async def test_an_endpoint_outside_the_allowlist_is_refused(make_proxy, endpoint):
    proxy = await make_proxy(allowed_endpoints=("example.com",))

    fault = await fault_of(await proxy.post("/" + endpoint.url(), data=ping_body(
        "http://a.example/1", "http://b.example/2")))

    assert fault.faultCode == 49 and "allowed endpoints" in fault.faultString
    assert endpoint.received == []


async def test_a_redirect_off_the_allowlist_is_refused(make_proxy, endpoint):
    async def answer(request):
        port = request.url.port
        raise web.HTTPPermanentRedirect(f"http://localhost:{port}/decoy")

    endpoint.answer = answer
    proxy = await make_proxy(allowed_endpoints=("127.0.0.1",))

    fault = await fault_of(await proxy.post("/" + endpoint.url(), data=ping_body(
        "http://a.example/1", "http://b.example/2")))

    assert fault.faultCode == 49 and "localhost is not among" in fault.faultString

"""Fixtures: settings from a dict, a real fake WebMention endpoint, and the proxy under test."""

import asyncio
import dataclasses
import xmlrpc.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from pingproxy.app import create_app
from pingproxy.config import Settings


def ping_body(source: str, target: str) -> bytes:
    """An XML-RPC pingback.ping call as Python's xmlrpc.client writes it."""
    return xmlrpc.client.dumps((source, target), "pingback.ping").encode()


def read_answer(body: bytes) -> object:
    """The value of an XML-RPC answer; raises xmlrpc.client.Fault for a fault."""
    (value,), _ = xmlrpc.client.loads(body)
    return value


async def fault_of(response) -> xmlrpc.client.Fault:
    """The fault an HTTP response carries, checking it is a proper XML-RPC answer."""
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        read_answer(await response.read())
    return caught.value


@dataclass
class Received:
    """One request the fake endpoint received."""

    path: str
    query: str
    headers: CIMultiDict
    form: dict
    body: bytes


@dataclass
class FakeEndpoint:
    """A WebMention endpoint on 127.0.0.1 that records what it gets and answers as told."""

    server: TestServer | None = None
    received: list[Received] = field(default_factory=list)
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
    decoy_hits: int = 0

    def url(self, path: str = "/webmention") -> str:
        return str(self.server.make_url(path))

    def reply(self, status: int = 202, *, json: object = None, text: str | None = None,
              content_type: str | None = None, headers: dict | None = None,
              delay: float = 0.0) -> None:
        """Answer every WebMention with this reply."""

        async def answer(request: web.Request) -> web.Response:
            if delay:
                await asyncio.sleep(delay)
            if json is not None:
                return web.json_response(json, status=status, headers=headers)
            return web.Response(status=status, text=text, content_type=content_type,
                                headers=headers)

        self.answer = answer

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = dict(await request.post()) if body else {}
        self.received.append(Received(request.path, request.query_string,
                                      CIMultiDict(request.headers), form, body))
        return await self.answer(request)

    async def _decoy(self, request: web.Request) -> web.Response:
        self.decoy_hits += 1
        return web.Response(status=202)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/decoy", self._decoy)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app


@pytest.fixture
async def endpoint(aiohttp_server):
    """A fake WebMention endpoint answering 202 unless told otherwise; its decoy must stay unhit."""
    fake = FakeEndpoint()
    fake.reply(202, json={"status": "queued", "summary": "Webmention was queued"},
               headers={"Location": "/status/42"})
    fake.server = await aiohttp_server(fake.app(), host="127.0.0.1")
    yield fake
    assert fake.decoy_hits == 0, "the decoy endpoint was contacted"


# Loopback endpoints allowed (production refuses them), short timeouts.
TEST_SETTINGS = Settings(allow_private=True, connect_timeout_seconds=2.0,
                         forward_timeout_seconds=3.0, instance_id="testproxy")


@pytest.fixture
def make_proxy(aiohttp_client) -> Callable[..., Awaitable[TestClient]]:
    """Start a proxy with the test settings changed by keyword arguments."""

    async def make(**changes) -> TestClient:
        return await aiohttp_client(create_app(dataclasses.replace(TEST_SETTINGS, **changes)))

    return make


@pytest.fixture
async def proxy(make_proxy) -> TestClient:
    """The proxy under test, allowed to reach the loopback endpoint."""
    return await make_proxy()

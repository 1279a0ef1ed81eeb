"""Fixtures: settings from a dict, real fake endpoints and sites, and the proxy under test."""

import asyncio
import dataclasses
import fcntl
import os
import pty
import shutil
import socket
import struct
import subprocess
import termios
import threading
import time
import uuid
import xmlrpc.client
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families

from pingproxy.app import LIMITS, RELAY, create_app
from pingproxy.config import Settings
from tests.send_web import Host, start_host


def ping_body(source: str, target: str) -> bytes:
    """An XML-RPC pingback.ping call as Python's xmlrpc.client writes it."""
    return xmlrpc.client.dumps((source, target), "pingback.ping").encode()


def read_answer(body: bytes) -> object:
    """The value of an XML-RPC answer; raises xmlrpc.client.Fault for a fault."""
    (value,), _ = xmlrpc.client.loads(body)
    return value


def relay_lines(proxy: TestClient, caplog) -> list[str]:
    """The pingback lines the proxy logged, once it has logged those it queued."""
    proxy.app[RELAY].flush_log()
    return [r.getMessage() for r in caplog.records if r.name == "pingproxy.relay"]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of a Prometheus text exposition with this name and labels."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name} {labels}")


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


# A held page waits at most this long for its release, so no test can hang on one.
HOLD_LIMIT_SECONDS = 5.0


@dataclass
class Page:
    """A page a fake server serves to GET, for discovery to read."""

    body: bytes
    status: int
    headers: list[tuple[str, str]]
    delay: float
    hold_at_byte: int | None  # send this much of the body, then wait for release_held_pages


@dataclass
class FakeEndpoint:
    """A WebMention endpoint on 127.0.0.1 that records what it gets and answers as told.

    It doubles as a site: GET on a path given a page serves that page and records the fetch;
    every other request is a WebMention for the endpoint.
    """

    server: TestServer | None = None
    received: list[Received] = field(default_factory=list)
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
    decoy_hits: int = 0
    pages: dict[str, Page] = field(default_factory=dict)
    fetched: list[Received] = field(default_factory=list)
    serving: int = 0
    most_serving_at_once: int = 0
    receiving: int = 0
    most_receiving_at_once: int = 0
    release_held_pages: asyncio.Event = field(default_factory=asyncio.Event)

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

    def page(self, path: str, body: str | bytes = "", *, status: int = 200,
             content_type: str | None = "text/html; charset=utf-8",
             headers: Sequence[tuple[str, str]] = (), delay: float = 0.0,
             hold_at_byte: int | None = None) -> str:
        """Serve body at path to GET (several headers may share a name); returns its URL."""
        content = body.encode() if isinstance(body, str) else body
        typed = [("Content-Type", content_type)] if content_type else []
        self.pages[path] = Page(content, status, [*typed, *headers], delay, hold_at_byte)
        return self.url(path)

    async def _serve(self, request: web.Request, page: Page) -> web.Response:
        self.fetched.append(Received(request.path, request.query_string,
                                     dict(request.headers), {}, b""))
        self.serving += 1
        self.most_serving_at_once = max(self.most_serving_at_once, self.serving)
        try:
            await asyncio.sleep(page.delay)
        finally:
            self.serving -= 1
        if page.hold_at_byte is None:
            return web.Response(status=page.status, body=page.body,
                                headers=CIMultiDict(page.headers))
        return await self._serve_held(request, page)

    async def _serve_held(self, request: web.Request, page: Page) -> web.StreamResponse:
        """Send the page up to its hold, then the rest only once released (bounded)."""
        response = web.StreamResponse(status=page.status, headers=CIMultiDict(page.headers))
        response.content_length = len(page.body)
        await response.prepare(request)
        await response.write(page.body[:page.hold_at_byte])
        try:
            await asyncio.wait_for(self.release_held_pages.wait(), HOLD_LIMIT_SECONDS)
            await response.write(page.body[page.hold_at_byte:])
        except (TimeoutError, ConnectionError):
            pass
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        page = self.pages.get(request.path)
        if page is not None and request.method == "GET":
            return await self._serve(request, page)
        body = await request.read()
        form = dict(await request.post()) if body else {}
        self.received.append(Received(request.path, request.query_string,
                                      CIMultiDict(request.headers), form, body))
        self.receiving += 1
        self.most_receiving_at_once = max(self.most_receiving_at_once, self.receiving)
        try:
            return await self.answer(request)
        finally:
            self.receiving -= 1

    async def _decoy(self, request: web.Request) -> web.Response:
        self.decoy_hits += 1
        return web.Response(status=202)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/decoy", self._decoy)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app


async def _start_fake(aiohttp_server) -> FakeEndpoint:
    fake = FakeEndpoint()
    fake.reply(202, json={"status": "queued", "summary": "Webmention was queued"},
               headers={"Location": "/status/42"})
    fake.server = await aiohttp_server(fake.app(), host="127.0.0.1")
    return fake


@pytest.fixture
async def endpoint(aiohttp_server):
    """A fake WebMention endpoint answering 202 unless told otherwise; its decoy must stay unhit."""
    fake = await _start_fake(aiohttp_server)
    yield fake
    assert fake.decoy_hits == 0, "the decoy endpoint was contacted"


@pytest.fixture
async def site(aiohttp_server):
    """A second fake server, for target pages (and relative endpoints); its decoy stays unhit."""
    fake = await _start_fake(aiohttp_server)
    yield fake
    fake.release_held_pages.set()
    assert fake.decoy_hits == 0, "the site's decoy was contacted"


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


@dataclass
class PingbackServer:
    """A real pingback server: the stdlib's SimpleXMLRPCServer on 127.0.0.1, in a thread.

    pingback.ping records its arguments and returns answer, or raises it when it is a Fault;
    the introspection methods are the stdlib's own.
    """

    url: str
    calls: list[tuple[str, ...]] = field(default_factory=list)
    answer: str | xmlrpc.client.Fault = "Pingback registered. Keep the web talking! :-)"

    def ping(self, *arguments: str) -> str:
        self.calls.append(arguments)
        if isinstance(self.answer, xmlrpc.client.Fault):
            raise self.answer
        return self.answer


class _WordPressPath(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/xmlrpc.php",)


@pytest.fixture
def pingback_server():
    """A pingback server in a thread, stopped after the test."""
    server = SimpleXMLRPCServer(("127.0.0.1", 0), _WordPressPath, logRequests=False)
    host, port = server.server_address
    state = PingbackServer(f"http://{host}:{port}/xmlrpc.php")
    server.register_function(state.ping, "pingback.ping")
    server.register_introspection_functions()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
async def blog(aiohttp_server) -> Host:
    """The site a send's source is on (tests/send_web.py), on 127.0.0.1."""
    return await start_host(aiohttp_server, "127.0.0.1")


@pytest.fixture
async def sites(aiohttp_server) -> Host:
    """The site of a send's targets, another host: 127.0.0.2."""
    return await start_host(aiohttp_server, "127.0.0.2")


def pseudo_terminal() -> tuple[int, int]:
    """(controller, terminal) of a new pseudo-terminal 80 columns wide: a new one has no
    size, and progress bars draw in its columns."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    return controller, terminal


def read_terminal(controller: int) -> bytes:
    """All that was written to a pseudo-terminal until its terminal side closed; closes it."""
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return b"".join(chunks)


# A redis-server must answer PING within this long of its start.
REDIS_START_SECONDS = 10.0


class RedisServer:
    """Debian's redis-server on a free loopback port: no persistence, nothing on disk, stopped
    (and started again on the same port) as a test asks. Never skipped: `make test` installs
    it when missing."""

    def __init__(self) -> None:
        self.executable = shutil.which("redis-server")
        assert self.executable, "redis-server is missing: `make test` installs it (Debian)"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", "/tmp", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + REDIS_START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "redis-server exited at start"
            if self.command("PING") == "+PONG":
                return self
            time.sleep(0.02)
        raise AssertionError(f"redis-server did not answer in {REDIS_START_SECONDS} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def command(self, *words: str) -> str | None:
        """One inline command's first reply line, or None when nothing answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(" ".join(words).encode() + b"\r\n")
                return connection.makefile("rb").readline().decode().strip()
        except OSError:
            return None

    def keys(self, pattern: str) -> list[str]:
        """The keys matching pattern (a test's own prefix)."""
        import redis

        with redis.Redis(port=self.port, decode_responses=True) as client:
            return sorted(client.keys(pattern))


@pytest.fixture(scope="session")
def redis_server():
    """One redis-server for the session; each test keeps to its own key prefix."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server():
    """A redis-server of the test's own, which it may stop and start again."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def make_shared_proxy(make_proxy, redis_server, redis_prefix):
    """Start a proxy counting its limits in the session's Redis, under the test's prefix."""

    async def make(**changes) -> TestClient:
        proxy = await make_proxy(redis_url=redis_server.url, redis_prefix=redis_prefix,
                                 **changes)
        assert not proxy.app[LIMITS].degraded
        return proxy

    return make

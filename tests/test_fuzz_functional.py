"""Property-based: whatever bytes arrive, the answer is a clean XML-RPC document."""

import asyncio
import dataclasses
import http.client
import threading
import xmlrpc.client

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingproxy.app import create_app
from tests.conftest import TEST_SETTINGS, ping_body

LEAKS = ("Traceback", 'File "', ".py", "Exception", "Error(", "/work/", "site-packages")
VALID_CALLS = [
    ping_body("http://blog.example/post", "http://site.example/page"),
    xmlrpc.client.dumps((), "system.listMethods").encode(),
    xmlrpc.client.dumps(("pingback.ping",), "system.methodSignature").encode(),
    xmlrpc.client.dumps(([{"methodName": "pingback.ping", "params": ["a", "b"]}],),
                        "system.multicall").encode(),
    xmlrpc.client.dumps(({"k": [1, 2.5, True, xmlrpc.client.Binary(b"x")]},), "m").encode(),
]
FUZZ = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def served():
    """The proxy and a 202-answering endpoint on loopback, served from a thread of their own."""
    loop = asyncio.new_event_loop()
    runners, addresses = [], []
    started = threading.Event()

    async def accept(request):
        await request.read()
        return web.Response(status=202)

    async def start():
        endpoint = web.Application()
        endpoint.router.add_post("/{tail:.*}", accept)
        proxy = create_app(dataclasses.replace(TEST_SETTINGS, forward_timeout_seconds=2.0))
        for app in (endpoint, proxy):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            addresses.append(runner.addresses[0][1])

    def serve():
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    endpoint_port, proxy_port = addresses
    yield proxy_port, f"/http://127.0.0.1:{endpoint_port}/webmention"

    async def stop():
        for runner in reversed(runners):
            await runner.cleanup()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def post(served, body: bytes, content_type: str = "text/xml") -> tuple[int, str, bytes]:
    port, path = served
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def assert_clean_answer(status: int, content_type: str, body: bytes) -> None:
    assert status in (200, 413, 503)
    assert content_type == "text/xml; charset=utf-8"
    try:
        xmlrpc.client.loads(body)
    except xmlrpc.client.Fault as fault:
        assert isinstance(fault.faultCode, int)
        text = fault.faultString
    else:
        text = body.decode()
    assert not any(leak in text for leak in LEAKS), text


@st.composite
def mutated_calls(draw) -> bytes:
    body = bytearray(draw(st.sampled_from(VALID_CALLS)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
            [b"<", b">", b"&", b"</value>", b"<value>", b"<array><data>", b"\x00", b"\xff",
             b"<!DOCTYPE x>", b"&amp;", b"]]>", b"<![CDATA[", b"'", b'"']))
        if action == "insert":
            body[position:position] = chunk
        elif action == "delete":
            del body[position:position + len(chunk)]
        else:
            body[position:position + len(chunk)] = chunk
    return bytes(body)


@FUZZ
@given(body=st.binary(max_size=4096))
def test_arbitrary_bytes_always_get_a_clean_xmlrpc_answer(served, body):
    assert_clean_answer(*post(served, body))


@FUZZ
@given(body=mutated_calls(),
       content_type=st.sampled_from(["text/xml", "application/x-www-form-urlencoded",
                                     "application/octet-stream", "text/xml; charset=utf-16"]))
def test_mutated_calls_always_get_a_clean_xmlrpc_answer(served, body, content_type):
    assert_clean_answer(*post(served, body, content_type))

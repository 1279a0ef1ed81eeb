"""Broken endpoints on loopback: each gives the right fault in time, others are served meanwhile."""

import asyncio
import socket
import struct

import pytest
from aiohttp import web

from tests.conftest import fault_of, ping_body, read_answer

SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"
FORWARD_TIMEOUT_SECONDS = 0.8


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def reset_mid_reply(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\npartial")
    await writer.drain()
    reset(writer)


async def reset_at_once(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    reset(writer)


async def never_answer(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(3600)


async def one_byte_at_a_time(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    for byte in b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok":
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.25)


async def not_http(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n")
    await writer.drain()
    writer.close()


async def ten_megabytes(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    size = 10 * 1024 * 1024
    writer.write(f"HTTP/1.1 202 Accepted\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"x" * 65536
    try:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def redirect_loop(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /wm\r\nContent-Length: 0\r\n"
                 b"Connection: close\r\n\r\n")
    await writer.drain()
    writer.close()


BROKEN = [
    pytest.param(reset_mid_reply, "cut its reply short", id="reset-mid-reply"),
    pytest.param(reset_at_once, "closed the connection", id="reset-at-once"),
    pytest.param(never_answer, "did not answer within 0.8 s", id="never-answers"),
    pytest.param(one_byte_at_a_time, "did not answer within 0.8 s", id="one-byte-at-a-time"),
    pytest.param(not_http, "malformed reply", id="not-http"),
    pytest.param(ten_megabytes, "larger than 65536 bytes", id="10-MB-reply"),
    pytest.param(redirect_loop, "more than 3 redirects", id="redirect-loop"),
]


@pytest.fixture
async def raw_server():
    """Start a raw TCP server on loopback with a given connection handler; cancel it after."""
    servers, tasks = [], set()

    async def start(handler) -> str:
        async def tracked(reader, writer):
            tasks.add(asyncio.current_task())
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/wm"

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("handler", "text"), BROKEN)
async def test_a_broken_endpoint_gets_fault_50_in_time_while_others_are_served(
        make_proxy, endpoint, raw_server, handler, text):
    proxy = await make_proxy(forward_timeout_seconds=FORWARD_TIMEOUT_SECONDS)
    broken_url = await raw_server(handler)

    broken = asyncio.create_task(proxy.post("/" + broken_url, data=ping_body(SOURCE, TARGET)))
    healthy = await proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET))
    assert "forwarded" in read_answer(await healthy.read())
    fault = await fault_of(await asyncio.wait_for(broken, 5))

    assert fault.faultCode == 0x32 and text in fault.faultString


async def test_a_huge_reply_is_not_read_to_its_end(make_proxy, aiohttp_server):
    sent = []

    async def huge(request):
        response = web.StreamResponse(status=202)
        response.content_length = 10 * 1024 * 1024
        await response.prepare(request)
        try:
            for _ in range(160):
                await response.write(b"x" * 65536)
                sent.append(65536)
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_post("/wm", huge)
    server = await aiohttp_server(app, host="127.0.0.1")
    proxy = await make_proxy()

    fault = await fault_of(await proxy.post("/" + str(server.make_url("/wm")),
                                            data=ping_body(SOURCE, TARGET)))

    assert fault.faultCode == 0x32
    await asyncio.sleep(0.2)
    assert sum(sent) < 10 * 1024 * 1024


async def test_a_connect_that_never_completes_hits_the_connect_timeout(make_proxy):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue: later SYNs are dropped, connects hang
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.1)
        proxy = await make_proxy(connect_timeout_seconds=0.3, forward_timeout_seconds=5.0)

        fault = await fault_of(await proxy.post(f"/http://127.0.0.1:{port}/wm",
                                                data=ping_body(SOURCE, TARGET)))

        # The connect timeout's words, not the 5 s forward timeout's.
        assert fault.faultCode == 0x32 and "could not connect" in fault.faultString
        assert "in time" in fault.faultString
    finally:
        for filler in fillers:
            filler.close()
        listener.close()

"""What a client may send over a real socket: the head's limits, Expect: 100-continue, and
compressed bodies."""

import asyncio
import gzip
import zlib

import pytest

from pingproxy.config import Settings
from tests.conftest import fault_of, ping_body, read_answer

SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"
LIMITS = Settings()
HANG_GUARD_SECONDS = 5


async def exchange(port: int, data: bytes) -> bytes:
    """Send data on a new connection; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), HANG_GUARD_SECONDS)
    finally:
        writer.close()


def head(*, fields: int = 1, value_bytes: int = 1, target: str = "/healthz") -> bytes:
    """A GET head with this many header fields after Host, the last Connection: close and
    the others padding with values of value_bytes. (aiohttp's max_field_size bounds a
    field's value, and its name together with the one before it.)"""
    padding = [f"X-Pad-{n:03}: ".encode() + b"a" * value_bytes for n in range(fields - 1)]
    lines = [f"GET {target} HTTP/1.1".encode(), b"Host: x", *padding, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def status_and_body(answer: bytes) -> tuple[bytes, bytes]:
    status_line, _, rest = answer.partition(b"\r\n")
    return status_line, rest.partition(b"\r\n\r\n")[2]


# Host is one field: the others fill the rest up to the limit.
@pytest.mark.parametrize(("fields", "value_bytes", "target"), [
    (LIMITS.max_headers - 1, 64, "/healthz"),
    (2, LIMITS.max_header_field_bytes, "/healthz"),
    (1, 1, "/healthz?" + "a" * (LIMITS.max_request_line_bytes - len("/healthz?"))),
], ids=["fields", "field size", "request target"])
async def test_a_head_at_each_limit_is_served(proxy, fields, value_bytes, target):
    answer = await exchange(proxy.port, head(fields=fields, value_bytes=value_bytes,
                                             target=target))

    assert status_and_body(answer) == (b"HTTP/1.1 200 OK", b"ok")


@pytest.mark.parametrize(("fields", "value_bytes", "target"), [
    (LIMITS.max_headers, 64, "/healthz"),
    (2, LIMITS.max_header_field_bytes + 1, "/healthz"),
    (1, 1, "/healthz?" + "a" * (LIMITS.max_request_line_bytes + 1 - len("/healthz?"))),
], ids=["fields", "field size", "request target"])
async def test_a_head_over_a_limit_gets_400_with_one_line_and_the_connection_closes(
        proxy, fields, value_bytes, target):
    answer = await exchange(proxy.port, head(fields=fields, value_bytes=value_bytes,
                                             target=target))

    status_line, body = status_and_body(answer)
    assert status_line.split()[1] in (b"400", b"431")
    assert body and b"\n" not in body.rstrip(b"\n")


def post(path: str, body: bytes, *headers: str, expect: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: text/xml",
             f"Content-Length: {len(body)}", *headers]
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_body_announced_over_the_cap_gets_413_before_any_100_continue(proxy, endpoint):
    too_long = b" " * (LIMITS.max_body_bytes + 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(post("/" + endpoint.url(), too_long, expect=True))

    status_line = await asyncio.wait_for(reader.readline(), HANG_GUARD_SECONDS)
    writer.close()

    assert status_line.startswith(b"HTTP/1.1 413")
    assert endpoint.received == []


async def test_a_body_within_the_cap_gets_100_continue_then_its_answer(proxy, endpoint):
    body = ping_body(SOURCE, TARGET)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(post("/" + endpoint.url(), body, "Connection: close", expect=True))

    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD_SECONDS)
    writer.write(body)
    answer = await asyncio.wait_for(reader.read(), HANG_GUARD_SECONDS)
    writer.close()

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    status_line, answer_body = status_and_body(answer)
    assert status_line == b"HTTP/1.1 200 OK" and "forwarded" in read_answer(answer_body)
    assert endpoint.received[0].form == {"source": SOURCE, "target": TARGET}


async def post_encoded(proxy, endpoint, body: bytes, encoding: str):
    return await asyncio.wait_for(
        proxy.post("/" + endpoint.url(), data=body,
                   headers={"Content-Encoding": encoding, "Content-Type": "text/xml"}),
        HANG_GUARD_SECONDS)


@pytest.mark.parametrize(("encoding", "compress"), [
    ("gzip", gzip.compress), ("deflate", zlib.compress)])
async def test_a_compressed_pingback_is_forwarded(proxy, endpoint, encoding, compress):
    response = await post_encoded(proxy, endpoint, compress(ping_body(SOURCE, TARGET)), encoding)

    assert response.status == 200 and "forwarded" in read_answer(await response.read())


@pytest.mark.parametrize(("encoding", "body"), [
    ("gzip", b"\x1f\x8b\x08\x00" + b"not gzip at all" * 20),
    ("gzip", gzip.compress(ping_body(SOURCE, TARGET))[:-12] + b"\xff" * 12),
    ("deflate", b"\x78\x9c" + b"\xff" * 300),
    ("deflate", zlib.compress(ping_body(SOURCE, TARGET))[:-6]),
], ids=["gzip garbage", "gzip corrupt trailer", "deflate garbage", "deflate truncated"])
async def test_a_corrupt_compressed_body_gets_400_or_a_parse_error_fault(proxy, endpoint,
                                                                         encoding, body):
    response = await post_encoded(proxy, endpoint, body, encoding)

    assert response.status in (200, 400)
    if response.status == 200:
        assert (await fault_of(response)).faultCode == -32700
    assert endpoint.received == []


@pytest.mark.parametrize(("encoding", "compress"), [
    ("gzip", gzip.compress), ("deflate", zlib.compress)])
async def test_a_body_that_inflates_past_the_cap_gets_413(proxy, endpoint, encoding, compress):
    bomb = compress(ping_body(SOURCE, TARGET) + b" " * (50 * LIMITS.max_body_bytes))
    assert len(bomb) < LIMITS.max_body_bytes

    response = await post_encoded(proxy, endpoint, bomb, encoding)

    assert response.status == 413 and (await fault_of(response)).faultCode == -32600
    assert endpoint.received == []

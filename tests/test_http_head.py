"""A request head on the wire: where it ends, the 431 answer, and a malformed one's reason,
never its bytes."""

import pytest
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from pingproxy.http_head import head_end, head_tail, head_too_large, parser_reason

RAW = "SECRET-RAW-BYTES"


def llhttp_error(kind, reason: str):
    """An error as aiohttp's C parser words llhttp's: the reason, the raw bytes, a pointer."""
    return kind(f"{reason}:\n\n  b'GET /{RAW}\\x01 HTTP/1.1'\n          ^")


@pytest.mark.parametrize(("error", "reason"), [
    (llhttp_error(InvalidURLError, "Invalid char in url path"), "Invalid char in url path"),
    (llhttp_error(BadHttpMessage, "Invalid header value char"), "Invalid header value char"),
    (BadStatusLine(error=f"Bad status line:\n  {llhttp_error(BadHttpMessage, 'x').message}"),
     "Bad status line"),
    (LineTooLong(f"X-Pad: {RAW}".encode(), 4096),
     "a request target or header field over 4096 bytes"),
    (InvalidHeader(f"value\x00{RAW}".encode()), "invalid header field"),
    (InvalidURLError(f"/{RAW}"), "invalid request target"),
    (BadHttpMethod(f"G{RAW}T"), "invalid method"),
    (BadHttpMethod("\x16\x03\x01", "Received HTTPS traffic on an HTTP port"), "invalid method"),
    (BadStatusLine(f"GET / HTTP/{RAW}"), "invalid request line"),
    (BadHttpMessage("Too many headers received"), "Too many headers received"),
    (BadHttpMessage("Duplicate 'Content-Length' header found."),
     "Duplicate 'Content-Length' header found."),
], ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None)
def test_the_reason_names_the_fault_without_the_request_bytes(error, reason):
    assert parser_reason(error) == reason


def test_a_reason_is_one_printable_line_of_bounded_length():
    reason = parser_reason(BadHttpMessage("x" * 500 + "\x1b[31m\r"))

    assert reason.isprintable() and len(reason) <= 120


@pytest.mark.parametrize(("previous", "data", "end"), [
    (b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27),
    (b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody\r\n\r\n", 27),
    (b"", b"GET / HTTP/1.1\r\nHost: x\r\n", -1),
    (b"x\r\n", b"\r\nbody", 2),
    (b"\r\n\r", b"\nbody", 1),
    (b"x\r", b"\n\r\n", 3),
    (b"x\r", b"\n", -1),
    (b"\r\n", b"X: 1\r\n\r\n", 8),
    (b"\n\n\n", b"\n\n", -1),  # bare line feeds end nothing: aiohttp refuses them
], ids=["whole head", "body after it", "unfinished", "split 2+2", "split 3+1", "split 1+3",
        "split, unfinished", "no split", "bare line feeds"])
def test_the_end_of_a_head_is_found_even_split_between_two_reads(previous, data, end):
    assert head_end(previous, data) == end


@pytest.mark.parametrize(("previous", "data", "tail"), [
    (b"", b"GET / HTTP/1.1\r\n", b"1\r\n"), (b"1\r\n", b"X", b"\r\nX"),
    (b"", b"X", b"X"), (b"1\r\n", b"", b"1\r\n"),
], ids=["long read", "one byte", "first byte", "empty read"])
def test_the_tail_kept_is_as_long_as_a_split_end_can_be(previous, data, tail):
    assert head_tail(previous, data) == tail


def test_the_431_answer_is_one_plain_line_of_the_length_it_announces():
    head, _, body = head_too_large(32768).partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert f"Content-Length: {len(body)}".encode() in head and b"Connection: close" in head
    assert body.endswith(b"\n") and body.count(b"\n") == 1 and b"32768" in body

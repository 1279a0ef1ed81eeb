"""A request head on the wire (pure): where it ends, the answer to one too large, and what
the parser found wrong in one, in words that never quote its bytes.

inbound.py uses these on every connection; nothing here touches a socket.
"""

from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

# Parser errors whose text quotes the raw request: said in words of our own instead.
_QUOTING_ERRORS = (
    (InvalidHeader, "invalid header field"),
    (InvalidURLError, "invalid request target"),
    (BadHttpMethod, "invalid method"),
    (BadStatusLine, "invalid request line"),
)
_MAX_REASON_CHARACTERS = 120


# A head ends with an empty line (RFC 9112, section 2.1); aiohttp's request parser (llhttp,
# strict for requests) takes no other ending.
_HEAD_END = b"\r\n\r\n"
_HEAD_END_OVERLAP = len(_HEAD_END) - 1
# What a head past the total cap gets (RFC 6585, section 5), the connection closed after it.
_HEAD_TOO_LARGE = ("HTTP/1.1 431 Request Header Fields Too Large\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {length}\r\n"
                   "Connection: close\r\n\r\n{line}")


def head_end(previous: bytes, data: bytes) -> int:
    """Where in data a head ends (the index just past its empty line), or -1; previous holds
    the head's last bytes before data, so that an end split between two reads is found."""
    if previous:
        end = (previous + data[:_HEAD_END_OVERLAP]).find(_HEAD_END)
        if end >= 0:
            return end + len(_HEAD_END) - len(previous)
    end = data.find(_HEAD_END)
    return end + len(_HEAD_END) if end >= 0 else -1


def head_tail(previous: bytes, data: bytes) -> bytes:
    """The head's last bytes once data is added to it (previous: its last bytes before), as
    head_end wants them: as many as its end can have before the next read."""
    if len(data) >= _HEAD_END_OVERLAP:
        return data[-_HEAD_END_OVERLAP:]
    return (previous + data)[-_HEAD_END_OVERLAP:]


def head_too_large(max_head_bytes: int) -> bytes:
    """The 431 answer, one plain line, to a head over max_head_bytes."""
    line = f"431: request head over {max_head_bytes} bytes (request line and header fields)\n"
    return _HEAD_TOO_LARGE.format(length=len(line), line=line).encode()


def parser_reason(error: HttpProcessingError) -> str:
    """What the HTTP parser found wrong, without the request bytes its message quotes."""
    message = error.message
    if "\n\n " in message:  # llhttp's form: its reason, then the raw bytes and a pointer
        reason = message.partition("\n")[0].rstrip(" :")
    elif isinstance(error, LineTooLong):
        reason = f"a request target or header field over {error.args[1]} bytes"
    else:
        kind = next((said for kind, said in _QUOTING_ERRORS if isinstance(error, kind)), None)
        reason = kind or message  # aiohttp's own fixed sentences
    printable = "".join(c if c.isprintable() else "?" for c in reason)
    return printable[:_MAX_REASON_CHARACTERS] or type(error).__name__

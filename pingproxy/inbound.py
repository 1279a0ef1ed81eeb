"""Inbound connections: how much of a request's head a client may send, and for how long.

aiohttp's request handler takes its limits as arguments, given once as the application's
``handler_args``, which aiohttp's runner and gunicorn's aiohttp worker both pass on (after
their own, so the worker's two-second keep-alive does not win): the request target, the
number and size of header fields, and the idle keep-alive time. A head over a limit gets
aiohttp's 400 with one plain line, and the connection closes, freeing what was read.

What aiohttp has no setting for is built here, each as small as it can be:

- a header timeout. aiohttp's keep-alive timer closes a connection still waiting for a
  complete head once the idle timeout has passed since it opened or since its last answer,
  so a sender that trickles its head holds the connection that long; GuardedConnection
  gives each head its own, shorter deadline from its first byte (as hyper and Go's
  ReadHeaderTimeout do), so an idle connection is not cut by it. aiohttp makes its
  per-connection protocol inside its server, so GuardedRunner wraps that server; both
  serving paths use that runner (server.py).
- one line for a malformed request. aiohttp logs the parser's exception with a traceback,
  and the exception's text quotes the raw request; the logger it is given (handler_args)
  turns that into one line, at WARNING at most: the peer and the parser's reason.
- one line a second when accept() runs out of file descriptors. asyncio's loop reports
  each failed accept() to the loop's exception handler with a traceback, up to the listen
  backlog per loop turn, and retries each a second later (a third of a core, tens of
  thousands of lines a second); the handler installed here says it at most once a second.
  Those retries outlive a listening socket closed at shutdown, and fail on it: that
  failure is expected, and said only at DEBUG, once a second. (Under uvloop, libuv closes
  the connections it cannot accept, without a word.)
"""

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

from pingproxy.config import Settings

logger = logging.getLogger("pingproxy.inbound")

# The errors asyncio's accept loop reports and retries a second later.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# A condition that lasts (out of file descriptors) is logged this often at most.
LOG_INTERVAL_SECONDS = 1.0
# Parser errors whose text quotes the raw request: said in words of our own instead.
_QUOTING_ERRORS = (
    (InvalidHeader, "invalid header field"),
    (InvalidURLError, "invalid request target"),
    (BadHttpMethod, "invalid method"),
    (BadStatusLine, "invalid request line"),
)
_MAX_REASON_CHARACTERS = 120


def handler_args(settings: Settings) -> dict[str, object]:
    """aiohttp's request handler arguments for these settings."""
    return {
        "max_line_size": settings.max_request_line_bytes,
        "max_field_size": settings.max_header_field_bytes,
        "max_headers": settings.max_headers,
        "keepalive_timeout": settings.idle_timeout_seconds,
        "logger": _ParserErrorLog(logger),
    }


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


class _ParserErrorLog(logging.LoggerAdapter):
    """The logger aiohttp's request handler writes to: a parser error becomes one line."""

    def log(self, level: int, msg: object, *args: object, exc_info: object = None,
            **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError):
            level = min(level, logging.WARNING)
            msg, args, exc_info = f"{msg}: %s", (*args, parser_reason(exc_info)), None
        super().log(level, msg, *args, exc_info=exc_info, **kwargs)


class GuardedConnection(asyncio.Protocol):
    """One connection's aiohttp protocol, behind a deadline for each request's head.

    The deadline starts with a request's first byte and ends when its handler starts
    (track_requests); past it the connection is closed. Bytes that arrive while a request is
    handled (its body, a pipelined request) start none: the body has the request timeout,
    and a head already under way when its turn comes has the idle timeout.
    """

    def __init__(self, protocol: asyncio.Protocol, timeout_seconds: float) -> None:
        self._protocol = protocol
        self._timeout_seconds = timeout_seconds
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._handling = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._protocol.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and not self._handling:
            self._deadline = self._loop.call_later(self._timeout_seconds, self._expire)
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    def request_started(self) -> None:
        """The head is complete: its deadline is met."""
        self._cancel()
        self._handling = True

    def request_finished(self) -> None:
        self._handling = False

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        logger.debug("closed a connection whose request head took over %g s",
                     self._timeout_seconds)
        self._transport.close()


class _GuardedServer:
    """aiohttp's server, the protocol factory a site listens with, each connection guarded."""

    def __init__(self, server: web.Server, header_timeout_seconds: float) -> None:
        self._server = server
        self._header_timeout_seconds = header_timeout_seconds

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self._server(), self._header_timeout_seconds)

    @property
    def requests_count(self) -> int:
        """Read by gunicorn's aiohttp worker for its --max-requests."""
        return self._server.requests_count


class GuardedRunner(web.AppRunner):
    """aiohttp's application runner whose sites serve every connection as a
    GuardedConnection."""

    def __init__(self, app: web.Application, *, header_timeout_seconds: float,
                 **kwargs: object) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout_seconds = header_timeout_seconds

    @property
    def server(self) -> _GuardedServer | None:
        server = super().server
        if server is None:
            return None
        return _GuardedServer(server, self._header_timeout_seconds)


@web.middleware
async def track_requests(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    """Tell the request's GuardedConnection when its request is handled."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if not isinstance(connection, GuardedConnection):  # served by another runner (tests')
        return await handler(request)
    connection.request_started()
    try:
        return await handler(request)
    finally:
        connection.request_finished()


async def quiet_accept_failures(app: web.Application) -> None:
    """From start-up to the loop's end (asyncio's accept() retries outlive the
    application's clean-up), log accept() failures at most once a second."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_AcceptFailureLog(loop.get_exception_handler()))


class _AcceptFailureLog:
    """A loop exception handler: accept() out of descriptors is one line a second at most;
    every other report goes where it went before."""

    def __init__(self, previous: Callable[..., object] | None) -> None:
        self._previous = previous
        self._failing = _OncePerSecond()
        self._retrying = _OncePerSecond()
        self._accept_failed = False

    def _retried_on_closed_listener(self, error: object) -> bool:
        """asyncio's one-second retry of a failed accept() finding its socket closed."""
        return (self._accept_failed and isinstance(error, ValueError)
                and str(error) == "Invalid file descriptor: -1")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        error = context.get("exception")
        if (isinstance(error, OSError) and error.errno in _OUT_OF_RESOURCES
                and "socket" in context):
            self._accept_failed = True
            if self._failing.now():
                logger.warning("cannot accept new connections: %s (open files limit %d); "
                               "they wait until some close", error.strerror,
                               resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        elif self._retried_on_closed_listener(error):
            if self._retrying.now():
                logger.debug("asyncio retried accept() on a closed listening socket")
        elif self._previous is None:
            loop.default_exception_handler(context)
        else:
            self._previous(loop, context)


class _OncePerSecond:
    """Says yes at most once a second: a condition that lasts is logged, not flooded."""

    def __init__(self) -> None:
        self._quiet_until = float("-inf")

    def now(self) -> bool:
        if time.monotonic() < self._quiet_until:
            return False
        self._quiet_until = time.monotonic() + LOG_INTERVAL_SECONDS
        return True

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
- a cap on a whole head, and no reading past a refusal. aiohttp bounds each field, not
  their sum, and reads on after it refused a head; GuardedConnection answers a head over
  the cap with 431 and closes before aiohttp sees it, and pauses reading at each head's
  end until its handler starts, so a head aiohttp refuses is not read further (why it
  matters: GuardedConnection's docstring).
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
from aiohttp.http_exceptions import HttpProcessingError

from pingproxy.config import Settings
from pingproxy.http_head import head_end, head_tail, head_too_large, parser_reason

logger = logging.getLogger("pingproxy.inbound")

# The errors asyncio's accept loop reports and retries a second later.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# A condition that lasts (out of file descriptors) is logged this often at most.
LOG_INTERVAL_SECONDS = 1.0
def handler_args(settings: Settings) -> dict[str, object]:
    """aiohttp's request handler arguments for these settings."""
    return {
        "max_line_size": settings.max_request_line_bytes,
        "max_field_size": settings.max_header_field_bytes,
        "max_headers": settings.max_headers,
        "keepalive_timeout": settings.idle_timeout_seconds,
        "logger": _ParserErrorLog(logger),
    }


class _ParserErrorLog(logging.LoggerAdapter):
    """The logger aiohttp's request handler writes to: a parser error becomes one line."""

    def log(self, level: int, msg: object, *args: object, exc_info: object = None,
            **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError):
            level = min(level, logging.WARNING)
            msg, args, exc_info = f"{msg}: %s", (*args, parser_reason(exc_info)), None
        super().log(level, msg, *args, exc_info=exc_info, **kwargs)


class GuardedConnection(asyncio.Protocol):
    """One connection's aiohttp protocol, behind a deadline and a size cap for each request's
    head, reading nothing more of a head that is refused.

    The deadline starts with a request's first byte and ends when its handler starts
    (track_requests); past it the connection is closed. Bytes that arrive while a request is
    handled (its body, a pipelined request) start none: the body has the request timeout,
    and a head already under way when its turn comes has the idle timeout.

    Why a refused head must not be read further (issue 16): aiohttp's protocol
    (web_protocol.RequestHandler.data_received) goes on feeding every read to its parser
    after the parser refused a head, until its handler task has written the 400, a loop turn
    later; each read raises again, and each error is queued with its traceback, whose frame
    holds the read's bytes: a reference cycle per read, freed only by the cyclic garbage
    collector's full collections, and then kept by glibc's heap. uvloop's transport reads up
    to 32 times 256,000 bytes in one go (libuv's read loop) before that turn comes, so a
    1 MB head over the field limit was read in whole: 200 such connections left 187 MB held
    in 1,514 cycles of 256,000-byte reads (gc.collect() brought that to 7 MB, and
    malloc_trim(0) the process from 224 MB to 41 MB; asyncio's transport, one read a loop
    turn, about half as much). bench/aiohttp_refused_head.py shows it with aiohttp alone.
    So the guard counts a head's bytes up to its end and, past max_head_bytes, answers 431
    and closes before aiohttp sees them; at a head's end it pauses reading until the
    head's handler starts, so a head aiohttp refuses is answered and closed unread beyond.
    """

    def __init__(self, protocol: asyncio.Protocol, timeout_seconds: float,
                 max_head_bytes: int) -> None:
        self._protocol = protocol
        self._timeout_seconds = timeout_seconds
        self._max_head_bytes = max_head_bytes
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._handling = False
        self._head_bytes = 0  # of the head being read, before data
        self._head_tail = b""  # its last bytes, where its end may begin
        self._head_read = False  # from a head's end, reading paused, to its handler's start

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._protocol.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handling or self._head_read:
            self._protocol.data_received(data)
            return
        if self._deadline is None:
            self._deadline = self._loop.call_later(self._timeout_seconds, self._expire)
        end = head_end(self._head_tail, data)
        size = self._head_bytes + (len(data) if end < 0 else end)
        if size > self._max_head_bytes:
            self._refuse_head(self._head_bytes + len(data))
            return
        self._protocol.data_received(data)
        if end < 0:
            self._head_bytes = size
            self._head_tail = head_tail(self._head_tail, data)
        else:
            self._head_read = True
            self._transport.pause_reading()

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
        """The head is complete and handled: its deadline is met, reading goes on."""
        self._cancel()
        self._handling = True
        if self._head_read:
            self._head_read = False
            self._transport.resume_reading()

    def request_finished(self) -> None:
        """The next bytes begin a new head."""
        self._handling = False
        self._head_bytes = 0
        self._head_tail = b""

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        logger.debug("closed a connection whose request head took over %g s",
                     self._timeout_seconds)
        self._transport.close()

    def _refuse_head(self, read_bytes: int) -> None:
        """Answer 431 and close: the rest of the head is never read."""
        self._cancel()
        self._head_read = True  # nothing more is counted (closed, the transport reads no more)
        peer = self._transport.get_extra_info("peername")
        logger.warning("refused a request head over %d bytes from %s (%d bytes read of it); "
                       "connection closed", self._max_head_bytes,
                       peer[0] if isinstance(peer, tuple) else "?", read_bytes)
        self._transport.write(head_too_large(self._max_head_bytes))
        self._transport.close()


class _GuardedServer:
    """aiohttp's server, the protocol factory a site listens with, each connection guarded."""

    def __init__(self, server: web.Server, header_timeout_seconds: float,
                 max_head_bytes: int) -> None:
        self._server = server
        self._header_timeout_seconds = header_timeout_seconds
        self._max_head_bytes = max_head_bytes

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self._server(), self._header_timeout_seconds,
                                 self._max_head_bytes)

    @property
    def requests_count(self) -> int:
        """Read by gunicorn's aiohttp worker for its --max-requests."""
        return self._server.requests_count


class GuardedRunner(web.AppRunner):
    """aiohttp's application runner whose sites serve every connection as a
    GuardedConnection."""

    def __init__(self, app: web.Application, *, header_timeout_seconds: float,
                 max_head_bytes: int, **kwargs: object) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout_seconds = header_timeout_seconds
        self._max_head_bytes = max_head_bytes

    @property
    def server(self) -> _GuardedServer | None:
        server = super().server
        if server is None:
            return None
        return _GuardedServer(server, self._header_timeout_seconds, self._max_head_bytes)


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

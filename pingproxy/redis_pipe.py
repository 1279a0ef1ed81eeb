"""One connection to Redis, every command pipelined on it: what shared limits send per pingback.

Each Redis round trip costs a process about 150 µs of CPU on loopback, mostly in system calls,
and redis-py's asyncio client adds as much again per command in Python: sent one by one, the
three calls of a pingback with limits on would double its CPU. So every command asked for
within one event-loop turn is written in one go on one connection, and the answers, read in
order by hiredis (Redis's own C parser), are handed to each caller's future: one write and
a read or two for all the pingbacks of a moment (auto-pipelining, in order, as Redis answers
a connection's commands). redis-py still parses the URL and serves the limits library.
"""

import asyncio
import collections
import ssl
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import parse_url

# Connecting, with AUTH and SELECT, must be done within this long.
CONNECT_TIMEOUT_SECONDS = 0.25


class RedisReplyError(Exception):
    """Redis answered a command with an error (a script's error, a wrong password...)."""


class RedisGone(ConnectionError):
    """The connection closed, or never opened, before the answer came."""


def pack(command: Sequence[Any]) -> bytes:
    """A command as RESP's array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for word in command:
        data = word if isinstance(word, bytes) else str(word).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    """The connection: commands written in batches, answers matched to them in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=RedisReplyError)
        self._waiting: collections.deque[tuple[float, asyncio.Future]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def send(self, batch: list[tuple[bytes, asyncio.Future]], now: float) -> None:
        self._waiting.extend((now, answer) for _, answer in batch)
        self._transport.write(b"".join(data for data, _ in batch))

    def oldest_sent(self) -> float | None:
        return self._waiting[0][0] if self._waiting else None

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (value := self._reader.gets()) is not False:
            _, answer = self._waiting.popleft()
            if answer.done():  # its caller stopped waiting
                continue
            if isinstance(value, RedisReplyError):
                answer.set_exception(value)
            else:
                answer.set_result(value)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost.set_result(None)
        while self._waiting:
            _, answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(RedisGone("the connection to Redis closed"))

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


class RedisPipe:
    """Commands to one Redis, pipelined on one connection, (re)connected when needed."""

    def __init__(self, url: str, *, stale_after_seconds: float) -> None:
        self._options = parse_url(url)
        self._tls = url.startswith("rediss:")
        # A command unanswered this long means a Redis that hangs: the connection is dropped
        # and a new one made, rather than waiting behind it.
        self._stale_after_seconds = stale_after_seconds
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task | None = None
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._scheduled = False

    def call(self, *command: Any) -> asyncio.Future:
        """The answer to command, once written with the others of this loop turn and read."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._pending.append((pack(command), answer))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return answer

    def _flush(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            oldest = protocol.oldest_sent()
            if oldest is not None and loop.time() - oldest > self._stale_after_seconds:
                protocol.abort()
        if protocol is None or protocol.closed:
            if self._connecting is None:
                self._connecting = loop.create_task(self._connect())
            return  # sent once connected
        batch, self._pending = self._pending, []
        protocol.send(batch, loop.time())

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                self._protocol = await self._open()
        except (OSError, TimeoutError, RedisReplyError) as error:
            batch, self._pending = self._pending, []
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(RedisGone(f"cannot connect to Redis: {error!r}"))
        finally:
            self._connecting = None
        if self._pending:
            self._flush()

    async def _open(self) -> _Protocol:
        """A new connection, authenticated and on its database."""
        loop, options = asyncio.get_running_loop(), self._options
        if "path" in options:
            _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
        else:
            _, protocol = await loop.create_connection(
                _Protocol, options.get("host", "localhost"), options.get("port", 6379),
                ssl=self._ssl_context())
        setup = []
        if options.get("password") is not None:
            setup.append(("AUTH", *filter(None, (options.get("username"),)),
                          options["password"]))
        if options.get("db"):
            setup.append(("SELECT", options["db"]))
        if setup:
            answers = [loop.create_future() for _ in setup]
            protocol.send([(pack(command), answer)
                           for command, answer in zip(setup, answers, strict=True)], loop.time())
            try:
                await asyncio.gather(*answers)
            except BaseException:  # refused, or too slow: this connection is no use
                protocol.abort()
                raise
        return protocol

    def _ssl_context(self) -> ssl.SSLContext | None:
        """rediss://: TLS, verified unless the URL says ssl_cert_reqs=none (as redis-py reads
        it), for providers whose Redis has a self-signed certificate."""
        if not self._tls:
            return None
        context = ssl.create_default_context()
        if str(self._options.get("ssl_cert_reqs", "required")).lower() == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def close(self) -> None:
        """Drop the connection, and wait until its socket is closed."""
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None:
            self._protocol.abort()
            await self._protocol.lost

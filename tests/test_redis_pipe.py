"""The pipelined Redis connection, against a real redis-server."""

import asyncio

import pytest

from pingproxy.redis_pipe import RedisGone, RedisPipe, RedisReplyError, pack


@pytest.mark.parametrize(("command", "wire"), [
    (("PING",), b"*1\r\n$4\r\nPING\r\n"),
    (("ZREM", "k", 7), b"*3\r\n$4\r\nZREM\r\n$1\r\nk\r\n$1\r\n7\r\n"),
    (("SET", "k", "été"), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\n\xc3\xa9t\xc3\xa9\r\n"),
])
def test_a_command_is_an_array_of_bulk_strings(command, wire):
    assert pack(command) == wire


@pytest.fixture
async def open_pipe():
    opened: list[RedisPipe] = []

    def make(url: str) -> RedisPipe:
        opened.append(RedisPipe(url, stale_after_seconds=0.25))
        return opened[-1]

    yield make
    for pipe in opened:
        await pipe.close()


async def test_commands_of_one_moment_each_get_their_own_answer(open_pipe, redis_server,
                                                                redis_prefix):
    pipe = open_pipe(redis_server.url)
    key = f"{redis_prefix}counter"

    answers = await asyncio.gather(*(pipe.call("INCR", key) for _ in range(50)),
                                   pipe.call("EXPIRE", key, 60))

    assert answers == [*range(1, 51), 1]


async def test_an_error_answer_reaches_only_its_caller(open_pipe, redis_server, redis_prefix):
    pipe = open_pipe(redis_server.url)

    answers = await asyncio.gather(pipe.call("PING"), pipe.call("NOSUCHCOMMAND"),
                                   pipe.call("ECHO", "still here"), return_exceptions=True)

    assert answers[0] == b"PONG" and answers[2] == b"still here"
    assert isinstance(answers[1], RedisReplyError)


async def test_the_database_in_the_url_is_the_one_used(open_pipe, redis_server, redis_prefix):
    key = f"{redis_prefix}where"
    await open_pipe(redis_server.url.replace("/0", "/3")).call("SET", key, "three", "EX", 60)

    assert await open_pipe(redis_server.url).call("GET", key) is None
    assert await open_pipe(redis_server.url.replace("/0", "/3")).call("GET", key) == b"three"


async def test_a_restarted_redis_is_reconnected_to(open_pipe, own_redis_server):
    pipe = open_pipe(own_redis_server.url)
    assert await pipe.call("PING") == b"PONG"

    own_redis_server.stop()
    with pytest.raises(RedisGone):
        await pipe.call("PING")
    own_redis_server.start()

    assert await pipe.call("PING") == b"PONG"

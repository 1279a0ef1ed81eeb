"""Calling a real pingback server (the stdlib's SimpleXMLRPCServer) over aiohttp."""

import xmlrpc.client

import pytest
from yarl import URL

from pingproxy import outbound, pingback
from tests.conftest import TEST_SETTINGS

SOURCE, TARGET = "http://blog.example/post?a=1&b=2", "http://site.example/page"


@pytest.fixture
async def session():
    policy = outbound.policy_for(TEST_SETTINGS)
    async with outbound.open_session(TEST_SETTINGS, policy) as opened:
        yield opened, policy


async def ping(session, server: str) -> pingback.ServerAnswer:
    opened, policy = session
    reply = await pingback.call(opened, policy, URL(server), pingback.PING_METHOD,
                                (SOURCE, TARGET), headers={}, max_reply_bytes=65536)
    assert reply.status == 200
    return pingback.read_answer(reply.body)


async def test_a_ping_reaches_the_server_and_its_answer_is_read(session, pingback_server):
    answer = await ping(session, pingback_server.url)

    assert answer == pingback.ServerAnswer(value=pingback_server.answer)
    assert pingback_server.calls == [(SOURCE, TARGET)]


@pytest.mark.parametrize("code", [0, 16, 17, 32, 33, 48, 49, 50])
async def test_every_pingback_fault_is_read_with_its_code(session, pingback_server, code):
    pingback_server.answer = xmlrpc.client.Fault(code, f"fault {code}")

    answer = await ping(session, pingback_server.url)

    assert answer.fault == (code, f"fault {code}")


async def test_list_methods_names_pingback_ping(session, pingback_server):
    opened, policy = session
    reply = await pingback.call(opened, policy, URL(pingback_server.url), pingback.LIST_METHODS,
                                (), headers={}, max_reply_bytes=65536)

    assert pingback.PING_METHOD in pingback.read_answer(reply.body).value

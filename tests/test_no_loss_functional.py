"""Under load against a flaky endpoint: every pingback answered, and success only for a 2xx."""

import asyncio
import random
import socket
import struct
import xmlrpc.client

import aiohttp
from aiohttp import web

from tests.conftest import ping_body

PINGBACKS = 300
FORWARD_TIMEOUT_SECONDS = 1.0
TARGET = "http://site.example/page"


async def test_success_replies_match_the_2xx_the_endpoint_sent(make_proxy, endpoint):
    chance = random.Random(20261124)
    accepted: set[str] = set()
    behaviours: dict[str, str] = {}

    async def flaky(request):
        source = endpoint.received[-1].form["source"]
        behaviour = behaviours[source] = chance.choice(["accept", "fail", "reset", "stall"])
        if behaviour == "accept":
            accepted.add(source)
            return web.json_response({"summary": "queued"}, status=202)
        if behaviour == "fail":
            return web.json_response({"error": "internal_server_error"}, status=500)
        if behaviour == "reset":
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()
            raise ConnectionResetError
        await asyncio.sleep(FORWARD_TIMEOUT_SECONDS + 0.5)
        return web.Response(status=500)

    endpoint.answer = flaky
    proxy = await make_proxy(forward_timeout_seconds=FORWARD_TIMEOUT_SECONDS)
    url = proxy.make_url("/" + endpoint.url())

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as senders:
        async def send(number: int) -> tuple[str, object]:
            source = f"http://blog.example/post/{number}"
            async with senders.post(url, data=ping_body(source, TARGET)) as response:
                assert response.status == 200
                try:
                    return source, xmlrpc.client.loads(await response.read())[0][0]
                except xmlrpc.client.Fault as fault:
                    return source, fault

        answers = dict(await asyncio.wait_for(
            asyncio.gather(*(send(n) for n in range(PINGBACKS))), 30))

    succeeded = {source for source, answer in answers.items() if isinstance(answer, str)}
    faults = {source: answer for source, answer in answers.items()
              if isinstance(answer, xmlrpc.client.Fault)}
    assert len(answers) == PINGBACKS
    assert succeeded == accepted
    assert set(faults) == set(answers) - accepted
    assert all(fault.faultCode == 0x32 for fault in faults.values())
    assert set(behaviours.values()) == {"accept", "fail", "reset", "stall"}

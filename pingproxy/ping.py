"""pingproxy ping: send one pingback as a sender does, and say what the server answered.

The target's pingback server is found as check finds it: the X-Pingback header, then
Pingback 1.0's <link> pattern, then (as WordPress, the most common sender, would) WordPress's
reading of the element; the call is the stdlib's XML-RPC marshalling over aiohttp, POSTed
with no redirect followed, under the same guard and bounds as everything pingproxy sends.
"""

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from pingproxy import diagnose, discovery, pingback
from pingproxy.config import Settings
from pingproxy.errors import ALREADY_REGISTERED_FAULT, PingproxyError, fault_meaning
from pingproxy.netguard import DestinationPolicy

# How a ping ended; the command exits 0 on SUCCESS (and on fault 48), 2 on UNREACHABLE, else 1.
SUCCESS, FAULT, NO_SERVER, FAILED, UNREACHABLE = (
    "success", "fault", "no_server", "failed", "unreachable")


@dataclass(frozen=True, slots=True)
class PingResult:
    """What one pingback.ping came to."""

    source: str
    target: str
    outcome: str
    detail: str
    server: discovery.Found | None = None
    http_status: int | None = None
    fault_code: int | None = None
    seconds: float = 0.0

    @property
    def fault_meaning(self) -> str | None:
        return None if self.fault_code is None else fault_meaning(self.fault_code)

    @property
    def delivered(self) -> bool:
        """Success, or fault 48: Pingback 1.0 senders count both as done."""
        return self.outcome == SUCCESS or self.fault_code == ALREADY_REGISTERED_FAULT


async def ping(session: aiohttp.ClientSession, policy: DestinationPolicy, settings: Settings,
               source: str, target: URL) -> PingResult:
    """Find target's pingback server and send it pingback.ping(source, target)."""
    started = time.perf_counter()

    def result(outcome: str, detail: str, **fields) -> PingResult:
        return PingResult(source, str(target), outcome, detail,
                          seconds=time.perf_counter() - started, **fields)

    timeout = settings.forward_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            reply = await discovery.fetch_page(
                session, policy, target, max_page_bytes=settings.discovery_max_page_bytes,
                headers={"User-Agent": diagnose.USER_AGENT})
    except TimeoutError:
        return result(UNREACHABLE, f"the target did not answer within {timeout:g} s")
    except PingproxyError as error:
        return result(UNREACHABLE, f"the target could not be fetched: {error}")
    page = await asyncio.to_thread(diagnose.read_page, target, reply)
    if page.error is not None:
        return result(UNREACHABLE, f"the target could not be fetched: {page.error}")
    server = next((found for found in (page.pingback, page.lenient) if found and found.url),
                  None)
    if server is None:
        return result(NO_SERVER, "the target advertises no pingback server that a sender can "
                                 "use (run pingproxy check on it to see why)")
    try:
        async with asyncio.timeout(timeout):
            answer = await pingback.call(
                session, policy, server.url, pingback.PING_METHOD, (source, str(target)),
                headers={"User-Agent": diagnose.USER_AGENT},
                max_reply_bytes=settings.max_reply_bytes)
    except TimeoutError:
        return result(FAILED, f"the pingback server did not answer within {timeout:g} s",
                      server=server)
    except PingproxyError as error:
        return result(FAILED, f"the pingback server failed: {error}", server=server)
    if answer.status != 200:
        return result(FAILED, f"the pingback server answered HTTP {answer.status} "
                              f"{answer.reason}".rstrip(), server=server,
                      http_status=answer.status)
    try:
        read = pingback.read_answer(answer.body)
    except ValueError:
        return result(FAILED, "the pingback server answered, but not with XML-RPC",
                      server=server, http_status=answer.status)
    if read.fault is not None:
        code, text = read.fault
        return result(FAULT, pingback.clean_text(text), server=server, http_status=200,
                      fault_code=code)
    return result(SUCCESS, pingback.clean_text(str(read.value)), server=server,
                  http_status=200)

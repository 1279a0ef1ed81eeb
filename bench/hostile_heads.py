"""Hostile request heads, round after round: does a refused request leave memory behind?

``python -m bench.hostile_heads [--quick]`` (part of ``make bench``) starts pingproxy on
127.0.0.1 for each event loop set-up and each head of issue 16, fires ROUNDS rounds of
CONNECTIONS connections at once, each writing its head and reading the answer, and reads
the server's resident memory (VmRSS; with workers, the sum over the arbiter and its
workers) SETTLE_SECONDS after each round. Meanwhile a client sends pingbacks one after
another through the same server to a local endpoint: none may be lost. The goals (issue
16): every round within 64 MB of idle, no climb beyond 16 MB from the first round to the
last, every head answered with a 4xx or its connection closed.
"""

import argparse
import asyncio
import sys
import tempfile
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.processes import Server, free_port, raise_open_files_limit
from bench.servers import ENDPOINT_PATH
from bench.stats import text_table

CONNECTIONS = 200
ROUNDS = 5
QUICK_ROUNDS = 2
SETTLE_SECONDS = 2.0
ANSWER_TIMEOUT_SECONDS = 30.0
WRITE_PIECE_BYTES = 64 * 1024
MAX_GROWTH_MB = 64
MAX_CLIMB_MB = 16


def _head(fields: int, value_bytes: int, *, finished: bool = True) -> bytes:
    lines = [b"GET / HTTP/1.1", b"Host: x"]
    lines += [f"X-Pad-{n:05}: ".encode() + b"v" * value_bytes for n in range(fields)]
    return b"\r\n".join(lines) + (b"\r\n\r\n" if finished else b"\r\n")


# Issue 16's three heads: over the field size, over the field count, within both but never
# finished (and, at about 124 KB, over the total cap).
HEADS = {
    "120 fields of 8,100 bytes": _head(120, 8100),
    "10,000 fields of 10 bytes": _head(10_000, 10),
    "31 fields of 4,000 bytes, unfinished": _head(31, 4000, finished=False),
}
REFUSED = ("400", "431", "closed", "reset")


async def send_head(port: int, head: bytes) -> str:
    """Write head on a new connection and read until the server closes it: the answer's
    status, or "closed" (no answer), or "reset" (the answer lost to a reset)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for start in range(0, len(head), WRITE_PIECE_BYTES):
            writer.write(head[start:start + WRITE_PIECE_BYTES])
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT_SECONDS)
    except ConnectionError:
        return "reset"
    finally:
        writer.close()
    return answer.split(b" ", 2)[1].decode() if answer else "closed"


async def fire_round(port: int, head: bytes, connections: int = CONNECTIONS) -> Counter:
    """connections heads at once; how many ended which way."""
    return Counter(await asyncio.gather(*(send_head(port, head) for _ in range(connections))))


def ping_body() -> bytes:
    return xmlrpc.client.dumps(("http://blog.example/post", "http://site.example/page"),
                               "pingback.ping").encode()


async def keep_pinging(url: str, stop: asyncio.Event) -> tuple[int, int]:
    """Pingbacks one after another until stop: (sent, forwarded)."""
    sent = forwarded = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(10)) as session:
        while not stop.is_set():
            sent += 1
            try:
                async with session.post(url, data=ping_body(),
                                        headers={"Content-Type": "text/xml"}) as answer:
                    forwarded += b"forwarded" in await answer.read()
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
    return sent, forwarded


async def rounds(server: Server, head: bytes, count: int, ping_url: str) -> dict:
    """count rounds at server with pingbacks alongside; memory and outcomes."""
    idle = server.memory_megabytes()
    stop = asyncio.Event()
    pinging = asyncio.create_task(keep_pinging(ping_url, stop))
    after, outcomes = [], Counter()
    for _ in range(count):
        outcomes += await fire_round(server.port, head)
        await asyncio.sleep(SETTLE_SECONDS)
        after.append(server.memory_megabytes())
    stop.set()
    sent, forwarded = await pinging
    return {"idle": idle, "after": after, "outcomes": outcomes, "sent": sent,
            "forwarded": forwarded}


SETUPS = {
    "uvloop": (),
    "asyncio": ("--event-loop", "asyncio"),
    "uvloop, 2 workers (sum)": ("--workers", "2"),
}


def measure(setup: str, head_name: str, count: int, endpoint: Server, work: Path) -> list:
    """One table row: a fresh pingproxy, count rounds of one head."""
    port = free_port()
    server = Server.start(f"pingproxy-{port}", [
        sys.executable, "-m", "pingproxy", "--port", str(port), "--allow-private",
        "--log-level", "error", *SETUPS[setup]], port, work)
    try:
        path = f"/http://127.0.0.1:{endpoint.port}{ENDPOINT_PATH}"
        server.wait_until_answering(lambda status, body: b"forwarded" in body,
                                    (path, ping_body(), "text/xml"))
        time.sleep(SETTLE_SECONDS)
        result = asyncio.run(rounds(server, HEADS[head_name], count,
                                    f"http://127.0.0.1:{port}{path}"))
    finally:
        server.stop()
    growth = max(result["after"]) - result["idle"]
    climb = result["after"][-1] - result["after"][0]
    refused_all = set(result["outcomes"]) <= set(REFUSED)
    met = (growth <= MAX_GROWTH_MB and climb <= MAX_CLIMB_MB and refused_all
           and result["sent"] == result["forwarded"])
    return [setup, head_name, f"{result['idle']:.0f}",
            " → ".join(f"{mb:.0f}" for mb in result["after"]), f"{growth:.0f}", f"{climb:.0f}",
            ", ".join(f"{n} {kind}" for kind, n in result["outcomes"].most_common()),
            f"{result['forwarded']}/{result['sent']}", "met" if met else "MISSED"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_heads", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds, not {ROUNDS}")
    count = QUICK_ROUNDS if parser.parse_args(argv).quick else ROUNDS
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="pingproxy-heads-") as work:
        port = free_port()
        endpoint = Server.start("endpoint", [sys.executable, "-m", "bench.servers", "endpoint",
                                             "--port", str(port)], port, Path(work))
        try:
            endpoint.wait_until_answering(lambda status, _: status == 202,
                                          (ENDPOINT_PATH, b"source=a&target=b",
                                           "application/x-www-form-urlencoded"))
            rows = [measure(setup, head, count, endpoint, Path(work))
                    for setup in SETUPS for head in HEADS]
        finally:
            endpoint.stop()
    print(f"\nHostile heads: {count} rounds of {CONNECTIONS} connections, RSS in MB "
          f"{SETTLE_SECONDS:g} s after each round (goals: at most {MAX_GROWTH_MB} MB over idle, "
          f"at most {MAX_CLIMB_MB} MB climb)")
    print(text_table(["loop", "head", "idle", "after each round", "max over idle",
                      "climb first→last", "connections ended", "pingbacks forwarded",
                      "verdict"], rows))
    return 0 if all(row[-1] == "met" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The smallest reproduction of issue 16's cause, with aiohttp alone (to report upstream).

``python -m bench.aiohttp_refused_head [uvloop|asyncio]``: a bare ``aiohttp.web.Server``
with ``max_field_size=4096`` on 127.0.0.1; CONNECTIONS clients each send a head whose
first field is 8,100 bytes (refused with 400) followed by about 1 MB more of header fields.

What it shows (aiohttp 3.14.5): ``RequestHandler.data_received`` keeps feeding every further
read to the parser after the parser raised; each read raises again (BadHttpMessage), and
each error is queued as an ``_ErrInfo`` in ``self._messages`` whose exception's traceback
holds the ``data_received`` frame, and so that read's bytes and the handler itself: one
reference cycle per read, which outlives the connection until the cyclic collector's next
full collection. uvloop's transport reads up to 32 times 256,000 bytes per readiness event
before the 400 is written a loop turn later, so nearly the whole head is read and held.
Expected: reading stops (or at least nothing is held) once the head is refused.
"""

import asyncio
import gc
import logging
import re
import sys
from pathlib import Path

from aiohttp import web

CONNECTIONS = 50
HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
    f"X-Pad-{n:03}: ".encode() + b"v" * 8100 + b"\r\n" for n in range(120))


def rss_megabytes() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) // 1024


def held_reads() -> tuple[int, int]:
    """Large bytes objects that gc-tracked objects still refer to: (count, bytes)."""
    chunks = [o for o in gc.get_referents(*gc.get_objects())
              if type(o) is bytes and len(o) > 100_000 and o is not HEAD]
    return len(chunks), sum(map(len, chunks))


async def send(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for start in range(0, len(HEAD), 65536):
            writer.write(HEAD[start:start + 65536])
            await writer.drain()
        return (await reader.read())[:12]
    except ConnectionError:
        return b"reset"
    finally:
        writer.close()


async def main() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    server = web.Server(handler, max_field_size=4096)
    listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    gc.collect()
    before = rss_megabytes()
    answers = await asyncio.gather(*(send(port) for _ in range(CONNECTIONS)))
    await asyncio.sleep(1)
    count, size = held_reads()
    print(f"{len(HEAD):,}-byte heads, {CONNECTIONS} connections: answers {set(answers)}")
    print(f"RSS {before} MB -> {rss_megabytes()} MB; reads still held after every connection "
          f"closed: {count} ({size / 1e6:.0f} MB)")
    print(f"gc.collect() freed {gc.collect()} objects; reads still held: {held_reads()[0]}")
    listener.close()


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)  # aiohttp logs each refusal with a traceback
    if sys.argv[1:] == ["asyncio"]:
        asyncio.run(main())
    else:
        import uvloop

        uvloop.run(main())

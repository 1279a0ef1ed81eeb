"""What running out of file descriptors costs: the share of a core pingproxy uses meanwhile.

``python -m bench.out_of_files`` (part of ``make bench``) starts pingproxy with an open-files
limit of OPEN_FILES on each event loop, opens twice that many connections that never finish
their head, and reads the server's CPU time over WINDOW_SECONDS while it is out of
descriptors; then checks that a connection opened before still gets answers and that new
ones are served once the others close. The test suite checks the behaviour
(tests/test_connections_functional.py); this is where the CPU share is measured.
"""

import asyncio
import http.client
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.processes import Server, free_port
from bench.stats import text_table

OPEN_FILES = 64
WINDOW_SECONDS = 5.0
SETTLE_SECONDS = 0.5
RECOVERY_TIMEOUT_SECONDS = 10.0


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def start(loop: str, work: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "pingproxy", "--port", str(port), "--event-loop", loop,
               "--header-timeout", "60", "--idle-timeout", "60", "--log-level", "error"]
    log = open(work / f"pingproxy-{loop}.log", "ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=_limit_open_files)
    log.close()
    server = Server(f"pingproxy-{loop}", process, port, time.perf_counter())
    server.wait_until_answering(lambda status, _: status == 200, ("/healthz", b"", "text/plain"))
    return server


async def starve(server: Server) -> tuple[float, bool]:
    """Hold twice OPEN_FILES connections: the CPU share meanwhile, and whether a connection
    opened before still gets its answer."""
    keeper = await asyncio.open_connection("127.0.0.1", server.port)
    if not await answered(*keeper):
        raise RuntimeError("the first connection got no answer")
    hogs = [await asyncio.open_connection("127.0.0.1", server.port)
            for _ in range(2 * OPEN_FILES)]
    for _, writer in hogs:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    await asyncio.sleep(SETTLE_SECONDS)
    cpu, started = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(WINDOW_SECONDS)
    share = (server.cpu_seconds() - cpu) / (time.monotonic() - started)
    kept = await answered(*keeper)
    for _, writer in [*hogs, keeper]:
        writer.close()
    return share, kept


async def answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Whether a request on this open connection gets its 200 (its body read)."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    await asyncio.wait_for(reader.readexactly(len(b"ok")), 5)
    return head.startswith(b"HTTP/1.1 200")


def recovered(server: Server) -> bool:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.5)
        finally:
            connection.close()
    return False


def main(argv: Sequence[str] | None = None) -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="pingproxy-files-") as work:
        for loop in ("uvloop", "asyncio"):
            server = start(loop, Path(work))
            try:
                share, kept = asyncio.run(starve(server))
                rows.append([loop, f"{share * 100:.1f} %", "yes" if kept else "NO",
                             "yes" if recovered(server) else "NO"])
            finally:
                server.stop()
    print(f"\nOut of file descriptors ({OPEN_FILES} open files, {2 * OPEN_FILES} connections "
          f"held): CPU share over {WINDOW_SECONDS:g} s")
    print(text_table(["loop", "CPU share of one core", "kept serving", "recovered"], rows))
    return 0 if all(row[2] == row[3] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

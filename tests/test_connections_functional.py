"""Hostile connections against the real pingproxy command: slow heads, idle connections, big
heads, malformed requests, compressed bombs, and running out of file descriptors.

Each test starts the command as a process and measures it from outside (/proc), with
margins for a busy two-core machine; each stops by itself within seconds.
"""

import asyncio
import gzip
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from pingproxy.config import Settings
from tests.conftest import ping_body
from tests.test_command_functional import wait_until_serving, workers_ready
from tests.test_limits_functional import raise_open_file_limit

LIMITS = Settings()
MEGABYTE = 1024 * 1024
SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"
GUARD_SECONDS = 10


class Process:
    """A pingproxy process on a free loopback port, its stderr in a file."""

    def __init__(self, port: int, log: Path, args: tuple[str, ...], open_files: int | None):
        self.port = port
        self.log = log
        # An open-files limit is set the way a shell's ulimit or systemd would: before start.
        limit = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, "
                 f"({open_files}, {open_files})); " if open_files else "")
        command = [sys.executable, "-c", limit + "import sys; from pingproxy.__main__ import "
                   "main; sys.argv[0] = 'pingproxy'; sys.exit(main())",
                   "--port", str(port), "--allow-private", *args]
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(30)
        finally:
            self.process.kill()
        return self.log.read_text(errors="replace")


@pytest.fixture
async def start(unused_tcp_port_factory, tmp_path):
    started: list[Process] = []

    async def start(*args: str, open_files: int | None = None) -> Process:
        proxy = Process(unused_tcp_port_factory(), tmp_path / f"stderr-{len(started)}.log", args,
                        open_files)
        started.append(proxy)
        await wait_until_serving(proxy.url("/healthz"), proxy.process)
        if "--workers" in args:
            await workers_ready(proxy.process, int(args[args.index("--workers") + 1]))
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


async def closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection, reading whatever it sends."""
    started = time.monotonic()
    await asyncio.wait_for(reader.read(), GUARD_SECONDS)
    return time.monotonic() - started


async def trickle(writer: asyncio.StreamWriter, data: bytes, seconds_per_byte: float) -> None:
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(seconds_per_byte)
    except ConnectionError:
        pass  # cut off, as it should be


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("sender", ["trickling", "stopped half-way"])
async def test_a_slow_or_unfinished_head_is_cut_off_at_the_header_timeout(start, workers,
                                                                          sender):
    proxy = await start("--workers", workers, "--header-timeout", "1", "--idle-timeout", "30")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    if sender == "trickling":
        sending = asyncio.create_task(trickle(writer, head, 0.05))
    else:
        writer.write(head[:30])
    try:
        seconds = await closed_after(reader)
    finally:
        writer.close()
        if sender == "trickling":
            sending.cancel()

    assert 0.8 <= seconds < 5


async def request_healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_SECONDS)
    length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))
    return head.partition(b"\r\n")[0] + b" " + await reader.readexactly(length)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_an_idle_keep_alive_connection_closes_after_the_idle_timeout(start, workers):
    proxy = await start("--workers", workers, "--header-timeout", "1", "--idle-timeout", "3")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        assert await request_healthz(reader, writer) == b"HTTP/1.1 200 OK ok"
        await asyncio.sleep(2)  # idle past the header timeout: the connection is still open
        assert await request_healthz(reader, writer) == b"HTTP/1.1 200 OK ok"
        seconds = await closed_after(reader)
    finally:
        writer.close()

    assert 2 <= seconds < 6


CONNECTIONS = 200


def largest_head() -> bytes:
    """A head as large as the limits allow, without the blank line that would end it."""
    target = b"/" + b"a" * (LIMITS.max_request_line_bytes - 1)
    fields = [f"X-Pad-{n:03}: ".encode() + b"v" * LIMITS.max_header_field_bytes
              for n in range(LIMITS.max_headers - 1)]
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", b"Host: x", *fields]) + b"\r\n"


async def still_open(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), 0.2)
    except TimeoutError:
        return True
    return False


async def healthz_status(proxy: Process) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/healthz"), timeout=aiohttp.ClientTimeout(5)) as answer:
            return answer.status


async def test_200_unfinished_heads_at_the_limits_add_at_most_64_mb(start):
    raise_open_file_limit(2 * CONNECTIONS + 200)
    proxy = await start()
    assert await healthz_status(proxy) == 200
    baseline = proxy.rss_bytes()

    connections = [await asyncio.open_connection("127.0.0.1", proxy.port)
                   for _ in range(CONNECTIONS)]
    try:
        for _, writer in connections:
            writer.write(largest_head())
        await asyncio.gather(*(writer.drain() for _, writer in connections))
        await asyncio.sleep(1)  # the server reads what the kernel holds
        grown = proxy.rss_bytes() - baseline
        held = await asyncio.gather(*(still_open(reader) for reader, _ in connections))
        answering = await healthz_status(proxy)
    finally:
        for _, writer in connections:
            writer.close()

    assert all(held), "a head within the limits was refused"
    assert answering == 200
    assert grown <= 64 * MEGABYTE, f"grew {grown / MEGABYTE:.0f} MB"


async def send_until_refused(proxy: Process, head: bytes,
                             ) -> tuple[bytes, asyncio.StreamWriter]:
    """Send head in pieces until the server refuses it: what the server answered, and the
    connection, which this side leaves open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for start in range(0, len(head), 64 * 1024):
            writer.write(head[start:start + 64 * 1024])
            await writer.drain()
        return await asyncio.wait_for(reader.read(), GUARD_SECONDS), writer
    except ConnectionError:  # the answer lost to the reset that closing unread data sends
        return b"", writer


def open_descriptors(proxy: Process) -> int:
    return len(os.listdir(f"/proc/{proxy.process.pid}/fd"))


async def test_200_heads_over_the_limits_are_refused_and_their_connections_closed_at_once(
        start):
    raise_open_file_limit(2 * CONNECTIONS + 200)
    proxy = await start()
    assert await healthz_status(proxy) == 200
    baseline = open_descriptors(proxy)
    # What aiohttp's own limits let through: 120 fields of 8 KB, about 1 MB a head.
    huge = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        f"X-Pad-{n:03}: ".encode() + b"v" * 8000 + b"\r\n" for n in range(120))

    sent = await asyncio.gather(*(send_until_refused(proxy, huge) for _ in range(CONNECTIONS)))
    await asyncio.sleep(0.5)
    still_open = open_descriptors(proxy) - baseline
    for _, writer in sent:
        writer.close()

    assert all(answer.split(b" ", 2)[1] in (b"400", b"431") for answer, _ in sent if answer)
    assert still_open <= 5, f"{still_open} connections still open"
    assert await healthz_status(proxy) == 200


BOMBS = 20


async def test_compressed_bombs_inflate_no_further_than_the_cap(start):
    proxy = await start()
    # Under the size cap on the wire, about 60 MB once inflated.
    bomb = gzip.compress(ping_body(SOURCE, TARGET) + b" " * (60 * MEGABYTE))
    assert len(bomb) < LIMITS.max_body_bytes

    async with aiohttp.ClientSession() as session:
        async def send() -> int:
            async with session.post(proxy.url("/http://127.0.0.1:9/webmention"), data=bomb,
                                    headers={"Content-Encoding": "gzip"}) as answer:
                return answer.status

        assert await send() == 413  # the first also loads what any request needs
        baseline = proxy.rss_bytes()
        statuses = await asyncio.wait_for(asyncio.gather(*(send() for _ in range(BOMBS))),
                                          GUARD_SECONDS)
    grown = proxy.rss_bytes() - baseline

    assert statuses == [413] * BOMBS
    # Less than one bomb inflated: each stops at the cap.
    assert grown <= 32 * MEGABYTE, f"grew {grown / MEGABYTE:.0f} MB"


SECRET = b"SECRET-RAW-BYTES"
MALFORMED = [
    b"GET /" + SECRET + b"\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad " + SECRET + b": v\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + SECRET + b"\x00\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + SECRET * 1000 + b"\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
    b"X-S: " + SECRET + b"\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
    b"X-S: " + SECRET + b"\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz" + SECRET + b"\r\n",
    b"GET / HTTP/9." + SECRET + b"\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_malformed_requests_get_400_and_one_warning_line_each(start, workers):
    proxy = await start("--workers", workers)

    answers = []
    for request in MALFORMED:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(request)
        answers.append(await asyncio.wait_for(reader.read(), GUARD_SECONDS))
        writer.close()
    log = proxy.stop()

    assert all(answer.split(b" ", 2)[1] == b"400" for answer in answers)
    lines = [line for line in log.splitlines() if "pingproxy.inbound" in line]
    assert len(lines) == len(MALFORMED), log
    assert all(" WARNING pingproxy.inbound " in line and "127.0.0.1" in line for line in lines)
    assert "ERROR" not in log and "Traceback" not in log and SECRET.decode() not in log


OPEN_FILES = 64


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_out_of_file_descriptors_it_keeps_serving_quietly_and_recovers(start, loop):
    proxy = await start("--event-loop", loop, "--header-timeout", "60", "--idle-timeout", "60",
                        open_files=OPEN_FILES)
    keeper = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await request_healthz(*keeper) == b"HTTP/1.1 200 OK ok"
    started = time.monotonic()

    # Twice the limit: the rest wait in the listen backlog, or are closed by libuv.
    hogs = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2 * OPEN_FILES)]
    for _, writer in hogs:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    await asyncio.sleep(0.5)
    cpu_before, saturated = proxy.cpu_seconds(), time.monotonic()
    await asyncio.sleep(3)
    cpu_share = (proxy.cpu_seconds() - cpu_before) / (time.monotonic() - saturated)
    kept = await request_healthz(*keeper)
    for _, writer in hogs:
        writer.close()
    keeper[1].close()
    recovered = None
    for _ in range(20):  # asyncio retries accept() a second after it failed
        await asyncio.sleep(0.5)
        try:
            recovered = await healthz_status(proxy)
            break
        except (aiohttp.ClientError, TimeoutError):
            continue
    seconds = time.monotonic() - started
    log = proxy.stop()

    assert cpu_share < 0.10
    assert kept == b"HTTP/1.1 200 OK ok"
    assert recovered == 200
    assert "Traceback" not in log
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    assert len(warnings) <= 1 + seconds, log[:2000]
    assert all("cannot accept new connections" in line for line in warnings)

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
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from bench.hostile_heads import HEADS, REFUSED, SETTLE_SECONDS, fire_round, send_head
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

    def bytes_read(self) -> int:
        """Bytes the process has read through read() (libuv's way to read a socket; asyncio's
        recv() is not counted)."""
        io = Path(f"/proc/{self.process.pid}/io").read_text()
        return int(re.search(r"^rchar: (\d+)", io, re.MULTILINE).group(1))

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

    # Closed by the server (closed_after's wait is the hang guard), not before the timeout.
    assert seconds >= 0.8


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

    assert seconds >= 2  # closed by the server after its idle timeout, never before


CONNECTIONS = 200


def largest_head() -> bytes:
    """A head as large as the limits allow, without the blank line that would end it: the
    whole head's cap, in fields within their own limits."""
    return head_of(LIMITS.max_head_bytes, finished=False)


def head_of(size: int, *, finished: bool = True) -> bytes:
    """A GET /healthz head of exactly size bytes, its fields each within the field limit."""
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    end = b"\r\n" if finished else b""
    fields, left = [], size - len(start) - len(end)
    while left > 0:
        name = f"X-Pad-{len(fields):03}: ".encode()
        value = min(LIMITS.max_header_field_bytes - len(name), left - len(name) - 2)
        fields.append(name + b"v" * value + b"\r\n")
        left -= len(fields[-1])
    head = start + b"".join(fields) + end
    assert len(head) == size and len(fields) < LIMITS.max_headers - 2
    return head


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


async def test_200_unfinished_heads_at_the_total_cap_add_at_most_64_mb(start):
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

    # Twice the limit: the rest wait in the listen backlog, or are closed by libuv. (What it
    # costs meanwhile, a share of a core, is a figure of make bench, not a test's.)
    hogs = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2 * OPEN_FILES)]
    for _, writer in hogs:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    await asyncio.sleep(3)
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

    assert kept == b"HTTP/1.1 200 OK ok"
    assert recovered == 200
    assert "Traceback" not in log
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    assert len(warnings) <= 1 + seconds, log[:2000]
    assert all("cannot accept new connections" in line for line in warnings)


async def exchange(proxy: Process, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), GUARD_SECONDS)
    finally:
        writer.close()


async def test_a_head_at_the_total_cap_is_served_and_one_byte_more_gets_431_and_a_close(
        start):
    proxy = await start()

    at_cap = await exchange(proxy, head_of(LIMITS.max_head_bytes))
    over = await exchange(proxy, head_of(LIMITS.max_head_bytes + 1))
    log = proxy.stop()

    assert at_cap.startswith(b"HTTP/1.1 200 OK") and at_cap.endswith(b"ok")
    status_line, _, rest = over.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert body.count(b"\n") == 1 and str(LIMITS.max_head_bytes).encode() in body
    [line] = [line for line in log.splitlines() if "pingproxy.inbound" in line]
    assert " WARNING " in line and "127.0.0.1" in line and "Traceback" not in log


async def test_the_total_cap_is_a_setting(start):
    proxy = await start("--max-head", "2000")

    answer = await exchange(proxy, head_of(2001))

    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_body_arriving_after_its_head_and_a_second_request_are_both_served(start):
    proxy = await start()
    body = ping_body(SOURCE, TARGET)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(f"POST /http://127.0.0.1:9/webmention HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        await asyncio.sleep(0.2)  # the head alone: the guard pauses reading at its end
        writer.write(body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_SECONDS)
        length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))
        answer = await asyncio.wait_for(reader.readexactly(length), GUARD_SECONDS)
        second = await request_healthz(reader, writer)
    finally:
        writer.close()

    assert head.startswith(b"HTTP/1.1 200 ") and b"<fault>" in answer
    assert b"-32700" not in answer  # the whole body was read: no parse error
    assert second == b"HTTP/1.1 200 OK ok"


# One read of a connection: uvloop's is 256,000 bytes, asyncio's 256 KiB.
READ_BUFFER_BYTES = 256 * 1024
# Whatever else the server reads meanwhile.
READ_SLACK_BYTES = 64 * 1024


async def bytes_read_for(proxy: Process, head: bytes) -> tuple[str, int]:
    """Send head (and whatever follows it) on a new connection until the server ends it:
    how it ended, and how many bytes the server process read meanwhile."""
    await send_head(proxy.port, HEADS["120 fields of 8,100 bytes"])  # everything loaded
    before = proxy.bytes_read()
    ended = await send_head(proxy.port, head)
    await asyncio.sleep(0.5)
    return ended, proxy.bytes_read() - before


async def test_a_head_past_the_total_cap_is_not_read_beyond_one_read_past_the_cap(start):
    proxy = await start("--event-loop", "uvloop")

    ended, read = await bytes_read_for(proxy, b"GET / HTTP/1.1\r\nHost: x\r\n" * 200_000)
    log = proxy.stop()

    assert ended in ("431", "reset")
    assert read <= LIMITS.max_head_bytes + READ_BUFFER_BYTES + READ_SLACK_BYTES, read
    counted = [int(n) for n in re.findall(r"\((\d+) bytes read of it\)", log)]
    assert counted and max(counted) <= LIMITS.max_head_bytes + READ_BUFFER_BYTES


async def test_a_head_aiohttp_refuses_is_not_read_beyond_one_read_past_its_end(start):
    proxy = await start("--event-loop", "uvloop")
    refused = head_of(4000).replace(b"Connection: close\r\n", b"X-A: 1\r\n" * 40)
    garbage = b"x" * (4 * MEGABYTE)

    ended, read = await bytes_read_for(proxy, refused + garbage)

    assert ended in ("400", "reset")
    assert read <= len(refused) + READ_BUFFER_BYTES + READ_SLACK_BYTES, read


ROUNDS = 3


@pytest.mark.parametrize("head", HEADS)
async def test_round_after_round_of_a_hostile_head_memory_stays_within_64_mb_of_idle(start,
                                                                                     head):
    raise_open_file_limit(2 * CONNECTIONS + 200)
    # A header timeout longer than the answer's wait: every head is refused, not timed out.
    proxy = await start("--header-timeout", "60")
    assert await healthz_status(proxy) == 200
    idle = proxy.rss_bytes()

    after, ended = [], Counter()
    for _ in range(ROUNDS):
        ended += await fire_round(proxy.port, HEADS[head], CONNECTIONS)
        await asyncio.sleep(SETTLE_SECONDS)
        after.append(proxy.rss_bytes())
    answering = await healthz_status(proxy)

    assert set(ended) <= set(REFUSED) and sum(ended.values()) == ROUNDS * CONNECTIONS, ended
    assert max(after) - idle <= 64 * MEGABYTE, [mb // MEGABYTE for mb in after]
    assert after[-1] - after[0] <= 16 * MEGABYTE, [mb // MEGABYTE for mb in after]
    assert answering == 200

"""The load generator: its own process, raw HTTP/1.1 over asyncio, as cheap a request as
Python gets.

Why not aiohttp's client: on 2 cores the generator shares the CPU with the proxy and the
endpoint, and every microsecond it spends per request is taken from them and dilutes the
proxy's ratio to the baseline towards 1. Requests are prepared bytes written on keep-alive
connections; an answer is read by its Content-Length (every server measured sends one).

``python -m bench.loadgen SPEC.json`` prints JSON lines: ``{"event": "measuring"}`` when the
measured window opens, ``{"event": "stopped"}`` when it closes (the runner reads the
proxy's CPU time at both), then ``{"event": "result", ...}``.

Spec keys: port, requests (a list of {path, body, content_type}, sent in turn), expect
(text every answer must contain), and either mode "steady" with concurrency,
warmup_seconds, duration_seconds and max_requests, or mode "burst" with count and
timeout_seconds (count connections, one request each, all at once).
"""

import asyncio
import itertools
import json
import re
import resource
import sys
import time
from collections.abc import Iterator

from bench.stats import latency_summary

# Answers still in flight when the window closes may take this long before connections close.
DRAIN_SECONDS = 5.0
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)", re.IGNORECASE)
_HEADER_END = b"\r\n\r\n"


def build_requests(port: int, requests: list[dict]) -> list[bytes]:
    """The HTTP/1.1 bytes of each request in the spec."""
    prepared = []
    for item in requests:
        body = item["body"].encode()
        head = (f"POST {item['path']} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: {item['content_type']}\r\nContent-Length: {len(body)}\r\n\r\n")
        prepared.append(head.encode() + body)
    return prepared


class Recorder:
    """What the connections share: the phase, the latencies of the window, the error counts."""

    def __init__(self, expect: bytes, *, max_requests: int | None = None) -> None:
        self.expect = expect
        self.max_requests = max_requests
        self.measuring = False
        self.stopped = False
        self.latencies_seconds: list[float] = []
        self.errors = 0
        self.last_answer_at = 0.0

    def answered(self, latency_seconds: float, status: int, body: bytes) -> None:
        self.last_answer_at = time.perf_counter()
        if not self.measuring:
            return
        if status >= 300 or self.expect not in body:
            self.errors += 1
        self.latencies_seconds.append(latency_seconds)
        if self.max_requests is not None and len(self.latencies_seconds) >= self.max_requests:
            self.stopped = True

    def failed(self) -> None:
        if self.measuring:
            self.errors += 1


class Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the whole answer, send the next, until stopped."""

    def __init__(self, requests: Iterator[bytes], recorder: Recorder, *, one_shot: bool = False):
        self._requests = requests
        self._recorder = recorder
        self._one_shot = one_shot
        self._buffer = bytearray()
        self._sent_at = 0.0
        self._transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._send()

    def _send(self) -> None:
        if self._recorder.stopped:
            self._transport.close()
            return
        self._sent_at = time.perf_counter()
        self._transport.write(next(self._requests))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        header_end = self._buffer.find(_HEADER_END)
        if header_end < 0:
            return
        length = _CONTENT_LENGTH.search(self._buffer, 0, header_end + 2)
        if length is None:  # no Content-Length: an answer this generator cannot frame
            self._recorder.failed()
            self._transport.close()
            return
        end = header_end + 4 + int(length[1])
        if len(self._buffer) < end:
            return
        latency = time.perf_counter() - self._sent_at
        status = int(self._buffer[9:12])
        self._recorder.answered(latency, status, bytes(self._buffer[header_end + 4:end]))
        del self._buffer[:end]
        if self._one_shot:
            self._transport.close()
        else:
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._recorder.stopped and not self._one_shot:
            self._recorder.failed()
        if not self.closed.done():
            self.closed.set_result(None)


async def _keep_connected(port: int, requests: Iterator[bytes], recorder: Recorder) -> None:
    """Hold one connection open for the whole run, opening a new one if the server drops it."""
    loop = asyncio.get_running_loop()
    while not recorder.stopped:
        try:
            _, connection = await loop.create_connection(
                lambda: Connection(requests, recorder), "127.0.0.1", port)
        except OSError:
            recorder.failed()
            await asyncio.sleep(0.01)
            continue
        await connection.closed


async def run_steady(spec: dict) -> dict:
    """Fixed concurrency for warm-up plus the measured window; the summary of the window."""
    recorder = Recorder(spec["expect"].encode(), max_requests=spec["max_requests"])
    requests = itertools.cycle(build_requests(spec["port"], spec["requests"]))
    slots = [asyncio.create_task(_keep_connected(spec["port"], requests, recorder))
             for _ in range(spec["concurrency"])]
    await asyncio.sleep(spec["warmup_seconds"])
    _emit({"event": "measuring"})
    cpu_before, started = _own_cpu_seconds(), time.perf_counter()
    recorder.measuring = True
    deadline = started + spec["duration_seconds"]
    while not recorder.stopped and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    recorder.stopped = True
    elapsed = time.perf_counter() - started
    recorder.measuring = False
    _emit({"event": "stopped"})
    cpu_seconds = _own_cpu_seconds() - cpu_before
    await asyncio.wait(slots, timeout=DRAIN_SECONDS)
    for slot in slots:
        slot.cancel()
    answered = len(recorder.latencies_seconds)
    return {
        "answered": answered,
        "errors": recorder.errors,
        "elapsed_seconds": elapsed,
        "requests_per_second": answered / elapsed,
        "loadgen_cpu_seconds_per_request": cpu_seconds / answered if answered else None,
        **latency_summary(recorder.latencies_seconds),
    }


async def run_burst(spec: dict) -> dict:
    """count connections at once, one request each: wall time until the last answer."""
    recorder = Recorder(spec["expect"].encode())
    recorder.measuring = True
    requests = itertools.cycle(build_requests(spec["port"], spec["requests"]))
    loop = asyncio.get_running_loop()
    started = time.perf_counter()

    async def one() -> None:
        try:
            _, connection = await loop.create_connection(
                lambda: Connection(requests, recorder, one_shot=True), "127.0.0.1", spec["port"])
        except OSError:
            recorder.failed()
            return
        await connection.closed

    tasks = [asyncio.create_task(one()) for _ in range(spec["count"])]
    _, pending = await asyncio.wait(tasks, timeout=spec["timeout_seconds"])
    for task in pending:
        task.cancel()
    recorder.stopped = True
    answered = len(recorder.latencies_seconds)
    return {
        "sent": spec["count"],
        "answered": answered,
        "errors": recorder.errors + len(pending),
        "wall_seconds": (recorder.last_answer_at or time.perf_counter()) - started,
        **latency_summary(recorder.latencies_seconds),
    }


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main() -> None:
    """Run the spec named on the command line and print its result as the last JSON line."""
    with open(sys.argv[1], encoding="utf-8") as file:
        spec = json.load(file)
    run = run_burst if spec["mode"] == "burst" else run_steady
    _emit({"event": "result", **asyncio.run(run(spec))})


if __name__ == "__main__":
    main()

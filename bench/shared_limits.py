"""Scenario 5 (issue 19): what counting the limits in Redis costs a pingback.

Four pingproxy processes, measured interleaved at one concurrency in the same run: limits off;
limits on, counted in memory; the same limits counted in a real redis-server (Debian's, on
127.0.0.1, no persistence); and --redis-url set with every limit off, which must cost nothing.
The limits are a public instance's, wide enough that the load generator (one client address)
is never refused: every pingback takes its client's rate and its endpoint host's slot.
"""

import shutil
import time
from typing import TYPE_CHECKING

import redis

from bench.processes import READY_TIMEOUT_SECONDS, Server, free_port
from bench.stats import ratio

if TYPE_CHECKING:
    from bench.run import Bench

# One client address sends every request: a rate it never reaches, as a window in Redis of
# that many entries; slots well above the concurrency.
LIMIT_FLAGS = ("--rate-limit", "10000/s", "--max-per-endpoint-host", "1000", "--max-checks", "0")
NO_LIMIT_FLAGS = ("--max-checks", "0")
REDIS_PROBE_TIMEOUT_SECONDS = 1.0
REDIS_POLL_SECONDS = 0.05
# Issue 19's goal: Redis adds at most this share of CPU per pingback with the limits on.
REDIS_ADDED_CPU_LIMIT = 0.20
# ... and --redis-url with every limit off costs nothing: within the noise of a row.
UNUSED_REDIS_CPU_RATIO_LIMIT = 1.05
ROWS = (("off", "none"), ("on", "memory"), ("on", "Redis"), ("off", "Redis"))


def start_redis(work) -> tuple[Server, str]:
    """Debian's redis-server on a free loopback port, nothing written to disk; its URL."""
    port = free_port()
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is missing: `make bench` installs it (Debian)")
    command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(work)]
    return Server.start(f"redis-{port}", command, port, work), f"redis://127.0.0.1:{port}/0"


def wait_for_redis(url: str) -> None:
    """Until redis-server answers PING (bounded by the processes' ready timeout)."""
    with redis.Redis.from_url(url, socket_timeout=REDIS_PROBE_TIMEOUT_SECONDS) as client:
        for _ in range(int(READY_TIMEOUT_SECONDS / REDIS_POLL_SECONDS)):
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(REDIS_POLL_SECONDS)
    raise RuntimeError("redis-server did not answer")


def measure(bench: "Bench", endpoint: Server, concurrency: int) -> list[dict]:
    """Scenario 5's rows: each (limits, store) at one concurrency."""
    # bench.run imports this module, so its names are taken here, when it runs.
    from bench.run import PINGPROXY_SUCCESS, XML_CONTENT_TYPE, Subject, ping_body, pingproxy_path

    redis_server, url = start_redis(bench.work)
    subjects = []
    try:
        wait_for_redis(url)
        pings = [{"path": pingproxy_path(endpoint), "body": ping_body(),
                  "content_type": XML_CONTENT_TYPE}]
        for limits, store in ROWS:
            flags = LIMIT_FLAGS if limits == "on" else NO_LIMIT_FLAGS
            if store == "Redis":
                flags = (*flags, "--redis-url", url, "--redis-prefix", "bench:")
            proxy, _ = bench.start_pingproxy(endpoint, *flags)
            subjects.append(Subject({"path": "pingproxy", "limits": limits, "store": store},
                                    proxy, pings, PINGPROXY_SUCCESS))
        return bench.compare(subjects, [concurrency])
    finally:
        bench.stop(*(subject.server for subject in subjects))
        redis_server.stop()


def _cpu(rows: list[dict], limits: str, store: str) -> float | None:
    for row in rows:
        if row.get("limits") == limits and row.get("store") == store:
            return row.get("server_cpu_us_per_request")
    return None


def added_by_redis(rows: list[dict]) -> float | None:
    """CPU per pingback with the limits in Redis over the same limits in memory, less one."""
    share = ratio(_cpu(rows, "on", "Redis"), _cpu(rows, "on", "memory"))
    return None if share is None else share - 1


def unused_redis_ratio(rows: list[dict]) -> float | None:
    """CPU per pingback with --redis-url and no limit on, over no Redis at all."""
    return ratio(_cpu(rows, "off", "Redis"), _cpu(rows, "off", "none"))


def table_rows(rows: list[dict]) -> list[list[object]]:
    """limits, store, CPU µs per pingback, and its ratio to limits off without Redis."""
    floor = _cpu(rows, "off", "none")
    return [[row["limits"], row["store"], row.get("requests_per_second"),
             row.get("server_cpu_us_per_request"), row.get("p50_ms"),
             ratio(row.get("server_cpu_us_per_request"), floor), row.get("errors")]
            for row in rows]


TABLE_HEADERS = ["limits", "counted in", "req/s", "CPU µs/req", "p50 ms",
                 "CPU/req vs limits off", "errors"]

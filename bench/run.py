"""Run every scenario on loopback and write the tables, the JSON and BENCHMARKS.md.

``python -m bench.run [--quick]`` from the repository (``make bench`` does it in the venv).
Each server and the load generator is its own process; every load is bounded in time and
count and reaches only 127.0.0.1.
"""

import argparse
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode

import psutil

from bench import report, shared_limits
from bench.processes import (
    REPOSITORY_DIRECTORY,
    Server,
    free_port,
    post,
    raise_open_files_limit,
    run_load,
)
from bench.servers import ENDPOINT_PATH, TARGET_PAGE_PREFIX
from bench.stats import MICROSECONDS_PER_SECOND, median_of_runs

SOURCE = "http://blog.example/2026/11/a-post"
TARGET = "http://site.example/notes/1"
XML_CONTENT_TYPE = "text/xml"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# What each kind of server's answer must contain to count as answered correctly.
PINGPROXY_SUCCESS = "forwarded as a WebMention"
ENDPOINT_SUCCESS = "queued"
FAULT = "<fault>"
BARE_SUCCESS = "OK"
NO_DISCOVERY_FAULT = b"names no valid WebMention endpoint"
DISCOVERY_TARGETS = 16
SLOW_ENDPOINT_DELAY_SECONDS = 1.0
SLOW_PINGBACKS = 1000
SLOW_TIMEOUT_SECONDS = 30.0
# Room above the 1 000 slow pingbacks; the default cap (1 024) is only just enough.
SLOW_MAX_INFLIGHT = 2048
IDLE_SETTLE_SECONDS = 0.5
# A count bound on top of the time bound: no steady run sends more than this.
MAX_REQUESTS_PER_RUN = 2_000_000


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how often each measurement runs."""

    warmup_seconds: float
    duration_seconds: float
    repeats: int
    startup_repeats: int
    concurrency_levels: tuple[int, ...] = (1, 16, 128)
    junk_concurrency: int = 16
    discovery_concurrency: int = 16
    shared_limits_concurrency: int = 16


FULL = Plan(warmup_seconds=2.0, duration_seconds=5.0, repeats=3, startup_repeats=3)
QUICK = Plan(warmup_seconds=0.3, duration_seconds=1.0, repeats=1, startup_repeats=1)


def ping_body(source: str = SOURCE, target: str = TARGET, method: str = "pingback.ping") -> str:
    """An XML-RPC call as Python's xmlrpc.client writes it."""
    return xmlrpc.client.dumps((source, target), method)


def bad_url_requests(endpoint_path: str) -> list[dict]:
    """Issue 13's junk: a well-formed pingback.ping whose source is no URL, refused with a
    fault by pingproxy (fault 16); the cheapest refusal that still parses the whole call."""
    return [{"path": endpoint_path, "body": ping_body(source="not a url"),
             "content_type": XML_CONTENT_TYPE}]


def junk_requests(endpoint_path: str) -> list[dict]:
    """What spam and broken senders send: every one answered with a fault, nothing forwarded."""
    valid = ping_body()
    return [
        {"path": endpoint_path, "body": valid[: len(valid) // 2], "content_type": XML_CONTENT_TYPE},
        {"path": endpoint_path, "body": ping_body(method="weblogUpdates.ping"),
         "content_type": XML_CONTENT_TYPE},
        {"path": endpoint_path, "body": ping_body(source="not a url", target="javascript:x"),
         "content_type": XML_CONTENT_TYPE},
        {"path": "/not-an-endpoint", "body": valid, "content_type": XML_CONTENT_TYPE},
        {"path": endpoint_path, "body": urlencode({"source": SOURCE, "target": TARGET}),
         "content_type": FORM_CONTENT_TYPE},
        {"path": endpoint_path, "body": xmlrpc.client.dumps(([],), "system.multicall"),
         "content_type": XML_CONTENT_TYPE},
    ]


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing measured: its label fields, its server, what it is sent, what answers contain."""

    label: dict
    server: Server
    requests: list[dict]
    expect: str


class Bench:
    """One benchmark run: the plan, a scratch directory for logs, and the servers running."""

    def __init__(self, plan: Plan, work_directory: Path) -> None:
        self.plan = plan
        self.work = work_directory
        self.running: list[Server] = []
        self.help_text = subprocess.run(
            [sys.executable, "-m", "pingproxy", "serve", "--help"], capture_output=True, text=True,
            check=True, timeout=60).stdout

    def supports(self, flag: str) -> bool:
        return flag in self.help_text

    # --- starting and stopping servers ---------------------------------------------------

    def _start(self, name: str, command: list[str], port: int) -> Server:
        server = Server.start(name, command, port, self.work)
        self.running.append(server)
        return server

    def stop(self, *servers: Server) -> None:
        for server in servers:
            server.stop()
            self.running.remove(server)

    def start_endpoint(self, *, delay_seconds: float = 0.0) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "bench.servers", "endpoint", "--port", str(port),
                   "--delay-seconds", str(delay_seconds)]
        server = self._start(f"endpoint-{port}", command, port)
        probe = (ENDPOINT_PATH, urlencode({"source": SOURCE, "target": TARGET}).encode(),
                 FORM_CONTENT_TYPE)
        server.wait_until_answering(lambda status, _: status == 202, probe)
        return server

    def start_helper(self, kind: str, *extra: str) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "bench.servers", kind, "--port", str(port), *extra]
        server = self._start(f"{kind}-{port}", command, port)
        server.wait_until_answering(lambda status, _: status < 300,
                                    ("/", ping_body().encode(), XML_CONTENT_TYPE))
        return server

    def start_pingproxy(self, endpoint: Server, *extra: str,
                        wrapper: Sequence[str] = ()) -> tuple[Server, float]:
        """pingproxy serving endpoint, run by wrapper if any (a profiler); with the seconds
        from start to its first forwarded answer."""
        port = free_port()
        command = [*wrapper, sys.executable, "-m", "pingproxy", "--host", "127.0.0.1",
                   "--port", str(port), "--allow-private", *extra]
        server = self._start(f"pingproxy-{port}", command, port)
        probe = (pingproxy_path(endpoint), ping_body().encode(), XML_CONTENT_TYPE)
        seconds = server.wait_until_answering(
            lambda status, body: status == 200 and PINGPROXY_SUCCESS.encode() in body, probe)
        return server, seconds

    # --- measuring ---------------------------------------------------------------------

    def once(self, subject: Subject, concurrency: int) -> dict:
        """One fixed-concurrency run: the generator's figures, the server's CPU per request,
        and the CPU the rest of the machine used meanwhile (other processes, not ours)."""
        spec = {"mode": "steady", "port": subject.server.port, "requests": subject.requests,
                "expect": subject.expect, "concurrency": concurrency,
                "warmup_seconds": self.plan.warmup_seconds,
                "duration_seconds": self.plan.duration_seconds,
                "max_requests": MAX_REQUESTS_PER_RUN}
        window: list[tuple[float, float, float]] = []

        def sample() -> None:
            window.append((subject.server.cpu_seconds(),
                           sum(server.cpu_seconds() for server in self.running),
                           machine_busy_cpu_seconds()))

        result = run_load(spec, self.work, on_window_open=sample, on_window_close=sample)
        (server_before, ours_before, busy_before), (server_after, ours_after, busy_after) = window
        answered = result["answered"]
        if answered:
            result["server_cpu_us_per_request"] = (
                (server_after - server_before) / answered * MICROSECONDS_PER_SECOND)
        generator_cpu = (result["loadgen_cpu_seconds_per_request"] or 0.0) * answered
        others = (busy_after - busy_before) - (ours_after - ours_before) - generator_cpu
        result["other_cpu_percent"] = max(0.0, others / result["elapsed_seconds"] * 100)
        return result

    def compare(self, subjects: list[Subject], concurrency_levels: Sequence[int]) -> list[dict]:
        """Each subject at each level, runs interleaved (A B A B ...) so that whatever else
        the machine does meanwhile weighs on all alike; a row is the median of its runs."""
        rows = []
        for concurrency in concurrency_levels:
            runs: list[list[dict]] = [[] for _ in subjects]
            for subject in subjects:
                subject.server.reset_peak_memory()
            for _ in range(self.plan.repeats):
                for subject, subject_runs in zip(subjects, runs, strict=True):
                    subject_runs.append(self.once(subject, concurrency))
            for subject, subject_runs in zip(subjects, runs, strict=True):
                rows.append({**subject.label, "concurrency": concurrency,
                             **median_of_runs(subject_runs),
                             "peak_rss_mb": subject.server.peak_memory_megabytes()})
                print(report.progress_line(rows[-1]), flush=True)
        return rows

    def startup(self, endpoint: Server, *extra: str) -> dict:
        """Median start-up-to-first-answer time and idle memory over the plan's repeats."""
        runs = []
        for _ in range(self.plan.startup_repeats):
            server, seconds = self.start_pingproxy(endpoint, *extra)
            time.sleep(IDLE_SETTLE_SECONDS)
            runs.append({"startup_seconds": seconds, "idle_rss_mb": server.memory_megabytes()})
            self.stop(server)
        return median_of_runs(runs)

    # --- scenarios ---------------------------------------------------------------------

    def throughput(self, endpoint: Server) -> list[dict]:
        """Scenario 1: direct, pass-through and pingproxy at each concurrency level."""
        form = urlencode({"source": SOURCE, "target": TARGET})
        pass_through = self.start_helper("pass-through", "--upstream", url_of(endpoint))
        subjects = [
            Subject({"path": "direct", "workers": None}, endpoint,
                    [{"path": ENDPOINT_PATH, "body": form, "content_type": FORM_CONTENT_TYPE}],
                    ENDPOINT_SUCCESS),
            Subject({"path": "pass-through", "workers": None}, pass_through,
                    [{"path": "/", "body": ping_body(), "content_type": XML_CONTENT_TYPE}],
                    ENDPOINT_SUCCESS),
        ]
        missing = []
        pings = [{"path": pingproxy_path(endpoint), "body": ping_body(),
                  "content_type": XML_CONTENT_TYPE}]
        for workers in (1, 2):
            if workers > 1 and not self.supports("--workers"):
                missing.append({"path": "pingproxy", "workers": workers,
                                "unavailable": "n/a (no --workers yet)"})
                continue
            proxy, _ = self.start_pingproxy(endpoint, *workers_flag(workers))
            subjects.append(Subject({"path": "pingproxy", "workers": workers}, proxy, pings,
                                    PINGPROXY_SUCCESS))
        try:
            return self.compare(subjects, self.plan.concurrency_levels) + missing
        finally:
            self.stop(*(subject.server for subject in subjects[1:]))

    def slow_endpoint(self) -> list[dict]:
        """Scenario 2: 1 000 requests at once to an endpoint that takes 1 s to answer: straight
        to it (the same client, the same count), then as pingbacks through pingproxy.

        The first pingback burst meets a fresh proxy, which must open every connection to the
        endpoint (as after a quiet spell); the second finds them pooled. Wall time counts from
        before the first connect to the last answer; latency from each request's write.
        """
        slow = self.start_endpoint(delay_seconds=SLOW_ENDPOINT_DELAY_SECONDS)
        proxy, _ = self.start_pingproxy(slow, "--max-inflight", str(SLOW_MAX_INFLIGHT))
        form = urlencode({"source": SOURCE, "target": TARGET})
        bursts = [
            ("direct", "fresh", slow, ENDPOINT_SUCCESS,
             {"path": ENDPOINT_PATH, "body": form, "content_type": FORM_CONTENT_TYPE}),
            ("pingproxy", "cold", proxy, PINGPROXY_SUCCESS,
             {"path": pingproxy_path(slow), "body": ping_body(), "content_type": XML_CONTENT_TYPE}),
        ]
        bursts.append(("pingproxy", "warm", *bursts[1][2:]))
        rows = []
        try:
            for path, pool, server, expect, request in bursts:
                spec = {"mode": "burst", "port": server.port, "count": SLOW_PINGBACKS,
                        "timeout_seconds": SLOW_TIMEOUT_SECONDS, "expect": expect,
                        "requests": [request]}
                server.reset_peak_memory()
                result = run_load(spec, self.work)
                rows.append({"path": path, "pool": pool, **result,
                             "peak_rss_mb": server.peak_memory_megabytes()})
        finally:
            self.stop(proxy, slow)
        return rows

    def discovery(self, endpoint: Server) -> list[dict]:
        """Scenario 3: POST / finds each target's endpoint, with the cache on, then off."""
        targets = [f"{url_of(endpoint, TARGET_PAGE_PREFIX)}{n}" for n in range(DISCOVERY_TARGETS)]
        pings = [{"path": "/", "body": ping_body(target=target), "content_type": XML_CONTENT_TYPE}
                 for target in targets]
        subjects, missing = [], []
        for cache, extra in (("on", ()), ("off", ("--discovery-cache-seconds", "0"))):
            label = {"path": "pingproxy discovery", "cache": cache}
            if extra and not self.supports(extra[0]):
                missing.append({**label, "unavailable": f"n/a (no {extra[0]} yet)"})
                continue
            proxy, _ = self.start_pingproxy(endpoint, *extra)
            reason = discovery_missing(proxy, pings[0]["body"])
            if reason:
                missing.append({**label, "unavailable": reason})
                self.stop(proxy)
            else:
                subjects.append(Subject(label, proxy, pings, PINGPROXY_SUCCESS))
        try:
            return self.compare(subjects, [self.plan.discovery_concurrency]) + missing
        finally:
            self.stop(*(subject.server for subject in subjects))

    def junk(self, endpoint: Server) -> list[dict]:
        """Scenario 4: junk at pingproxy and at a bare handler answering 200: the bad-URL call
        of issue 13's goal, then a mixed flood of everything spam and broken senders send."""
        path = pingproxy_path(endpoint)
        proxy, _ = self.start_pingproxy(endpoint)
        bare = self.start_helper("bare")
        rows = []
        try:
            for load, requests in (("bad URL", bad_url_requests(path)),
                                   ("mixed", junk_requests(path))):
                subjects = [Subject({"path": "pingproxy", "load": load}, proxy, requests, FAULT),
                            Subject({"path": "bare handler", "load": load}, bare, requests,
                                    BARE_SUCCESS)]
                rows += self.compare(subjects, [self.plan.junk_concurrency])
            return rows
        finally:
            self.stop(proxy, bare)

    def startups(self, endpoint: Server) -> list[dict]:
        """Start-up to first forwarded answer, and idle memory, for each worker count."""
        rows = []
        for workers in (1, 2):
            if workers > 1 and not self.supports("--workers"):
                rows.append({"workers": workers, "unavailable": "n/a (no --workers yet)"})
                continue
            rows.append({"workers": workers, **self.startup(endpoint, *workers_flag(workers))})
        return rows


def machine_busy_cpu_seconds() -> float:
    """CPU seconds all processes have spent since boot (interrupt time, which loopback
    traffic causes but charges to no process, left out)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system


def workers_flag(workers: int) -> tuple[str, ...]:
    return ("--workers", str(workers)) if workers > 1 else ()


def url_of(server: Server, path: str = ENDPOINT_PATH) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def pingproxy_path(endpoint: Server) -> str:
    """The path form of a pingback URL naming endpoint (README: "path (recommended)")."""
    return "/" + url_of(endpoint)


def discovery_missing(proxy: Server, body: str) -> str | None:
    """None when POST / forwards by discovery; otherwise why the discovery rows are n/a."""
    status, answer = post(proxy.port, "/", body.encode(), XML_CONTENT_TYPE)
    if status == 200 and PINGPROXY_SUCCESS.encode() in answer:
        return None
    if NO_DISCOVERY_FAULT in answer:
        return "n/a (no discovery yet: POST / answers fault 33)"
    return f"n/a (POST / answered HTTP {status}: {answer[:120]!r})"


def run(plan: Plan, work: Path) -> dict:
    """Every scenario, in an order that keeps at most one proxy running at a time."""
    bench = Bench(plan, work)
    results: dict = {"open_files_limit": raise_open_files_limit()}
    endpoint = bench.start_endpoint()
    try:
        results["startup"] = bench.startups(endpoint)
        results["throughput"] = bench.throughput(endpoint)
        results["junk"] = bench.junk(endpoint)
        results["discovery"] = bench.discovery(endpoint)
        results["shared_limits"] = shared_limits.measure(bench, endpoint,
                                                         plan.shared_limits_concurrency)
    finally:
        bench.stop(endpoint)
    results["slow_endpoint"] = bench.slow_endpoint()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables; write the JSON and BENCHMARKS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in under a minute: short windows, no repeats")
    parser.add_argument("--json", type=Path,
                        default=REPOSITORY_DIRECTORY / "bench" / "results.json",
                        help="where to write the results as JSON (default: %(default)s)")
    parser.add_argument("--markdown", type=Path, default=REPOSITORY_DIRECTORY / "BENCHMARKS.md",
                        help="the file whose generated section is replaced (default: %(default)s)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pingproxy-bench-") as work:
        results = run(plan, Path(work))
    results["plan"] = asdict(plan)
    results["machine"] = report.machine()
    results["command"] = "make bench" + (" ARGS=--quick" if args.quick else "")
    results["wall_seconds"] = time.perf_counter() - started
    results["targets"] = report.judged(results)
    print(report.terminal(results))
    report.write_json(results, args.json)
    report.update_markdown(results, args.markdown)
    print(f"\nwrote {args.json} and {args.markdown} in {results['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

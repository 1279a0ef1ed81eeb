"""Profile pingproxy under load with py-spy: where its CPU goes per pingback and per junk request.

``python -m bench.profile`` (``make profile``) runs pingproxy under ``py-spy record`` (as its
child, so no ptrace rights beyond one's own are needed) while the load generator sends
valid pingbacks, then the junk flood, at concurrency 16. For each it prints the functions
holding the most samples, inclusive and self, and writes them and py-spy's raw collapsed
stacks under ``bench/profiles/`` (not committed).

py-spy samples without stopping the process (``--nonblocking``): stopping it, on a virtual
machine, lands most samples on system calls (a thread is only caught entering or leaving
the kernel), and showed ``asyncio.get_running_loop``'s ``getpid()`` as a quarter of all
time. Reading a running process tears some stacks instead; only whole stacks, those that
reach down to the interpreter's entry, are counted.
"""

import argparse
import collections
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

from bench.processes import REPOSITORY_DIRECTORY, Server, raise_open_files_limit
from bench.run import (
    FAULT,
    PINGPROXY_SUCCESS,
    XML_CONTENT_TYPE,
    Bench,
    Plan,
    Subject,
    bad_url_requests,
    ping_body,
    pingproxy_path,
)

PROFILE_DIRECTORY = REPOSITORY_DIRECTORY / "bench" / "profiles"
CONCURRENCY = 16
SAMPLES_PER_SECOND = 250
TOP_FUNCTIONS = 40
_ENTRY_FRAME = "_run_module_as_main (<frozen runpy>)"
_LINE_NUMBER = re.compile(r":\d+\)$")


def summarize(collapsed: Iterable[str]) -> tuple[int, collections.Counter, collections.Counter]:
    """(samples, inclusive samples per function, self samples per function) of whole stacks.

    A function counts once per sample however often it recurs in the stack; line numbers are
    dropped so a function's lines add up; torn stacks (not reaching the entry) are skipped.
    """
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        functions = [_LINE_NUMBER.sub(")", frame) for frame in stack.split(";")
                     if not frame.startswith("process ")]  # py-spy --subprocesses names it
        if _ENTRY_FRAME not in functions[:1]:
            continue
        samples = int(count)
        total += samples
        own[functions[-1]] += samples
        for function in set(functions):
            inclusive[function] += samples
    return total, inclusive, own


def render(title: str, total: int, inclusive: collections.Counter,
           own: collections.Counter) -> str:
    """The top functions by inclusive and by self samples, as percentages of all samples."""
    lines = [f"# {title}: {total} samples", "", "## inclusive"]
    lines += [f"{100 * n / total:5.1f}%  {name}"
              for name, n in inclusive.most_common(TOP_FUNCTIONS)]
    lines += ["", "## self"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(TOP_FUNCTIONS)]
    return "\n".join(lines) + "\n"


def py_spy_command() -> str:
    """py-spy from this Python's venv (make profile installs it there), else from PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


def profile(bench: Bench, endpoint: Server, name: str, requests: list[dict], expect: str) -> None:
    raw = PROFILE_DIRECTORY / f"{name}.raw"
    spy = [py_spy_command(), "record", "--rate", str(SAMPLES_PER_SECOND),
           "--nonblocking", "--subprocesses", "--format", "raw", "--output", str(raw), "--"]
    proxy, _ = bench.start_pingproxy(endpoint, wrapper=spy)
    result = bench.once(Subject({"path": name}, proxy, requests, expect), CONCURRENCY)
    for child in psutil.Process(proxy.process.pid).children():
        child.terminate()  # pingproxy itself; py-spy writes its file once its child exits
    proxy.process.wait()
    bench.stop(proxy)
    summary = render(f"{name}, concurrency {CONCURRENCY}, "
                     f"{result['requests_per_second']:.0f} req/s under the profiler",
                     *summarize(raw.read_text().splitlines()))
    (PROFILE_DIRECTORY / f"{name}.txt").write_text(summary)
    print(summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Profile valid pingbacks, then junk; print and keep the summaries."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="profiled window per load")
    args = parser.parse_args(argv)
    PROFILE_DIRECTORY.mkdir(exist_ok=True)
    raise_open_files_limit()
    plan = Plan(warmup_seconds=2.0, duration_seconds=args.seconds, repeats=1, startup_repeats=1)
    with tempfile.TemporaryDirectory(prefix="pingproxy-profile-") as work:
        bench = Bench(plan, Path(work))
        endpoint = bench.start_endpoint()
        try:
            pings = [{"path": pingproxy_path(endpoint), "body": ping_body(),
                      "content_type": XML_CONTENT_TYPE}]
            profile(bench, endpoint, "pingbacks", pings, PINGPROXY_SUCCESS)
            profile(bench, endpoint, "junk", bad_url_requests(pingproxy_path(endpoint)), FAULT)
        finally:
            bench.stop(endpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())

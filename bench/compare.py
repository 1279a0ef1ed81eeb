"""pingproxy at several commits in one run: each change's effect in CPU microseconds a request.

``.venv/bin/python -m bench.compare REV [REV ...]`` (after ``make bench``'s set-up) checks out
each revision into a temporary git worktree, starts pingproxy from each beside the
pass-through and the bare handler, and measures them interleaved (A, B, C, A, B, C, ...) at
the same concurrency: pingbacks against the pass-through, the bad-URL junk against the bare
handler. On a machine shared with other work the ratio to the floor measured in the same
round is the steady figure; the table gives the median of the rounds for both. The bare
handler answers the pingbacks too, as the floor of the parts below any forward.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.processes import REPOSITORY_DIRECTORY, raise_open_files_limit
from bench.run import (
    BARE_SUCCESS,
    ENDPOINT_SUCCESS,
    FAULT,
    PINGPROXY_SUCCESS,
    XML_CONTENT_TYPE,
    Bench,
    Plan,
    Subject,
    bad_url_requests,
    ping_body,
    pingproxy_path,
    url_of,
)
from bench.stats import text_table


@contextmanager
def checkout(revision: str, parent: Path):
    """A detached worktree of revision under parent, removed afterwards."""
    directory = parent / revision.replace("/", "_").replace("~", "-")
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(directory), revision],
                   cwd=REPOSITORY_DIRECTORY, check=True)
    try:
        yield directory
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(directory)],
                       cwd=REPOSITORY_DIRECTORY, check=True)


def measure(bench: Bench, subjects: list[Subject], concurrency: int, rounds: int) -> list[dict]:
    """Each subject's CPU µs a request in each round, interleaved; the machine's other load."""
    figures: list[list[float]] = [[] for _ in subjects]
    others: list[float] = []
    for _ in range(rounds):
        for subject, column in zip(subjects, figures, strict=True):
            result = bench.once(subject, concurrency)
            column.append(result["server_cpu_us_per_request"])
            others.append(result["other_cpu_percent"])
    return [{"label": subject.label["path"], "runs": column}
            for subject, column in zip(subjects, figures, strict=True)] + [
        {"label": "other CPU % (median)", "runs": [statistics.median(others)]}]


def rows_for(measured: list[dict], floor_label: str) -> list[list[str]]:
    """Table rows: the median, and the median of the ratios to the floor round by round."""
    floor = next(row["runs"] for row in measured if row["label"] == floor_label)
    rows = []
    for row in measured:
        runs = row["runs"]
        ratios = ([value / base for value, base in zip(runs, floor, strict=True)]
                  if len(runs) == len(floor) else [])
        rows.append([row["label"], f"{statistics.median(runs):.1f}",
                     f"{statistics.median(ratios):.2f}" if ratios else "",
                     " ".join(f"{value:.0f}" for value in runs)])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Measure pingproxy at each revision beside the floors; print the two tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("revisions", nargs="+", help="git revisions of pingproxy to compare")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-junk", action="store_true", help="pingbacks only")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    plan = Plan(warmup_seconds=1.0, duration_seconds=args.seconds, repeats=1, startup_repeats=1)
    with tempfile.TemporaryDirectory(prefix="pingproxy-compare-") as work, ExitStack() as stack:
        bench = Bench(plan, Path(work))
        try:
            endpoint = bench.start_endpoint()
            path = pingproxy_path(endpoint)
            pass_through = bench.start_helper("pass-through", "--upstream", url_of(endpoint))
            bare = bench.start_helper("bare")
            proxies = []
            for revision in args.revisions:
                directory = stack.enter_context(checkout(revision, Path(work)))
                proxy, _ = bench.start_pingproxy(endpoint, wrapper=["env", "-C", str(directory)])
                proxies.append((revision, proxy))
            pings = [{"path": path, "body": ping_body(), "content_type": XML_CONTENT_TYPE}]
            pingbacks = measure(bench, [
                Subject({"path": "pass-through"}, pass_through,
                        [{**pings[0], "path": "/"}], ENDPOINT_SUCCESS),
                Subject({"path": "bare handler"}, bare, pings, BARE_SUCCESS),
                *(Subject({"path": f"pingproxy {revision}"}, proxy, pings, PINGPROXY_SUCCESS)
                  for revision, proxy in proxies)], args.concurrency, args.rounds)
            print(f"\nPingbacks, concurrency {args.concurrency}, CPU µs a request")
            print(text_table(["server", "median", "ratio", "rounds"],
                             rows_for(pingbacks, "pass-through")))
            if not args.no_junk:
                junk = measure(bench, [
                    Subject({"path": "bare handler"}, bare, bad_url_requests(path), BARE_SUCCESS),
                    *(Subject({"path": f"pingproxy {revision}"}, proxy, bad_url_requests(path),
                              FAULT) for revision, proxy in proxies)],
                    args.concurrency, args.rounds)
                print(f"\nBad-URL junk, concurrency {args.concurrency}, CPU µs a request")
                print(text_table(["server", "median", "ratio", "rounds"],
                                 rows_for(junk, "bare handler")))
        finally:
            bench.stop(*list(bench.running))
    return 0


if __name__ == "__main__":
    sys.exit(main())

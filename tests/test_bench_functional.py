"""The benchmark stays runnable: a --quick run end to end, its tables and files; no timing."""

import json
import subprocess
import sys
from pathlib import Path

from bench import report

ROOT = Path(__file__).parent.parent


def test_a_quick_bench_run_prints_every_table_and_writes_its_files(tmp_path):
    results, markdown = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"

    run = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--json", str(results),
                          "--markdown", str(markdown)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)

    assert run.returncode == 0, run.stderr[-2000:]
    for title in ("Scenario 1", "Scenario 2", "Scenario 3", "Scenario 4", "Capacity",
                  "Targets (issue 20)"):
        assert title in run.stdout
    figures = json.loads(results.read_text())
    assert {row["path"] for row in figures["throughput"]} >= {"pass-through", "pingproxy"}
    assert all(row["server_cpu_us_per_request"] > 0 for row in figures["throughput"]
               if "unavailable" not in row)
    assert [target["verdict"] for target in figures["targets"]].count("n/a") == 0
    assert figures["machine"]["event_loop"].startswith("uvloop")
    assert report.MARKDOWN_BEGIN in markdown.read_text()

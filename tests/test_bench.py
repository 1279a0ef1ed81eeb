"""The benchmark's pure helpers stay importable and right; nothing here is timed."""

import pytest

from bench import report
from bench.stats import Target, latency_summary, median_of_runs, percentile, text_table


@pytest.mark.parametrize(("fraction", "expected"), [
    (0.0, 1.0), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0),
])
def test_percentile_interpolates_between_closest_ranks(fraction, expected):
    assert percentile([4.0, 1.0, 3.0, 2.0], fraction) == pytest.approx(expected)


def test_percentile_refuses_no_values():
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_latency_summary_is_in_milliseconds_and_empty_when_nothing_answered():
    assert latency_summary([0.001, 0.003])["p50_ms"] == pytest.approx(2.0)
    assert latency_summary([]) == {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}


def test_median_of_runs_takes_each_figure_median_and_keeps_labels():
    runs = [{"path": "x", "rps": 1.0}, {"path": "x", "rps": 9.0}, {"path": "x", "rps": 3.0}]

    assert median_of_runs(runs) == {"path": "x", "rps": 3.0}


@pytest.mark.parametrize(("value", "at_least", "verdict"), [
    (0.95, True, "met"), (0.85, True, "missed"), (0.85, False, "met"), (None, True, "n/a"),
])
def test_target_verdict(value, at_least, verdict):
    assert Target("t", value, 0.9, at_least).verdict == verdict


def test_text_table_aligns_columns_and_shows_missing_as_na():
    lines = text_table(["name", "req/s"], [["a", 12345.6], ["bb", None]]).splitlines()

    assert lines[2] == "a     12,346"
    assert lines[3] == "bb    n/a   "


def _row(path, concurrency, rps, p50, **extra):
    return {"path": path, "concurrency": concurrency, "requests_per_second": rps, "p50_ms": p50,
            "p90_ms": p50, "p99_ms": p50, "server_cpu_us_per_request": 100.0,
            "peak_rss_mb": 40.0, "errors": 0, **extra}


FAKE_RESULTS = {
    "plan": {"warmup_seconds": 1, "duration_seconds": 2, "repeats": 1, "junk_concurrency": 16,
             "discovery_concurrency": 16},
    "machine": {"cores": 2, "cpu_model": "cpu", "memory_gib": 24, "system": "Linux",
                "python": "3.11", "aiohttp": "3.x", "pingproxy_commit": "abc"},
    "command": "make bench", "wall_seconds": 10.0,
    "throughput": [_row("pass-through", c, 1000.0, 1.0) for c in (1, 16, 128)]
                  + [_row("pingproxy", c, 950.0, 1.2, workers=1) for c in (1, 16, 128)]
                  + [{"path": "pingproxy", "workers": 2, "unavailable": "n/a (no --workers yet)"}],
    "junk": [_row("pingproxy", 16, 900.0, 1.0, load="bad URL"),
             _row("bare handler", 16, 1000.0, 1.0, load="bad URL", server_cpu_us_per_request=90.0),
             _row("pingproxy", 16, 900.0, 1.0, load="mixed"),
             _row("bare handler", 16, 1000.0, 1.0, load="mixed")],
    "discovery": [{"path": "pingproxy discovery", "cache": "on", "unavailable": "n/a"}],
    "slow_endpoint": [{"path": "direct", "pool": "fresh", "sent": 1000, "answered": 1000,
                       "errors": 0, "wall_seconds": 1.1, "p50_ms": 1000.0, "p99_ms": 1050.0,
                       "peak_rss_mb": 30.0},
                      {"path": "pingproxy", "pool": "cold", "sent": 1000, "answered": 1000,
                       "errors": 0, "wall_seconds": 1.3, "p50_ms": 1000.0, "p99_ms": 1100.0,
                       "peak_rss_mb": 80.0}],
    "startup": [{"workers": 1, "startup_seconds": 0.4, "idle_rss_mb": 40.0}],
}


def test_targets_are_judged_from_the_results():
    targets = {target.name: target for target in report.targets(FAKE_RESULTS)}

    assert targets["CPU per pingback vs pass-through, concurrency 16"].value == 1.0
    assert targets["added p50 over pass-through, concurrency 1"].verdict == "met"
    junk = targets["CPU per junk request (bad URL) vs bare handler"]
    assert junk.value == pytest.approx(100 / 90) and junk.verdict == "met"
    added = targets["1 000 × 1 s pingbacks: wall time added over direct"]
    assert added.value == pytest.approx(0.2) and added.verdict == "met"


def test_capacity_is_one_second_over_the_cpu_per_pingback():
    assert report.capacity_per_core(FAKE_RESULTS) == pytest.approx(10_000)


def test_markdown_section_is_replaced_and_hand_written_text_kept(tmp_path):
    results = {**FAKE_RESULTS, "targets": report.judged(FAKE_RESULTS)}
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nhow we measure\n")

    report.update_markdown(results, path)
    report.update_markdown(results, path)

    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nhow we measure\n")
    assert text.count(report.MARKDOWN_BEGIN) == 1
    assert "n/a (no --workers yet)" in text and "| pass-through | " in text

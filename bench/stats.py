"""Pure helpers of the benchmark: percentiles, medians of repeats, targets, and the tables.

Nothing here touches a socket or a process, so tests import it and the load generator
and the runner share one definition of each figure.
"""

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MILLISECONDS_PER_SECOND = 1000.0
MICROSECONDS_PER_SECOND = 1_000_000.0
BYTES_PER_MEGABYTE = 1024 * 1024
NOT_AVAILABLE = "n/a"


def percentile(values: Sequence[float], fraction: float) -> float:
    """The fraction-th percentile (0..1) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be between 0 and 1")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def latency_summary(latencies_seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of latencies, in milliseconds (None when there are none)."""
    names = {"p50_ms": 0.50, "p90_ms": 0.90, "p99_ms": 0.99, "max_ms": 1.0}
    if not latencies_seconds:
        return dict.fromkeys(names)
    ordered = sorted(latencies_seconds)
    return {name: percentile(ordered, fraction) * MILLISECONDS_PER_SECOND
            for name, fraction in names.items()}


def median_of_runs(runs: Sequence[dict]) -> dict:
    """Each numeric figure's median over repeated runs; other fields from the first run."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        numbers = [run[key] for run in runs if isinstance(run.get(key), int | float)]
        if isinstance(value, int | float) and not isinstance(value, bool) and numbers:
            merged[key] = statistics.median(numbers)
    return merged


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


@dataclass(frozen=True, slots=True)
class Target:
    """One goal: a measured value compared with a limit."""

    name: str
    value: float | None
    limit: float
    at_least: bool  # True: value >= limit meets it; False: value <= limit does
    unit: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return NOT_AVAILABLE
        met = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "met" if met else "missed"

    def describe(self) -> str:
        sign = ">=" if self.at_least else "<="
        target = f"target {sign} {self.limit:g}{self.unit}"
        return f"{self.name}: {show(self.value)}{self.unit} ({target})"


def show(value: object, digits: int = 2) -> str:
    """A figure for a table: n/a for None, thousands separated, a few significant decimals."""
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, str):
        return value
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def text_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain table for the terminal, columns padded, numbers right-aligned."""
    cells = [[show(cell) for cell in row] for row in rows]
    widths = [max(len(str(header)), *(len(row[i]) for row in cells)) if cells else len(header)
              for i, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)),
             "  ".join("-" * width for width in widths)]
    for row in cells:
        aligned = (_align(cell, width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(aligned))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The same table in GitHub Markdown."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(show(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _align(cell: str, width: int) -> str:
    looks_numeric = cell.replace(",", "").replace(".", "").lstrip("-").isdigit()
    return cell.rjust(width) if looks_numeric else cell.ljust(width)

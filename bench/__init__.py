"""The pingproxy benchmark: helper servers, a load generator and the runner (issues 6, 13).

Run it with ``make bench`` (``make bench ARGS=--quick`` for a smoke run); see BENCHMARKS.md.
"""

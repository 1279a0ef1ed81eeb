"""Prometheus metrics: what operators watch, in prometheus-client's own terms.

With several worker processes, prometheus-client's multiprocess mode (its documented way)
keeps each worker's values in a shared directory and sums them when scraped; the command
line points PROMETHEUS_MULTIPROC_DIR at that directory before prometheus-client is imported.
"""

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from pingproxy.errors import FAULT_CODES, Outcome

DURATION_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The metrics of one application, in its own registry or in the workers' shared directory."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        registry = None if multiprocess_dir else CollectorRegistry()
        self._registry = registry
        self.pingbacks = Counter(
            "pingproxy_pingbacks", "Pingbacks answered, by outcome and fault code.",
            ["outcome", "fault_code"], registry=registry)
        self.rejected_requests = Counter(
            "pingproxy_rejected_requests",
            "Requests refused before they became a pingback (bad XML, methods, sizes).",
            ["outcome", "fault_code"], registry=registry)
        self.shed = Counter(
            "pingproxy_requests_shed", "Pingbacks answered 503 because of the in-flight cap.",
            registry=registry)
        self.upstream_replies = Counter(
            "pingproxy_upstream_replies",
            "Endpoint replies by status class; 'none' when no reply came.",
            ["status_class"], registry=registry)
        self.forward_duration = Histogram(
            "pingproxy_forward_duration_seconds", "Time from a pingback's arrival to its answer.",
            buckets=DURATION_BUCKETS_SECONDS, registry=registry)
        self.inflight = Gauge(
            "pingproxy_forwards_in_flight", "Forwards started and not yet finished.",
            multiprocess_mode="livesum", registry=registry)
        self.discovery_lookups = Counter(
            "pingproxy_discovery_lookups",
            "Endpoint discovery cache look-ups: hit, miss (fetched the target), or joined "
            "(waited for another pingback's fetch).",
            ["result"], registry=registry)
        self.shared_limit_fallbacks = Counter(
            "pingproxy_shared_limits_fallbacks",
            "Limit decisions made in process memory because Redis did not answer in time.",
            registry=registry)
        self.shared_limit_switches = Counter(
            "pingproxy_shared_limits_switches",
            "Changes of where limits are counted: to memory (Redis failed), to Redis (it "
            "answers again).", ["to"], registry=registry)
        self.shared_limits_degraded = Gauge(
            "pingproxy_shared_limits_degraded",
            "1 while limits meant for Redis are counted in process memory.",
            multiprocess_mode="livemax", registry=registry)

        # Each labelled child is looked up once, then kept: labels() costs three times more
        # than the counting itself, on every pingback.
        self._children: dict[tuple, Counter] = {}

    def count_pingback(self, outcome: Outcome, upstream_status: int | None,
                       duration_seconds: float, *, forwarded: bool) -> None:
        """Record one pingback's end."""
        self._child(self.pingbacks, outcome).inc()
        if outcome is Outcome.OVER_CAPACITY:
            self.shed.inc()
        if forwarded:
            status_class = f"{upstream_status // 100}xx" if upstream_status else "none"
            self._child(self.upstream_replies, status_class).inc()
            self.forward_duration.observe(duration_seconds)

    def count_discovery_lookup(self, result: str) -> None:
        """Record a discovery cache look-up: "hit", "miss" or "joined"."""
        self._child(self.discovery_lookups, result).inc()

    def count_shared_fallback(self) -> None:
        """Record one limit decided in memory for want of Redis."""
        self.shared_limit_fallbacks.inc()

    def count_shared_switch(self, degraded: bool) -> None:
        """Record limits moving to memory (degraded) or back to Redis."""
        self._child(self.shared_limit_switches, "memory" if degraded else "redis").inc()
        self.shared_limits_degraded.set(1 if degraded else 0)

    def count_rejected(self, outcome: Outcome) -> None:
        """Record a request that was refused before it became a pingback."""
        self._child(self.rejected_requests, outcome).inc()

    def _child(self, counter: Counter, label: Outcome | str) -> Counter:
        """The counter's child for an outcome (with its fault code) or a single label."""
        key = (counter, label)
        child = self._children.get(key)
        if child is None:
            labels = ((label.value, _fault_label(label)) if isinstance(label, Outcome)
                      else (label,))
            child = self._children[key] = counter.labels(*labels)
        return child

    def render(self) -> bytes:
        """The Prometheus text exposition, summed over the workers when there are several."""
        if self._multiprocess_dir is None:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._multiprocess_dir)
        return generate_latest(registry)


def _fault_label(outcome: Outcome) -> str:
    code = FAULT_CODES.get(outcome)
    return "none" if code is None else str(code)

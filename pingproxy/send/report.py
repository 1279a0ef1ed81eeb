"""The report of one send: what happened to each target, as a table for people or as JSON.

The JSON shape is stable and documented in the README; ``--previous`` reads it back, so a
send after an edit can reach the targets a post no longer links to. Pure: no I/O.
"""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from yarl import URL

from pingproxy.links import ALSO, PREVIOUS, SKIP_REASONS, Skipped, normalised

REPORT_VERSION = 1

# What became of a target: stable tokens of the JSON report.
ACCEPTED = "accepted"  # a 2xx, a pingback's success, or fault 48 (already registered)
REFUSED = "refused"  # the endpoint answered no: a 4xx, or a pingback fault
FAILED = "failed"  # no answer to count on: a 3xx, a 5xx, a timeout, an unreachable host
NO_ENDPOINT = "no_endpoint"  # the target advertises neither protocol
TARGET_GONE = "target_gone"  # the target answered 404 or 410
BLOCKED = "blocked"  # the guard refused the target's address after resolution
NOT_SENT = "not_sent"  # --dry-run: discovered, never sent
STATUSES = (ACCEPTED, REFUSED, FAILED, NO_ENDPOINT, TARGET_GONE, BLOCKED, NOT_SENT)
# The same in words, for the table people read (the tokens stay in --json).
STATUS_WORDS = {ACCEPTED: "accepted", REFUSED: "refused", FAILED: "failed",
                NO_ENDPOINT: "no endpoint", TARGET_GONE: "target gone", BLOCKED: "blocked",
                NOT_SENT: "not sent"}
# Any of these makes the run fail (exit 1).
FAILING_STATUSES = frozenset({REFUSED, FAILED})

WEBMENTION = "webmention"
PINGBACK = "pingback"


@dataclass(slots=True)
class TargetResult:
    """One target's journey, filled in as it goes (a run cut short reports what it had)."""

    target: str
    found_in: str
    status: str = FAILED
    message: str = "not finished"
    method: str | None = None
    endpoint: str | None = None
    discovered_by: str | None = None
    http_status: int | None = None
    fault_code: int | None = None
    fault_meaning: str | None = None
    location: str | None = None
    retries: int = 0
    retry_reason: str | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class SendReport:
    """A whole send: the source as fetched, the container read, every target, every skip."""

    source: str
    source_url: str | None = None
    source_status: int | None = None
    deleted: bool = False
    dry_run: bool = False
    container: str | None = None
    targets: list[TargetResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether no target failed, and none the post links to was refused (dry runs: none
        failed)."""
        return not any(fails(result, deleted=self.deleted) for result in self.targets)

    def counts(self) -> dict[str, int]:
        found = Counter(result.status for result in self.targets)
        return {status: found[status] for status in STATUSES}


def fails(result: TargetResult, *, deleted: bool) -> bool:
    """Whether a target's result fails the run. A refusal of a link the post no longer
    makes (--also, --previous, every link of a deleted post) does not: a receiver that
    verifies the source answers 400 exactly when it has dropped the mention."""
    if result.status != REFUSED:
        return result.status in FAILING_STATUSES
    return not (deleted or result.found_in in (ALSO, PREVIOUS))


def as_json(report: SendReport) -> dict:
    """The report's documented JSON shape (README, "The send report")."""
    return {
        "version": REPORT_VERSION,
        "source": report.source,
        "source_url": report.source_url,
        "source_status": report.source_status,
        "deleted": report.deleted,
        "dry_run": report.dry_run,
        "container": report.container,
        "ok": report.ok,
        "counts": report.counts(),
        "seconds": round(report.seconds, 3),
        "targets": [_target_json(result) for result in report.targets],
        "skipped": [{"link": skip.written, "url": skip.url, "reason": skip.reason,
                     "detail": skip.detail} for skip in report.skipped],
    }


def _target_json(result: TargetResult) -> dict:
    return {
        "target": result.target,
        "found_in": result.found_in,
        "status": result.status,
        "message": result.message,
        "method": result.method,
        "endpoint": result.endpoint,
        "discovered_by": result.discovered_by,
        "http_status": result.http_status,
        "fault_code": result.fault_code,
        "fault_meaning": result.fault_meaning,
        "location": result.location,
        "retries": result.retries,
        "retry_reason": result.retry_reason,
        "seconds": round(result.seconds, 3),
    }


@dataclass(frozen=True, slots=True)
class Previous:
    """What an earlier report tells this run (--previous): a post report's targets; for a
    feed's entries, each one's targets and the date of its last complete send."""

    targets: tuple[str, ...] | None = None  # a post report's, whichever the source
    entries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sent_dates: Mapping[str, str | None] = field(default_factory=dict)

    def for_post(self, source: URL) -> tuple[str, ...]:
        """The earlier targets a send of the post at source tells too."""
        if self.targets is not None:
            return self.targets
        return self.entries.get(source_key(source), ())


def source_key(url: URL) -> str:
    """A source as reports are matched on: normalised, without its fragment."""
    return str(normalised(url))


def read_previous(document: object) -> Previous:
    """What an earlier report (a post's or a feed's) tells; ValueError if it is not one."""
    if not isinstance(document, dict) or document.get("version") != REPORT_VERSION:
        raise ValueError(f"not a pingproxy send report of version {REPORT_VERSION}")
    if "entries" in document:
        return _previous_feed(document["entries"])
    targets = _target_urls(document.get("targets"))
    source = document.get("source")
    entries = {} if not isinstance(source, str) else {source_key(URL(source)): targets}
    return Previous(targets, entries)


def _previous_feed(entries: object) -> Previous:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("its entries are not a list of objects")
    targets, dates = {}, {}
    for entry in entries:
        last, source = entry.get("last_sent"), entry.get("source")
        if last is None or not isinstance(source, str):
            continue
        if not isinstance(last, dict) or not all(isinstance(url, str)
                                                 for url in last.get("targets") or ()):
            raise ValueError("an entry's last_sent is not an object with a list of targets")
        key = source_key(URL(source))
        targets[key] = tuple(last.get("targets") or ())
        if last.get("complete"):
            dates[key] = last.get("updated")
    return Previous(None, targets, dates)


def _target_urls(targets: object) -> tuple[str, ...]:
    if not isinstance(targets, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("target"), str)
            for entry in targets):
        raise ValueError("its targets are not a list of objects with a target URL")
    return tuple(entry["target"] for entry in targets)


def table(report: SendReport) -> str:
    """The report for people: one block per target, the skipped links, a summary line."""
    lines = [_source_line(report), ""]
    width = max((len(STATUS_WORDS[result.status]) for result in report.targets), default=0)
    for result in report.targets:
        status = STATUS_WORDS[result.status]
        lines.append(f"{status:<{width}}  {result.target}  ({result.found_in})")
        indent = " " * (width + 2)
        lines.extend(indent + detail for detail in _details(result))
    if report.skipped:
        lines += ["", f"Skipped links ({len(report.skipped)}):"]
        for skip in report.skipped:
            why = SKIP_REASONS.get(skip.reason, skip.reason)
            if skip.detail:
                why += f": {skip.detail}"
            lines.append(f"  {why}: {skip.url or skip.written}")
    lines += ["", _summary(report)]
    return "\n".join(lines)


def _source_line(report: SendReport) -> str:
    read = f"links read from {report.container}" if report.container else "no HTML to read"
    status = f"HTTP {report.source_status}" if report.source_status else "not fetched"
    line = f"Source {report.source_url or report.source} ({status}; {read})"
    if report.deleted:
        line += "; deleted: every target is told"
    if report.dry_run:
        line += "; dry run: nothing sent"
    return line


def _details(result: TargetResult) -> list[str]:
    details = []
    if result.endpoint:
        how = f" (found by {result.discovered_by})" if result.discovered_by else ""
        details.append(f"{_method_name(result.method)} endpoint {result.endpoint}{how}")
    details.append(f"{result.message} ({result.seconds:.2f} s)")
    if result.fault_code is not None:
        details.append(f"fault {result.fault_code} means {result.fault_meaning}")
    if result.location:
        redirect = result.http_status is not None and 300 <= result.http_status < 400
        details.append(f"{'redirects to' if redirect else 'status page'}: {result.location}")
    if result.retries:
        details.append(f"retried once: {result.retry_reason}")
    return details


def _method_name(method: str | None) -> str:
    return {WEBMENTION: "WebMention", PINGBACK: "Pingback"}.get(method or "", "no")


def _summary(report: SendReport) -> str:
    counts = ", ".join(f"{count} {STATUS_WORDS[status]}"
                       for status, count in report.counts().items() if count)
    return (f"{len(report.targets)} targets ({counts or 'none'}), {len(report.skipped)} links "
            f"skipped, in {report.seconds:.1f} s")

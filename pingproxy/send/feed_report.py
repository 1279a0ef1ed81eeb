"""The report of a feed's send: every entry, taken or left and why, each taken one with its
post's report; as a table for people or as JSON. Pure: no I/O.

Each entry also says what a later run's --previous needs (last_sent): when the entry was last
sent completely, at which date, and which targets it still has to remember: the links it makes,
and any earlier target whose telling failed. A removed link told once is forgotten, so a
deploy that keeps each report for the next run tells every update and deletion exactly once.
"""

from collections import Counter
from dataclasses import dataclass, field

from pingproxy import feeds
from pingproxy.links import ALSO, PREVIOUS, TOO_MANY
from pingproxy.send.report import (
    FAILED,
    REPORT_VERSION,
    STATUS_WORDS,
    STATUSES,
    SendReport,
    as_json,
    table,
)

NOT_IN_FEED = "not_in_feed"  # an entry of the previous report that the feed no longer lists
ENTRY_REASONS = (*feeds.REASONS, NOT_IN_FEED)
_POST_FIELDS = ("source_url", "source_status", "deleted", "container", "ok", "counts",
                "seconds", "targets", "skipped")


@dataclass(slots=True)
class EntryResult:
    """One entry: why taken or left; when taken, its post's report or why its page failed."""

    decision: feeds.Decision
    report: SendReport | None = None
    error: str | None = None
    last_sent: dict | None = None  # the JSON report's last_sent

    @property
    def source(self) -> str:
        entry = self.decision.entry
        return str(entry.url) if entry.url is not None else entry.written

    @property
    def ok(self) -> bool:
        return self.error is None and (self.report is None or self.report.ok)


@dataclass(slots=True)
class FeedReport:
    """A whole feed's send."""

    feed: str
    feed_url: str
    feed_status: int
    format: str
    title: str
    entries_limit: int
    since: str | None = None
    dry_run: bool = False
    entries: list[EntryResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every entry's page was read and no target was refused or failed."""
        return all(entry.ok for entry in self.entries)

    def counts(self) -> dict[str, int]:
        found = Counter(result.status for entry in self.entries if entry.report
                        for result in entry.report.targets)
        return {status: found[status] for status in STATUSES}

    def entry_counts(self) -> dict[str, int]:
        found = Counter(entry.decision.reason for entry in self.entries)
        return {reason: found[reason] for reason in ENTRY_REASONS}


def last_sent(report: SendReport, updated: str | None) -> dict:
    """What a later --previous needs of an entry sent now: its date, the targets to remember
    (the links it makes; a link it no longer makes only while no answer came), and whether
    the send went well (only then is the entry unchanged for the next run)."""
    remembered = [result.target for result in report.targets
                  if result.status == FAILED
                  or (result.found_in not in (ALSO, PREVIOUS) and not report.deleted)]
    cut = [skip.url for skip in report.skipped if skip.reason == TOO_MANY and skip.url]
    return {"updated": updated, "targets": remembered + cut,
            "complete": report.ok and not cut}


def as_feed_json(report: FeedReport) -> dict:
    """The feed report's documented JSON shape (README, "The feed report")."""
    return {
        "version": REPORT_VERSION,
        "feed": report.feed,
        "feed_url": report.feed_url,
        "feed_status": report.feed_status,
        "format": report.format,
        "title": report.title,
        "since": report.since,
        "entries_limit": report.entries_limit,
        "dry_run": report.dry_run,
        "ok": report.ok,
        "counts": report.counts(),
        "entry_counts": report.entry_counts(),
        "seconds": round(report.seconds, 3),
        "entries": [_entry_json(entry) for entry in report.entries],
    }


def _entry_json(entry: EntryResult) -> dict:
    found = entry.decision.entry
    document = {"source": entry.source, "title": found.title,
                "updated": feeds.iso(found.updated), "published": feeds.iso(found.published),
                "reason": entry.decision.reason, "detail": entry.decision.detail,
                "error": entry.error, "last_sent": entry.last_sent}
    post = as_json(entry.report) if entry.report is not None else {}
    for name in _POST_FIELDS:
        document[name] = post.get(name, [] if name in ("targets", "skipped") else None)
    return document


def feed_table(report: FeedReport) -> str:
    """The feed report for people: each entry sent with its table, those left and why."""
    sent = [entry for entry in report.entries if entry.decision.taken]
    left = [entry for entry in report.entries
            if not entry.decision.taken and entry.decision.reason != NOT_IN_FEED]
    carried = len(report.entries) - len(sent) - len(left)
    lines = [_feed_line(report), "", f"Entries sent ({len(sent)}):"]
    for entry in sent:
        lines.append(f"  {entry.source}  ({entry.decision.detail})")
        if entry.error is not None:
            lines.append(f"    not sent: {entry.error}")
        elif entry.report is not None:
            lines += ["    " + line if line else "" for line in table(entry.report).split("\n")]
    lines += ["", f"Entries left ({len(left)}):"]
    lines += [f"  {entry.decision.detail}: {entry.source}" for entry in left]
    if carried:
        lines.append(f"  ({carried} earlier entries no longer in the feed, kept for --previous)")
    return "\n".join([*lines, "", _feed_summary(report, len(sent), len(left))])


def _feed_line(report: FeedReport) -> str:
    title = f' "{report.title}"' if report.title else ""
    since = f"after {report.since}, " if report.since else ""
    line = (f"Feed {report.feed_url} (HTTP {report.feed_status}; {report.format}{title}; "
            f"entries {since}the newest {report.entries_limit} at most)")
    return line + ("; dry run: nothing sent" if report.dry_run else "")


def _feed_summary(report: FeedReport, sent: int, left: int) -> str:
    counts = ", ".join(f"{count} {STATUS_WORDS[status]}"
                       for status, count in report.counts().items() if count)
    failed = sum(entry.error is not None for entry in report.entries)
    unread = f" ({failed} could not be read)" if failed else ""
    targets = sum(report.counts().values())
    return (f"{sent} entries sent{unread}, {left} left; {targets} targets "
            f"({counts or 'none'}), in {report.seconds:.1f} s")

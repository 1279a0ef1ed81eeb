"""The feed report: its JSON shape (as the README documents it), what --previous reads back
from it, and its table."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from yarl import URL

from pingproxy import feeds
from pingproxy.links import Skipped
from pingproxy.send.feed_report import (
    ENTRY_REASONS,
    EntryResult,
    FeedReport,
    as_feed_json,
    feed_table,
    last_sent,
)
from pingproxy.send.report import SendReport, TargetResult, read_previous

README = (Path(__file__).parent.parent / "README.md").read_text()
NOV_5 = datetime(2026, 11, 5, 9, tzinfo=UTC)


def decision(path: str, reason: str, detail: str, *, updated=NOV_5) -> feeds.Decision:
    return feeds.Decision(feeds.Entry(URL(f"https://blog.example{path}"), path, "A post",
                                      updated=updated), reason, detail)


POST = SendReport(
    "https://blog.example/new", source_url="https://blog.example/new", source_status=200,
    container="e-content", seconds=0.4,
    targets=[TargetResult("https://a.example/", "e-content", "accepted", "HTTP 202 Accepted",
                          seconds=0.2),
             TargetResult("https://gone.example/", "previous", "refused", "HTTP 400",
                          seconds=0.1),
             TargetResult("https://down.example/", "previous", "failed", "no answer")],
    skipped=[Skipped("/about", "https://blog.example/about", "self")])
REPORT = FeedReport(
    "https://blog.example/feed", "https://blog.example/feed.xml", 200, "atom", "A blog", 10,
    since="2026-11-01T00:00:00+00:00",
    entries=[EntryResult(decision("/new", "taken", "number 1 of the newest 10"), POST,
                         last_sent=last_sent(POST, "2026-11-05T09:00:00+00:00")),
             EntryResult(decision("/broken", "taken", "number 2 of the newest 10"),
                         error="the source answered HTTP 500 Internal Server Error"),
             EntryResult(decision("/old", "older", "dated 2026-10-01T00:00:00+00:00, not "
                                                   "after --since 2026-11-01T00:00:00+00:00"))],
    seconds=1.26)


def documented_fields() -> set[str]:
    section = README.partition("### The feed report")[2].partition("\n### ")[0]
    return {field for cells in re.findall(r"^\| (`[^|]+)\|", section, re.MULTILINE)
            for field in re.findall(r"`([a-z_\[\].]+)`", cells)}


def test_every_json_field_of_the_feed_report_is_documented_in_the_readme():
    document = as_feed_json(REPORT)
    fields = {*document, *(f"entries[].{key}" for key in document["entries"][0])}
    post_fields = {"source_url", "source_status", "deleted", "container", "ok", "counts",
                   "seconds", "targets", "skipped"}

    assert fields - {f"entries[].{name}" for name in post_fields} <= documented_fields()
    assert all(f"`{name}`" in README.partition("### The feed report")[2] for name in post_fields)


def test_every_entry_reason_is_in_the_readmes_table():
    for reason in ENTRY_REASONS:
        assert f"| `{reason}` |" in README


def test_the_json_says_what_happened_to_every_entry_and_fails_on_an_unread_page():
    document = as_feed_json(REPORT)

    assert document["ok"] is False
    assert document["counts"]["accepted"] == 1 and document["counts"]["failed"] == 1
    assert document["entry_counts"]["taken"] == 2 and document["entry_counts"]["older"] == 1
    new, broken, old = document["entries"]
    assert (new["reason"], new["updated"], len(new["targets"])) == (
        "taken", "2026-11-05T09:00:00+00:00", 3)
    assert broken["error"].endswith("HTTP 500 Internal Server Error")
    assert (old["targets"], old["source_url"], old["last_sent"]) == ([], None, None)


def test_last_sent_remembers_the_links_and_an_earlier_target_only_while_unanswered():
    assert last_sent(POST, "2026-11-05T09:00:00+00:00") == {
        "updated": "2026-11-05T09:00:00+00:00",
        "targets": ["https://a.example/", "https://down.example/"], "complete": False}


def test_a_feed_report_reads_back_per_entry():
    previous = read_previous(json.loads(json.dumps(as_feed_json(REPORT))))

    assert previous.targets is None
    assert previous.entries == {"https://blog.example/new": ("https://a.example/",
                                                             "https://down.example/")}
    assert previous.sent_dates == {}  # that send was not complete: the entry goes again
    assert previous.for_post(URL("https://blog.example/new#top")) == previous.entries[
        "https://blog.example/new"]


def test_the_table_shows_each_entry_sent_and_why_the_rest_were_left():
    lines = feed_table(REPORT).splitlines()

    assert lines[0] == ('Feed https://blog.example/feed.xml (HTTP 200; atom "A blog"; entries '
                        'after 2026-11-01T00:00:00+00:00, the newest 10 at most)')
    assert "  https://blog.example/new  (number 1 of the newest 10)" in lines
    assert "    accepted  https://a.example/  (e-content)" in lines
    assert "    not sent: the source answered HTTP 500 Internal Server Error" in lines
    assert ("  dated 2026-10-01T00:00:00+00:00, not after --since 2026-11-01T00:00:00+00:00: "
            "https://blog.example/old") in lines
    assert lines[-1] == ("2 entries sent (1 could not be read), 1 left; 3 targets (1 accepted, "
                         "1 refused, 1 failed), in 1.3 s")

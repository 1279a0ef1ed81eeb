"""The send report: its JSON shape (as the README documents it), read back, and its table."""

import json
import re
from pathlib import Path

import pytest

from pingproxy.links import SKIP_REASONS, Skipped
from pingproxy.send.report import (
    STATUSES,
    SendReport,
    TargetResult,
    as_json,
    fails,
    read_previous,
    table,
)

README = (Path(__file__).parent.parent / "README.md").read_text()

REPORT = SendReport(
    source="https://blog.example/post", source_url="https://blog.example/post",
    source_status=200, container="e-content", seconds=0.61,
    targets=[
        TargetResult("https://example.com/notes/1", "in-reply-to", "accepted", "HTTP 201 Created",
                     "webmention", "https://example.com/wm", "HTTP Link header", 201,
                     location="https://example.com/wm/status/42", seconds=0.21),
        TargetResult("https://old.example/post", "e-content", "refused", "fault 17: no link",
                     "pingback", "https://old.example/xmlrpc.php", "X-Pingback header", 200,
                     17, "the source URI does not contain a link to the target URI",
                     retries=1, retry_reason="HTTP 503; waited 1 s", seconds=1.34),
    ],
    skipped=[Skipped("/about", "https://blog.example/about", "self")],
)


def documented_fields() -> set[str]:
    return set(re.findall(r"^\| `([a-z_\[\].]+)` \|", README, re.MULTILINE))


def test_every_json_field_is_documented_in_the_readme():
    document = as_json(REPORT)
    fields = {*document, *(f"targets[].{key}" for key in document["targets"][0]),
              *(f"skipped[].{key}" for key in document["skipped"][0])}

    assert fields <= documented_fields()


def test_the_json_counts_every_status_and_says_whether_it_went_well():
    document = as_json(REPORT)

    assert document["counts"] == {status: 0 for status in STATUSES} | {"accepted": 1,
                                                                       "refused": 1}
    assert document["ok"] is False
    assert document["targets"][1]["fault_meaning"].startswith("the source URI")


def test_every_status_and_skip_reason_is_documented():
    for token in [*STATUSES, *SKIP_REASONS]:
        assert f"`{token}`" in README


def test_a_report_reads_back_its_targets():
    text = json.dumps(as_json(REPORT))

    previous = read_previous(json.loads(text))

    assert previous.targets == ("https://example.com/notes/1", "https://old.example/post")
    assert previous.entries == {"https://blog.example/post": previous.targets}


@pytest.mark.parametrize("document", [
    [], {"targets": []}, {"version": 2, "targets": []}, {"version": 1, "targets": {}},
    {"version": 1, "targets": [{"url": "https://x.example/"}]},
    {"version": 1, "targets": [{"target": 7}]},
    {"version": 1, "entries": {}}, {"version": 1, "entries": [7]},
    {"version": 1, "entries": [{"source": "https://blog.example/a", "last_sent": []}]},
    {"version": 1, "entries": [{"source": "https://blog.example/a",
                                "last_sent": {"targets": [7]}}]},
])
def test_anything_else_is_not_a_previous_report(document):
    with pytest.raises(ValueError):
        read_previous(document)


def test_the_table_says_what_happened_to_each_target_and_why_links_were_skipped():
    lines = table(REPORT).splitlines()

    assert lines[0] == ("Source https://blog.example/post (HTTP 200; links read from "
                        "e-content)")
    assert lines[2:6] == [
        "accepted  https://example.com/notes/1  (in-reply-to)",
        "          WebMention endpoint https://example.com/wm (found by HTTP Link header)",
        "          HTTP 201 Created (0.21 s)",
        "          status page: https://example.com/wm/status/42",
    ]
    assert "          fault 17 means the source URI does not contain a link to the target URI" \
        in lines
    assert "          retried once: HTTP 503; waited 1 s" in lines
    assert "  on the source's own site (--self sends to it): https://blog.example/about" in lines
    assert lines[-1] == "2 targets (1 accepted, 1 refused), 1 links skipped, in 0.6 s"


def test_a_deleted_dry_run_says_so():
    report = SendReport("https://blog.example/gone", source_status=410, deleted=True,
                        dry_run=True, container="body")

    assert table(report).splitlines()[0] == (
        "Source https://blog.example/gone (HTTP 410; links read from body); deleted: every "
        "target is told; dry run: nothing sent")


def test_the_table_prints_words_where_the_json_has_codes():
    report = SendReport("https://blog.example/post", source_status=200, container="main",
                        targets=[TargetResult("https://a.example/", "main", "no_endpoint"),
                                 TargetResult("https://b.example/", "main", "target_gone"),
                                 TargetResult("https://c.example/", "main", "not_sent")])

    text = table(report)

    assert "no endpoint  https://a.example/  (main)" in text
    assert "target gone  https://b.example/  (main)" in text
    assert "not sent     https://c.example/  (main)" in text
    assert "(1 no endpoint, 1 target gone, 1 not sent)" in text
    assert not {"no_endpoint", "target_gone", "not_sent"} & set(text.split())
    assert [t["status"] for t in as_json(report)["targets"]] == [
        "no_endpoint", "target_gone", "not_sent"]


@pytest.mark.parametrize(("status", "found_in", "deleted", "failing"), [
    ("refused", "e-content", False, True),
    ("refused", "previous", False, False),
    ("refused", "also", False, False),
    ("refused", "e-content", True, False),
    ("failed", "previous", False, True),
    ("failed", "e-content", True, True),
    ("no_endpoint", "e-content", False, False),
    ("accepted", "e-content", False, False),
])
def test_a_refusal_fails_the_run_only_for_a_link_the_post_still_makes(status, found_in,
                                                                       deleted, failing):
    result = TargetResult("https://a.example/", found_in, status)

    assert fails(result, deleted=deleted) is failing

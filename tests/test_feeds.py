"""Which entries a feed offers, and why each is taken or left (feeds.py, pure)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from yarl import URL

from pingproxy import feeds
from pingproxy.feeds import Entry, Feed, FeedUnreadable, Window
from tests.feed_samples import NEWEST_FIRST, atom, h_feed, json_feed, rss

BASE = "https://blog.example"
FEED_URL = URL(f"{BASE}/feed")
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def read(body: str, content_type: str, *, html: bool = False, cut: int | None = None):
    return feeds.read(body.encode(), content_type, FEED_URL, html=body if html else None,
                      cut_at_bytes=cut)


@pytest.mark.parametrize(("body", "content_type", "html", "kind"), [
    (rss(BASE), "application/rss+xml", False, feeds.RSS),
    (rss(BASE), "text/xml", False, feeds.RSS),
    (rss(BASE), "text/plain", False, feeds.RSS),
    (atom(BASE), "application/atom+xml", False, feeds.ATOM),
    (atom(BASE), "application/xml", False, feeds.ATOM),
    (json_feed(BASE), "application/feed+json", False, feeds.JSON_FEED),
    (json_feed(BASE), "application/json", False, feeds.JSON_FEED),
    (h_feed(BASE), "text/html", True, feeds.H_FEED),
], ids=["rss", "rss-as-text-xml", "rss-as-text-plain", "atom", "atom-as-xml", "json-feed",
        "json-feed-as-json", "h-feed"])
def test_each_kind_of_feed_gives_the_same_entries_newest_first(body, content_type, html, kind):
    feed = read(body, content_type, html=html)

    assert feed.format == kind
    assert feed.title == "A blog"
    assert [entry.url for entry in feed.entries] == [URL(BASE + path) for path in NEWEST_FIRST]
    assert feed.entries[0].date == datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def test_atom_orders_by_updated_before_published():
    [second, third, first] = read(atom(BASE), "application/atom+xml").entries

    assert second.published < third.published and second.updated > third.updated
    assert second.date == second.updated


@pytest.mark.parametrize(("body", "content_type", "html"), [
    ("<html><body><article class='h-entry'><p class='e-content'>a post</p></article>"
     "</body></html>", "text/html", True),
    ("<html><body><article class='h-entry'><p>a post</p></article><aside class='h-feed'>"
     "<div class='h-entry'><a class='u-url' href='/x'>x</a></div></aside></body></html>",
     "text/html", True),
    ('<?xml version="1.0"?><urlset><url><loc>https://blog.example/</loc></url></urlset>',
     "application/xml", False),
    ('{"hello": "world"}', "application/json", False),
    ("not json at all", "application/json", False),
    ("", "text/plain", False),
], ids=["h-entry-page", "post-with-an-h-feed-beside-it", "sitemap", "other-json",
        "broken-json-not-declared-a-feed", "empty"])
def test_a_page_that_is_no_feed_is_a_post(body, content_type, html):
    assert read(body, content_type, html=html) is None


@pytest.mark.parametrize(("body", "content_type", "message"), [
    ("<rss version='2.0'><channel><item><link>x</link></channel>", "application/rss+xml",
     "the feed is not well-formed XML (mismatched tag: line 1, column 50)"),
    ("<rss version='2.0'><channel><item>", "text/xml", "not well-formed XML"),
    ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
     "<rss><channel><title>&b;</title></channel></rss>", "application/rss+xml",
     "declares a DTD or entities"),
    ("<html><body>oops</body></html>", "application/atom+xml",
     "neither RSS nor Atom (its root is <html>)"),
    ("/etc/passwd", "application/rss+xml", "not well-formed XML"),
    ("{", "application/feed+json", "the feed is not valid JSON"),
    ('{"version": "1"}', "application/feed+json", "not a JSON Feed"),
    ('{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "application/json",
     "no list of items"),
], ids=["broken-rss", "broken-xml-starting-as-rss", "entity-bomb", "html-as-atom",
        "a-file-name", "broken-json-feed", "json-without-version", "items-not-a-list"])
def test_a_feed_that_cannot_be_read_says_why(body, content_type, message):
    with pytest.raises(FeedUnreadable, match=re.escape(message)):
        read(body, content_type)


def test_a_feed_cut_at_the_page_cap_says_it_is_too_large():
    body = rss(BASE)[:100]

    with pytest.raises(FeedUnreadable, match=r"larger than 100 bytes, .*--discovery-max-page"):
        read(body, "application/rss+xml", cut=100)


def entry(path: str | None, day: int | None = None, *, host: str = "blog.example") -> Entry:
    url = URL(f"https://{host}{path}") if path is not None else None
    when = datetime(2026, 11, day, tzinfo=UTC) if day else None
    return Entry(url, path or "", updated=when)


FEED = Feed(feeds.RSS, "A blog", feeds.newest_first([
    entry("/undated"), entry("/5", 5), entry("/9", 9), entry("/7", 7), entry("/3", 3)]))


def choose(feed: Feed = FEED, **window) -> dict[str, str]:
    decisions = feeds.select(feed, (FEED_URL,), Window(**{"entries": 10, **window}))
    return {d.entry.written: d.reason for d in decisions}


def test_entries_are_newest_first_with_the_undated_last():
    assert [e.written for e in FEED.entries] == ["/9", "/7", "/5", "/3", "/undated"]


def test_entries_takes_the_newest_n_and_counts_an_undated_entry_as_new():
    assert choose(entries=2) == {"/9": "taken", "/7": "taken", "/5": "beyond_entries",
                                 "/3": "beyond_entries", "/undated": "beyond_entries"}
    assert choose(entries=5)["/undated"] == "taken"


def test_since_takes_the_entries_dated_after_it_and_leaves_the_undated():
    since = datetime(2026, 11, 5, tzinfo=UTC)

    assert choose(since=since) == {"/9": "taken", "/7": "taken", "/5": "older", "/3": "older",
                                   "/undated": "undated"}


@pytest.mark.parametrize(("entries", "since_day", "taken"), [
    (1, 4, ["/9"]), (5, 6, ["/9", "/7"]), (2, 2, ["/9", "/7"])])
def test_with_both_the_stricter_wins(entries, since_day, taken):
    chosen = choose(entries=entries, since=datetime(2026, 11, since_day, tzinfo=UTC))

    assert [written for written, reason in chosen.items() if reason == "taken"] == taken


def test_an_entry_off_the_feeds_site_or_without_a_page_is_left_and_said_why():
    feed = Feed(feeds.RSS, "", (entry("/a", 9, host="elsewhere.example"),
                                entry("/b", 8, host="www.blog.example"), entry(None, 7),
                                entry("/b", 6, host="www.blog.example")))
    decisions = feeds.select(feed, (FEED_URL,), Window(entries=10))

    assert [(d.reason, d.detail) for d in decisions] == [
        ("off_site", "its page is on elsewhere.example, not on the feed's site: pingproxy "
                     "sends only for the feed's own pages"),
        ("taken", "number 1 of the newest 10"),
        ("no_page", "it names no http(s) page of its own ('')"),
        ("duplicate", "the same page as a newer entry"),
    ]


def test_an_entry_the_previous_run_sent_at_the_same_date_is_left_unchanged():
    previous = {"https://blog.example/9": "2026-11-09T00:00:00+00:00",
                "https://blog.example/7": "2026-11-01T00:00:00+00:00",
                "https://blog.example/undated": None}

    chosen = choose(previous=previous)

    assert chosen == {"/9": "unchanged", "/7": "taken", "/5": "taken", "/3": "taken",
                      "/undated": "unchanged"}


def test_the_taken_say_why_in_words():
    decisions = feeds.select(FEED, (FEED_URL,), Window(
        entries=2, since=datetime(2026, 11, 6, tzinfo=UTC),
        previous={"https://blog.example/7": "2026-11-01T00:00:00+00:00"}))

    assert [d.detail for d in decisions[:2]] == [
        "number 1 of the newest 2; dated 2026-11-09T00:00:00+00:00, after --since "
        "2026-11-06T00:00:00+00:00",
        "number 2 of the newest 2; dated 2026-11-07T00:00:00+00:00, after --since "
        "2026-11-06T00:00:00+00:00; updated since the previous run (2026-11-01T00:00:00+00:00)",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("2d", NOW - timedelta(days=2)), ("12h", NOW - timedelta(hours=12)),
    ("1w2d", NOW - timedelta(days=9)), ("30m", NOW - timedelta(minutes=30)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
    ("2026-11-01T12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
])
def test_since_reads_an_iso_date_or_time_or_a_duration(text, expected):
    assert feeds.parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2d3", "-2d", "2026-13-01", "1y"])
def test_since_refuses_anything_else_saying_what_it_expects(text):
    with pytest.raises(ValueError, match="expected an ISO 8601 date or time"):
        feeds.parse_since(text, NOW)

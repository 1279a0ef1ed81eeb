"""Which entries a feed offers, and why each is taken or left (pure: no I/O).

A feed is one more way for send to find its posts: it names pages, and each page is then
sent as a post. Recognised by content type and content: RSS 2.0 (and 0.9x, 1.0) and Atom
through feedparser; JSON Feed (jsonfeed.org, version 1 and 1.1) through the stdlib's json;
an HTML page whose microformats2 (mf2py) have a top-level h-feed and no top-level h-entry.
Anything else is a post, as before feeds. A body that says it is a feed (by its type, or by
starting as one) and cannot be read is unreadable, never silently a post.

XML is first checked well-formed by defusedxml with DTDs refused, so no entity is ever
expanded; feedparser then reads it from memory (given a stream, never a string that it
would take for a URL or a file name).
"""

import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from yarl import URL

RSS = "rss"
ATOM = "atom"
JSON_FEED = "json-feed"
H_FEED = "h-feed"

FEED_XML_TYPES = frozenset({"application/rss+xml", "application/atom+xml",
                            "application/rdf+xml"})
XML_TYPES = FEED_XML_TYPES | {"application/xml", "text/xml"}
JSON_FEED_TYPE = "application/feed+json"
JSON_TYPES = frozenset({JSON_FEED_TYPE, "application/json"})
# The non-HTML bodies a send reads from the URL it is given, to see whether it is a feed.
CONTENT_TYPES = XML_TYPES | JSON_TYPES | {"text/plain"}
ACCEPT = ("text/html, application/xhtml+xml;q=0.9, application/atom+xml;q=0.9, "
          "application/rss+xml;q=0.9, application/feed+json;q=0.9, application/xml;q=0.8, "
          "application/json;q=0.8, */*;q=0.1")

JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"
# How a body starts when it is an RSS, RSS 1.0 (RDF) or Atom document.
_XML_FEED_START = re.compile(rb"<(rss|feed|rdf:RDF)[\s>/]")
_SNIFF_BYTES = 1024
_DURATION = re.compile(r"(\d+)([smhdw])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# Why an entry is taken or left: stable tokens of the JSON report.
TAKEN = "taken"
NO_PAGE = "no_page"
OFF_SITE = "off_site"
DUPLICATE = "duplicate"
UNDATED = "undated"
OLDER = "older"
UNCHANGED = "unchanged"
BEYOND_ENTRIES = "beyond_entries"
REASONS = (TAKEN, NO_PAGE, OFF_SITE, DUPLICATE, UNDATED, OLDER, UNCHANGED, BEYOND_ENTRIES)


class FeedUnreadable(ValueError):
    """A body that is meant as a feed and cannot be read: the message says why."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry: its page (None when it names none), as written, and its dates (UTC)."""

    url: URL | None
    written: str
    title: str = ""
    updated: datetime | None = None
    published: datetime | None = None

    @property
    def date(self) -> datetime | None:
        """The date that orders it and that --since compares: updated, else published."""
        return self.updated or self.published


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed's format, title and entries, newest first."""

    format: str
    title: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """Which entries to take: the newest N, those dated after since, and not those the
    previous run sent at the same date (its sources and their dates as it recorded them)."""

    entries: int
    since: datetime | None = None
    previous: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """An entry, whether it is taken (reason TAKEN) or why it is left, and that in words."""

    entry: Entry
    reason: str
    detail: str

    @property
    def taken(self) -> bool:
        return self.reason == TAKEN


def select(feed: Feed, site: Iterable[URL], window: Window) -> list[Decision]:
    """Every entry, newest first, taken or left with its reason; both limits hold, so the
    stricter wins. An undated entry is new only when --since is not given."""
    hosts = {_site_host(url) for url in site}
    seen: set[URL] = set()
    decisions, taken = [], 0
    for entry in feed.entries:
        reason, detail = _left(entry, hosts, seen, window)
        if reason is None:
            if taken < window.entries:
                taken += 1
                reason, detail = TAKEN, _taken_detail(entry, window, taken)
            else:
                reason, detail = BEYOND_ENTRIES, f"past the newest {window.entries} (--entries)"
        if entry.url is not None:
            seen.add(entry.url.with_fragment(None))
        decisions.append(Decision(entry, reason, detail))
    return decisions


def iso(when: datetime | None) -> str | None:
    """A date as the report writes it: ISO 8601 in UTC, to the second."""
    return None if when is None else when.astimezone(UTC).isoformat(timespec="seconds")


def _left(entry: Entry, hosts: set[str], seen: set[URL],
          window: Window) -> tuple[str | None, str]:
    """Why the entry is left, before the count of --entries; (None, "") when it is not."""
    if entry.url is None:
        return NO_PAGE, f"it names no http(s) page of its own ({entry.written!r})"
    if _site_host(entry.url) not in hosts:
        return OFF_SITE, (f"its page is on {entry.url.host}, not on the feed's site: "
                          "pingproxy sends only for the feed's own pages")
    if entry.url.with_fragment(None) in seen:
        return DUPLICATE, "the same page as a newer entry"
    if window.since is not None:
        if entry.date is None:
            return UNDATED, "it has no date, and --since takes only entries dated after it"
        if entry.date <= window.since:
            return OLDER, f"dated {iso(entry.date)}, not after --since {iso(window.since)}"
    key = str(entry.url.with_fragment(None))
    if key in window.previous and window.previous[key] == iso(entry.date):
        return UNCHANGED, "sent by the previous run (--previous) and not updated since"
    return None, ""


def _taken_detail(entry: Entry, window: Window, rank: int) -> str:
    parts = [f"number {rank} of the newest {window.entries}"]
    if window.since is not None:
        parts.append(f"dated {iso(entry.date)}, after --since {iso(window.since)}")
    elif entry.date is None:
        parts.append("undated, so new under --entries")
    key = str(entry.url.with_fragment(None)) if entry.url else ""
    if key in window.previous:
        parts.append(f"updated since the previous run ({window.previous[key] or 'undated'})")
    return "; ".join(parts)


def _site_host(url: URL) -> str:
    host = (url.host or "").lower()
    return host.removeprefix("www.")


def read(body: bytes, content_type: str, url: URL, *, html: str | None,
         cut_at_bytes: int | None = None) -> Feed | None:
    """The feed at url, or None when the page is a post; FeedUnreadable when it is meant
    as a feed and cannot be read. html: the page decoded, when it is HTML; cut_at_bytes:
    the cap the body was cut at, when it was (a cut feed is never well-formed)."""
    if html is not None:
        return _h_feed(html, url)
    start = body[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")
    try:
        if content_type in FEED_XML_TYPES or _XML_FEED_START.search(start):
            return _xml_feed(body, content_type, url)
        if content_type == JSON_FEED_TYPE or (start.startswith(b"{") and
                                              content_type in JSON_TYPES | {"text/plain"}):
            return _json_feed(body, url, declared=content_type == JSON_FEED_TYPE)
    except FeedUnreadable as error:
        if cut_at_bytes is not None:
            raise FeedUnreadable(f"{error}: the feed is larger than {cut_at_bytes} bytes, "
                                 "pingproxy reads no more (--discovery-max-page)") from None
        raise
    return None


def newest_first(entries: list[Entry]) -> tuple[Entry, ...]:
    """Dated entries by date, newest first; then the undated, in feed order (stable)."""
    dated = sorted((entry for entry in entries if entry.date), key=lambda e: e.date,
                   reverse=True)
    return (*dated, *(entry for entry in entries if entry.date is None))


def parse_date(text: object) -> datetime | None:
    """An ISO 8601 / RFC 3339 date or time in UTC (no zone: UTC); None if it is none."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """--since: an ISO 8601 date or time, or a duration before now (2d, 12h, 1w2d);
    ValueError saying what is expected."""
    text = text.strip()
    if text and _DURATION.sub("", text) == "":
        parts = {_DURATION_UNITS[unit]: 0.0 for unit in _DURATION_UNITS}
        for amount, unit in _DURATION.findall(text):
            parts[_DURATION_UNITS[unit]] += int(amount)
        return now - timedelta(**parts)
    when = parse_date(text)
    if when is None:
        raise ValueError("expected an ISO 8601 date or time (2026-11-01, "
                         "2026-11-01T12:00:00Z) or a duration such as 2d, 12h, 30m or 1w")
    return when


def _xml_feed(body: bytes, content_type: str, url: URL) -> Feed:
    import feedparser  # on first use: a send of a post never needs it
    from defusedxml import DefusedXmlException, ElementTree

    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise FeedUnreadable("the feed declares a DTD or entities, which pingproxy refuses "
                             "to read") from None
    except ElementTree.ParseError as error:
        raise FeedUnreadable(f"the feed is not well-formed XML ({error})") from None
    name = root.tag.rpartition("}")[2]
    if name not in ("rss", "feed", "RDF"):
        raise FeedUnreadable(f"the feed is XML but neither RSS nor Atom (its root is <{name}>)")
    # Only links, titles and dates are read: sanitizing each entry's HTML and resolving the
    # URLs inside it would be most of the work (a megabyte of content: 2 s instead of 0.02 s).
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=False,
                              resolve_relative_uris=False, response_headers={
                                  "content-location": str(url),
                                  "content-type": content_type or "application/xml"})
    kind = ATOM if parsed.get("version", "").startswith("atom") else RSS
    entries = [Entry(_absolute(url, _text(item, "link")), _text(item, "link"),
                     _text(item, "title"), _struct_date(item, "updated_parsed"),
                     _struct_date(item, "published_parsed"))
               for item in parsed.entries]
    return Feed(kind, _text(parsed.feed, "title"), newest_first(entries))


def _json_feed(body: bytes, url: URL, *, declared: bool) -> Feed | None:
    """A JSON Feed (jsonfeed.org 1.1: version, items[].url, date_published, date_modified)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        if not declared:
            return None
        raise FeedUnreadable(f"the feed is not valid JSON ({error})") from None
    version = document.get("version") if isinstance(document, dict) else None
    if not (isinstance(version, str) and version.startswith(JSON_FEED_VERSION_PREFIX)):
        if not declared:
            return None
        raise FeedUnreadable(f"the feed is JSON but not a JSON Feed (no version "
                             f"{JSON_FEED_VERSION_PREFIX}...)")
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedUnreadable("the JSON Feed has no list of items")
    entries = []
    for item in items:
        item = item if isinstance(item, dict) else {}
        written = item.get("url") if isinstance(item.get("url"), str) else ""
        entries.append(Entry(_absolute(url, written), written, _string(item.get("title")),
                             parse_date(item.get("date_modified")),
                             parse_date(item.get("date_published"))))
    return Feed(JSON_FEED, _string(document.get("title")), newest_first(entries))


def _h_feed(html: str, url: URL) -> Feed | None:
    """The page's top-level h-feed, unless the page is a post (a top-level h-entry)."""
    if "h-feed" not in html:  # mf2py takes about a second a megabyte: only when it may pay
        return None
    import mf2py

    items = mf2py.parse(doc=html, url=str(url)).get("items", [])
    if any("h-entry" in item.get("type", ()) for item in items):
        return None
    feed = next((item for item in items if "h-feed" in item.get("type", ())), None)
    if feed is None:
        return None
    entries = []
    for child in feed.get("children", []):
        if "h-entry" not in child.get("type", ()):
            continue
        properties = child.get("properties", {})
        written = _first(properties, "url")
        entries.append(Entry(_absolute(url, written), written, _first(properties, "name"),
                             parse_date(_first(properties, "updated")),
                             parse_date(_first(properties, "published"))))
    return Feed(H_FEED, _first(feed.get("properties", {}), "name"), newest_first(entries))


def _first(properties: dict, name: str) -> str:
    """A microformats2 property's first value as text (a nested item's own value)."""
    values = properties.get(name) or [""]
    value = values[0]
    if isinstance(value, dict):
        value = value.get("value", "")
    return _string(value)


def _absolute(base: URL, written: str) -> URL | None:
    """The entry's page as an absolute http(s) URL, resolved against the feed's; or None."""
    try:
        url = base.join(URL(written.strip())) if written.strip() else None
    except ValueError:
        return None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        return None
    return url


def _struct_date(item: dict, key: str) -> datetime | None:
    # dict.get: feedparser's own get maps a missing updated_parsed to published_parsed.
    value = dict.get(item, key)
    return datetime(*value[:6], tzinfo=UTC) if value else None


def _text(item: dict, key: str) -> str:
    return _string(dict.get(item, key))


def _string(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""

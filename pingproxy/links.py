"""Which links a post makes, and why every other link on its page was skipped (pure).

The post is what microformats2 says it is when the page has an h-entry (parsed by mf2py):
the links inside the first h-entry's e-content, plus its in-reply-to, like-of, repost-of,
bookmark-of and syndication URLs. A page without an h-entry has no marked-up post, so its
post is the first <main>, else the first <article>, else the <body>. Every <a href> of the
page is accounted for: chosen as a target, or skipped with a reason.

Links resolve against the page's final URL and its <base href>, and are compared after
normalising (scheme and host case, default port and fragment dropped, by yarl).
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from bs4 import BeautifulSoup, Tag

E_CONTENT = "e-content"
H_ENTRY = "h-entry"  # an h-entry without e-content: only its properties are links
FALLBACK_CONTAINERS = ("main", "article", "body")
# h-entry properties whose URLs are targets (mf2py drops the u- of u-syndication).
ENTRY_PROPERTIES = ("in-reply-to", "like-of", "repost-of", "bookmark-of", "syndication")
MEDIA_TAGS = ("img", "video", "audio")
ALSO = "also"
PREVIOUS = "previous"
MEDIA = "media"

# Why a link is not a target: stable tokens of the JSON report.
OUTSIDE_POST = "outside_post"
SELF = "self"
DUPLICATE = "duplicate"
SCHEME = "scheme"
SOURCE_ITSELF = "source_itself"
BLOCKED_ADDRESS = "blocked_address"
TOO_MANY = "too_many"
SKIP_REASONS = {
    OUTSIDE_POST: "outside the post",
    SELF: "on the source's own site (--self sends to it)",
    DUPLICATE: "the same URL as an earlier link",
    SCHEME: "not an http(s) URL",
    SOURCE_ITSELF: "the source page itself",
    BLOCKED_ADDRESS: "an address the guard refuses",
    TOO_MANY: "over the cap on targets per source",
}

# Each <a href> carries its position while mf2py copies the e-content, so the copy tells
# which of the page's own links are inside the post.
_POSITION = "data-pingproxy-position"


@dataclass(frozen=True, slots=True)
class Link:
    """A target: its normalised URL and where the post holds it (a container or property)."""

    url: URL
    found_in: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A link that is no target: as written, resolved when it resolves, and why."""

    written: str
    url: str | None
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PostLinks:
    """The container read (None when the page has no HTML), the targets and the rest."""

    container: str | None
    links: tuple[Link, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """How to choose: the source's own URLs, and the caller's additions and limits."""

    source_urls: tuple[URL, ...]
    include_self: bool = False
    media: bool = False
    also: tuple[str, ...] = ()
    previous: tuple[str, ...] = ()
    max_links: int | None = None
    # Why the guard refuses a URL before any request, or None: netguard's URL check.
    blocked: Callable[[URL], str | None] = lambda url: None


def normalised(url: URL) -> URL:
    """url as links are compared: yarl has lowered scheme and host; the fragment goes."""
    return url.with_fragment(None)


def choose(html: str | None, page_url: URL, choice: Choice) -> PostLinks:
    """The targets of the post in html (the page at page_url), plus the caller's additions."""
    chooser = _Chooser(choice)
    container = None
    if html is not None:
        document = _document(html)
        if document is not None:
            base = _base(document, page_url)
            container = chooser.read_page(document, base, page_url)
        else:
            container = FALLBACK_CONTAINERS[-1]
    # Targets the caller names are absolute URLs, and may be on the source's own site.
    for found_in, given in ((ALSO, choice.also), (PREVIOUS, choice.previous)):
        for written in given:
            chooser.offer(written, None, found_in, inside=True, own_site_allowed=True)
    chooser.offer_outside()
    return PostLinks(container, tuple(chooser.links), tuple(chooser.skipped))


def _document(html: str) -> "BeautifulSoup | None":
    """The page as browsers build it (html5lib); None for text without any element, which
    Beautiful Soup would also warn about when it looks like a URL or a file name."""
    # Imported on first use: Beautiful Soup and mf2py add about 0.1 s to every server's
    # start-up, for a route that few servers open.
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html5lib") if "<" in html else None


def _base(document: "BeautifulSoup", page_url: URL) -> URL:
    """The URL links resolve against: the first <base href>, itself resolved (HTML, 4.2.3)."""
    base = document.find("base", href=True)
    if base is None:
        return page_url
    try:
        return page_url.join(URL(_stripped(base["href"])))
    except ValueError:
        return page_url


@dataclass
class _Chooser:
    """Offers links in the order they count; the first of each URL wins."""

    choice: Choice
    links: list[Link] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seen: dict[URL, bool] = field(default_factory=dict)  # each URL offered: chosen?
    outside: list[tuple[str, URL]] = field(default_factory=list)

    def read_page(self, document: "BeautifulSoup", base: URL, page_url: URL) -> str:
        """Offer the post's links; keep the page's other links for offer_outside."""
        import mf2py  # on first use, as Beautiful Soup

        anchors = document.find_all("a", href=True)
        for position, anchor in enumerate(anchors):
            anchor[_POSITION] = str(position)
        entry = _first_entry(mf2py.parse(doc=document, url=str(page_url), expose_dom=True))
        if entry is not None:
            container, element = _entry_content(entry)
            for name, value in _entry_urls(entry):
                self.offer(value, base, name, inside=True)
        else:
            container, element = next(
                ((name, found) for name in FALLBACK_CONTAINERS
                 if (found := document.find(name)) is not None),
                (FALLBACK_CONTAINERS[-1], document))
        inside = _positions(element)
        for position, anchor in enumerate(anchors):
            if str(position) in inside:
                self.offer(anchor["href"], base, container, inside=True)
            else:
                self.outside.append((anchor["href"], base))
        if self.choice.media and element is not None:
            for written in _media_sources(element):
                self.offer(written, base, MEDIA, inside=True)
        return container

    def offer_outside(self) -> None:
        for written, base in self.outside:
            self.offer(written, base, OUTSIDE_POST, inside=False)

    def offer(self, written: str, base: URL | None, found_in: str, *, inside: bool,
              own_site_allowed: bool = False) -> None:
        url = _resolved(base, written)
        reason, detail = self._skip_reason(url, inside, own_site_allowed)
        if reason is None and self.choice.max_links is not None \
                and len(self.links) >= self.choice.max_links:
            reason, detail = TOO_MANY, f"only the first {self.choice.max_links} are sent"
        if url is not None:
            self.seen.setdefault(url, reason is None)
        if reason is None:
            self.links.append(Link(url, found_in))
        else:
            self.skipped.append(Skipped(written, str(url) if url else None, reason, detail))

    def _skip_reason(self, url: URL | None, inside: bool,
                     own_site_allowed: bool) -> tuple[str | None, str]:
        if url is None:
            return SCHEME, ""
        if url in self.choice.source_urls:
            return SOURCE_ITSELF, ""
        if url in self.seen:
            return DUPLICATE, "a target already" if self.seen[url] else "skipped already"
        if not inside:
            return OUTSIDE_POST, ""
        own_hosts = {source.host for source in self.choice.source_urls}
        if url.host in own_hosts and not (self.choice.include_self or own_site_allowed):
            return SELF, ""
        blocked = self.choice.blocked(url)
        if blocked is not None:
            return BLOCKED_ADDRESS, blocked
        return None, ""


def _first_entry(parsed: dict) -> dict | None:
    """The first h-entry in document order, top-level items and their children alike."""
    for item in _items(parsed.get("items", [])):
        if H_ENTRY in item.get("type", []):
            return item
    return None


def _items(items: Iterable[dict]) -> Iterator[dict]:
    for item in items:
        yield item
        yield from _items(item.get("children", []))


def _entry_content(entry: dict) -> tuple[str, "Tag | None"]:
    from bs4 import Tag  # on first use, as above

    for value in entry.get("properties", {}).get("content", []):
        if isinstance(value, dict) and isinstance(value.get("dom"), Tag):
            return E_CONTENT, value["dom"]
    return H_ENTRY, None


def _entry_urls(entry: dict) -> Iterator[tuple[str, str]]:
    """(property, URL) for each target property; an embedded h-cite gives its u-url."""
    properties = entry.get("properties", {})
    for name in ENTRY_PROPERTIES:
        for value in properties.get(name, []):
            if isinstance(value, dict):
                urls = value.get("properties", {}).get("url") or [value.get("value")]
                value = urls[0]
            if isinstance(value, str):
                yield name, value


def _positions(element: "Tag | None") -> set[str]:
    if element is None:
        return set()
    return {anchor.get(_POSITION) for anchor in element.find_all("a", href=True)}


def _media_sources(element: "Tag") -> Iterator[str]:
    """src of each <img>, <video> and <audio>, and of the <source>s of a video or audio."""
    for media in element.find_all(MEDIA_TAGS):
        if media.get("src"):
            yield media["src"]
        if media.name != "img":
            for source in media.find_all("source", src=True):
                yield source["src"]


def _resolved(base: URL | None, written: str) -> URL | None:
    """written resolved against base (None: it must be absolute), normalised, if that makes
    an http(s) URL with a host."""
    try:
        url = URL(_stripped(written))
        if base is not None:
            url = base.join(url)
    except (ValueError, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return normalised(url)


def _stripped(text: str) -> str:
    """An attribute's URL as HTML reads it: ASCII whitespace around it removed."""
    return text.strip(" \t\n\f\r")

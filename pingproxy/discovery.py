"""WebMention endpoint discovery (W3C WebMention Recommendation, 2017-01-12, section 3.1.2).

Fetch the target with GET, following redirects, and take the first endpoint it advertises:
the first HTTP Link header with rel webmention, else the first <link> or <a> element with rel
webmention in its HTML, in document order. Relative endpoints resolve against the final URL.
The parsing is plain functions; ``examine`` and ``discover`` add the one fetch.

Only HTML bodies are read, and at most max_page_bytes of them: a page longer than that is
parsed as far as it was read, so an endpoint advertised beyond the cap counts as none. The
cap bounds what a stranger's page can cost; it is not an error.
"""

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser

import aiohttp
from yarl import URL

from pingproxy import outbound
from pingproxy.errors import DiscoveryFailed, Outcome, UpstreamError
from pingproxy.netguard import DestinationPolicy
from pingproxy.outbound import Reply

WEBMENTION_REL = "webmention"
HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
ACCEPT_HTML = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Section 3.1.2 makes senders follow redirects; section 4 asks them to limit how many.
MAX_TARGET_REDIRECTS = 10
# Pingback 1.0: fault 32 only when the target definitely does not exist.
GONE_STATUSES = frozenset({404, 410})
NO_ENDPOINT_TEXT = "the target advertises no WebMention endpoint"

# HTML's ASCII whitespace: rel is a set of tokens split on it, and URLs are stripped of it.
_HTML_WHITESPACE = " \t\n\f\r"
_HTML_WHITESPACE_RUN = re.compile(f"[{_HTML_WHITESPACE}]+")
# Parsing stops at the first endpoint; feeding in slices lets it stop early on a long page.
_FEED_CHARACTERS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Discovery:
    """What one fetch of a target found: its endpoint (None: it advertises none) and how
    long the target lets that be reused (its Cache-Control header)."""

    endpoint: URL | None
    cache_control: str = ""

    def required_endpoint(self) -> URL:
        """The endpoint; DiscoveryFailed with NO_ENDPOINT when the target advertises none."""
        if self.endpoint is None:
            raise DiscoveryFailed(Outcome.NO_ENDPOINT, NO_ENDPOINT_TEXT)
        return self.endpoint


async def discover(
    session: aiohttp.ClientSession,
    policy: DestinationPolicy,
    target: URL,
    *,
    max_page_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> URL:
    """The target's WebMention endpoint, or DiscoveryFailed whose outcome says why not."""
    found = await examine(session, policy, target, max_page_bytes=max_page_bytes,
                          headers=headers)
    return found.required_endpoint()


async def examine(
    session: aiohttp.ClientSession,
    policy: DestinationPolicy,
    target: URL,
    *,
    max_page_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> Discovery:
    """Fetch the target once and read what it advertises; DiscoveryFailed if it fails."""
    try:
        reply = await outbound.request(
            session, policy, "GET", target.with_fragment(None),
            headers={"Accept": ACCEPT_HTML, **(headers or {})},
            follow=REDIRECT_STATUSES, max_redirects=MAX_TARGET_REDIRECTS,
            max_bytes=max_page_bytes, truncate=True, body_content_types=HTML_CONTENT_TYPES,
        )
    except UpstreamError as error:
        raise DiscoveryFailed(
            Outcome.TARGET_FAILED, f"the target could not be fetched: {error}"
        ) from error
    _check_status(reply)
    # A megabyte of HTML keeps a pure-Python parser busy for about 0.2 s: off the loop.
    endpoint = await asyncio.to_thread(endpoint_in, reply)
    return Discovery(endpoint, ", ".join(reply.headers.getall("Cache-Control", [])))


def too_slow(timeout_seconds: float) -> DiscoveryFailed:
    """The failure of a discovery that did not end within timeout_seconds."""
    return DiscoveryFailed(
        Outcome.TARGET_FAILED,
        f"discovering the target's endpoint took over {timeout_seconds:g} s",
    )


def _check_status(reply: Reply) -> None:
    if 200 <= reply.status < 300:
        return
    answer = f"the target answered HTTP {reply.status} {reply.reason}".rstrip()
    outcome = Outcome.TARGET_NOT_FOUND if reply.status in GONE_STATUSES else Outcome.TARGET_FAILED
    raise DiscoveryFailed(outcome, answer, upstream_status=reply.status)


def endpoint_in(reply: Reply) -> URL | None:
    """The endpoint a fetched target advertises: its Link headers first, then its HTML."""
    endpoint = link_header_endpoint(reply.links.values())
    if endpoint is None and reply.content_type in HTML_CONTENT_TYPES:
        endpoint = html_endpoint(_decoded(reply), reply.url)
    return endpoint


def link_header_endpoint(links: Iterable[Mapping[str, object]]) -> URL | None:
    """The first http(s) URL with rel webmention among links parsed by aiohttp (whose "url"
    is already resolved against the reply's URL), in header order."""
    for link in links:
        rel = next((str(value) for name, value in link.items() if name.lower() == "rel"), "")
        url = link.get("url")
        if has_webmention_rel(rel) and isinstance(url, URL):
            endpoint = _http_only(url)
            if endpoint is not None:
                return endpoint
    return None


def html_endpoint(html: str, base: URL) -> URL | None:
    """The first <link> or <a> with rel webmention and an href in html, resolved against base."""
    finder = _EndpointFinder(base)
    for start in range(0, len(html), _FEED_CHARACTERS):
        finder.feed(html[start:start + _FEED_CHARACTERS])
        if finder.endpoint is not None:
            break
    return finder.endpoint


def has_webmention_rel(rel: str) -> bool:
    """Whether a rel value, a set of space-separated tokens, holds the token webmention."""
    return WEBMENTION_REL in _HTML_WHITESPACE_RUN.split(rel.lower())


class _EndpointFinder(HTMLParser):
    """Keeps the first endpoint of the document: comments, script and style contents, and
    escaped text never reach handle_starttag, so markup in them is not an element."""

    def __init__(self, base: URL) -> None:
        super().__init__(convert_charrefs=True)
        self._base = base
        self.endpoint: URL | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.endpoint is not None or tag not in ("link", "a"):
            return
        # When an attribute repeats, HTML keeps the first.
        attributes = dict(reversed(attrs))
        if "href" not in attributes or not has_webmention_rel(attributes.get("rel") or ""):
            return
        # An empty href (or a bare "href") is a relative URL naming the document itself.
        self.endpoint = _resolved(self._base, attributes["href"] or "")


def _resolved(base: URL, href: str) -> URL | None:
    """href resolved against base (section 3.1.2), if that makes an http(s) URL."""
    try:
        return _http_only(base.join(URL(href.strip(_HTML_WHITESPACE))))
    except ValueError:
        return None


def _http_only(url: URL) -> URL | None:
    """The URL without its fragment when it is an absolute http(s) URL; its query stays."""
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return url.with_fragment(None)


def _decoded(reply: Reply) -> str:
    """The body as text in its declared charset; UTF-8 when it names none or no text codec."""
    try:
        return reply.body.decode(reply.charset or "utf-8", "replace")
    except LookupError:
        return reply.body.decode("utf-8", "replace")

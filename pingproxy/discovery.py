"""Endpoint discovery, both protocols: what a sender finds on a fetched page.

WebMention (W3C Recommendation, 2017-01-12, section 3.1.2): fetch the target with GET,
following redirects, and take the first endpoint it advertises: the first HTTP Link header
with rel webmention, else the first <link> or <a> element with rel webmention in its HTML, in
document order. Relative endpoints resolve against the final URL.

Pingback 1.0 ("Autodiscovery"): the X-Pingback header, else the first match of the
specification's own pattern for <link rel="pingback" href="...">; both must be absolute URLs.
WordPress core, the most common pingback sender, reads the href more loosely; check reports
what each kind of sender finds.

The parsing is plain functions; ``fetch_page``, ``examine`` and ``discover`` add the one fetch.

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
from pingproxy.urls import http_url

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

PINGBACK_HEADER = "X-Pingback"
# Pingback 1.0, "Autodiscovery": the regular expression a sender matches against the page,
# and the only four entities it then expands.
_PINGBACK_LINK = re.compile(r'<link rel="pingback" href="([^"]+)" ?/?>')
_PINGBACK_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&"))

STEP_LINK_HEADER = "HTTP Link header"
STEP_PINGBACK_HEADER = f"{PINGBACK_HEADER} header"
STEP_PINGBACK_LINK = '<link rel="pingback" href="..."> (Pingback 1.0 pattern)'
STEP_WORDPRESS = 'rel="pingback" then href= (WordPress string search)'


@dataclass(frozen=True, slots=True)
class Found:
    """An endpoint a page advertises: its URL (None when the reader cannot use the text as
    one), the text as written, and the step that found it."""

    url: URL | None
    written: str
    step: str


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


async def fetch_page(
    session: aiohttp.ClientSession,
    policy: DestinationPolicy,
    url: URL,
    *,
    max_page_bytes: int,
    headers: Mapping[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> Reply:
    """GET a page as senders do: redirects followed and each hop checked, only an HTML body
    read, and that to max_page_bytes; UpstreamError when it cannot be fetched."""
    return await outbound.request(
        session, policy, "GET", url.with_fragment(None),
        headers={"Accept": ACCEPT_HTML, **(headers or {})},
        follow=REDIRECT_STATUSES, max_redirects=MAX_TARGET_REDIRECTS,
        max_bytes=max_page_bytes, truncate=True, body_content_types=HTML_CONTENT_TYPES,
        links=True, timeout=timeout,
    )


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
        reply = await fetch_page(session, policy, target, max_page_bytes=max_page_bytes,
                                 headers=headers)
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
    found = webmention_found(reply)
    return found.url if found else None


def webmention_found(reply: Reply) -> Found | None:
    """The WebMention endpoint a fetched page advertises, and the step that found it."""
    endpoint = link_header_endpoint(reply.links.values())
    if endpoint is not None:
        return Found(endpoint, str(endpoint), STEP_LINK_HEADER)
    if reply.content_type in HTML_CONTENT_TYPES:
        return html_found(decoded_html(reply), reply.url)
    return None


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
    found = html_found(html, base)
    return found.url if found else None


def html_found(html: str, base: URL) -> Found | None:
    """Like html_endpoint, with the element that advertised it."""
    finder = _EndpointFinder(base)
    for start in range(0, len(html), _FEED_CHARACTERS):
        finder.feed(html[start:start + _FEED_CHARACTERS])
        if finder.found is not None:
            break
    return finder.found


def pingback_server(reply: Reply) -> Found | None:
    """The pingback server a Pingback 1.0 sender finds: the X-Pingback header, else the
    specification's <link> pattern in an HTML body; its URL is None unless absolute."""
    return pingback_header(reply) or (
        pingback_link(decoded_html(reply)) if reply.content_type in HTML_CONTENT_TYPES else None)


def pingback_header(reply: Reply) -> Found | None:
    """The X-Pingback header, taken as written (Pingback 1.0: an absolute URI)."""
    written = reply.headers.get(PINGBACK_HEADER, "").strip()
    return Found(http_url(written), written, STEP_PINGBACK_HEADER) if written else None


def pingback_link(html: str) -> Found | None:
    """The first match of Pingback 1.0's <link> pattern, its four entities expanded."""
    match = _PINGBACK_LINK.search(html)
    if match is None:
        return None
    written = match.group(1)
    for entity, character in _PINGBACK_ENTITIES:
        written = written.replace(entity, character)
    return Found(http_url(written), written, STEP_PINGBACK_LINK)


def wordpress_pingback_link(html: str) -> Found | None:
    """What WordPress core's discover_pingback_server_uri() reads from a page: after the
    first rel="pingback" (else rel='pingback'), the next href=, verbatim to the same quote;
    no entity expanded, nothing resolved, and the href= may belong to a later element."""
    for quote in ('"', "'"):
        rel_at = html.find(f"rel={quote}pingback{quote}")
        if rel_at == -1:
            continue
        href_at = html.find("href=", rel_at)
        end = html.find(quote, href_at + 6) if href_at != -1 else -1
        written = html[href_at + 6:end] if end != -1 else ""
        return Found(http_url(written), written, STEP_WORDPRESS) if written else None
    return None


def has_webmention_rel(rel: str) -> bool:
    """Whether a rel value, a set of space-separated tokens, holds the token webmention."""
    return WEBMENTION_REL in _HTML_WHITESPACE_RUN.split(rel.lower())


class _EndpointFinder(HTMLParser):
    """Keeps the first endpoint of the document: comments, script and style contents, and
    escaped text never reach handle_starttag, so markup in them is not an element."""

    def __init__(self, base: URL) -> None:
        super().__init__(convert_charrefs=True)
        self._base = base
        self.found: Found | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is not None or tag not in ("link", "a"):
            return
        # When an attribute repeats, HTML keeps the first.
        attributes = dict(reversed(attrs))
        if "href" not in attributes or not has_webmention_rel(attributes.get("rel") or ""):
            return
        # An empty href (or a bare "href") is a relative URL naming the document itself.
        written = attributes["href"] or ""
        endpoint = _resolved(self._base, written)
        if endpoint is not None:
            self.found = Found(endpoint, written, f'<{tag} rel="webmention"> element')


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


def decoded_html(reply: Reply) -> str:
    """The body (HTML or any text) in its declared charset; UTF-8 when it names none or no
    text codec."""
    try:
        return reply.body.decode(reply.charset or "utf-8", "replace")
    except LookupError:
        return reply.body.decode("utf-8", "replace")

"""What a check found, and what it means: the concerns, the verdict and the fix (pure).

diagnose.py fetches and probes; everything here is plain data and plain functions over it,
so every diagnosis can be tested without a network. A concern never changes the verdict on
its own: the verdict answers one question, whether pingbacks to the page reach its
WebMention endpoint, and the concerns list what some senders or tools will still trip on.
"""

import re
from dataclasses import dataclass
from enum import Enum

from yarl import URL

from pingproxy.discovery import Found
from pingproxy.errors import fault_meaning
from pingproxy.urls import DISCOVERY_FORM, pingback_tags, pingback_url

WEBMENTION_PROBE, XMLRPC_PROBE = "webmention", "xmlrpc"
PROBE_WEBMENTION = "POST source=target"
PROBE_LIST = "system.listMethods"
PROBE_PING = "pingback.ping(source=target)"
PROBE_HELP = "system.methodHelp(pingback.ping)"
# Stands for the pingproxy's address in a fix when the check does not know it.
PROXY_PLACEHOLDER = "https://PROXY"
# A character reference in an href, which WordPress sends on as written.
_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)

# The concerns a report may list, by code (the JSON report's "code"; documented in the README).
HEADER_ELEMENT_DISAGREE = "header_element_disagree"
LENIENT_ONLY = "lenient_only"
SEVERAL_SERVERS = "several_pingback_servers"
SENDERS_DISAGREE = "senders_disagree"
ENTITY_IN_HREF = "entity_in_href"
RELATIVE_HREF = "relative_href"
HOME_DIFFERS = "home_page_differs"
HOME_UNREACHABLE = "home_page_unreachable"
NO_WEBMENTION_ON_PAGE = "no_webmention_endpoint"
ACCEPTS_SELF_MENTION = "accepts_self_mention"
CONCERN_CODES = (HEADER_ELEMENT_DISAGREE, LENIENT_ONLY, SEVERAL_SERVERS, SENDERS_DISAGREE,
                 ENTITY_IN_HREF, RELATIVE_HREF, HOME_DIFFERS, HOME_UNREACHABLE,
                 NO_WEBMENTION_ON_PAGE, ACCEPTS_SELF_MENTION)


class Status(str, Enum):
    """A check's end: the command's exit code is 0, 1 and 2 in this order."""

    WORKS = "works"
    BROKEN = "broken"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class PageView:
    """One fetched page and what each kind of sender finds on it."""

    url: URL
    final_url: URL | None = None
    http_status: int | None = None
    content_type: str | None = None
    redirects: tuple[tuple[int, URL], ...] = ()
    error: str | None = None  # why the page could not be read; None when it was
    webmention: Found | None = None  # W3C WebMention discovery
    pingback_header: Found | None = None
    pingback_link: Found | None = None  # Pingback 1.0's strict pattern
    wordpress_link: Found | None = None  # WordPress core's string search
    pingback_hrefs: tuple[str, ...] = ()  # every <link rel="pingback"> href, decoded

    @property
    def pingback(self) -> Found | None:
        """What a Pingback 1.0 sender finds: the header wins over the element."""
        return self.pingback_header or self.pingback_link

    @property
    def lenient(self) -> Found | None:
        """What WordPress finds: the header too, then its own reading of the element."""
        return self.pingback_header or self.wordpress_link

    @property
    def address(self) -> str:
        """The page's address after redirects, the one probes name as source and target."""
        return str(self.final_url or self.url)


@dataclass(frozen=True, slots=True)
class Probe:
    """One harmless request to an endpoint or a pingback server, and what came back."""

    kind: str  # WEBMENTION_PROBE or XMLRPC_PROBE
    url: URL
    request: str  # PROBE_*
    ok: bool  # what this probe shows works for pingbacks
    detail: str
    seconds: float
    http_status: int | None = None
    content_type: str | None = None
    fault_code: int | None = None
    accepted: bool = False  # took the self-mention as a real one, which it must refuse

    @property
    def fault_meaning(self) -> str | None:
        return None if self.fault_code is None else fault_meaning(self.fault_code)


@dataclass(frozen=True, slots=True)
class ProxyUse:
    """A pingback server that is a pingproxy: its form, and where it sends pingbacks on."""

    url: URL
    form: str  # urls.PATH_FORM, FORWARD_FORM or DISCOVERY_FORM
    endpoint: URL | None  # in discovery mode, the page's own endpoint (None: it has none)
    base: str  # the pingproxy's address, for a fix that keeps using it


@dataclass(frozen=True, slots=True)
class Concern:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Fix:
    """What to advertise instead; address, link and header are None when no tag can help."""

    text: str
    address: str | None = None
    link: str | None = None
    header: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    url: URL
    status: Status
    verdict: str
    page: PageView
    home: PageView | None
    proxy: ProxyUse | None
    probes: tuple[Probe, ...]
    concerns: tuple[Concern, ...]
    fix: Fix | None
    seconds: float


def conclude(page: PageView, home: PageView | None, proxy: ProxyUse | None,
             probes: tuple[Probe, ...], *, proxy_base: str | None, seconds: float) -> Report:
    """The report: the verdict with its reason, the concerns, and a fix when it is broken."""
    if page.error is not None:
        return Report(page.url, Status.UNREACHABLE,
                      f"Not checked: the page could not be fetched: {page.error}.",
                      page, home, None, probes, (), None, seconds)
    problem = _problem(page, proxy, probes)
    concerns = (*_pingback_concerns(page), *_home_concerns(page, home),
                *_probe_concerns(page, proxy, probes))
    if problem is not None:
        verdict = f"No: pingbacks to this page will not reach its WebMention endpoint: {problem}."
        fix = _fix(page, proxy, probes, proxy_base)
        return Report(page.url, Status.BROKEN, verdict, page, home, proxy, probes, concerns, fix,
                      seconds)
    server = page.pingback.url
    if proxy is None:
        verdict = (f"Yes: pingbacks to this page reach the pingback server {server}, which "
                   "answers pingback.ping; it is not a pingproxy, so where they go from there "
                   "is up to it.")
    else:
        verdict = (f"Yes: pingbacks to this page will reach its WebMention endpoint "
                   f"{proxy.endpoint}, through the pingproxy at {server}.")
    return Report(page.url, Status.WORKS, verdict, page, home, proxy, probes, concerns, None,
                  seconds)


def server_probe(probes: tuple[Probe, ...]) -> Probe | None:
    """The probe that decides whether the pingback server takes pingback.ping."""
    decisive = [p for p in probes if p.kind == XMLRPC_PROBE and p.request != PROBE_HELP]
    return decisive[-1] if decisive else None


def endpoint_probe(probes: tuple[Probe, ...], endpoint: URL) -> Probe | None:
    return next((p for p in probes if p.kind == WEBMENTION_PROBE and p.url == endpoint), None)


def _problem(page: PageView, proxy: ProxyUse | None, probes: tuple[Probe, ...]) -> str | None:
    """Why pingbacks will not reach the page's WebMention endpoint, or None when they will."""
    found = page.pingback
    if found is None:
        if page.wordpress_link is not None:
            return ("only lenient senders such as WordPress find its pingback server; "
                    "Pingback 1.0 senders find none")
        if page.pingback_hrefs:
            return ("its <link> element names a pingback server in a way no sender reads; "
                    'write it as <link rel="pingback" href="..."> exactly')
        return "the page advertises no pingback server, so senders send no pingback"
    if found.url is None:
        return (f"its pingback server, {found.written!r} ({found.step}), is not an absolute "
                "http(s) URL")
    server = server_probe(probes)
    if server is not None and not server.ok:
        return f"the pingback server {found.url} {server.detail}"
    if proxy is None:
        return None
    own = page.webmention.url if page.webmention else None
    if proxy.endpoint is None:
        return ("the pingback URL is pingproxy's discovery form, but the page advertises no "
                "WebMention endpoint for it to discover")
    if own is not None and proxy.endpoint != own:
        return (f"the pingback URL forwards to {proxy.endpoint}, not to the page's own "
                f"WebMention endpoint {own}")
    probe = endpoint_probe(probes, proxy.endpoint)
    if probe is not None and not probe.ok:
        return f"the WebMention endpoint {proxy.endpoint} {probe.detail}"
    return None


def _fix(page: PageView, proxy: ProxyUse | None, probes: tuple[Probe, ...],
         proxy_base: str | None) -> Fix:
    """The exact tag and header to use instead, naming the endpoint in the path form."""
    endpoint = page.webmention.url if page.webmention else proxy.endpoint if proxy else None
    if endpoint is None:
        return Fix("Advertise your WebMention endpoint on the page first "
                   '(<link rel="webmention" href="...">), then a pingback URL naming it.')
    probe = endpoint_probe(probes, endpoint)
    if probe is not None and not probe.ok:
        return Fix(f"Make the WebMention endpoint {endpoint} answer first: it {probe.detail}.")
    server = server_probe(probes)
    keeps_proxy = proxy is not None and (server is None or server.ok)
    base = proxy_base or (proxy.base if keeps_proxy else PROXY_PLACEHOLDER)
    address = pingback_url(base, str(endpoint))
    link, header = pingback_tags(address)
    text = "Advertise this pingback URL, which names the page's WebMention endpoint:"
    if base == PROXY_PLACEHOLDER:
        text += f" ({PROXY_PLACEHOLDER} stands for your pingproxy's address)"
    return Fix(text, address, link, header)


def _pingback_concerns(page: PageView) -> list[Concern]:
    """Where senders of different kinds find different things, or trip on the href."""
    concerns = []
    header, link, wordpress = page.pingback_header, page.pingback_link, page.wordpress_link
    if header and link and header.written != link.written:
        concerns.append(Concern(HEADER_ELEMENT_DISAGREE,
                                f"The X-Pingback header names {header.written}, the <link> "
                                f"element {link.written}: Pingback 1.0 senders take the header."))
    if not header and not link and wordpress:
        concerns.append(Concern(LENIENT_ONLY,
                                f"Only a lenient reader (WordPress) finds {wordpress.written}: "
                                'the element does not match Pingback 1.0\'s pattern <link '
                                'rel="pingback" href="..."> (attributes in that order, double '
                                "quotes, nothing between)."))
    if len(set(page.pingback_hrefs)) > 1:
        concerns.append(Concern(SEVERAL_SERVERS,
                                f"The page has {len(set(page.pingback_hrefs))} different "
                                "pingback links; a page should carry one."))
    elif link and wordpress and link.url != wordpress.url and not header:
        concerns.append(Concern(SENDERS_DISAGREE,
                                f"Pingback 1.0 senders find {link.written}, WordPress "
                                f"finds {wordpress.written}."))
    # The header wins for every sender: what the element holds then misleads none of them.
    if not header and wordpress and _ENTITY.search(wordpress.written):
        concerns.append(Concern(ENTITY_IN_HREF,
                                f"The href {wordpress.written} holds an entity such as &amp;: "
                                "Pingback 1.0 senders decode it, but WordPress sends to the "
                                "URL verbatim, entity and all. Percent-encode the endpoint "
                                "in the path instead."))
    relative = next((f for f in (link, wordpress) if f and f.url is None), None)
    if not header and relative is not None:
        concerns.append(Concern(RELATIVE_HREF,
                                f"The href {relative.written!r} is not an absolute http(s) URL: "
                                "senders take it verbatim and cannot use it."))
    return concerns


def _home_concerns(page: PageView, home: PageView | None) -> list[Concern]:
    """Many senders read the post, some tools the home page: both should advertise alike."""
    if home is None:
        return []
    if home.error is not None:
        return [Concern(HOME_UNREACHABLE, f"The home page {home.url} could not be fetched: "
                                          f"{home.error}.")]
    concerns = []
    for kind, here, there in (("a pingback server", page.pingback, home.pingback),
                              ("a WebMention endpoint", page.webmention, home.webmention)):
        if bool(here) != bool(there):
            which, other = ("this page", "the home page") if here else ("the home page",
                                                                        "this page")
            concerns.append(Concern(HOME_DIFFERS,
                                    f"Only {which} advertises {kind}, not {other} "
                                    f"({home.url}): tools that look there find none."))
    return concerns


def _probe_concerns(page: PageView, proxy: ProxyUse | None,
                    probes: tuple[Probe, ...]) -> list[Concern]:
    concerns = []
    if page.webmention is None and proxy is not None and proxy.form != DISCOVERY_FORM:
        concerns.append(Concern(NO_WEBMENTION_ON_PAGE,
                                "The page advertises no WebMention endpoint: pingbacks reach "
                                f"{proxy.endpoint}, but WebMention senders find nothing."))
    for probe in probes:
        if probe.accepted:
            concerns.append(Concern(ACCEPTS_SELF_MENTION,
                                    f"{probe.url} accepted a mention whose source is its "
                                    "target; a receiver must refuse it, and may be accepting "
                                    "anything."))
    return concerns

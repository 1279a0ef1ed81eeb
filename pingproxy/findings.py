"""What a check found, and what it means: the concerns, the verdict and the fix (pure).

diagnose.py fetches and probes; everything here is plain data and plain functions over it,
so every diagnosis can be tested without a network. A concern never changes the verdict on
its own: the verdict answers one question, whether pingbacks to the page reach its
WebMention endpoint, and the concerns list what some senders or tools will still trip on.
"""

from dataclasses import dataclass
from enum import Enum

from yarl import URL

from pingproxy.concerns import Concern, concerns
from pingproxy.discovery import Found
from pingproxy.errors import fault_meaning
from pingproxy.urls import pingback_tags, pingback_url

WEBMENTION_PROBE, XMLRPC_PROBE = "webmention", "xmlrpc"
PROBE_WEBMENTION = "POST source=target"
PROBE_LIST = "system.listMethods"
PROBE_PING = "pingback.ping(source=target)"
PROBE_HELP = "system.methodHelp(pingback.ping)"
# What check itself sent with each probe (never a pingback forwarded by a pingproxy).
PROBE_SENT = {
    PROBE_WEBMENTION: "a WebMention POST, source and target both this page",
    PROBE_LIST: "an XML-RPC call, system.listMethods",
    PROBE_PING: "a pingback, pingback.ping with source and target both this page",
    PROBE_HELP: "an XML-RPC call, system.methodHelp(pingback.ping)",
}
# Whom each kind of probe went to.
PROBE_RECEIVER = {WEBMENTION_PROBE: "the WebMention endpoint", XMLRPC_PROBE: "the pingback server"}
# Stands for the pingproxy's address in a fix when the check does not know it.
PROXY_PLACEHOLDER = "https://PROXY"


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

    @property
    def sent(self) -> str:
        """What check sent, and to whom."""
        return f"{PROBE_SENT[self.request]}, to {PROBE_RECEIVER[self.kind]} {self.url}"


@dataclass(frozen=True, slots=True)
class ProxyUse:
    """A pingback server that is a pingproxy: its form, and where it sends pingbacks on."""

    url: URL
    form: str  # urls.PATH_FORM, FORWARD_FORM or DISCOVERY_FORM
    endpoint: URL | None  # in discovery mode, the page's own endpoint (None: it has none)
    base: str  # the pingproxy's address, for a fix that keeps using it


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
    if problem is not None:
        verdict = f"No: pingbacks to this page will not reach its WebMention endpoint: {problem}."
        fix = _fix(page, proxy, probes, proxy_base)
        found = concerns(page, home, proxy, probes, fix.address)
        return Report(page.url, Status.BROKEN, verdict, page, home, proxy, probes, found, fix,
                      seconds)
    server = page.pingback.url
    # It works: what Pingback 1.0 senders find is the right URL, and every concern names it.
    found = concerns(page, home, proxy, probes, str(server))
    if proxy is None:
        verdict = (f"Yes: pingbacks to this page reach the pingback server {server}, which "
                   "answers pingback.ping; it is not a pingproxy, so where they go from there "
                   "is up to it.")
    else:
        verdict = (f"Yes: pingbacks to this page will reach its WebMention endpoint "
                   f"{proxy.endpoint}, through the pingproxy at {server}.")
    return Report(page.url, Status.WORKS, verdict, page, home, proxy, probes, found, None,
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

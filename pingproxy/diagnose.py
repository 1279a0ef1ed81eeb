"""pingproxy check: fetch a page as senders do, probe its endpoints harmlessly, conclude.

The page is fetched exactly as discovery fetches a target (outbound's guard at every hop,
the page-size cap), and read three ways: a WebMention sender's (W3C rules), a Pingback 1.0
sender's (the X-Pingback header, then the specification's pattern) and WordPress's (its
string search). Then, at once:

- the WebMention endpoint gets a POST whose source is its target, which every receiver must
  refuse (W3C WebMention 3.2.1; webmention.rocks' receiver test 2); a 400 counts as alive;
- the pingback server gets system.listMethods (the WordPress XML-RPC validator's probe), and
  only when that is a fault, a pingback.ping whose source is its target;
- the site's home page is read the same way as the page.

A receiver that verifies what it is sent makes no mention of these probes; one that does not
may record one, and the report says so (the accepts_self_mention concern). Each step is
bounded by --timeout and the whole check by CHECK_TIMEOUT_FACTOR times it; findings.py turns
what came back into the verdict.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser

import aiohttp
from yarl import URL

from pingproxy import __version__, discovery, pingback, webmention
from pingproxy.config import Settings
from pingproxy.errors import EndpointRefused, Outcome, PingproxyError, Throttled
from pingproxy.findings import (
    PROBE_HELP,
    PROBE_LIST,
    PROBE_PING,
    PROBE_WEBMENTION,
    WEBMENTION_PROBE,
    XMLRPC_PROBE,
    PageView,
    Probe,
    ProxyUse,
    Report,
    conclude,
)
from pingproxy.limits import HostBusy, Limits, client_key
from pingproxy.netguard import DestinationPolicy
from pingproxy.outbound import Reply
from pingproxy.urls import DISCOVERY_FORM, http_url, named_endpoint

USER_AGENT = f"pingproxy/{__version__} (Pingback and WebMention set-up check)"
# Two steps run one after the other (the page, then the probes); this bounds both together:
# 12 s with the default --timeout of 8 s, well within what a person waits for.
CHECK_TIMEOUT_FACTOR = 1.5
# A pingproxy answers system.methodHelp("pingback.ping") with a text naming itself.
PINGPROXY_HELP_WORD = "pingproxy"
METHOD_HELP = "system.methodHelp"
# Receivers that refuse the self-mention, as they must (W3C WebMention 3.2.3: 400).
_REFUSALS = frozenset({400, 422})
_DEAD_ENDPOINT_STATUSES = {
    401: "refuses the request (HTTP 401)",
    403: "refuses the request (HTTP 403): blocked by the host, a firewall or a plugin",
    404: "is not there (HTTP 404)",
    405: "does not take POST (HTTP 405)",
    410: "is gone (HTTP 410)",
}

Progress = Callable[[str], None]


async def check(session: aiohttp.ClientSession, policy: DestinationPolicy, settings: Settings,
                url: URL, *, proxy_base: str | None = None,
                progress: Progress | None = None) -> Report:
    """Check one page; proxy_base is the pingproxy a fix should name, when it is known."""
    run = _Run(session, policy, settings, time.perf_counter(), progress or (lambda step: None))
    home_url = url.origin().with_path("/")
    home = None if url.with_fragment(None) == home_url else asyncio.create_task(
        run.view(home_url, "home page"))
    try:
        page = await run.view(url, "page")
        if page.error is not None:
            return conclude(page, None, None, (), proxy_base=proxy_base,
                            seconds=time.perf_counter() - run.started)
        proxy, probes = await run.probes(page)
        home_view = await home if home is not None else None
    finally:
        if home is not None:
            home.cancel()
    return conclude(page, home_view, proxy, probes, proxy_base=proxy_base,
                    seconds=time.perf_counter() - run.started)


@dataclass(frozen=True, slots=True)
class _Run:
    """One check's steps: every step within --timeout, all within the check's deadline."""

    session: aiohttp.ClientSession
    policy: DestinationPolicy
    settings: Settings
    started: float
    progress: Progress

    def step_seconds(self) -> float:
        timeout = self.settings.forward_timeout_seconds
        left = self.started + timeout * CHECK_TIMEOUT_FACTOR - time.perf_counter()
        return max(0.0, min(timeout, left))

    async def view(self, url: URL, step: str) -> PageView:
        """The page fetched and read as each kind of sender reads it."""
        seconds = self.step_seconds()
        try:
            async with asyncio.timeout(seconds):
                reply = await discovery.fetch_page(
                    self.session, self.policy, url,
                    max_page_bytes=self.settings.discovery_max_page_bytes,
                    headers={"User-Agent": USER_AGENT})
        except TimeoutError:
            return PageView(url, error=f"it did not answer within {seconds:g} s")
        except PingproxyError as error:
            return PageView(url, error=str(error))
        finally:
            self.progress(step)
        # A megabyte of HTML keeps a pure-Python parser busy for a while: off the loop.
        return await asyncio.to_thread(read_page, url, reply)

    async def probes(self, page: PageView) -> tuple[ProxyUse | None, tuple[Probe, ...]]:
        """Probe the endpoints and the pingback server at once; which pingproxy, if one."""
        own = page.webmention.url if page.webmention else None
        found = page.pingback or page.lenient
        server = found.url if found else None
        shape = named_endpoint(server) if server else None
        named = http_url(shape[1]) if shape else None
        endpoints = list(dict.fromkeys(e for e in (own, named) if e is not None))
        results = await asyncio.gather(
            *(self.webmention_probe(endpoint, page.address) for endpoint in endpoints),
            self.server_probes(server, page.address, identify=shape is None)
            if server else _nothing(),
        )
        probes = (*results[:-1], *results[-1])
        if shape is not None:
            proxy = ProxyUse(server, shape[0], named, str(server.origin()))
        elif any(p.request == PROBE_HELP and p.ok and PINGPROXY_HELP_WORD in p.detail
                 for p in probes):
            proxy = ProxyUse(server, DISCOVERY_FORM, own, str(server).rstrip("/"))
        else:
            proxy = None
        return proxy, probes

    async def webmention_probe(self, endpoint: URL, address: str) -> Probe:
        """POST source=target=address: every receiver must refuse it, and that shows it alive."""
        started = time.perf_counter()
        reply = await self.within_step(WEBMENTION_PROBE, endpoint, PROBE_WEBMENTION,
                                       webmention.send(
                                           self.session, self.policy, endpoint, address, address,
                                           headers={"User-Agent": USER_AGENT},
                                           max_reply_bytes=self.settings.max_reply_bytes))
        self.progress("WebMention endpoint")
        if isinstance(reply, Probe):
            return reply
        return webmention_probe(endpoint, reply, address, time.perf_counter() - started)

    async def server_probes(self, server: URL, address: str, *,
                            identify: bool) -> tuple[Probe, ...]:
        """system.listMethods; on a fault, pingback.ping(source=target); when asked, whether
        it is a pingproxy (its own words for pingback.ping)."""
        listing = await self.call(server, PROBE_LIST, pingback.LIST_METHODS, ())
        probes = [listing]
        if listing.fault_code is not None:
            probes.append(await self.call(server, PROBE_PING, pingback.PING_METHOD,
                                          (address, address)))
        elif identify and listing.ok:
            probes.append(await self.call(server, PROBE_HELP, METHOD_HELP,
                                          (pingback.PING_METHOD,)))
        self.progress("pingback server")
        return tuple(probes)

    async def call(self, server: URL, request: str, method: str, params: tuple) -> Probe:
        """One XML-RPC call, redirects not followed (senders do not follow them either)."""
        started = time.perf_counter()
        reply = await self.within_step(XMLRPC_PROBE, server, request, pingback.call(
            self.session, self.policy, server, method, params,
            headers={"User-Agent": USER_AGENT}, max_reply_bytes=self.settings.max_reply_bytes))
        if isinstance(reply, Probe):
            return reply
        return server_probe(server, request, reply, time.perf_counter() - started)

    async def within_step(self, kind: str, url: URL, request: str,
                          sending: Awaitable[Reply]) -> Reply | Probe:
        """The reply to one probe within the step's time, or the failed probe when none came."""
        started, seconds = time.perf_counter(), self.step_seconds()
        try:
            async with asyncio.timeout(seconds):
                return await sending
        except TimeoutError:
            detail = f"did not answer within {seconds:g} s"
        except PingproxyError as error:
            detail = f"failed: {error}"
        return Probe(kind, url, request, False, detail, time.perf_counter() - started)


async def _nothing() -> tuple[Probe, ...]:
    return ()


def read_page(url: URL, reply: Reply) -> PageView:
    """What each kind of sender finds on a fetched page (a non-2xx page is an error)."""
    common = {"final_url": reply.url, "http_status": reply.status,
              "content_type": reply.content_type or None, "redirects": reply.redirects}
    if not 200 <= reply.status < 300:
        answer = f"it answered HTTP {reply.status} {reply.reason}".rstrip()
        return PageView(url, error=answer, **common)
    html = discovery.decoded_html(reply) if reply.content_type in discovery.HTML_CONTENT_TYPES \
        else ""
    return PageView(
        url, webmention=discovery.webmention_found(reply),
        pingback_header=discovery.pingback_header(reply),
        pingback_link=discovery.pingback_link(html) if html else None,
        wordpress_link=discovery.wordpress_pingback_link(html) if html else None,
        pingback_hrefs=pingback_hrefs(html), **common)


def pingback_hrefs(html: str) -> tuple[str, ...]:
    """The href of every <link> whose rel holds pingback, as an HTML parser reads them."""
    reader = _PingbackLinks()
    reader.feed(html)
    return tuple(reader.hrefs)


class _PingbackLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(reversed(attrs))
        rel = (attributes.get("rel") or "").lower().split()
        if tag == "link" and "pingback" in rel and attributes.get("href"):
            self.hrefs.append(attributes["href"].strip())


def webmention_probe(endpoint: URL, reply: Reply, address: str, seconds: float) -> Probe:
    """What the endpoint's answer to the self-mention says about it."""
    said = ""  # a 2xx is told in the endpoint's own terms (_accepted), not as a forward's
    try:
        webmention.read_reply(reply, address, address)
    except EndpointRefused as refusal:
        if refusal.outcome is Outcome.INVALID_ENDPOINT:  # an XML-RPC fault on a 2xx
            return Probe(WEBMENTION_PROBE, endpoint, PROBE_WEBMENTION, False,
                         f"is not a WebMention endpoint: {refusal}", seconds, reply.status,
                         reply.content_type or None)
        said = str(refusal)
    status = reply.status
    accepted = 200 <= status < 300
    if status in _REFUSALS or (400 <= status < 500 and status not in _DEAD_ENDPOINT_STATUSES):
        ok, detail = True, f"refused the self-mention, as it must: alive ({said})"
    elif accepted:
        ok, detail = True, (f"accepted the self-mention ({_accepted(reply)}): alive, but it "
                            "should refuse it, and may have recorded it as a mention")
    elif status in _DEAD_ENDPOINT_STATUSES:
        ok, detail = False, _DEAD_ENDPOINT_STATUSES[status]
    elif 300 <= status < 400:
        ok, detail = False, (f"redirects the POST (HTTP {status}); senders do not follow that")
    else:
        ok, detail = False, f"failed (HTTP {status} {reply.reason})".rstrip()
    return Probe(WEBMENTION_PROBE, endpoint, PROBE_WEBMENTION, ok, detail, seconds, status,
                 reply.content_type or None, accepted=accepted)


def _accepted(reply: Reply) -> str:
    """The endpoint's own answer, in its words: the probe was check's, not a forwarded ping."""
    answer = f"HTTP {reply.status} {reply.reason}".rstrip()
    location = reply.headers.get("Location")
    try:
        return f"{answer}, status at {reply.url.join(URL(location))}" if location else answer
    except ValueError:
        return answer


def server_probe(server: URL, request: str, reply: Reply, seconds: float) -> Probe:
    """What a pingback server's answer to one probe call says about it."""
    fields = {"http_status": reply.status, "content_type": reply.content_type or None}
    if reply.status != 200:
        return Probe(XMLRPC_PROBE, server, request, False, _http_refusal(reply), seconds,
                     **fields)
    try:
        answer = pingback.read_answer(reply.body)
    except ValueError:
        return Probe(XMLRPC_PROBE, server, request, False,
                     "answered HTTP 200, but not with XML-RPC", seconds, **fields)
    if answer.fault is not None:
        code, text = answer.fault
        missing = code == -32601 or request == PROBE_LIST
        detail = (f"has no {pingback.PING_METHOD} method" if code == -32601
                  and request == PROBE_PING else f"answered fault {code}: "
                  f"{webmention.excerpt(text)}")
        return Probe(XMLRPC_PROBE, server, request, not missing, detail, seconds,
                     fault_code=code, **fields)
    return _answered(server, request, answer.value, seconds, fields)


def _answered(server: URL, request: str, value: object, seconds: float, fields: dict) -> Probe:
    if request == PROBE_LIST:
        methods = [str(m) for m in value] if isinstance(value, list) else []
        listed = pingback.PING_METHOD in methods
        detail = (f"lists {pingback.PING_METHOD}" if listed
                  else f"does not list {pingback.PING_METHOD} among its methods")
        return Probe(XMLRPC_PROBE, server, request, listed, detail, seconds, **fields)
    if request == PROBE_PING:
        return Probe(XMLRPC_PROBE, server, request, True,
                     "accepted the self-ping: it takes pingback.ping, but should refuse that",
                     seconds, accepted=True, **fields)
    return Probe(XMLRPC_PROBE, server, request, True,
                 webmention.excerpt(str(value)) or "no help text", seconds, **fields)


def _http_refusal(reply: Reply) -> str:
    status = reply.status
    if status in (401, 403, 405):
        return (f"refuses XML-RPC (HTTP {status}): blocked by the host, a firewall or a "
                "security plugin")
    if status in (404, 410):
        return f"is not there (HTTP {status})"
    if 300 <= status < 400:
        return (f"redirects the POST (HTTP {status}); pingback senders do not follow "
                "redirects on the POST")
    return f"failed (HTTP {status} {reply.reason})".rstrip()


class CheckGate:
    """/check on a public instance: a few checks a minute per client and a cap on checks
    running, so that it cannot be used to scan the web."""

    RETRY_AFTER_SECONDS = 5

    def __init__(self, settings: Settings, limits: Limits) -> None:
        rate = settings.check_rate_limit
        self._clients = limits.rate("check", rate) if rate is not None else None
        # The cap counts every instance's checks (with --redis-url): one check slot, held at
        # most as long as a check may run.
        self._running = limits.slots(
            "check", settings.max_checks,
            hold_seconds=settings.forward_timeout_seconds * CHECK_TIMEOUT_FACTOR)

    @asynccontextmanager
    async def admitted(self, client: str | None) -> AsyncIterator[None]:
        """Run one check for client; Throttled (429 or 503) when it may not run now."""
        if self._clients is not None and not await self._clients.admit(client_key(client)):
            seconds = self._clients.retry_after_seconds
            raise Throttled(Outcome.CLIENT_RATE_LIMITED,
                            f"too many checks from your address; retry after {seconds} s",
                            retry_after_seconds=seconds)
        try:
            async with self._running.slot("running", wait_seconds=0):
                yield
        except HostBusy:
            raise Throttled(Outcome.OVER_CAPACITY,
                            "too many checks are running; retry after "
                            f"{self.RETRY_AFTER_SECONDS} s",
                            retry_after_seconds=self.RETRY_AFTER_SECONDS) from None

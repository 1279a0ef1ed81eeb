"""What the posts of one send share: the pace of their requests, one deadline, one client.

A send of a post is one run; a send of a feed is one run for all its entries, so the bounds on
requests at once, per host and in time hold across the whole site. The source pages are
fetched here, with discovery's rules (redirects followed, each hop guarded, the page read to
--discovery-max-page), a feed's body read as well as HTML.
"""

import asyncio
import time
from collections.abc import Awaitable

import aiohttp
from yarl import URL

from pingproxy import __version__, discovery, feeds, outbound
from pingproxy.config import Settings
from pingproxy.errors import AccessDenied, UpstreamError
from pingproxy.netguard import DestinationPolicy
from pingproxy.outbound import Reply
from pingproxy.send.pacing import Pacer

USER_AGENT = f"pingproxy/{__version__} (WebMention and Pingback sender)"
DELETED_STATUS = 410


class SourceUnusable(Exception):
    """The source could not be fetched, or answered neither 2xx nor 410: nothing is sent."""


class Run:
    """What the posts of one run share: the pace (send_concurrency at once, send_per_host
    to one host, across every post) and one deadline (--send-run-timeout)."""

    def __init__(self, session: aiohttp.ClientSession, policy: DestinationPolicy,
                 settings: Settings) -> None:
        self.session = session
        self.policy = policy
        self.settings = settings
        self.pacer = Pacer(settings)
        self.timeout = aiohttp.ClientTimeout(
            total=settings.send_request_timeout_seconds,
            sock_connect=settings.connect_timeout_seconds,
            sock_read=settings.send_read_timeout_seconds,
        )
        self.headers = {"User-Agent": USER_AGENT}
        self.started = time.perf_counter()
        self.deadline = asyncio.get_running_loop().time() + settings.send_run_timeout_seconds

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    async def source_page(self, url: URL) -> Reply:
        """A source page (HTML, or a feed's body), 2xx or 410; SourceUnusable otherwise."""
        run_seconds = self.settings.send_run_timeout_seconds
        try:
            async with asyncio.timeout_at(self.deadline):
                page = await self.pacer.request(url, lambda: self._fetch_source(url))
        except TimeoutError:
            raise SourceUnusable(f"the source did not answer within {run_seconds:g} s") from None
        except (UpstreamError, AccessDenied) as error:
            raise SourceUnusable(f"the source could not be fetched: {error}") from None
        if not (200 <= page.status < 300 or page.status == DELETED_STATUS):
            raise SourceUnusable(f"the source answered HTTP {page.status} {page.reason}".rstrip())
        return page

    def _fetch_source(self, url: URL) -> Awaitable[Reply]:
        """As a target page (discovery's rules), but a feed's body is read too."""
        return outbound.request(
            self.session, self.policy, "GET", url.with_fragment(None),
            headers={"Accept": feeds.ACCEPT, **self.headers}, follow=discovery.REDIRECT_STATUSES,
            max_redirects=discovery.MAX_TARGET_REDIRECTS,
            max_bytes=self.settings.discovery_max_page_bytes, truncate=True,
            body_content_types=discovery.HTML_CONTENT_TYPES | feeds.CONTENT_TYPES,
            timeout=self.timeout)

    def fetch(self, url: URL) -> Awaitable[Reply]:
        return discovery.fetch_page(
            self.session, self.policy, url,
            max_page_bytes=self.settings.discovery_max_page_bytes,
            headers=self.headers, timeout=self.timeout)

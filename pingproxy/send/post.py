"""Send: tell every page a post links to, by WebMention or else by Pingback, and say how.

A post's send fetches the source, chooses its targets (links.py), then works on every target
at once within the limits: it discovers the target's endpoint (W3C WebMention section 3.1.2
first, Pingback 1.0 autodiscovery only when there is none), sends, and reads the answer into
the target's line of the report. Nothing is stored: sending again after an edit is the same
run (WebMention section 3.1.3 asks senders to re-send to every target), and the targets a
post no longer links to come from the caller (--also, --previous).

Politeness: each request goes through pacing.py (a bound on all, a share per host, each
request counting for the host it goes to: a target's page for the target's host, a POST for
the endpoint's; one retry), is bounded in connect, read and total time, its reply in size,
and the whole run in time. A run may send several posts (a feed's entries, site.py): they share
its pace and its deadline, so the bounds hold across all of them together.

A POST never follows a redirect that would turn it into a GET: only a 307 or 308 re-posts,
once, and the guard checks its new address; any other 3xx fails with its Location.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
from yarl import URL

from pingproxy import discovery, links, pingback, webmention
from pingproxy.config import Settings
from pingproxy.errors import (
    ALREADY_REGISTERED_FAULT,
    AccessDenied,
    EndpointRefused,
    UpstreamError,
    fault_meaning,
)
from pingproxy.netguard import DestinationPolicy
from pingproxy.outbound import Reply
from pingproxy.send.report import (
    ACCEPTED,
    BLOCKED,
    FAILED,
    NO_ENDPOINT,
    NOT_SENT,
    PINGBACK,
    REFUSED,
    TARGET_GONE,
    WEBMENTION,
    Previous,
    SendReport,
    TargetResult,
)
from pingproxy.send.run import DELETED_STATUS, Run

logger = logging.getLogger("pingproxy.send")

# RFC 9110 section 15.4.8, 15.4.9: only these repeat the POST; send follows one.
MAX_REPOSTS = 1
# A feed's newest entries a send takes when --entries does not say.
DEFAULT_ENTRIES = 10
_EXCERPT_CHARACTERS = 200

Progress = Callable[[int, int], None]
"""Told (targets done, targets in all) as each target ends."""


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One send: the URL given (a post, or a feed of posts), the caller's extra targets, how
    to choose links, and for a feed which entries."""

    source: URL
    also: tuple[str, ...] = ()
    previous: Previous = field(default_factory=Previous)
    include_self: bool = False
    media: bool = False
    dry_run: bool = False
    entries: int = DEFAULT_ENTRIES
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """Sends through one guarded client session: the command's own, or the server's."""

    session: aiohttp.ClientSession
    policy: DestinationPolicy
    settings: Settings

    def run(self) -> Run:
        """A new run: its own pace and deadline, which every post sent in it shares."""
        return Run(self.session, self.policy, self.settings)

    async def send(self, request: SendRequest, *,
                   progress: Progress | None = None) -> SendReport:
        """Send for one post and report it; SourceUnusable when the source cannot be read."""
        run = self.run()
        page = await run.source_page(request.source)
        post = PostSend(run, request)
        report = await post.chosen(page, request.previous.for_post(request.source))
        await post.notify(report, progress)
        report.seconds = run.seconds()
        return report


class PostSend:
    """One post's send within a run: its targets chosen, then every one told."""

    def __init__(self, run: Run, request: SendRequest) -> None:
        self._run = run
        self._request = request
        self._source = str(request.source)

    async def chosen(self, page: Reply, previous: tuple[str, ...], *,
                     max_links: int | None = None) -> SendReport:
        """The report of the post at page with its targets chosen, none told yet."""
        report = SendReport(self._source, dry_run=self._request.dry_run)
        report.source_url, report.source_status = str(page.url), page.status
        report.deleted = page.status == DELETED_STATUS
        html = (discovery.decoded_html(page)
                if page.content_type in discovery.HTML_CONTENT_TYPES else None)
        cap = self._run.settings.send_max_targets
        choice = self._choice(page.url, previous, cap if max_links is None else min(cap, max_links))
        # html5lib and mf2py take about a second for a megabyte: off the loop.
        chosen = await asyncio.to_thread(links.choose, html, page.url, choice)
        report.container, report.skipped = chosen.container, list(chosen.skipped)
        report.targets = [TargetResult(str(link.url), link.found_in) for link in chosen.links]
        return report

    async def notify(self, report: SendReport, progress: Progress | None) -> None:
        """Tell every target of the report, within the run's pace and deadline."""
        await self._notify_all(report.targets, self._run.deadline, progress)

    def _choice(self, final_url: URL, previous: tuple[str, ...], max_links: int) -> links.Choice:
        return links.Choice(
            source_urls=(links.normalised(self._request.source), links.normalised(final_url)),
            include_self=self._request.include_self, media=self._request.media,
            also=self._request.also, previous=previous, max_links=max_links,
            blocked=self._blocked,
        )

    def _blocked(self, url: URL) -> str | None:
        try:
            self._run.policy.check_url(url)
        except AccessDenied as denied:
            return str(denied)
        return None

    async def _notify_all(self, results: list[TargetResult], deadline: float,
                          progress: Progress | None) -> None:
        """Every target at once within the limits; those unfinished at the deadline fail."""
        tasks = [asyncio.create_task(self._notify(result)) for result in results]
        if progress is not None:
            progress(0, len(tasks))
            for task in tasks:
                task.add_done_callback(_counting(progress, tasks))
        if not tasks:
            return
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await asyncio.wait(tasks, timeout=remaining)
        for task, result in zip(tasks, results, strict=True):
            if not task.done():
                task.cancel()
                result.status = FAILED
                result.message = (f"not finished when the run's "
                                  f"{self._run.settings.send_run_timeout_seconds:g} s ran out")
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _notify(self, result: TargetResult) -> None:
        started = time.perf_counter()
        try:
            await self._discover_and_send(result)
        except Exception:  # one target's surprise must not lose the others' report
            logger.exception("sending to %s failed unexpectedly", result.target)
            result.status, result.message = FAILED, "internal error in pingproxy"
        finally:
            result.seconds = time.perf_counter() - started

    async def _discover_and_send(self, result: TargetResult) -> None:
        page = await self._target_page(result)
        if page is None:
            return
        # A long page keeps a pure-Python parser busy: off the loop, as discovery does.
        endpoint = _usable_endpoint(result, await asyncio.to_thread(_endpoint_of, page))
        if endpoint is None:
            return
        if self._request.dry_run:
            result.status, result.message = NOT_SENT, "dry run: discovered, not sent"
        elif result.method == WEBMENTION:
            await self._send_webmention(result, endpoint)
        else:
            await self._ping(result, endpoint)

    async def _target_page(self, result: TargetResult) -> Reply | None:
        """The target's page, or None with the result saying why there is none."""
        target = URL(result.target)
        try:
            page = await self._run.pacer.request(target, lambda: self._run.fetch(target),
                                             retried=_retried(result))
        except AccessDenied as denied:
            result.status, result.message = BLOCKED, str(denied)
            return None
        except UpstreamError as error:
            result.status, result.message = FAILED, f"the target could not be fetched: {error}"
            return None
        if 200 <= page.status < 300:
            return page
        result.http_status = page.status
        answer = f"the target answered HTTP {page.status} {page.reason}".rstrip()
        gone = page.status in discovery.GONE_STATUSES
        result.status, result.message = (TARGET_GONE if gone else FAILED), answer
        return None

    async def _send_webmention(self, result: TargetResult, endpoint: URL) -> None:
        reply = await self._post(result, endpoint, lambda: webmention.send(
            self._run.session, self._run.policy, endpoint, self._source, result.target,
            headers=self._run.headers, max_reply_bytes=self._run.settings.max_reply_bytes,
            max_redirects=MAX_REPOSTS, timeout=self._run.timeout))
        if reply is None or _redirected(result, reply):
            return
        try:
            webmention.read_reply(reply, self._source, result.target)
        except EndpointRefused as refusal:
            result.status = FAILED if reply.status >= 500 else REFUSED
            result.message = str(refusal)
            return
        result.status, result.message = ACCEPTED, _http_answer(reply)

    async def _ping(self, result: TargetResult, server: URL) -> None:
        reply = await self._post(result, server, lambda: pingback.call(
            self._run.session, self._run.policy, server, pingback.PING_METHOD,
            (self._source, result.target), headers=self._run.headers,
            max_reply_bytes=self._run.settings.max_reply_bytes,
            follow=webmention.REPOST_REDIRECT_STATUSES, max_redirects=MAX_REPOSTS,
            timeout=self._run.timeout))
        if reply is None or _redirected(result, reply):
            return
        if reply.status != 200:  # XML-RPC answers on 200 only; clients read nothing else
            result.status = FAILED if reply.status >= 500 else REFUSED
            result.message = f"the pingback server answered {_http_answer(reply)}"
            return
        try:
            answer = pingback.read_answer(reply.body)
        except ValueError:
            result.status = FAILED
            result.message = "the pingback server's answer is not an XML-RPC response"
            return
        _read_pingback_answer(result, answer)

    async def _post(self, result: TargetResult, endpoint: URL,
                    make: Callable[[], Awaitable[Reply]]) -> Reply | None:
        """The endpoint's reply, or None with the result saying why there is none."""
        try:
            reply = await self._run.pacer.request(endpoint, make, retried=_retried(result))
        except (UpstreamError, AccessDenied) as error:
            result.status, result.message = FAILED, str(error)
            return None
        result.http_status = reply.status
        result.location = _location(reply)
        return reply


def _endpoint_of(page: Reply) -> tuple[str, discovery.Found] | None:
    """The endpoint a target advertises: WebMention's always wins over Pingback's."""
    found = discovery.webmention_found(page)
    if found is not None:
        return WEBMENTION, found
    found = discovery.pingback_server(page)
    return (PINGBACK, found) if found is not None else None


def _usable_endpoint(result: TargetResult,
                     found: tuple[str, discovery.Found] | None) -> URL | None:
    """The endpoint to send to, recorded in the result; None when there is none to use."""
    if found is None:
        result.status = NO_ENDPOINT
        result.message = "the target advertises no WebMention endpoint and no pingback server"
        return None
    result.method, endpoint = found
    result.discovered_by = endpoint.step
    result.endpoint = str(endpoint.url) if endpoint.url else endpoint.written
    if endpoint.url is None:
        result.status = NO_ENDPOINT
        result.message = (f"its pingback server {endpoint.written!r} is not an absolute "
                          "http(s) URL, as Pingback 1.0 requires")
    return endpoint.url


def _retried(result: TargetResult) -> Callable[[str], None]:
    def note(reason: str) -> None:
        result.retries += 1
        result.retry_reason = reason

    return note


def _counting(progress: Progress, tasks: list[asyncio.Task]) -> Callable[[asyncio.Task], None]:
    def count(_: asyncio.Task) -> None:
        progress(sum(task.done() for task in tasks), len(tasks))

    return count


def _read_pingback_answer(result: TargetResult, answer: pingback.ServerAnswer) -> None:
    if answer.fault is None:
        result.status = ACCEPTED
        result.message = f"pingback registered: {_excerpt(str(answer.value))}"
        return
    code, text = answer.fault
    result.fault_code, result.fault_meaning = code, fault_meaning(code)
    # Pingback 1.0: a sender stops on success or on fault 48, already registered.
    result.status = ACCEPTED if code == ALREADY_REGISTERED_FAULT else REFUSED
    result.message = f"fault {code}: {_excerpt(text)}"


def _redirected(result: TargetResult, reply: Reply) -> bool:
    """A 3xx on the POST fails: following it as a GET would count a mention never received."""
    if not 300 <= reply.status < 400:
        return False
    result.status = FAILED
    result.message = (f"the endpoint answered {_http_answer(reply)} to the POST: a redirect "
                      "that is not a 307 or 308 is not followed")
    return True


def _location(reply: Reply) -> str | None:
    location = reply.headers.get("Location", "").strip()
    if not location:
        return None
    try:
        return str(reply.url.join(URL(location)))
    except ValueError:
        return location


def _http_answer(reply: Reply) -> str:
    return f"HTTP {reply.status} {reply.reason}".rstrip()


def _excerpt(text: str) -> str:
    return pingback.clean_text(" ".join(text.split()), _EXCERPT_CHARACTERS)

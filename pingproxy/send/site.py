"""Send for a whole site: the URL given is a feed, and each entry it offers is sent as a post.

The URL is fetched once. When it is a feed (feeds.py), the entries to send are chosen
(newest first, --entries and --since, the previous report) and each one's own page is the
source, fetched and sent exactly as a post is (post.py): receivers verify the source page,
not the feed. When it is not a feed, it is the post. Every entry's requests share the run's
pace and deadline, so the bounds on requests at once, per host and in time hold across the
whole site; the targets of all entries together are capped (--send-max-run-targets), the
newest entries first served.
"""

import asyncio
import time
from dataclasses import dataclass

from yarl import URL

from pingproxy import discovery, feeds, links
from pingproxy.outbound import Reply
from pingproxy.send.feed_report import NOT_IN_FEED, EntryResult, FeedReport, last_sent
from pingproxy.send.post import PostSend, Progress, Sender, SendRequest
from pingproxy.send.report import SendReport, source_key
from pingproxy.send.run import DELETED_STATUS, Run, SourceUnusable

# Entries of the previous report that the feed no longer lists, kept for the next run.
MAX_CARRIED_ENTRIES = 1000


class FeedUnreadable(SourceUnusable):
    """The URL is meant as a feed (by its type or its start) and cannot be read."""


class AlsoWithFeed(SourceUnusable):
    """Targets named with --also (also=) belong to one post; a feed's entries have many."""


@dataclass(frozen=True, slots=True)
class SiteProgress:
    """Told (done, in all) as each entry ends, and as each target of any entry ends."""

    entries: Progress
    targets: Progress


@dataclass(frozen=True, slots=True)
class SiteSender:
    """Sends for the URL given: every entry a feed offers, or the one post it is."""

    sender: Sender

    async def send(self, request: SendRequest, *,
                   progress: SiteProgress | None = None) -> SendReport | FeedReport:
        """The post's report, or the feed's; SourceUnusable when the URL cannot be read
        (FeedUnreadable when it is a feed that cannot be read)."""
        run = self.sender.run()
        page = await run.source_page(request.source)
        feed = await _feed_of(page, run.settings.discovery_max_page_bytes)
        if feed is None:
            post = PostSend(run, request)
            report = await post.chosen(page, request.previous.for_post(request.source))
            await post.notify(report, progress.targets if progress else None)
            report.seconds = run.seconds()
            return report
        if request.also:
            raise AlsoWithFeed("the URL is a feed, and --also (also=) names targets of one "
                                 "post: a feed's entries take earlier targets from --previous")
        return await _FeedRun(run, request, progress).report(feed, page)


async def _feed_of(page: Reply, max_page_bytes: int) -> feeds.Feed | None:
    if page.status == DELETED_STATUS:  # a deleted post, as ever
        return None
    html = (discovery.decoded_html(page)
            if page.content_type in discovery.HTML_CONTENT_TYPES else None)
    cut = max_page_bytes if len(page.body) >= max_page_bytes else None
    try:
        # feedparser, defusedxml and mf2py are pure Python: a large feed off the loop.
        return await asyncio.to_thread(feeds.read, page.body, page.content_type, page.url,
                                       html=html, cut_at_bytes=cut)
    except feeds.FeedUnreadable as error:
        raise FeedUnreadable(f"the feed cannot be read: {error}") from None


class _FeedRun:
    def __init__(self, run: Run, request: SendRequest, progress: SiteProgress | None) -> None:
        self._run = run
        self._request = request
        self._progress = progress
        self._targets_done: dict[int, tuple[int, int]] = {}
        self._started: dict[int, float] = {}

    async def report(self, feed: feeds.Feed, page: Reply) -> FeedReport:
        """Every entry taken or left; those taken sent, all at once within the run."""
        request = self._request
        window = feeds.Window(request.entries, request.since, request.previous.sent_dates)
        decisions = feeds.select(feed, (request.source, page.url), window)
        report = FeedReport(str(request.source), str(page.url), page.status, feed.format,
                            feed.title, request.entries, feeds.iso(request.since),
                            request.dry_run, [EntryResult(d) for d in decisions])
        listed = set()
        for entry in report.entries:
            if entry.decision.entry.url is not None:
                listed.add(source_key(entry.decision.entry.url))
                entry.last_sent = self._carried(source_key(entry.decision.entry.url))
        report.entries += self._not_in_feed(listed)
        await self._send([entry for entry in report.entries if entry.decision.taken])
        report.seconds = self._run.seconds()
        return report

    async def _send(self, taken: list[EntryResult]) -> None:
        """Read every entry's page and choose its targets, cap them, then tell them all."""
        posts = await asyncio.gather(*(self._chosen(entry) for entry in taken))
        self._cap_targets(taken)
        notified = [self._notify(entry, post) for entry, post in zip(taken, posts, strict=True)]
        if self._progress is not None:
            self._progress.entries(0, len(taken))
        for done, finished in enumerate(asyncio.as_completed(notified), start=1):
            await finished
            if self._progress is not None:
                self._progress.entries(done, len(taken))

    def _carried(self, key: str) -> dict | None:
        """An entry's last_sent as the previous report had it, for one not sent now."""
        previous = self._request.previous
        if key not in previous.entries:
            return None
        return {"updated": previous.sent_dates.get(key), "targets": list(previous.entries[key]),
                "complete": key in previous.sent_dates}

    def _not_in_feed(self, listed: set[str]) -> list[EntryResult]:
        """The previous report's entries the feed no longer lists (moved off its first
        page, or removed): kept, so that a later run still knows their targets."""
        kept = []
        for key in self._request.previous.entries:
            if key in listed or len(kept) >= MAX_CARRIED_ENTRIES:
                continue
            entry = feeds.Entry(URL(key), key)
            result = EntryResult(feeds.Decision(entry, NOT_IN_FEED, "not in the feed now; "
                                                "kept from the previous report"))
            result.last_sent = self._carried(key)
            kept.append(result)
        return kept

    async def _chosen(self, entry: EntryResult) -> PostSend | None:
        """The entry's page fetched and its targets chosen; None when it cannot be read."""
        source = entry.decision.entry.url
        self._started[id(entry)] = time.perf_counter()
        request = self._request
        post = PostSend(self._run, SendRequest(
            source, include_self=request.include_self, media=request.media,
            dry_run=request.dry_run))
        try:
            page = await self._run.source_page(source)
        except SourceUnusable as error:
            entry.error = str(error)
            return None
        entry.report = await post.chosen(page, request.previous.entries.get(
            source_key(source), ()))
        return post

    def _cap_targets(self, taken: list[EntryResult]) -> None:
        """At most --send-max-run-targets targets in all: the newest entries' first."""
        budget = self._run.settings.send_max_run_targets
        for entry in taken:
            if entry.report is None:
                continue
            kept, cut = entry.report.targets[:budget], entry.report.targets[budget:]
            entry.report.targets = kept
            entry.report.skipped += [links.Skipped(
                result.target, result.target, links.TOO_MANY,
                f"over the cap of {self._run.settings.send_max_run_targets} targets a run "
                "(--send-max-run-targets)") for result in cut]
            budget -= len(kept)

    async def _notify(self, entry: EntryResult, post: PostSend | None) -> None:
        if post is None or entry.report is None:
            return
        await post.notify(entry.report, self._counting(id(entry)))
        entry.report.seconds = time.perf_counter() - self._started[id(entry)]
        if not self._request.dry_run:
            entry.last_sent = last_sent(entry.report, feeds.iso(entry.decision.entry.date))

    def _counting(self, key: int) -> Progress | None:
        """One entry's target progress, told as the whole run's."""
        if self._progress is None:
            return None
        targets = self._progress.targets

        def count(done: int, total: int) -> None:
            self._targets_done[key] = (done, total)
            targets(sum(d for d, _ in self._targets_done.values()),
                    sum(t for _, t in self._targets_done.values()))

        return count


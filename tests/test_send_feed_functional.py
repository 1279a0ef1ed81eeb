"""Send for a whole site over real sockets: a local blog serving its posts as RSS 2.0, Atom,
JSON Feed and an h-feed home page, targets advertising receivers that verify the source as
django-webmention and webmentions do, and a pingback-only target.

Every assertion is on what the receivers stored and on the report."""

import asyncio
import dataclasses
import json
from datetime import UTC, datetime

import pytest
from yarl import URL

from pingproxy import outbound
from pingproxy.send.feed_report import FeedReport, as_feed_json
from pingproxy.send.post import Sender, SendRequest
from pingproxy.send.report import read_previous
from pingproxy.send.run import SourceUnusable
from pingproxy.send.site import FeedUnreadable, SiteSender
from tests.conftest import TEST_SETTINGS
from tests.feed_samples import FEEDS, NEWEST_FIRST, POSTS, Post, Site, json_feed, make_site, rss
from tests.send_web import Answer, h_entry, start_host

SETTINGS = dataclasses.replace(
    TEST_SETTINGS, send_request_timeout_seconds=5.0, send_read_timeout_seconds=5.0,
    send_retry_backoff_seconds=0.1, send_retry_max_wait_seconds=1.0,
    send_run_timeout_seconds=20.0)


async def send(url: str, settings=SETTINGS, **options) -> FeedReport:
    policy = outbound.policy_for(settings)
    async with outbound.open_session(settings, policy) as session:
        sender = SiteSender(Sender(session, policy, settings))
        return await asyncio.wait_for(sender.send(SendRequest(URL(url), **options)), 30)


def sent(report: FeedReport) -> list[str]:
    return [entry.source for entry in report.entries if entry.decision.taken]


@pytest.fixture
async def site(blog, sites, aiohttp_server, pingback_server) -> Site:
    return await make_site(blog, sites, aiohttp_server, pingback_server)


@pytest.mark.parametrize("kind", FEEDS)
async def test_each_kind_of_feed_sends_every_entry_from_its_own_page(site, kind):
    feed_url = site.feed(kind)

    report = await send(feed_url)

    assert isinstance(report, FeedReport) and report.ok
    assert report.format == kind
    assert sent(report) == [site.post_url(path) for path in NEWEST_FIRST]
    expected = {(site.post_url(post.path), target) for post in POSTS
                for target in site.targets(post.path)}
    assert site.django.current() | site.webmentions.current() | set(site.pingback.calls) \
        == expected
    # Receivers verify the source page, never the feed.
    assert all(source != feed_url for source, _ in [*site.django.received,
                                                     *site.webmentions.received])


async def test_entries_takes_the_newest_and_says_why_the_rest_were_left(site):
    report = await send(site.feed("atom"), entries=1)

    assert [(e.source, e.decision.reason) for e in report.entries] == [
        (site.post_url("/2026/11/second"), "taken"),
        (site.post_url("/2026/11/third"), "beyond_entries"),
        (site.post_url("/2026/11/first"), "beyond_entries")]
    assert report.entries[1].decision.detail == "past the newest 1 (--entries)"
    assert {source for source, _ in site.stored()} == {site.post_url("/2026/11/second")}
    assert site.blog.gets("/2026/11/third") == []


async def test_since_takes_the_entries_updated_after_it(site):
    report = await send(site.feed("json-feed"), since=datetime(2026, 11, 2, tzinfo=UTC))

    assert sent(report) == [site.post_url("/2026/11/second"), site.post_url("/2026/11/third")]
    assert report.entries[2].decision.reason == "older"
    assert site.blog.gets("/2026/11/first") == []


async def test_undated_entries_are_new_under_entries_only(site):
    undated = [dataclasses.replace(post, updated="", published="") for post in POSTS[:1]]
    feed_url = site.blog.document("/undated.json", json_feed(site.base, [*undated, *POSTS[1:]]),
                                  "application/feed+json")

    under_since = await send(feed_url, since=datetime(2026, 10, 1, tzinfo=UTC))
    under_entries = await send(feed_url, entries=3)

    first = site.post_url("/2026/11/first")
    assert [(e.source, e.decision.reason) for e in under_since.entries][-1] == (first,
                                                                               "undated")
    assert sent(under_entries)[-1] == first
    assert "undated, so new under --entries" in under_entries.entries[-1].decision.detail


async def test_an_entry_off_the_feeds_site_is_skipped_and_never_fetched(site):
    elsewhere = site.sites.page("/someone-elses-post", h_entry(site.targets("/x/y")[0]))
    feed = json.loads(json_feed(site.base))
    feed["items"].append({"url": elsewhere, "date_modified": "2026-11-09T00:00:00Z"})
    feed_url = site.blog.document("/mixed.json", json.dumps(feed), "application/feed+json")

    report = await send(feed_url)

    [off_site] = [e for e in report.entries if e.source == elsewhere]
    assert off_site.decision.reason == "off_site"
    assert "not on the feed's site" in off_site.decision.detail
    assert site.sites.gets("/someone-elses-post") == []
    assert len(sent(report)) == 3


@pytest.mark.parametrize(("body", "content_type", "message"), [
    ("<rss version='2.0'><channel><item>", "application/rss+xml", "not well-formed XML"),
    ("{not json", "application/feed+json", "not valid JSON"),
])
async def test_a_broken_feed_is_unreadable_and_nothing_is_sent(site, body, content_type,
                                                               message):
    feed_url = site.blog.document("/broken", body, content_type)

    with pytest.raises(FeedUnreadable, match=message):
        await send(feed_url)

    assert site.django.received == [] and site.pingback.calls == []


async def test_a_feed_that_answers_404_is_unusable(site):
    with pytest.raises(SourceUnusable, match="the source answered HTTP 404 Not Found"):
        await send(site.blog.url("/no-feed-here.xml"))


async def test_a_huge_feed_is_read_within_the_page_cap_and_refused_without_a_hang(site):
    many = [Post(f"/2025/{n}", f"Post {n}", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z")
            for n in range(20_000)]
    body = rss(site.base, many)
    feed_url = site.blog.document("/huge.rss", body, "application/rss+xml")
    settings = dataclasses.replace(SETTINGS, discovery_max_page_bytes=256 * 1024)
    assert len(body) > 8 * settings.discovery_max_page_bytes

    with pytest.raises(FeedUnreadable, match="larger than 262144 bytes"):
        await send(feed_url, settings)


async def test_a_large_feed_within_the_cap_sends_only_its_newest_entries(site):
    many = [Post(f"/2025/{n}", f"Post {n}", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z")
            for n in range(3000)]
    feed_url = site.blog.document("/large.rss", rss(site.base, [*many, *POSTS]),
                                  "application/rss+xml")

    report = await send(feed_url, entries=3)

    assert sent(report) == [site.post_url(path) for path in NEWEST_FIRST]
    assert report.entry_counts()["beyond_entries"] == 3000


async def test_a_link_removed_from_an_entry_is_told_once_with_previous(site):
    feed_url = site.feed("rss")
    first_run = as_feed_json(await send(feed_url))
    second = POSTS[1]
    django_target, py_target, pingback_target = site.targets(second.path)
    source = site.post_url(second.path)
    assert (source, django_target) in site.django.current()

    # The post loses its django link, and the feed says it was updated.
    site.publish(second, links=(py_target, pingback_target))
    edited = dataclasses.replace(second, updated="2026-11-08T09:00:00Z")
    site.feed("rss", [POSTS[0], edited, POSTS[2]])
    second_run = await send(feed_url, previous=read_previous(first_run))

    assert sent(second_run) == [source]
    [entry] = [e for e in second_run.entries if e.decision.taken]
    assert [(t.target, t.found_in, t.status) for t in entry.report.targets][-1] == (
        django_target, "previous", "refused")
    assert second_run.ok  # the receiver dropped the mention: that is its 400
    assert (source, django_target) in site.django.stored
    assert (source, django_target) not in site.django.current()
    assert entry.last_sent["targets"] == [py_target, pingback_target]

    # A third run with the second's report sends nothing: every entry is unchanged.
    received = len(site.django.received)
    third_run = await send(feed_url, previous=read_previous(as_feed_json(second_run)))
    assert sent(third_run) == []
    assert {e.decision.reason for e in third_run.entries} == {"unchanged"}
    assert len(site.django.received) == received


async def test_an_entry_that_now_answers_410_tells_its_targets_once(site):
    feed_url = site.feed("atom")
    first_run = as_feed_json(await send(feed_url))
    third = POSTS[2]
    source = site.post_url(third.path)
    site.publish(third, status=410)  # a tombstone that still holds its links
    deleted = dataclasses.replace(third, updated="2026-11-09T09:00:00Z")
    site.feed("atom", [POSTS[0], POSTS[1], deleted])

    second_run = await send(feed_url, previous=read_previous(first_run))

    [entry] = [e for e in second_run.entries if e.decision.taken]
    assert (entry.source, entry.report.deleted) == (source, True)
    assert second_run.ok
    assert not {mention for mention in site.stored() if mention[0] == source}
    assert entry.last_sent == {"updated": "2026-11-09T09:00:00+00:00", "targets": [],
                               "complete": True}
    third_run = await send(feed_url, previous=read_previous(as_feed_json(second_run)))
    assert sent(third_run) == []


async def test_an_entry_whose_page_cannot_be_read_fails_the_run_and_the_rest_are_sent(site):
    site.blog.page(POSTS[0].path, "gone for now", status=500)

    report = await send(site.feed("rss"))

    [broken] = [e for e in report.entries if e.error]
    assert broken.source == site.post_url(POSTS[0].path)
    assert broken.error == "the source answered HTTP 500 Internal Server Error"
    assert not report.ok and len(sent(report)) == 3
    assert {source for source, _ in site.stored()} == {site.post_url(path)
                                                       for path in NEWEST_FIRST[:2]}


async def test_the_per_host_bound_holds_across_all_entries(blog, aiohttp_server):
    crowded = await start_host(aiohttp_server, "127.0.0.5")
    endpoint = crowded.endpoint("/wm", Answer(202, "queued", delay=0.1))
    for post in POSTS:
        targets = [crowded.page(f"{post.path}/{n}",
                                f'<link rel="webmention" href="{endpoint}">', delay=0.1)
                   for n in range(3)]
        blog.page(post.path, h_entry(*targets))
    feed_url = blog.document("/feed.json", json_feed(blog.url("/").rstrip("/")),
                             "application/feed+json")

    report = await send(feed_url)

    assert report.ok and len(crowded.posts("/wm")) == 9
    assert crowded.most_serving_at_once == 2


async def test_the_cap_on_targets_a_run_serves_the_newest_entries_first(site):
    settings = dataclasses.replace(SETTINGS, send_max_run_targets=4)

    report = await send(site.feed("rss"), settings)

    taken = [e for e in report.entries if e.decision.taken]
    assert [len(e.report.targets) for e in taken] == [3, 1, 0]
    assert [s.reason for s in taken[2].report.skipped] == ["too_many"] * 3
    assert "--send-max-run-targets" in taken[2].report.skipped[0].detail
    assert taken[2].last_sent["complete"] is False


async def test_a_page_that_is_no_feed_is_still_a_post(site):
    report = await send(site.post_url(POSTS[0].path))

    assert not isinstance(report, FeedReport)
    assert {target for _, target in site.stored()} == set(site.targets(POSTS[0].path)[:2])


async def test_one_run_timeout_bounds_every_entry_together(site):
    slow = site.sites.page("/very-slow", "<p>t</p>", delay=3.0)
    site.blog.page(POSTS[1].path, h_entry(slow))
    settings = dataclasses.replace(SETTINGS, send_run_timeout_seconds=1.0)

    report = await send(site.feed("rss"), settings)

    [late] = [t for e in report.entries if e.report for t in e.report.targets
              if t.target == slow]
    assert (late.status, late.message) == ("failed", "not finished when the run's 1 s ran out")
    assert not report.ok
    assert len(site.stored()) == 4  # the other two entries were told in time

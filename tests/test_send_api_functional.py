"""POST /api/send: a send for deploy hooks, shut to everyone without a token."""

import pytest

from pingproxy import config
from pingproxy.config import ConfigError
from pingproxy.limits import Rate
from tests.feed_samples import NEWEST_FIRST, Site, make_site
from tests.send_web import advertising, h_entry

TOKEN = "a-deploy-hook-token-0123456789"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}




@pytest.fixture
def post(blog, sites) -> str:
    """A post linking to three targets that take WebMentions."""
    endpoint = sites.endpoint("/wm")
    targets = [sites.page(f"/t/{n}", *advertising(endpoint)[0:1]) for n in range(3)]
    return blog.page("/post", h_entry(*targets))


@pytest.fixture
def make_sender(make_proxy):
    async def make(**changes):
        return await make_proxy(**{"send_tokens": (TOKEN,), **changes})

    return make


async def test_a_send_answers_with_the_json_report(make_sender, post, sites):
    proxy = await make_sender()

    response = await proxy.post("/api/send", data={"source": post}, headers=AUTHORIZED)

    assert response.status == 200
    report = await response.json()
    assert (report["source"], report["ok"], report["counts"]["accepted"]) == (post, True, 3)
    assert sorted(hit.form["target"] for hit in sites.posts("/wm")) == [
        sites.url(f"/t/{n}") for n in range(3)]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token-of-the-same-size!!"},
    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"},
], ids=["none", "wrong", "not-bearer", "longer"])
async def test_without_the_token_the_route_does_not_exist(make_sender, post, sites, headers):
    proxy = await make_sender()

    response = await proxy.post("/api/send", data={"source": post}, headers=headers)

    assert response.status == 404
    assert sites.hits == []


async def test_without_a_configured_token_every_request_is_404(make_proxy, post, sites):
    proxy = await make_proxy()
    unknown = await proxy.post("/api/nothing-here", data={"source": post}, headers=AUTHORIZED)

    response = await proxy.post("/api/send", data={"source": post}, headers=AUTHORIZED)

    assert response.status == 404
    assert await response.text() == "404: Not Found"
    assert unknown.status == 200  # any other path is a pingback URL, never a 404
    assert sites.hits == []


async def test_each_of_several_tokens_opens_it(make_sender, post):
    proxy = await make_sender(send_tokens=("another-token-of-a-site-42", TOKEN))

    response = await proxy.post("/api/send", data={"source": post}, headers=AUTHORIZED)

    assert response.status == 200


async def test_a_source_outside_the_allowed_hosts_is_refused(make_sender, post, sites):
    proxy = await make_sender(send_allowed_sources=("blog.example", "*.blog.example"))

    response = await proxy.post("/api/send", data={"source": post}, headers=AUTHORIZED)

    assert response.status == 403
    assert (await response.json())["error"] == "source_not_allowed"
    assert sites.hits == []


async def test_the_same_source_waits_its_interval_unless_forced(make_sender, post, sites):
    proxy = await make_sender(send_source_interval_seconds=300)
    first = await proxy.post("/api/send", data={"source": post}, headers=AUTHORIZED)

    again = await proxy.post("/api/send", data={"source": post}, headers=AUTHORIZED)
    forced = await proxy.post("/api/send", data={"source": post, "force": "1"},
                              headers=AUTHORIZED)

    assert (first.status, again.status, forced.status) == (200, 429, 200)
    assert (await again.json())["error"] == "sent_recently"
    assert 295 <= int(again.headers["Retry-After"]) <= 300
    assert len(sites.posts("/wm")) == 6


async def test_each_token_has_its_rate(make_sender, post, blog):
    other = blog.page("/other", h_entry())
    proxy = await make_sender(send_rate_limit=Rate(2, 3600), send_source_interval_seconds=0)

    statuses = [(await proxy.post("/api/send", data={"source": source},
                                  headers=AUTHORIZED)).status
                for source in (post, other, post)]
    limited = await proxy.post("/api/send", data={"source": other}, headers=AUTHORIZED)

    assert statuses == [200, 200, 429]
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert (await limited.json())["error"] == "rate_limited"


async def test_targets_per_source_are_capped(make_sender, post, sites):
    proxy = await make_sender(send_max_targets=2)

    report = await (await proxy.post("/api/send", data={"source": post},
                                     headers=AUTHORIZED)).json()

    assert len(report["targets"]) == 2
    assert [skip["reason"] for skip in report["skipped"]] == ["too_many"]
    assert len(sites.posts("/wm")) == 2


async def test_also_adds_targets_and_dry_run_sends_nothing(make_sender, blog, sites):
    endpoint = sites.endpoint("/wm")
    removed = sites.page("/removed", *advertising(endpoint)[0:1])
    source = blog.page("/post", h_entry())
    proxy = await make_sender()

    report = await (await proxy.post("/api/send", data={"source": source, "also": removed,
                                                        "dry_run": "1"},
                                     headers=AUTHORIZED)).json()

    assert [(t["target"], t["status"]) for t in report["targets"]] == [(removed, "not_sent")]
    assert sites.posts() == []


@pytest.mark.parametrize(("form", "status", "error"), [
    ({}, 400, "invalid_source"),
    ({"source": "ftp://blog.example/"}, 400, "invalid_source"),
])
async def test_a_request_without_a_usable_source_is_400(make_sender, form, status, error):
    proxy = await make_sender()

    response = await proxy.post("/api/send", data=form, headers=AUTHORIZED)

    assert response.status == status and (await response.json())["error"] == error


async def test_a_source_that_cannot_be_fetched_is_502(make_sender, blog):
    proxy = await make_sender()

    response = await proxy.post("/api/send", data={"source": blog.url("/missing")},
                                headers=AUTHORIZED)

    assert response.status == 502
    assert await response.json() == {"error": "source_unusable",
                                     "message": "the source answered HTTP 404 Not Found"}


def test_a_short_token_stops_start_up():
    with pytest.raises(ConfigError, match="PINGPROXY_SEND_TOKEN: invalid value"):
        config.load([], {"PINGPROXY_SEND_TOKEN": "guessable"})


@pytest.fixture
async def site(blog, sites, aiohttp_server, pingback_server) -> Site:
    return await make_site(blog, sites, aiohttp_server, pingback_server)


async def test_a_feed_url_sends_every_entry_and_answers_with_the_feed_report(make_sender,
                                                                             site):
    proxy = await make_sender()

    response = await proxy.post("/api/send", data={"source": site.feed("json-feed")},
                                headers=AUTHORIZED)

    assert response.status == 200
    report = await response.json()
    assert (report["format"], report["ok"], report["counts"]["accepted"]) == (
        "json-feed", True, 9)
    assert [e["source"] for e in report["entries"]] == [site.post_url(path)
                                                        for path in NEWEST_FIRST]
    assert len(site.stored()) == 6 and len(site.pingback.calls) == 3


async def test_entries_and_since_choose_a_feeds_entries(make_sender, site):
    proxy = await make_sender()

    report = await (await proxy.post("/api/send", headers=AUTHORIZED, data={
        "source": site.feed("rss"), "entries": "2", "since": "2026-11-04T00:00:00Z"})).json()

    assert [(e["source"], e["reason"]) for e in report["entries"]] == [
        (site.post_url("/2026/11/second"), "taken"),
        (site.post_url("/2026/11/third"), "older"),
        (site.post_url("/2026/11/first"), "older")]
    assert {source for source, _ in site.stored()} == {site.post_url("/2026/11/second")}


async def test_a_feed_waits_its_interval_as_a_source_does(make_sender, site):
    proxy = await make_sender(send_source_interval_seconds=300)
    feed = site.feed("atom")

    first = await proxy.post("/api/send", data={"source": feed}, headers=AUTHORIZED)
    again = await proxy.post("/api/send", data={"source": feed}, headers=AUTHORIZED)
    other = await proxy.post("/api/send", data={"source": site.feed("rss")},
                             headers=AUTHORIZED)

    assert (first.status, again.status, other.status) == (200, 429, 200)
    assert (await again.json())["error"] == "sent_recently"
    assert len(site.django.received) == 6


async def test_a_feed_outside_the_allowed_sources_or_without_the_token_sends_nothing(
        make_sender, site):
    proxy = await make_sender(send_allowed_sources=("blog.example",))

    refused = await proxy.post("/api/send", data={"source": site.feed("rss")},
                               headers=AUTHORIZED)
    hidden = await proxy.post("/api/send", data={"source": site.feed("rss")})

    assert (refused.status, hidden.status) == (403, 404)
    assert site.blog.hits == [] and site.django.received == []


@pytest.mark.parametrize(("form", "error"), [
    ({"entries": "0"}, "invalid_entries"), ({"entries": "51"}, "invalid_entries"),
    ({"entries": "ten"}, "invalid_entries"), ({"since": "last week"}, "invalid_since"),
])
async def test_bad_entries_or_since_is_400(make_sender, site, form, error):
    proxy = await make_sender()

    response = await proxy.post("/api/send", data={"source": site.feed("rss"), **form},
                                headers=AUTHORIZED)

    assert response.status == 400 and (await response.json())["error"] == error
    assert site.blog.hits == []


async def test_also_with_a_feed_is_400_also_with_feed(make_sender, site):
    proxy = await make_sender()

    response = await proxy.post("/api/send", data={"source": site.feed("rss"),
                                                   "also": "https://elsewhere.example/"},
                                headers=AUTHORIZED)

    assert response.status == 400
    assert (await response.json())["error"] == "also_with_feed"
    assert site.django.received == []


async def test_an_unreadable_feed_is_502_feed_unreadable(make_sender, blog):
    proxy = await make_sender()
    feed = blog.document("/feed", "<rss version='2.0'><channel>", "application/rss+xml")

    response = await proxy.post("/api/send", data={"source": feed}, headers=AUTHORIZED)

    assert response.status == 502
    assert await response.json() == {
        "error": "feed_unreadable",
        "message": "the feed cannot be read: the feed is not well-formed XML (no element "
                   "found: line 1, column 28)"}

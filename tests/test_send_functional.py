"""Send over real sockets: a local web of a source, targets, endpoints and a pingback server.

Every assertion is on what the fake servers received and on the report.
"""

import dataclasses
import ipaddress
import xmlrpc.client

import pytest
from yarl import URL

from pingproxy import outbound
from pingproxy.errors import FAULT_MEANINGS
from pingproxy.netguard import DestinationPolicy
from pingproxy.send.post import Sender, SendRequest
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
    SendReport,
    TargetResult,
)
from pingproxy.send.run import USER_AGENT, SourceUnusable
from tests.conftest import TEST_SETTINGS
from tests.send_web import Answer, Meter, advertising, h_entry, start_host

SETTINGS = dataclasses.replace(
    TEST_SETTINGS, send_request_timeout_seconds=5.0, send_read_timeout_seconds=5.0,
    send_retry_backoff_seconds=0.1, send_retry_max_wait_seconds=2.0,
    send_run_timeout_seconds=20.0)


async def run_send(source: str, settings=SETTINGS, policy=None, **options) -> SendReport:
    policy = policy or outbound.policy_for(settings)
    async with outbound.open_session(settings, policy) as session:
        return await Sender(session, policy, settings).send(SendRequest(URL(source), **options))


def by_target(report: SendReport) -> dict[str, TargetResult]:
    return {result.target: result for result in report.targets}




@pytest.fixture
async def receivers(aiohttp_server):
    """Endpoints on another host than their targets."""
    return await start_host(aiohttp_server, "127.0.0.3")


@pytest.fixture
async def web_of_targets(blog, sites, receivers, pingback_server, unused_tcp_port):
    """Every kind of target the issue names, linked from one h-entry post."""
    created = sites.endpoint("/wm/created", Answer(201, "", [("Location", "/status/7")]))
    accepted = receivers.endpoint("/wm/accepted", Answer(202, "queued"))
    moved = receivers.endpoint("/wm/moved", Answer(301, "", [("Location", "/wm/elsewhere")]))
    receivers.page("/wm/elsewhere", "a page that answers 200 to a GET")
    busy = receivers.endpoint("/wm/busy", Answer(429, "slow down", [("Retry-After", "1")]),
                              Answer(202, "queued"))
    down = f"http://127.0.0.4:{unused_tcp_port}/wm"
    pages = {
        "/link-header": advertising(created, "link-header"),
        "/link-element": advertising(accepted, "link-element"),
        "/a-element": advertising(moved, "a-element"),
        "/relative": advertising("/wm/created", "link-element"),
        "/busy": advertising(busy),
        "/down": advertising(down),
        "/pingback-header": ("<p>pingback only</p>", [("X-Pingback", pingback_server.url)]),
        "/pingback-link": (f'<link rel="pingback" href="{pingback_server.url}">', []),
        "/both": ("<p>both</p>", [("Link", f'<{accepted}>; rel="webmention"'),
                                  ("X-Pingback", pingback_server.url)]),
        "/neither": ("<p>nothing advertised</p>", []),
    }
    for path, (body, headers) in pages.items():
        sites.page(path, body, headers=headers)
    sites.page("/gone", "gone", status=410)
    linked = [sites.url(path) for path in [*pages, "/gone"]]
    post = h_entry(
        *linked, sites.url("/link-element#comments"), "/about", "mailto:me@blog.example",
        outside=[sites.url("/outside")])
    blog.page("/post", post)
    blog.page("/about", "<p>me</p>")
    return blog.url("/post")


async def test_each_target_gets_the_protocol_it_advertises(web_of_targets, sites, receivers,
                                                           pingback_server):
    report = await run_send(web_of_targets)
    results = by_target(report)

    def result(path: str) -> TargetResult:
        return results[sites.url(path)]

    assert report.container == "e-content" and not report.ok
    assert len(report.targets) == 11
    for path, step in [("/link-header", "HTTP Link header"),
                       ("/link-element", '<link rel="webmention"> element'),
                       ("/relative", '<link rel="webmention"> element')]:
        assert (result(path).method, result(path).discovered_by) == (WEBMENTION, step)
        assert result(path).status == ACCEPTED
    assert result("/link-header").http_status == 201
    assert result("/link-header").location == sites.url("/status/7")
    assert result("/both").method == WEBMENTION
    assert (result("/pingback-header").method, result("/pingback-header").discovered_by) == (
        PINGBACK, "X-Pingback header")
    assert result("/pingback-link").status == ACCEPTED
    assert result("/neither").status == NO_ENDPOINT
    assert result("/gone").status == TARGET_GONE
    # Exactly which endpoint received what: one form per WebMention target...
    forms = sorted(hit.form["target"] for hit in sites.posts("/wm/created"))
    assert forms == [sites.url("/link-header"), sites.url("/relative")]
    assert sorted(hit.form["target"] for hit in receivers.posts("/wm/accepted")) == sorted(
        [sites.url("/link-element"), sites.url("/both")])
    assert {hit.form["source"] for hit in [*sites.posts(), *receivers.posts()]} == {
        web_of_targets}
    # ...and one pingback per pingback-only target, none for the target that has both.
    assert sorted(pingback_server.calls) == sorted(
        [(web_of_targets, sites.url("/pingback-header")),
         (web_of_targets, sites.url("/pingback-link"))])


async def test_a_301_on_the_post_fails_with_its_location_and_is_never_followed(
        web_of_targets, sites, receivers):
    result = by_target(await run_send(web_of_targets))[sites.url("/a-element")]

    assert (result.status, result.http_status) == (FAILED, 301)
    assert result.location == receivers.url("/wm/elsewhere")
    assert "not followed" in result.message
    assert len(receivers.posts("/wm/moved")) == 1
    assert receivers.gets("/wm/elsewhere") == [] and receivers.posts("/wm/elsewhere") == []


async def test_429_is_retried_once_after_retry_after_then_accepted(web_of_targets, sites,
                                                                   receivers):
    result = by_target(await run_send(web_of_targets))[sites.url("/busy")]

    assert (result.status, result.http_status, result.retries) == (ACCEPTED, 202, 1)
    assert result.retry_reason == "HTTP 429; waited 1 s"
    assert result.seconds >= 1.0
    assert len(receivers.posts("/wm/busy")) == 2


async def test_a_down_endpoint_is_retried_once(web_of_targets, sites):
    down = by_target(await run_send(web_of_targets))[sites.url("/down")]

    assert (down.status, down.retries) == (FAILED, 1)
    assert "could not connect" in down.message and "could not connect" in down.retry_reason


async def test_a_slow_endpoint_times_out_and_is_not_retried(blog, sites, receivers):
    slow = receivers.endpoint("/wm/slow", Answer(202, "late", delay=8.0))
    target = sites.page("/slow", *advertising(slow)[0:1])
    source = blog.page("/post", h_entry(target))
    settings = dataclasses.replace(SETTINGS, send_read_timeout_seconds=1.0)

    [result] = (await run_send(source, settings)).targets

    assert (result.status, result.retries) == (FAILED, 0)
    assert "did not answer in time" in result.message
    assert len(receivers.posts("/wm/slow")) == 1


async def test_links_outside_the_post_and_the_rest_are_explained(web_of_targets, sites, blog):
    report = await run_send(web_of_targets)
    reasons = {(skip.url or skip.written): skip.reason for skip in report.skipped}

    assert reasons[sites.url("/outside")] == "outside_post"
    assert reasons[blog.url("/about")] == "self"
    assert reasons["mailto:me@blog.example"] == "scheme"
    assert reasons[sites.url("/link-element")] == "duplicate"
    assert sites.gets("/outside") == [] and blog.gets("/about") == []


async def test_self_sends_to_the_sources_own_site(web_of_targets, blog):
    report = await run_send(web_of_targets, include_self=True)

    assert by_target(report)[blog.url("/about")].status == NO_ENDPOINT
    assert len(blog.gets("/about")) == 1


async def test_dry_run_discovers_and_sends_nothing(web_of_targets, sites, receivers,
                                                   pingback_server):
    report = await run_send(web_of_targets, dry_run=True)
    results = by_target(report)

    assert report.ok and report.dry_run
    assert results[sites.url("/link-header")].status == NOT_SENT
    assert results[sites.url("/link-header")].endpoint == sites.url("/wm/created")
    assert results[sites.url("/pingback-header")].method == PINGBACK
    assert sites.posts() == [] and receivers.posts() == [] and pingback_server.calls == []
    assert len(sites.gets("/link-header")) == 1


async def test_every_request_says_who_sends(web_of_targets, blog, sites, receivers):
    await run_send(web_of_targets)

    hits = [*blog.hits, *sites.hits, *receivers.hits]
    assert {hit.user_agent for hit in hits} == {USER_AGENT}


async def test_a_deleted_post_tells_every_target_from_its_tombstone(blog, sites):
    endpoint = sites.endpoint("/wm")
    target = sites.page("/target", *advertising(endpoint)[0:1])
    source = blog.page("/deleted", h_entry(target), status=410)

    report = await run_send(source, also=(sites.url("/no-longer-linked"),))

    assert (report.deleted, report.source_status) == (True, 410)
    assert by_target(report)[target].status == ACCEPTED
    assert [hit.form for hit in sites.posts("/wm")] == [{"source": source, "target": target}]
    assert by_target(report)[sites.url("/no-longer-linked")].status == TARGET_GONE


async def test_a_page_without_microformats_reads_its_main(blog, sites):
    endpoint = sites.endpoint("/wm")
    inside = sites.page("/inside", *advertising(endpoint)[0:1])
    source = blog.page("/plain", f"<nav><a href='{sites.url('/nav')}'>n</a></nav>"
                                 f"<main><a href='{inside}'>in</a></main>")

    report = await run_send(source)

    assert report.container == "main"
    assert [result.target for result in report.targets] == [inside]
    assert [(skip.url, skip.reason) for skip in report.skipped] == [
        (sites.url("/nav"), "outside_post")]


@pytest.mark.parametrize("code", [16, 17, 32, 33, 48, 49, 50, 0])
async def test_each_pingback_fault_is_named_and_48_counts_as_accepted(blog, sites,
                                                                      pingback_server, code):
    pingback_server.answer = xmlrpc.client.Fault(code, f"server says {code}")
    target = sites.page("/t", "<p>t</p>", headers=[("X-Pingback", pingback_server.url)])
    source = blog.page("/post", h_entry(target))

    result = by_target(await run_send(source))[target]

    assert result.status == (ACCEPTED if code == 48 else REFUSED)
    assert (result.fault_code, result.fault_meaning) == (code, FAULT_MEANINGS[code])
    assert result.message == f"fault {code}: server says {code}"
    assert pingback_server.calls == [(source, target)]


async def test_never_more_than_the_per_host_share_in_flight_at_one_host(blog, aiohttp_server):
    crowded = await start_host(aiohttp_server, "127.0.0.5")
    endpoint = crowded.endpoint("/wm", Answer(202, "queued", delay=0.2))
    targets = []
    for n in range(6):
        body, headers = advertising(endpoint)
        targets.append(crowded.page(f"/post/{n}", body, headers=headers, delay=0.2))
    source = blog.page("/post", h_entry(*targets))

    report = await run_send(source)

    assert [result.status for result in report.targets] == [ACCEPTED] * 6
    assert len(crowded.posts("/wm")) == 6
    assert crowded.most_serving_at_once == 2


async def test_never_more_than_the_overall_bound_in_flight(blog, aiohttp_server):
    everywhere = Meter()
    hosts = [await start_host(aiohttp_server, f"127.0.0.{n}", everywhere) for n in range(6, 10)]
    targets = [host.page(f"/slow/{n}", "<p>no endpoint</p>", delay=0.3)
               for host in hosts for n in range(2)]
    source = blog.page("/post", h_entry(*targets))
    settings = dataclasses.replace(SETTINGS, send_concurrency=3)

    report = await run_send(source, settings)

    assert [result.status for result in report.targets] == [NO_ENDPOINT] * 8
    assert all(host.most_serving_at_once <= 2 for host in hosts)
    assert everywhere.most_serving_at_once == 3


async def test_the_run_cap_fails_what_is_unfinished(blog, sites):
    target = sites.page("/very-slow", "<p>t</p>", delay=3.0)
    source = blog.page("/post", h_entry(target))
    settings = dataclasses.replace(SETTINGS, send_run_timeout_seconds=0.5,
                                   send_request_timeout_seconds=5.0,
                                   send_read_timeout_seconds=5.0)

    report = await run_send(source, settings)

    assert report.targets[0].status == FAILED
    assert "not finished when the run's 0.5 s ran out" in report.targets[0].message


async def test_the_guard_refuses_a_loopback_source_by_default(blog):
    source = blog.page("/post", h_entry("https://elsewhere.example/"))
    # Any port, so that the address itself is what the guard refuses.
    settings = dataclasses.replace(SETTINGS, allow_private=False,
                                   allowed_ports=frozenset(range(1, 65536)))

    with pytest.raises(SourceUnusable, match="loopback address"):
        await run_send(source, settings)

    assert blog.hits == []


async def test_links_the_guard_refuses_are_skipped_and_never_contacted(blog, sites):
    forbidden = sites.url("/x").replace("http://", "http://user:secret@")
    source = blog.page("/post", h_entry(forbidden))

    report = await run_send(source)

    assert report.targets == []
    assert [(skip.reason, skip.detail) for skip in report.skipped] == [
        ("blocked_address", "URLs with credentials (user:password@) are refused")]
    assert sites.hits == []


@pytest.mark.parametrize(("status", "message"), [(404, "HTTP 404"), (500, "HTTP 500")])
async def test_a_source_that_is_neither_2xx_nor_410_is_unusable(blog, status, message):
    source = blog.page("/post", "<p>oops</p>", status=status)

    with pytest.raises(SourceUnusable, match=message):
        await run_send(source)


async def test_a_307_is_re_posted_once_and_the_new_address_is_guarded(blog, sites, receivers):
    moved = sites.endpoint("/wm/moved", Answer(307, "", [("Location", receivers.url("/wm"))]))
    receivers.endpoint("/wm")
    locked = sites.endpoint("/wm/locked", Answer(
        307, "", [("Location", receivers.url("/wm").replace("http://", "http://u:p@"))]))
    good = sites.page("/good", *advertising(moved)[0:1])
    bad = sites.page("/bad", *advertising(locked)[0:1])
    source = blog.page("/post", h_entry(good, bad))

    results = by_target(await run_send(source))

    assert (results[good].status, results[good].http_status) == (ACCEPTED, 202)
    assert [hit.form["target"] for hit in receivers.posts("/wm")] == [good]
    assert results[bad].status == FAILED
    assert "credentials" in results[bad].message


async def test_retry_after_is_capped_and_a_4xx_is_never_retried(blog, sites):
    later = "Wed, 21 Oct 2099 07:28:00 GMT"
    unavailable = sites.endpoint("/wm/503", Answer(503, "", [("Retry-After", later)]),
                                 Answer(202, "queued"))
    refusing = sites.endpoint("/wm/400", Answer(400, "no such page"))
    first = sites.page("/first", *advertising(unavailable)[0:1])
    second = sites.page("/second", *advertising(refusing)[0:1])
    source = blog.page("/post", h_entry(first, second))
    settings = dataclasses.replace(SETTINGS, send_retry_max_wait_seconds=0.2)

    results = by_target(await run_send(source, settings))

    assert (results[first].status, results[first].retries) == (ACCEPTED, 1)
    assert results[first].retry_reason == "HTTP 503; waited 0.2 s"
    assert (results[second].status, results[second].retries) == (REFUSED, 0)
    assert "HTTP 400" in results[second].message
    assert len(sites.posts("/wm/400")) == 1


async def test_a_target_whose_name_resolves_to_a_refused_address_is_never_contacted(blog, sites):
    # 127.0.0.2 plays a public address, 127.0.0.1 (what localhost resolves to) a private one.
    refused = tuple((ipaddress.ip_network(network), "a forbidden test address")
                    for network in ("127.0.0.1/32", "::1/128"))
    policy = DestinationPolicy(allowed_ports=frozenset(range(1, 65536)),
                               blocked_networks=refused)
    hidden = blog.page("/internal", "<p>an internal page</p>")
    target = hidden.replace("127.0.0.1", "localhost")
    source = sites.page("/post", h_entry(target))

    [result] = (await run_send(source, policy=policy)).targets

    assert (result.target, result.status) == (target, BLOCKED)
    assert "localhost resolves to a forbidden test address" in result.message
    assert blog.hits == []

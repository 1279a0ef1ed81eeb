"""Discovery mode over real sockets: POST / finds the target's endpoint, then forwards.

Target pages are served by the `site` fake and, where an absolute endpoint is advertised, the
mention goes to the `endpoint` fake. Every test checks that exactly one WebMention arrived,
at the expected URL, and the decoys on both servers fail the test if anything reaches them.
"""

import asyncio
import html
import logging

import pytest
from aiohttp import web

from pingproxy import discovery, outbound
from pingproxy.config import Settings
from pingproxy.discovery import MAX_TARGET_REDIRECTS, NO_ENDPOINT_TEXT
from pingproxy.errors import DiscoveryFailed, Outcome
from tests.conftest import fault_of, metric_value, ping_body, read_answer, relay_lines

SOURCE = "http://blog.example/2026/11/a-post"


async def ping(proxy, target: str):
    """A pingback to the shortest pingback URL, which names no endpoint."""
    return await proxy.post("/", data=ping_body(SOURCE, target))


def only_mention(*servers, target: str) -> str:
    """The URL of the one WebMention the servers received, checking its form."""
    received = [(server.url(r.path) + (f"?{r.query}" if r.query else ""), r.form)
                for server in servers for r in server.received]
    assert len(received) == 1, f"expected one WebMention, got {received}"
    [(url, form)] = received
    assert form == {"source": SOURCE, "target": target}
    return url


def fill(template: str, site, endpoint) -> str:
    return template.format(wm=endpoint.url("/webmention"), decoy=endpoint.url("/decoy"),
                           site_decoy=site.url("/decoy"))


async def test_an_endpoint_in_a_link_header_receives_the_mention(proxy, site, endpoint):
    target = site.page("/post/1", headers=[("Link", f'<{endpoint.url()}>; rel="webmention"')])

    text = read_answer(await (await ping(proxy, target)).read())

    assert "forwarded as a WebMention" in text and "202" in text
    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")
    [fetch] = site.fetched
    assert fetch.path == "/post/1"
    assert fetch.headers["User-Agent"].startswith("pingproxy/")
    assert fetch.headers["Accept"].startswith("text/html")


LINK_HEADERS = [
    pytest.param([("Link", '<{wm}>; rel="webmention"')], id="quoted"),
    pytest.param([("Link", "<{wm}>; rel=webmention")], id="unquoted"),
    pytest.param([("link", '<{wm}>; rel="webmention"')], id="lower-case-name"),
    pytest.param([("LINK", '<{wm}>; rel="webmention"')], id="upper-case-name"),
    pytest.param([("Link", '<{decoy}>; rel="next"'), ("Link", '<{wm}>; rel="webmention"')],
                 id="several-headers"),
    pytest.param([("Link", '<{decoy}>; rel="next", <{wm}>; rel="webmention"')],
                 id="several-values-in-one-header"),
    pytest.param([("Link", '<{wm}>; rel="me webmention"')], id="rel-list"),
    pytest.param([("Link", '<{decoy}>; rel="not-webmention"'), ("Link", '<{wm}>; rel=webmention')],
                 id="exact-token"),
    pytest.param([("Link", '<{wm}>; rel="webmention", <{decoy}>; rel="webmention"')],
                 id="first-wins"),
    pytest.param([("Link", '<{wm}>; title="a; b"; rel="webmention"')], id="other-params"),
]


@pytest.mark.parametrize("headers", LINK_HEADERS)
async def test_every_link_header_form_is_read(proxy, site, endpoint, headers):
    target = site.page("/post/1", headers=[(name, fill(value, site, endpoint))
                                           for name, value in headers])

    await ping(proxy, target)

    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")


async def test_a_link_header_beats_the_html(proxy, site, endpoint):
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url("/decoy")}">',
                       headers=[("Link", f'<{endpoint.url()}>; rel="webmention"')])

    await ping(proxy, target)

    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")


async def test_an_unparseable_link_header_leaves_the_html_to_decide(proxy, site, endpoint):
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">',
                       headers=[("Link", '<http://[bad>; rel="webmention"')])

    await ping(proxy, target)

    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")


HTML_PAGES = [
    pytest.param('<html><head><link rel="webmention" href="{wm}"></head></html>', id="link"),
    pytest.param('<html><body><p><a rel="webmention" href="{wm}">mentions</a></p></body>',
                 id="a-in-body"),
    pytest.param('<link rel="me webmention" href="{wm}">', id="rel-list"),
    pytest.param("<link rel=webmention href={wm}>", id="unquoted"),
    pytest.param('<LINK REL="WebMention" HREF="{wm}">', id="upper-case"),
    pytest.param('<link rel="not-webmention" href="{decoy}"><link rel="webmention" href="{wm}">',
                 id="exact-token"),
    pytest.param('<body><a rel="webmention" href="{wm}">x</a></body>'
                 '<link rel="webmention" href="{decoy}">', id="a-before-link"),
    pytest.param('<head><link rel="webmention" href="{wm}"></head>'
                 '<body><a rel="webmention" href="{decoy}">x</a></body>', id="link-before-a"),
    pytest.param('<!-- <link rel="webmention" href="{decoy}"> -->'
                 '<link rel="webmention" href="{wm}">', id="comment"),
    pytest.param('<script>document.write(\'<link rel="webmention" href="{decoy}">\')</script>'
                 '<link rel="webmention" href="{wm}">', id="inside-script"),
    pytest.param('<pre>&lt;link rel="webmention" href="{decoy}"&gt;</pre>'
                 '<a rel="webmention" href="{wm}">x</a>', id="escaped-text"),
    pytest.param('<link rel="webmention"><a rel="webmention" href="{wm}">x</a>',
                 id="missing-href"),
]


@pytest.mark.parametrize("html", HTML_PAGES)
async def test_the_first_link_or_a_element_in_document_order_is_used(proxy, site, endpoint,
                                                                     html):
    target = site.page("/post/1", fill(html, site, endpoint))

    await ping(proxy, target)

    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")


@pytest.mark.parametrize(("href", "expected_path"), [
    pytest.param("7/webmention", "/post/7/webmention", id="relative-path"),
    pytest.param("/webmention", "/webmention", id="absolute-path"),
    pytest.param("../webmention", "/webmention", id="dot-dot"),
    pytest.param("", "/post/7", id="empty-href-is-the-target"),
])
async def test_relative_endpoints_resolve_against_the_target(proxy, site, href, expected_path):
    target = site.page("/post/7", f'<link rel="webmention" href="{href}">')

    await ping(proxy, target)

    assert only_mention(site, target=target) == site.url(expected_path)


async def test_the_endpoints_query_string_stays_in_its_url(proxy, site, endpoint):
    target = site.page("/post/1", f'<a rel="webmention" href="{endpoint.url()}?key=1&amp;x=2">')

    await ping(proxy, target)

    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention?key=1&x=2")
    assert endpoint.received[0].query == "key=1&x=2"


@pytest.mark.parametrize("advertise", [
    pytest.param({"body": '<link rel="webmention" href="wm">'}, id="html"),
    pytest.param({"headers": [("Link", '<wm>; rel="webmention"')]}, id="link-header"),
])
async def test_a_relative_redirect_then_a_relative_endpoint_resolve_against_the_final_url(
        proxy, site, advertise):
    target = site.page("/old/post", status=302, headers=[("Location", "../articles/post")])
    site.page("/articles/post", **advertise)

    await ping(proxy, target)

    assert [fetch.path for fetch in site.fetched] == ["/old/post", "/articles/post"]
    assert only_mention(site, target=target) == site.url("/articles/wm")


async def test_more_than_ten_redirects_is_fault_50(proxy, site):
    for hop in range(MAX_TARGET_REDIRECTS + 1):
        site.page(f"/hop/{hop}", status=301, headers=[("Location", f"/hop/{hop + 1}")])
    site.page(f"/hop/{MAX_TARGET_REDIRECTS + 1}", '<link rel="webmention" href="/decoy">')

    fault = await fault_of(await ping(proxy, site.url("/hop/0")))

    assert fault.faultCode == 0x32 and "more than 10 redirects" in fault.faultString
    assert len(site.fetched) == MAX_TARGET_REDIRECTS + 1
    assert site.received == []


async def test_a_non_html_target_with_only_a_link_header_works(proxy, site, endpoint):
    body = f'%PDF-1.7 <link rel="webmention" href="{endpoint.url("/decoy")}">'
    target = site.page("/paper.pdf", body, content_type="application/pdf",
                       headers=[("Link", f"<{endpoint.url()}>; rel=webmention")])

    await ping(proxy, target)

    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")


async def test_a_non_html_body_is_not_even_read(make_proxy, site, endpoint):
    proxy = await make_proxy(forward_timeout_seconds=1.0)
    target = site.page("/video.mp4", b"\x00" * 100_000, content_type="video/mp4",
                       headers=[("Link", f"<{endpoint.url()}>; rel=webmention")],
                       hold_at_byte=10)

    text = read_answer(await (await ping(proxy, target)).read())

    assert "forwarded" in text
    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")


async def test_a_non_html_body_is_never_read_as_html(proxy, site, endpoint):
    target = site.page("/notes.txt", f'<link rel="webmention" href="{endpoint.url("/decoy")}">',
                       content_type="text/plain")

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == 0x21 and fault.faultString == NO_ENDPOINT_TEXT
    assert endpoint.received == []


PAGE_CAP_BYTES = 1000


@pytest.mark.parametrize(("padding", "found"), [
    pytest.param(0, True, id="link-ends-at-the-cap"),
    pytest.param(1, False, id="link-ends-one-byte-past-the-cap"),
])
async def test_a_page_longer_than_the_cap_is_read_up_to_the_cap(make_proxy, site, endpoint,
                                                                 padding, found):
    proxy = await make_proxy(discovery_max_page_bytes=PAGE_CAP_BYTES)
    tag = f'<link rel="webmention" href="{endpoint.url()}">'
    before = "<p>" + "x" * (PAGE_CAP_BYTES - len(tag) - 3 + padding)
    target = site.page("/long", before + tag + "<p>more</p>" * 1000)

    response = await ping(proxy, target)

    if found:
        assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")
    else:
        assert (await fault_of(response)).faultString == NO_ENDPOINT_TEXT
        assert endpoint.received == []


async def test_reading_a_long_page_stops_at_the_cap(make_proxy, site, endpoint):
    proxy = await make_proxy(discovery_max_page_bytes=PAGE_CAP_BYTES,
                             forward_timeout_seconds=1.0)
    tag = f'<link rel="webmention" href="{endpoint.url()}">'
    target = site.page("/long", tag + "x" * 10 * PAGE_CAP_BYTES, hold_at_byte=PAGE_CAP_BYTES)

    await ping(proxy, target)

    assert only_mention(site, endpoint, target=target) == endpoint.url("/webmention")


@pytest.mark.parametrize(("status", "code"), [
    (404, 0x20), (410, 0x20), (500, 0x32), (503, 0x32), (403, 0x32), (429, 0x32),
])
async def test_a_failing_target_gets_its_fault_and_nothing_is_forwarded(proxy, site, status,
                                                                         code):
    target = site.page("/post/1", '<link rel="webmention" href="/decoy">', status=status)

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == code and f"HTTP {status}" in fault.faultString
    assert site.received == []


async def test_an_unreachable_target_is_fault_50(proxy, unused_tcp_port):
    fault = await fault_of(await ping(proxy, f"http://127.0.0.1:{unused_tcp_port}/post"))

    assert fault.faultCode == 0x32 and "could not connect" in fault.faultString


async def test_a_target_without_an_endpoint_is_fault_33(proxy, site):
    target = site.page("/post/1", '<link rel="pingback" href="/decoy"><a href="/decoy">x</a>')

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == 0x21
    assert fault.faultString == "the target advertises no WebMention endpoint"


async def test_an_endpoint_that_is_this_proxy_is_a_loop(proxy, site, caplog):
    caplog.set_level(logging.INFO, logger="pingproxy.relay")
    itself = str(proxy.make_url("/"))
    target = site.page("/post/1", f'<link rel="webmention" href="{itself}">')

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == 0x21 and "loop" in fault.faultString
    lines = relay_lines(proxy, caplog)
    assert len(lines) == 1 and "outcome=loop" in lines[0]  # no second request reached it
    assert site.received == []


async def test_a_discovered_endpoints_refusal_gets_the_same_fault_as_the_path_form(
        proxy, site, endpoint):
    endpoint.reply(400, json={"error": "no_link_found", "error_description": "no link"})
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">')

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == 0x11 and fault.faultString.startswith("no_link_found")


async def test_the_default_policy_refuses_a_loopback_target_without_fetching_it(make_proxy,
                                                                               site):
    proxy = await make_proxy(allow_private=False)
    target = site.page("/post/1", '<link rel="webmention" href="/decoy">')

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == 0x31
    assert site.fetched == [] and site.received == []


async def test_a_discovered_endpoint_the_guard_refuses_is_never_posted_to(make_proxy, site,
                                                                          endpoint):
    # The target's site is allowed, the endpoint it advertises is on a port that is not.
    proxy = await make_proxy(allowed_ports=frozenset({site.server.port}))
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">')

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == 0x31 and "port" in fault.faultString
    assert len(site.fetched) == 1 and endpoint.received == []


async def test_a_slow_target_is_bounded_by_the_forward_timeout(make_proxy, site):
    proxy = await make_proxy(forward_timeout_seconds=0.3)
    target = site.page("/post/1", '<link rel="webmention" href="/decoy">', delay=2.0)

    fault = await fault_of(await ping(proxy, target))

    assert fault.faultCode == 0x32 and "0.3 s" in fault.faultString
    assert site.received == []


async def test_a_default_endpoint_takes_every_pingback_to_slash_without_discovery(
        make_proxy, site, endpoint):
    proxy = await make_proxy(default_endpoint=endpoint.url("/default"))
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url("/decoy")}">')

    await ping(proxy, target)
    await proxy.post("/" + endpoint.url("/named"), data=ping_body(SOURCE, target))

    assert [r.path for r in endpoint.received] == ["/default", "/named"]
    assert site.fetched == [] and site.received == []


async def discovery_lookups(proxy, result: str) -> float:
    text = await (await proxy.get("/metrics")).text()
    return metric_value(text, "pingproxy_discovery_lookups_total", result=result)


async def test_a_discovered_endpoint_is_remembered(proxy, site, endpoint):
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">')

    for _ in range(3):
        await ping(proxy, target)

    assert len(site.fetched) == 1 and len(endpoint.received) == 3
    assert await discovery_lookups(proxy, "hit") == 2
    assert await discovery_lookups(proxy, "miss") == 1


async def test_the_absence_of_an_endpoint_is_remembered(proxy, site):
    target = site.page("/post/1", "<p>no endpoint here</p>")

    for _ in range(2):
        assert (await fault_of(await ping(proxy, target))).faultCode == 0x21

    assert len(site.fetched) == 1


async def test_a_remembered_endpoint_expires_after_its_ttl(make_proxy, site, endpoint):
    proxy = await make_proxy(discovery_cache_seconds=0.2)
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">')

    await ping(proxy, target)
    await ping(proxy, target)
    await asyncio.sleep(0.3)
    await ping(proxy, target)

    assert len(site.fetched) == 2 and len(endpoint.received) == 3


@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "max-age=0"])
async def test_a_target_that_forbids_caching_is_fetched_each_time(proxy, site, endpoint,
                                                                  cache_control):
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">',
                       headers=[("Cache-Control", cache_control)])

    await ping(proxy, target)
    await ping(proxy, target)

    assert len(site.fetched) == 2 and len(endpoint.received) == 2


async def test_a_cache_ttl_of_zero_fetches_each_time(make_proxy, site, endpoint):
    proxy = await make_proxy(discovery_cache_seconds=0)
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">')

    await ping(proxy, target)
    await ping(proxy, target)

    assert len(site.fetched) == 2


async def test_a_failing_target_is_not_remembered(proxy, site):
    target = site.page("/post/1", status=503)

    for _ in range(2):
        assert (await fault_of(await ping(proxy, target))).faultCode == 0x32

    assert len(site.fetched) == 2


BURST_PINGBACKS = 20


async def test_a_burst_of_pingbacks_to_one_target_costs_one_fetch(proxy, site, endpoint):
    target = site.page("/post/1", f'<link rel="webmention" href="{endpoint.url()}">',
                       delay=0.2)

    answers = await asyncio.wait_for(
        asyncio.gather(*(ping(proxy, target) for _ in range(BURST_PINGBACKS))), 10)

    assert all(answer.status == 200 for answer in answers)
    assert len(site.fetched) == 1
    assert len(endpoint.received) == BURST_PINGBACKS
    assert await discovery_lookups(proxy, "miss") == 1  # the others joined it, or came after


async def test_at_most_two_discoveries_run_at_once_per_host(proxy, site, endpoint):
    targets = [site.page(f"/post/{n}", f'<link rel="webmention" href="{endpoint.url()}">',
                         delay=0.1) for n in range(6)]

    await asyncio.wait_for(asyncio.gather(*(ping(proxy, target) for target in targets)), 10)

    assert len(site.fetched) == 6 and len(endpoint.received) == 6
    assert site.most_serving_at_once == 2


async def test_the_landing_page_shows_the_shortest_pingback_url(proxy):
    page = html.unescape(await (await proxy.get("/")).text())

    assert "discovers its endpoint" in page
    assert f'<link rel="pingback" href="{proxy.make_url("/")}">' in page


async def test_discover_is_usable_without_the_server(aiohttp_server):
    async def page(request):
        if request.path == "/none":
            return web.Response(text="<p>nothing</p>", content_type="text/html")
        return web.Response(text='<a rel="webmention" href="/wm?k=1">', content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    server = await aiohttp_server(app, host="127.0.0.1")
    settings = Settings(allow_private=True)
    policy = outbound.policy_for(settings)

    async with outbound.open_session(settings, policy) as session:
        found = await discovery.discover(session, policy, server.make_url("/post/7"),
                                         max_page_bytes=1024)
        with pytest.raises(DiscoveryFailed) as caught:
            await discovery.discover(session, policy, server.make_url("/none"),
                                     max_page_bytes=1024)

    assert found == server.make_url("/wm?k=1")
    assert caught.value.outcome is Outcome.NO_ENDPOINT

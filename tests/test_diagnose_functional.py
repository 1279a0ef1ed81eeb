"""pingproxy check's diagnoses, one local test site each, over real sockets.

The pingback server is a real pingproxy (the `proxy` fixture), the stdlib's XML-RPC server,
or the `site` fake answering as a blocked or stripped XML-RPC server does; the WebMention
endpoint is the `endpoint` fake. Every test ends by checking that no probe created a
mention: every request the fakes recorded names the same URL as source and target.
"""

import dataclasses
import ipaddress
import xmlrpc.client
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from pingproxy import diagnose, outbound, report
from pingproxy.netguard import BLOCKED_NETWORKS, DestinationPolicy
from tests.conftest import TEST_SETTINGS

README = (Path(__file__).parent.parent / "README.md").read_text()
SELF_MENTION_REFUSAL = {"error": "invalid_request",
                        "error_description": "source and target are the same"}


async def check(url: str, settings=TEST_SETTINGS, *, policy=None, proxy_base=None) -> dict:
    """The JSON report of one check, as `pingproxy check --json` prints it."""
    policy = policy or outbound.policy_for(settings)
    async with outbound.open_session(settings, policy) as session:
        found = await diagnose.check(session, policy, settings, URL(url), proxy_base=proxy_base)
    return report.check_json(found)


def html(*head: str) -> str:
    return f"<!doctype html><html><head>{''.join(head)}</head><body>A post</body></html>"


def webmention_link(url: str) -> str:
    return f'<link rel="webmention" href="{url}">'


def pingback_link(url: str) -> str:
    return f'<link rel="pingback" href="{url}">'


def base_of(proxy) -> str:
    return str(proxy.make_url("")).rstrip("/")


def assert_no_mention(*servers, pingback_server=None) -> None:
    """No probe can have created a mention: every form and ping names source == target."""
    for server in servers:
        for received in server.received:
            if received.form:
                assert received.form["source"] == received.form["target"], received.form
    for call in pingback_server.calls if pingback_server else ():
        assert call[0] == call[1], call


@pytest.fixture
def receiver(endpoint):
    """The WebMention endpoint, refusing a self-mention as every real receiver does."""
    endpoint.reply(400, json=SELF_MENTION_REFUSAL)
    return endpoint


def a_site(site, post: str, home: str | None = None, headers=()) -> str:
    """Serve the post at /post/1 and the home page (the same advertisement unless given)."""
    site.page("/", post if home is None else home, headers=headers)
    return site.page("/post/1", post, headers=headers)


@pytest.mark.parametrize("form", ["path", "forward", "discovery"])
async def test_a_good_set_up_works_in_every_form(proxy, receiver, site, form):
    own = receiver.url()
    address = {"path": f"{base_of(proxy)}/{own}",
               "forward": f"{base_of(proxy)}/webmention?forward={own}",
               "discovery": f"{base_of(proxy)}/"}[form]
    page = a_site(site, html(webmention_link(own), pingback_link(address)))

    document = await check(page)

    assert document["status"] == "works" and document["works"] is True
    assert document["verdict"].startswith("Yes: pingbacks to this page will reach its "
                                          f"WebMention endpoint {own}")
    assert document["pingproxy"] == {"url": address, "form": form, "endpoint": own,
                                     "is_page_endpoint": True}
    assert document["concerns"] == [] and document["fix"] is None
    probe = document["probes"][0]
    assert (probe["kind"], probe["url"], probe["ok"], probe["http_status"]) == (
        "webmention", own, True, 400)
    assert "invalid_request" in probe["detail"]
    listing = document["probes"][1]
    assert (listing["request"], listing["ok"], listing["detail"]) == (
        "system.listMethods", True, "lists pingback.ping")
    assert [r.form for r in receiver.received] == [{"source": page, "target": page}]
    assert_no_mention(receiver, site)


async def test_what_each_sender_finds_is_reported_with_its_step(proxy, receiver, site):
    address = f"{base_of(proxy)}/{receiver.url()}"
    page = a_site(site, html(webmention_link(receiver.url()), pingback_link(address)))

    found = (await check(page))["page"]

    assert found["webmention"] == {"url": receiver.url(), "written": receiver.url(),
                                   "step": '<link rel="webmention"> element'}
    assert found["pingback"]["step"] == '<link rel="pingback" href="..."> (Pingback 1.0 pattern)'
    assert found["wordpress"]["step"] == 'rel="pingback" then href= (WordPress string search)'
    assert found["pingback"]["url"] == found["wordpress"]["url"] == address


async def test_header_and_element_that_disagree_are_a_concern(proxy, receiver, site):
    address = f"{base_of(proxy)}/{receiver.url()}"
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(f"{base_of(proxy)}/{receiver.url('/old')}")),
                  headers=[("X-Pingback", address)])

    document = await check(page)

    assert document["status"] == "works"  # the header wins, and it is right
    assert document["page"]["pingback"]["step"] == "X-Pingback header"
    assert [c["code"] for c in document["concerns"]] == ["header_element_disagree"]
    assert document["concerns"][0]["fix"] == {
        "text": "Change the <link> element to this, or remove it:",
        "lines": [f'<link rel="pingback" href="{address}">']}
    assert_no_mention(receiver, site)


async def test_an_element_only_a_lenient_parser_finds_is_broken(proxy, receiver, site):
    address = f"{base_of(proxy)}/{receiver.url()}"
    page = a_site(site, html(webmention_link(receiver.url()),
                             f'<link rel="pingback" title="pingbacks" href="{address}">'))

    document = await check(page)

    assert document["status"] == "broken"
    assert "Pingback 1.0 senders find none" in document["verdict"]
    assert document["page"]["pingback"] is None
    assert document["page"]["wordpress"]["url"] == address
    assert [c["code"] for c in document["concerns"]] == ["lenient_only"]
    assert document["fix"]["link"] == f'<link rel="pingback" href="{address}">'
    assert document["fix"]["header"] == f"X-Pingback: {address}"
    assert_no_mention(receiver, site)


async def test_an_element_no_sender_reads_is_broken(proxy, receiver, site):
    address = f"{base_of(proxy)}/{receiver.url()}"
    page = a_site(site, html(webmention_link(receiver.url()),
                             f'<link href="{address}" rel="pingback">'))

    document = await check(page)

    assert document["status"] == "broken"
    assert "in a way no sender reads" in document["verdict"]
    assert document["page"]["pingback"] is None and document["page"]["wordpress"] is None


async def test_a_relative_href_is_broken_for_every_sender(receiver, site):
    page = a_site(site, html(webmention_link(receiver.url()), pingback_link("/xmlrpc.php")))

    document = await check(page, proxy_base="https://pingproxy.example")

    assert document["status"] == "broken"
    assert "'/xmlrpc.php'" in document["verdict"] and "not an absolute" in document["verdict"]
    assert "relative_href" in [c["code"] for c in document["concerns"]]
    assert document["fix"]["address"] == f"https://pingproxy.example/{receiver.url()}"
    assert_no_mention(receiver, site)


async def test_a_pingback_url_naming_another_endpoint_is_broken(proxy, receiver, site):
    other = receiver.url("/other-webmention")
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(f"{base_of(proxy)}/{other}")))

    document = await check(page)

    assert document["status"] == "broken"
    assert f"forwards to {other}, not to the page's own WebMention endpoint" in \
        document["verdict"]
    assert document["pingproxy"]["is_page_endpoint"] is False
    assert {p["url"] for p in document["probes"] if p["kind"] == "webmention"} == {
        receiver.url(), other}
    assert document["fix"]["address"] == f"{base_of(proxy)}/{receiver.url()}"
    assert_no_mention(receiver, site)


async def test_a_webmention_endpoint_that_is_down_is_broken(proxy, site, unused_tcp_port):
    down = f"http://127.0.0.1:{unused_tcp_port}/webmention"
    page = a_site(site, html(webmention_link(down), pingback_link(f"{base_of(proxy)}/{down}")))

    document = await check(page)

    assert document["status"] == "broken"
    assert f"the WebMention endpoint {down} failed: could not connect" in document["verdict"]
    [probe] = [p for p in document["probes"] if p["kind"] == "webmention"]
    assert probe["ok"] is False and probe["http_status"] is None
    assert document["fix"]["link"] is None and "answer first" in document["fix"]["text"]


async def test_xml_rpc_blocked_with_403_is_broken(receiver, site):
    site.reply(403, text="Forbidden")
    server = site.url("/xmlrpc.php")
    page = a_site(site, html(webmention_link(receiver.url()), pingback_link(server)))

    document = await check(page, proxy_base="https://pingproxy.example")

    assert document["status"] == "broken"
    assert "refuses XML-RPC (HTTP 403)" in document["verdict"]
    [listing] = [p for p in document["probes"] if p["kind"] == "xmlrpc"]
    assert (listing["http_status"], listing["content_type"]) == (403, "text/plain")
    assert document["fix"]["address"] == f"https://pingproxy.example/{receiver.url()}"
    assert_no_mention(receiver, site)


def xml_rpc(answers: dict[str, object]):
    """An XML-RPC server answering each method with a value or a Fault."""

    async def answer(request: web.Request) -> web.Response:
        params, method = xmlrpc.client.loads(await request.read())
        value = answers[method]
        body = xmlrpc.client.dumps(value if isinstance(value, xmlrpc.client.Fault)
                                   else (value,), methodresponse=True)
        return web.Response(text=body, content_type="text/xml")

    return answer


async def test_pingback_ping_missing_from_list_methods_is_broken(receiver, site):
    site.answer = xml_rpc({"system.listMethods": ["system.listMethods", "demo.sayHello"]})
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(site.url("/xmlrpc.php"))))

    document = await check(page)

    assert document["status"] == "broken"
    assert "does not list pingback.ping among its methods" in document["verdict"]
    assert [r.form for r in site.received] == [{}]  # one system.listMethods, nothing else
    assert_no_mention(receiver, site)


async def test_without_introspection_a_self_ping_is_the_fallback(receiver, site):
    site.answer = xml_rpc({
        "system.listMethods": xmlrpc.client.Fault(-32601, "server error: no such method"),
        "pingback.ping": xmlrpc.client.Fault(0, "The source URL and the target URL cannot "
                                                "both point to the same resource."),
    })
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(site.url("/xmlrpc.php"))))

    document = await check(page)

    assert document["status"] == "works"
    listing, self_ping = [p for p in document["probes"] if p["kind"] == "xmlrpc"]
    assert (listing["fault_code"], listing["ok"]) == (-32601, False)
    assert listing["fault_meaning"] == "server error: requested method not found"
    assert (self_ping["request"], self_ping["fault_code"], self_ping["ok"]) == (
        "pingback.ping(source=target)", 0, True)
    sent = [xmlrpc.client.loads(r.body) for r in site.received]
    assert sent[1] == ((page, page), "pingback.ping")


async def test_a_self_ping_answered_method_not_found_is_broken(receiver, site):
    site.answer = xml_rpc({"system.listMethods": xmlrpc.client.Fault(-32601, "no"),
                           "pingback.ping": xmlrpc.client.Fault(-32601, "no")})
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(site.url("/xmlrpc.php"))))

    document = await check(page)

    assert document["status"] == "broken"
    assert "has no pingback.ping method" in document["verdict"]


async def test_a_home_page_without_the_advertisement_is_a_concern(proxy, receiver, site):
    address = f"{base_of(proxy)}/{receiver.url()}"
    page = a_site(site, html(webmention_link(receiver.url()), pingback_link(address)),
                  home=html())

    document = await check(page)

    assert document["status"] == "works"
    assert document["home"]["url"] == site.url("/")
    assert document["home"]["pingback"] is None and document["home"]["webmention"] is None
    concerns = [c for c in document["concerns"] if c["code"] == "home_page_differs"]
    assert len(concerns) == 2
    assert "Only this page advertises a pingback server, not the home page" in \
        concerns[0]["text"]


async def test_the_home_page_itself_is_checked_once(proxy, receiver, site):
    home = site.page("/", html(webmention_link(receiver.url()),
                               pingback_link(f"{base_of(proxy)}/")))

    document = await check(home)

    assert document["status"] == "works" and document["home"] is None
    assert [f.path for f in site.fetched] == ["/"]


async def test_no_pingback_at_all_is_broken_with_the_tags_to_use(receiver, site):
    page = a_site(site, html(webmention_link(receiver.url())))

    document = await check(page, proxy_base="https://pingproxy.example")

    assert document["status"] == "broken"
    assert "the page advertises no pingback server" in document["verdict"]
    address = f"https://pingproxy.example/{receiver.url()}"
    assert document["fix"] == {
        "text": "Advertise this pingback URL, which names the page's WebMention endpoint:",
        "address": address,
        "link": f'<link rel="pingback" href="{address}">',
        "header": f"X-Pingback: {address}",
    }
    assert receiver.received and site.received == []


async def test_without_a_known_proxy_the_fix_says_what_proxy_stands_for(receiver, site):
    page = a_site(site, html(webmention_link(receiver.url())))

    fix = (await check(page))["fix"]

    assert fix["address"] == f"https://PROXY/{receiver.url()}"
    assert "https://PROXY stands for your pingproxy's address" in fix["text"]


async def test_a_page_not_found_is_not_checked(site):
    document = await check(site.page("/no-such-post", "<h1>Not found</h1>", status=404))

    assert document["status"] == "unreachable" and document["works"] is False
    assert document["verdict"] == ("Not checked: the page could not be fetched: it answered "
                                   "HTTP 404 Not Found.")
    assert document["page"]["http_status"] == 404
    assert document["probes"] == [] and document["fix"] is None


async def test_a_redirect_to_a_private_address_is_refused_and_never_followed(site):
    # Loopback is let through for the test site only; every other blocked range stays.
    loopback = ipaddress.ip_network("127.0.0.0/8")
    policy = DestinationPolicy(
        allowed_ports=frozenset({site.server.port, 80}),
        blocked_networks=tuple((n, why) for n, why in BLOCKED_NETWORKS if n != loopback))
    page = site.page("/post/1", status=302,
                     headers=[("Location", "http://169.254.169.254/latest/meta-data")])

    document = await check(page, dataclasses.replace(TEST_SETTINGS, allow_private=False),
                           policy=policy)

    assert document["status"] == "unreachable"
    assert "169.254.169.254 is a link-local address" in document["page"]["error"]


async def test_an_entity_in_the_href_is_a_concern(receiver, site):
    site.answer = xml_rpc({"system.listMethods": ["pingback.ping"]})
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(site.url("/xmlrpc.php") + "?blog=1&amp;lang=en")))

    document = await check(page)

    assert document["status"] == "works"  # a server that is not a pingproxy, and answers
    assert document["page"]["pingback"]["url"] == site.url("/xmlrpc.php") + "?blog=1&lang=en"
    assert document["page"]["wordpress"]["written"].endswith("?blog=1&amp;lang=en")
    [entity] = [c for c in document["concerns"] if c["code"] == "entity_in_href"]
    assert entity["fix"] == {
        "text": "Advertise it in the header instead, where no entity is needed, and remove "
                "the element:",
        "lines": [f"X-Pingback: {site.url('/xmlrpc.php')}?blog=1&lang=en"]}
    assert "not a pingproxy" in document["verdict"]


async def test_two_different_pingback_servers_are_a_concern(proxy, receiver, site):
    first, second = (f"{base_of(proxy)}/{receiver.url()}", f"{base_of(proxy)}/")
    page = a_site(site, html(webmention_link(receiver.url()), pingback_link(first),
                             pingback_link(second)))

    document = await check(page)

    assert document["status"] == "works"
    assert [c["code"] for c in document["concerns"]] == ["several_pingback_servers"]
    assert document["concerns"][0]["fix"] == {
        "text": f"Keep this one and remove the others ({second}):",
        "lines": [f'<link rel="pingback" href="{first}">']}


async def test_a_real_pingback_server_answers_the_listing_only(receiver, site, pingback_server):
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(pingback_server.url)))

    document = await check(page)

    assert document["status"] == "works" and document["pingproxy"] is None
    assert [p["request"] for p in document["probes"] if p["kind"] == "xmlrpc"] == [
        "system.listMethods", "system.methodHelp(pingback.ping)"]
    assert pingback_server.calls == []


async def test_an_endpoint_that_accepts_a_self_mention_is_a_concern(proxy, endpoint, site):
    page = a_site(site, html(webmention_link(endpoint.url()),
                             pingback_link(f"{base_of(proxy)}/{endpoint.url()}")))

    document = await check(page)

    assert document["status"] == "works"
    assert [c["code"] for c in document["concerns"]] == ["accepts_self_mention"]
    [probe] = [p for p in document["probes"] if p["kind"] == "webmention"]
    assert probe["sent"] == ("a WebMention POST, source and target both this page, to the "
                             f"WebMention endpoint {endpoint.url()}")
    assert probe["detail"] == ("accepted the self-mention (HTTP 202 Accepted, status at "
                               f"{endpoint.url('/status/42')}): alive, but it should refuse it, "
                               "and may have recorded it as a mention")
    assert "forwarded" not in str(document)
    assert_no_mention(endpoint, site)


async def test_every_step_is_bounded_and_so_is_the_whole_check(proxy, receiver, site):
    settings = dataclasses.replace(TEST_SETTINGS, forward_timeout_seconds=1.0)
    receiver.reply(400, json=SELF_MENTION_REFUSAL, delay=3.0)
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(f"{base_of(proxy)}/{receiver.url()}")))

    document = await check(page, settings)

    assert document["status"] == "broken"
    assert "did not answer within 1 s" in document["verdict"]


async def test_the_check_page_shows_each_concern_with_its_fix_and_line(proxy, receiver, site):
    address = f"{base_of(proxy)}/{receiver.url()}"
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(f"{base_of(proxy)}/{receiver.url('/old')}")),
                  headers=[("X-Pingback", address)])

    response = await proxy.get("/check", params={"url": page})

    text = await response.text()
    assert response.status == 200
    assert '<p class="concern-fix">Change the &lt;link&gt; element to this, or remove it:</p>' \
        in text
    assert (f'<pre id="concern-1-1" tabindex="0" aria-label="the line to write"><code>'
            f'&lt;link rel=&#34;pingback&#34; href=&#34;{address}&#34;&gt;</code></pre>') in text
    assert "sent a WebMention POST, source and target both this page, to the WebMention " \
           f"endpoint {receiver.url()}" in text
    assert "harmlessly" not in text


async def test_the_readme_shows_the_check_log_line_as_it_is_written(proxy, receiver, site,
                                                                    caplog):
    page = a_site(site, html(webmention_link(receiver.url()),
                             pingback_link(f"{base_of(proxy)}/{receiver.url()}")))
    caplog.set_level("INFO", logger="pingproxy.check")

    await proxy.get("/check", params={"url": page})

    [record] = [r for r in caplog.records if r.name == "pingproxy.check"]
    start = f"{record.name} {record.getMessage().partition(' client=')[0]} client="
    assert start == "pingproxy.check check status=works client="
    assert f"(`{start}..." in " ".join(README.split())

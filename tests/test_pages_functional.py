"""The landing page, GET /check and the public address, over real sockets (no browser).

tests/test_browser_functional.py drives the same pages in Chromium.
"""

import asyncio
import html
import logging
import re

import pytest

from pingproxy.app import create_app
from pingproxy.config import Settings
from pingproxy.errors import FAULT_CODES, FAULT_MEANINGS, Outcome
from pingproxy.inbound import track_requests
from pingproxy.limits import Rate
from tests.conftest import TEST_SETTINGS, fault_of, ping_body, relay_lines
from tests.test_diagnose_functional import (
    SELF_MENTION_REFUSAL,
    a_site,
    assert_no_mention,
    pingback_link,
    webmention_link,
)
from tests.test_diagnose_functional import html as page_html

ENDPOINT = "https://example.com/webmention"
SOURCE, TARGET = "https://blog.example/post", "https://site.example/page"
JSON = {"Accept": "application/json"}


async def text_of(response) -> str:
    return html.unescape(await response.text())


def words_of(page: str) -> str:
    """A page's text as a reader sees it: without its markup, one space between words."""
    return " ".join(re.sub(r"<[^>]*>", " ", page).split())


async def test_the_landing_page_writes_the_tags_for_an_endpoint(proxy):
    base = str(proxy.make_url("")).rstrip("/")

    response = await proxy.get("/", params={"endpoint": ENDPOINT})

    page = await text_of(response)
    assert response.status == 200
    for tag in (f'<link rel="pingback" href="{base}/{ENDPOINT}">',
                f"X-Pingback: {base}/{ENDPOINT}",
                f'<link rel="pingback" href="{base}/">', f"X-Pingback: {base}/",
                f'<link rel="webmention" href="{ENDPOINT}">'):
        assert tag in page


async def test_an_endpoint_with_a_query_is_written_percent_encoded(proxy):
    base = str(proxy.make_url("")).rstrip("/")

    page = await text_of(await proxy.get("/", params={"endpoint": ENDPOINT + "?key=1"}))

    assert f"X-Pingback: {base}/https%3A%2F%2Fexample.com%2Fwebmention%3Fkey%3D1" in page


async def test_an_endpoint_that_is_not_a_url_is_answered_next_to_its_field(proxy):
    page = await (await proxy.get("/", params={"endpoint": "example.com/wm"})).text()

    assert 'aria-invalid="true"' in page and 'role="alert"' in page
    assert "full address, starting with https://" in page
    assert "X-Pingback:" not in html.unescape(page).split("Write the tags")[1].split("<h2")[0]


async def test_an_endpoint_this_pingproxy_may_not_reach_is_refused_on_the_page(make_proxy):
    proxy = await make_proxy(allow_private=False)

    page = await text_of(await proxy.get("/", params={"endpoint": "http://10.0.0.5/wm"}))

    assert "This pingproxy will not forward there: 10.0.0.5 is a private address" in page


async def test_what_a_visitor_types_is_escaped_everywhere(proxy):
    hostile = 'https://example.com/"><script>alert(1)</script>'

    pages = [await (await proxy.get(path, params=params)).text()
             for path, params in (("/", {"endpoint": hostile}), ("/check", {"url": hostile}))]

    for page in pages:
        assert "<script>alert(1)" not in page
        assert page.count("<script") == 1  # the copy button's own


async def test_the_pages_load_nothing_from_elsewhere(proxy):
    response = await proxy.get("/", params={"endpoint": ENDPOINT})

    policy = response.headers["Content-Security-Policy"]
    page = await response.text()
    assert policy.startswith("default-src 'none'; style-src 'nonce-")
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert page.count(f'nonce="{nonce}"') == 2
    assert " src=" not in page and "@import" not in page and "url(" not in page


async def test_the_endpoint_page_uses_the_same_templates(proxy):
    base = str(proxy.make_url("")).rstrip("/")

    response = await proxy.get(f"/{ENDPOINT}")

    page = await text_of(response)
    assert "Content-Security-Policy" in response.headers
    assert "pingback endpoint" in page
    assert f'<link rel="pingback" href="{base}/{ENDPOINT}">' in page


@pytest.mark.parametrize("path", ["/nope/x", "/favicon.ico", "/webmention",
                                  "/webmention?forward=nope", "/https://" + "a" * 4100])
async def test_a_url_that_names_no_endpoint_is_a_404_that_says_the_fault_and_offers_no_tag(
        proxy, path):
    code = FAULT_CODES[Outcome.INVALID_ENDPOINT]

    response = await proxy.get(path)
    fault = await fault_of(await proxy.post(path, data=ping_body(SOURCE, TARGET)))

    page = await text_of(response)
    assert response.status == 404
    assert fault.faultCode == code
    assert f"would get fault {code} ({FAULT_MEANINGS[code]})" in words_of(page)
    assert 'rel="pingback"' not in page and "X-Pingback" not in page
    assert "Content-Security-Policy" in response.headers


async def test_a_url_whose_endpoint_the_guard_refuses_is_a_403_with_the_faults_own_words(
        make_proxy):
    proxy = await make_proxy(allow_private=False)
    path = "/http://10.0.0.5/webmention"

    response = await proxy.get(path)
    fault = await fault_of(await proxy.post(path, data=ping_body(SOURCE, TARGET)))

    page = words_of(await text_of(response))
    assert response.status == 403
    assert f"would get fault {fault.faultCode} ({FAULT_MEANINGS[fault.faultCode]})" in page
    assert f"{fault.faultString}." in page
    assert 'rel="pingback"' not in page


async def test_check_shows_the_report_as_a_page(proxy, endpoint, site):
    endpoint.reply(400, json=SELF_MENTION_REFUSAL)
    base = str(proxy.make_url("")).rstrip("/")
    page_url = a_site(site, page_html(webmention_link(endpoint.url()),
                                      pingback_link(f"{base}/{endpoint.url()}")))

    response = await proxy.get("/check", params={"url": page_url})

    page = await text_of(response)
    assert response.status == 200 and response.content_type == "text/html"
    assert 'class="verdict works"' in page
    assert f"Yes: pingbacks to this page will reach its WebMention endpoint {endpoint.url()}" \
        in page
    assert_no_mention(endpoint, site)


async def test_check_gives_json_when_asked(proxy, endpoint, site):
    page_url = a_site(site, page_html(webmention_link(endpoint.url())))

    response = await proxy.get("/check", params={"url": page_url}, headers=JSON)

    document = await response.json()
    assert response.status == 200
    assert document["status"] == "broken" and document["url"] == page_url
    base = str(proxy.make_url("")).rstrip("/")
    assert document["fix"]["address"] == f"{base}/{endpoint.url()}"


async def test_check_without_a_url_shows_the_form_and_a_bad_one_is_400(proxy):
    bare = await proxy.get("/check")
    bad = await proxy.get("/check", params={"url": "ftp://example.com/"}, headers=JSON)

    assert bare.status == 200 and 'id="url"' in await bare.text()
    assert bad.status == 400
    assert (await bad.json())["error"] == "invalid_url"


async def test_check_keeps_to_the_address_guard(make_proxy, site):
    proxy = await make_proxy(allow_private=False, allowed_ports=frozenset({site.server.port}))
    page_url = site.page("/post/1", page_html())

    document = await (await proxy.get("/check", params={"url": page_url}, headers=JSON)).json()

    assert document["status"] == "unreachable"
    assert "127.0.0.1 is a loopback address" in document["verdict"]
    assert site.fetched == []


async def test_a_client_over_its_check_rate_gets_429_with_retry_after(make_proxy, site):
    proxy = await make_proxy(check_rate_limit=Rate(2, 60))
    page_url = site.page("/post/1", page_html())

    answers = [await proxy.get("/check", params={"url": page_url}, headers=JSON)
               for _ in range(3)]

    assert [answer.status for answer in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "30"
    assert (await answers[2].json())["error"] == "client_rate_limited"
    assert len(site.fetched) == 2
    html_refusal = await proxy.get("/check", params={"url": page_url})
    assert html_refusal.status == 429 and "Too many checks" in await html_refusal.text()


async def test_checks_beyond_the_cap_in_flight_get_503(make_proxy, site):
    proxy = await make_proxy(max_checks=1)
    slow = site.page("/slow", page_html(), delay=1.0)
    running = asyncio.create_task(proxy.get("/check", params={"url": slow}, headers=JSON))
    while not site.serving:
        await asyncio.sleep(0.01)

    refused = await proxy.get("/check", params={"url": slow}, headers=JSON)

    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
    assert (await running).status == 200
    assert len(site.fetched) == 1


async def test_checks_can_be_turned_off(make_proxy):
    proxy = await make_proxy(max_checks=0)

    landing = await (await proxy.get("/")).text()

    assert (await proxy.get("/check", params={"url": "https://example.com/"})).status == 404
    assert 'action="' + str(proxy.make_url("/check")) not in landing
    assert "Check a page" not in landing


async def test_the_public_url_is_the_address_the_tags_show(make_proxy, endpoint, site):
    proxy = await make_proxy(public_url="https://example.com/pingback")

    page = await text_of(await proxy.get("/", params={"endpoint": ENDPOINT}))
    document = await (await proxy.get(
        "/check", params={"url": a_site(site, page_html(webmention_link(endpoint.url())))},
        headers=JSON)).json()

    assert f'<link rel="pingback" href="https://example.com/pingback/{ENDPOINT}">' in page
    assert '<link rel="pingback" href="https://example.com/pingback">' in page
    assert 'action="https://example.com/pingback/check"' in page
    assert document["fix"]["address"] == f"https://example.com/pingback/{endpoint.url()}"


ROUTER = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
          "X-Forwarded-Host": "pingproxy.example"}


async def test_behind_a_router_the_forwarded_headers_give_the_public_address(make_proxy):
    proxy = await make_proxy(trust_forwarded="x-forwarded")

    page = await text_of(await proxy.get("/", params={"endpoint": ENDPOINT}, headers=ROUTER))

    assert f'<link rel="pingback" href="https://pingproxy.example/{ENDPOINT}">' in page


async def test_behind_a_router_the_real_client_is_named_upstream_and_logged(
        make_proxy, endpoint, caplog):
    caplog.set_level(logging.INFO, logger="pingproxy.relay")
    proxy = await make_proxy(trust_forwarded="x-forwarded")

    await proxy.post("/" + endpoint.url(), data=ping_body("http://a.example/", "http://b.example/"),
                     headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})

    [received] = endpoint.received
    assert received.headers["Forwarded"] == "for=203.0.113.9"
    [line] = relay_lines(proxy, caplog)
    assert line.endswith("client=203.0.113.9")


async def test_the_rfc_7239_forwarded_header_can_be_the_trusted_one(make_proxy, endpoint):
    proxy = await make_proxy(trust_forwarded="forwarded")

    await proxy.post("/" + endpoint.url(), data=ping_body("http://a.example/", "http://b.example/"),
                     headers={"Forwarded": 'for="[2001:db8::7]";proto=https',
                              "X-Forwarded-For": "203.0.113.66"})

    assert endpoint.received[0].headers["Forwarded"] == 'for="[2001:db8::7]"'


async def test_behind_a_router_each_client_has_its_own_rate(make_proxy, endpoint):
    proxy = await make_proxy(trust_forwarded="x-forwarded", rate_limit=Rate(1, 60))
    body = ping_body("http://a.example/", "http://b.example/")

    statuses = [(await proxy.post("/" + endpoint.url(), data=body,
                                  headers={"X-Forwarded-For": client})).status
                for client in ("203.0.113.1", "203.0.113.2", "203.0.113.1")]

    assert statuses == [200, 200, 429]


async def test_without_trust_the_forwarded_headers_are_ignored(proxy, endpoint):
    page = await text_of(await proxy.get("/", params={"endpoint": ENDPOINT}, headers=ROUTER))
    await proxy.post("/" + endpoint.url(), data=ping_body("http://a.example/", "http://b.example/"),
                     headers=ROUTER)

    assert "pingproxy.example" not in page
    assert endpoint.received[0].headers["Forwarded"] == "for=127.0.0.1"


def test_without_trust_no_middleware_is_added():
    trusting = create_app(Settings(trust_forwarded="x-forwarded"))

    # Only the one every request passes: it ends its connection's header deadline.
    assert list(create_app(Settings()).middlewares) == [track_requests]
    assert len(trusting.middlewares) == 2
    assert TEST_SETTINGS.trust_forwarded == "off"

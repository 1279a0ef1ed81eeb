"""Endpoint discovery's pure parts: rel tokens, Link headers, HTML, and a fetched reply."""

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from pingproxy.discovery import (
    NO_ENDPOINT_TEXT,
    STEP_LINK_HEADER,
    STEP_PINGBACK_HEADER,
    STEP_PINGBACK_LINK,
    Discovery,
    endpoint_in,
    has_webmention_rel,
    html_endpoint,
    link_header_endpoint,
    pingback_link,
    pingback_server,
    webmention_found,
    wordpress_pingback_link,
)
from pingproxy.errors import DiscoveryFailed, Outcome
from pingproxy.outbound import Reply

PAGE = URL("https://site.example/post/7")


@pytest.mark.parametrize(("rel", "expected"), [
    ("webmention", True),
    ("WebMention", True),
    ("me webmention", True),
    ("webmention\tme", True),
    ("  webmention  ", True),
    ("not-webmention", False),
    ("webmentions", False),
    ("web mention", False),
    ("webmention\xa0me", False),  # no-break space is not HTML whitespace
    ("", False),
])
def test_rel_matches_only_the_whole_webmention_token(rel, expected):
    assert has_webmention_rel(rel) is expected


def link(url: str, **params: str) -> MultiDictProxy:
    """One Link header value as aiohttp parses it: its parameters plus the resolved "url"."""
    return MultiDictProxy(MultiDict([*params.items(), ("url", PAGE.join(URL(url)))]))


@pytest.mark.parametrize(("links", "expected"), [
    pytest.param([link("/wm", rel="webmention")], "https://site.example/wm", id="one"),
    pytest.param([link("/a", rel="next"), link("/wm", rel="webmention")],
                 "https://site.example/wm", id="after-another-rel"),
    pytest.param([link("/wm", rel="me webmention")], "https://site.example/wm", id="rel-list"),
    pytest.param([link("/no", rel="not-webmention"), link("/wm", rel="webmention")],
                 "https://site.example/wm", id="exact-token"),
    pytest.param([link("/first", rel="webmention"), link("/second", rel="webmention")],
                 "https://site.example/first", id="first-wins"),
    pytest.param([link("/wm", REL="webmention")], "https://site.example/wm", id="param-case"),
    pytest.param([link("/wm?k=1#f", rel="webmention")], "https://site.example/wm?k=1",
                 id="query-kept-fragment-dropped"),
    pytest.param([link("mailto:a@b.example", rel="webmention"), link("/wm", rel="webmention")],
                 "https://site.example/wm", id="not-http-skipped"),
    pytest.param([link("/wm", title="webmention")], None, id="no-rel"),
    pytest.param([], None, id="none"),
])
def test_link_header_endpoint_is_the_first_webmention_link(links, expected):
    found = link_header_endpoint(links)

    assert (str(found) if found else None) == expected


HTML_CASES = [
    pytest.param('<link rel="webmention" href="/wm">', "https://site.example/wm", id="link"),
    pytest.param('<a rel="webmention" href="/wm">x</a>', "https://site.example/wm", id="a"),
    pytest.param("<link rel=webmention href=/wm>", "https://site.example/wm", id="unquoted"),
    pytest.param('<link rel="webmention" href="/wm" />', "https://site.example/wm",
                 id="self-closing"),
    pytest.param('<LINK REL="WebMention" HREF="/wm">', "https://site.example/wm", id="upper"),
    pytest.param('<link rel="me webmention" href="/wm">', "https://site.example/wm",
                 id="rel-list"),
    pytest.param('<link rel="not-webmention" href="/no"><link rel="webmention" href="/wm">',
                 "https://site.example/wm", id="exact-token"),
    pytest.param('<html><head></head><body><p><a rel="webmention" href="/wm">x</a></body>',
                 "https://site.example/wm", id="in-body"),
    pytest.param('<a rel="webmention" href="/a"></a><link rel="webmention" href="/link">',
                 "https://site.example/a", id="a-before-link"),
    pytest.param('<link rel="webmention" href="/link"><a rel="webmention" href="/a"></a>',
                 "https://site.example/link", id="link-before-a"),
    pytest.param('<!-- <link rel="webmention" href="/no"> --><link rel="webmention" href="/wm">',
                 "https://site.example/wm", id="comment"),
    pytest.param('<script>"<link rel=\'webmention\' href=\'/no\'>"</script>'
                 '<a rel="webmention" href="/wm">', "https://site.example/wm", id="script"),
    pytest.param('<style>/* <a rel="webmention" href="/no"> */</style>'
                 '<a rel="webmention" href="/wm">', "https://site.example/wm", id="style"),
    pytest.param('<p>&lt;link rel="webmention" href="/no"&gt;</p><a rel="webmention" href="/wm">',
                 "https://site.example/wm", id="escaped-text"),
    pytest.param('<link rel="webmention"><a rel="webmention" href="/wm">',
                 "https://site.example/wm", id="missing-href-skipped"),
    pytest.param('<link rel="webmention" href="">', "https://site.example/post/7", id="empty"),
    pytest.param("<link rel=webmention href>", "https://site.example/post/7", id="bare-href"),
    pytest.param('<link rel="webmention" href="7/webmention">',
                 "https://site.example/post/7/webmention", id="relative-path"),
    pytest.param('<link rel="webmention" href="../wm">', "https://site.example/wm", id="dot-dot"),
    pytest.param('<link rel="webmention" href="//other.example/wm">',
                 "https://other.example/wm", id="scheme-relative"),
    pytest.param('<link rel="webmention" href="/wm?key=1&amp;x=2">',
                 "https://site.example/wm?key=1&x=2", id="query-with-entity"),
    pytest.param('<link rel="webmention" href=" /wm#here ">', "https://site.example/wm",
                 id="whitespace-and-fragment"),
    pytest.param('<link rel="webmention" href="/first" rel="me"><link rel="x" href="/x">',
                 "https://site.example/first", id="first-attribute-wins"),
    pytest.param('<a rel="webmention" href="javascript:void(0)"></a>'
                 '<a rel="webmention" href="/wm"></a>', "https://site.example/wm",
                 id="not-http-skipped"),
    pytest.param('<a rel="webmention" href="http://[bad"></a><a rel="webmention" href="/wm">',
                 "https://site.example/wm", id="unparseable-skipped"),
    pytest.param('<a href="/wm">webmention</a><div rel="webmention" href="/div"></div>', None,
                 id="no-rel-or-other-element"),
    pytest.param('<link rel="webmention" href="/wm"', None, id="unfinished-tag"),
    pytest.param("", None, id="empty-page"),
]


@pytest.mark.parametrize(("html", "expected"), HTML_CASES)
def test_html_endpoint_is_the_first_link_or_a_in_document_order(html, expected):
    found = html_endpoint(html, PAGE)

    assert (str(found) if found else None) == expected


def test_an_endpoint_far_down_a_long_page_is_found():
    html = "<p>filler</p>" * 20_000 + '<a rel="webmention" href="/wm">'

    assert str(html_endpoint(html, PAGE)) == "https://site.example/wm"


def reply(body: bytes, *, content_type: str = "text/html", header: str | None = None,
          x_pingback: str | None = None) -> Reply:
    """A fetched page, with a Link header to header and an X-Pingback header when given."""
    headers = CIMultiDict({"Content-Type": content_type})
    if x_pingback is not None:
        headers["X-Pingback"] = x_pingback
    links = MultiDictProxy(MultiDict())
    if header is not None:
        links = MultiDictProxy(MultiDict({"webmention": link(header, rel="webmention")}))
    return Reply(PAGE, 200, "OK", CIMultiDictProxy(headers), links, body)


@pytest.mark.parametrize(("page", "expected"), [
    pytest.param(reply(b'<link rel="webmention" href="/html">', header="/header"),
                 "https://site.example/header", id="header-before-html"),
    pytest.param(reply(b'<link rel="webmention" href="/html">'), "https://site.example/html",
                 id="html"),
    pytest.param(reply(b'<link rel="webmention" href="/html">',
                       content_type="application/xhtml+xml"), "https://site.example/html",
                 id="xhtml"),
    pytest.param(reply(b'<link rel="webmention" href="/html">', content_type="text/plain"),
                 None, id="text-is-not-html"),
    pytest.param(reply(b"%PDF", content_type="application/pdf", header="/header"),
                 "https://site.example/header", id="non-html-with-header"),
    pytest.param(reply('<a rel="webmention" href="/café">'.encode("latin-1"),
                       content_type="text/html; charset=ISO-8859-1"),
                 "https://site.example/caf%C3%A9", id="declared-charset"),
    pytest.param(reply(b'<a rel="webmention" href="/wm">', content_type="text/html; charset=hex"),
                 "https://site.example/wm", id="charset-that-is-no-text-codec"),
])
def test_a_fetched_reply_advertises_its_header_first_and_html_only_when_html(page, expected):
    found = endpoint_in(page)

    assert (str(found) if found else None) == expected


def test_a_discovery_without_an_endpoint_is_fault_33_with_its_reason():
    with pytest.raises(DiscoveryFailed) as caught:
        Discovery(None).required_endpoint()

    assert caught.value.outcome is Outcome.NO_ENDPOINT
    assert caught.value.fault_code == 0x21
    assert str(caught.value) == NO_ENDPOINT_TEXT


@pytest.mark.parametrize(("page", "step"), [
    pytest.param(reply(b'<a rel="webmention" href="/html">', header="/header"), STEP_LINK_HEADER,
                 id="header"),
    pytest.param(reply(b'<link rel="webmention" href="/wm">'), '<link rel="webmention"> element',
                 id="link"),
    pytest.param(reply(b'<a href="mailto:x@y.example" rel="webmention">x</a>'
                       b'<a rel="webmention" href="/wm">'), '<a rel="webmention"> element',
                 id="a-after-unusable"),
])
def test_webmention_found_names_the_step_that_found_the_endpoint(page, step):
    found = webmention_found(page)

    assert found.step == step
    assert found.url is not None


PINGBACK = "https://blog.example/xmlrpc.php"


@pytest.mark.parametrize(("html", "expected"), [
    pytest.param(f'<link rel="pingback" href="{PINGBACK}">', PINGBACK, id="plain"),
    pytest.param(f'<link rel="pingback" href="{PINGBACK}" />', PINGBACK, id="self-closing"),
    pytest.param('<link rel="pingback" href="https://b.example/x?a=1&amp;b=2">',
                 "https://b.example/x?a=1&b=2", id="entities-expanded"),
    pytest.param(f'<link href="{PINGBACK}" rel="pingback">', None, id="href-first"),
    pytest.param(f"<link rel='pingback' href='{PINGBACK}'>", None, id="single-quotes"),
    pytest.param(f'<LINK REL="pingback" HREF="{PINGBACK}">', None, id="upper-case"),
    pytest.param(f'<link rel="pingback"  href="{PINGBACK}">', None, id="two-spaces"),
    pytest.param(f'<link rel="pingback" href="{PINGBACK}"><link rel="pingback" href="x">',
                 PINGBACK, id="first-wins"),
])
def test_pingback_link_matches_only_the_specifications_pattern(html, expected):
    found = pingback_link(html)

    assert (found.written if found else None) == expected


@pytest.mark.parametrize(("html", "written"), [
    pytest.param(f'<link rel="pingback" href="{PINGBACK}">', PINGBACK, id="plain"),
    pytest.param(f"<link rel='pingback' href='{PINGBACK}'>", PINGBACK, id="single-quotes"),
    pytest.param('<link rel="pingback" href="/xmlrpc.php">', "/xmlrpc.php", id="relative-verbatim"),
    pytest.param('<link rel="pingback" href="https://b.example/x?a=1&amp;b=2">',
                 "https://b.example/x?a=1&amp;b=2", id="entities-verbatim"),
    pytest.param(f'<link href="{PINGBACK}" rel="pingback"><a href="/next">',
                 "/next", id="href-first-takes-the-next-elements-href"),
    pytest.param(f'<link href="{PINGBACK}" rel="pingback">', None, id="href-first-and-no-other"),
    pytest.param("<p>no advertisement</p>", None, id="none"),
])
def test_wordpress_reads_the_href_after_rel_verbatim(html, written):
    found = wordpress_pingback_link(html)

    assert (found.written if found else None) == written


def test_a_relative_pingback_href_is_found_but_unusable():
    found = pingback_link('<link rel="pingback" href="/xmlrpc.php">')

    assert found.written == "/xmlrpc.php" and found.url is None


@pytest.mark.parametrize(("page", "expected", "step"), [
    pytest.param(reply(f'<link rel="pingback" href="{PINGBACK}">'.encode(),
                       x_pingback="https://header.example/rpc"),
                 "https://header.example/rpc", STEP_PINGBACK_HEADER, id="header-wins"),
    pytest.param(reply(f'<link rel="pingback" href="{PINGBACK}">'.encode()), PINGBACK,
                 STEP_PINGBACK_LINK, id="link"),
    pytest.param(reply(f'<link rel="pingback" href="{PINGBACK}">'.encode(),
                       content_type="text/plain"), None, None, id="not-html"),
    pytest.param(reply(b"<p>none</p>"), None, None, id="none"),
])
def test_pingback_server_takes_the_header_first_then_the_link(page, expected, step):
    found = pingback_server(page)

    assert (str(found.url) if found else None) == expected
    assert (found.step if found else None) == step

"""How a pingback URL names its endpoint, without a network."""

import pytest
from yarl import URL

from pingproxy import urls

WM = "https://example.com/webmention"


@pytest.mark.parametrize(("raw_path", "raw_query", "expected"), [
    ("/https://example.com/webmention", "", WM),
    ("/https://example.com/webmention", "k=1", WM + "?k=1"),
    ("/https%3A%2F%2Fexample.com%2Fwebmention", "", WM),
    ("/https:%2F%2Fexample.com%2Fwebmention", "", WM),
    ("/https%3A%2F%2Fexample.com%2Fwebmention%3Fk%3D1", "", WM + "?k=1"),
    ("/https%3A%2F%2Fexample.com%2Fwebmention%3Fk%3D1", "j=2", WM + "?k=1&j=2"),
    ("/https:/example.com/webmention", "", WM),
    ("/HTTP:/example.com/webmention", "", "HTTP://example.com/webmention"),
    ("/https://example.com/a%20b", "", "https://example.com/a%20b"),
    ("/", "", ""),
])
def test_endpoint_from_path(raw_path, raw_query, expected):
    assert urls.endpoint_from_path(raw_path, raw_query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ([("forward", WM)], WM),
    ([("forward", WM + "?k=1"), ("j", "2")], WM + "?k=1&j=2"),
    ([("forward", WM), ("j", "2")], WM + "?j=2"),
    ([("j", "2")], ""),
    ([], ""),
])
def test_endpoint_from_forward(query, expected):
    assert urls.endpoint_from_forward(query) == expected


@pytest.mark.parametrize(("text", "valid"), [
    ("https://example.com/x", True), ("http://example.com", True), (" http://example.com ", True),
    ("ftp://example.com/", False), ("/relative", False), ("example.com/x", False),
    ("http://", False), ("http://[::1", False), ("", False), ("javascript:alert(1)", False),
    ("http://example.com/a b", False), ("http://example.com/a\nb", False),
    ("http://example.com/\x00", False), ("http://example.com/\x7f", False),
])
def test_http_url(text, valid):
    assert (urls.http_url(text) is not None) is valid


def test_pingback_url_encodes_endpoints_with_a_query():
    assert urls.pingback_url("https://p.example", WM) == "https://p.example/" + WM
    assert urls.pingback_url("https://p.example", WM + "?k=1") == (
        "https://p.example/https%3A%2F%2Fexample.com%2Fwebmention%3Fk%3D1")


@pytest.mark.parametrize(("url", "host_header", "expected"), [
    ("http://proxy.example:8080/", "proxy.example:8080", True),
    ("http://PROXY.example:8080/https://site.example/wm", "proxy.example:8080", True),
    ("http://proxy.example:8081/", "proxy.example:8080", False),
    ("https://proxy.example/", "proxy.example", True),  # TLS ends in front of the proxy
    ("http://proxy.example/webmention", "proxy.example", True),
    ("https://proxy.example:8443/", "proxy.example", False),
    ("https://other.example/", "proxy.example", False),
    ("http://[::1]:8080/", "[::1]:8080", True),
    ("http://127.0.0.1:8080/", "", False),
])
def test_is_served_here_compares_host_and_port_with_the_host_header(url, host_header, expected):
    assert urls.is_served_here(URL(url), host_header) is expected


@pytest.mark.parametrize(("url", "expected"), [
    (f"https://proxy.example/{WM}", ("path", WM)),
    ("https://proxy.example/https%3A%2F%2Fexample.com%2Fwebmention%3Fk%3D1", ("path", WM + "?k=1")),
    (f"https://proxy.example/webmention?forward={WM}", ("forward", WM)),
    ("https://proxy.example/", None),
    ("https://proxy.example/pingback", None),
    ("https://example.com/xmlrpc.php", None),
])
def test_named_endpoint_reads_a_pingback_url_as_the_routes_do(url, expected):
    assert urls.named_endpoint(URL(url)) == expected


@pytest.mark.parametrize(("base", "expected"), [
    ("https://proxy.example", "https://proxy.example/"),
    ("https://proxy.example/", "https://proxy.example/"),
    ("https://example.com/pingback", "https://example.com/pingback"),
])
def test_the_discovery_address_keeps_a_path_as_given(base, expected):
    assert urls.discovery_address(base) == expected


def test_pingback_tags_match_the_pingback_pattern_and_escape_the_address():
    link, header = urls.pingback_tags('https://proxy.example/"x"')

    assert link == '<link rel="pingback" href="https://proxy.example/&quot;x&quot;">'
    assert header == 'X-Pingback: https://proxy.example/"x"'

"""The URLs pingproxy reads: pingback URLs that name an endpoint, and absolute http(s) URLs.

A site's pingback URL carries its WebMention endpoint, either as the path
(``https://PROXY/https://example.com/webmention``) or, as webmention.io spells it, as a
parameter (``https://PROXY/webmention?forward=https://example.com/webmention``).
"""

import re
from html import escape
from urllib.parse import quote, unquote

from yarl import URL

# A front proxy that merges "//" turns "https://" into "https:/".
_MERGED_SLASHES = re.compile(r"^(https?):/+(?!/)", re.IGNORECASE)
_ENCODED_SCHEME = re.compile(r"^https?%3a", re.IGNORECASE)
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def http_url(text: str) -> URL | None:
    """The URL text names if it is an absolute http(s) URL with a host, else None."""
    text = text.strip()
    if _SPACE_OR_CONTROL.search(text):  # RFC 3986 section 2: never part of a URI
        return None
    try:
        url = URL(text)
    except (ValueError, TypeError):
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return url


def endpoint_from_path(raw_path: str, raw_query: str) -> str:
    """The endpoint a path-form pingback URL names; the request's query belongs to it."""
    text = raw_path.removeprefix("/")
    if "/" not in text or _ENCODED_SCHEME.match(text):
        text = unquote(text)
    text = _MERGED_SLASHES.sub(r"\1://", text, count=1)
    if raw_query:
        text += ("&" if "?" in text else "?") + raw_query
    return text


def endpoint_from_forward(query: list[tuple[str, str]]) -> str:
    """The endpoint in ?forward=; other parameters are the rest of an unescaped endpoint query."""
    forward = next((value for name, value in query if name == "forward"), "")
    rest = [(name, value) for name, value in query if name != "forward"]
    if not forward or not rest:
        return forward
    rest_query = "&".join(f"{quote(name)}={quote(value, safe='/:')}" for name, value in rest)
    return forward + ("&" if "?" in forward else "?") + rest_query


def pingback_url(proxy_origin: str, endpoint: str) -> str:
    """The pingback URL for an endpoint: the path form, percent-encoded when it has a query."""
    if "?" in endpoint:
        return f"{proxy_origin}/{quote(endpoint, safe='')}"
    return f"{proxy_origin}/{endpoint}"


def is_served_here(url: URL, host_header: str) -> bool:
    """Whether url points at the server that a request with this Host header reached.

    Without a port in the Host header either default port counts, since TLS may end in
    front of the server; the path does not matter, as every path here is a pingback URL.
    """
    here = http_url(f"http://{host_header}")
    if here is None or url.host != here.host:
        return False
    if here.explicit_port is None:
        return url.port in (80, 443)
    return url.port == here.explicit_port


def discovery_address(proxy_base: str) -> str:
    """The pingback URL that names no endpoint (discovery mode): the proxy's root, or its
    address as given when it lives under a path (a sidecar at https://example.com/pingback)."""
    if http_url(proxy_base) is not None and http_url(proxy_base).path not in ("", "/"):
        return proxy_base
    return proxy_base.rstrip("/") + "/"


def pingback_tags(address: str) -> tuple[str, str]:
    """The <link> element and the X-Pingback header line that advertise a pingback URL, in
    the exact form Pingback 1.0's pattern matches (rel first, double quotes)."""
    return f'<link rel="pingback" href="{escape(address)}">', f"X-Pingback: {address}"


# The three ways a pingback URL can send pingbacks on through pingproxy.
PATH_FORM, FORWARD_FORM, DISCOVERY_FORM = "path", "forward", "discovery"


def named_endpoint(url: URL) -> tuple[str, str] | None:
    """(PATH_FORM or FORWARD_FORM, the endpoint) that a pingproxy reads from this pingback
    URL, as its routes do; None when the URL names no endpoint."""
    if url.path == "/webmention" and "forward" in url.query:
        return FORWARD_FORM, endpoint_from_forward(list(url.query.items()))
    endpoint = endpoint_from_path(url.raw_path, url.raw_query_string)
    return (PATH_FORM, endpoint) if http_url(endpoint) is not None else None

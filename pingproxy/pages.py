"""The HTML pages people see: the landing page, a pingback URL's own page (or, for a URL
whose pingbacks would all be refused, the fault they would get), the check page.

Templates live in pingproxy/templates/ and are rendered by jinja2 through aiohttp-jinja2 with
autoescaping on, so nothing a visitor or a checked page supplies becomes markup. The pages
need no JavaScript but for the copy buttons, load nothing from elsewhere, and say so in
their Content-Security-Policy: the one inline style and script carry a fresh nonce.
"""

import secrets
from collections.abc import Mapping
from html import escape

import aiohttp_jinja2
import jinja2
from aiohttp import web

from pingproxy import __version__
from pingproxy.errors import FAULT_CODES, AccessDenied, Outcome, fault_meaning
from pingproxy.netguard import DestinationPolicy
from pingproxy.urls import discovery_address, http_url, pingback_tags, pingback_url

_EXAMPLE_ENDPOINT = "https://example.com/webmention"
# What each key of a check report's page is, for people.
SENDERS = (("webmention", "A WebMention sender (W3C rules) finds"),
           ("pingback", "A Pingback 1.0 sender finds"),
           ("wordpress", "A lenient sender (WordPress) finds"))
FORMS = {"path": "the path form", "forward": "the ?forward= form",
         "discovery": "discovery mode"}


def setup(app: web.Application) -> None:
    """Load the templates, autoescaped, and fail loudly on a name a template gets wrong."""
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("pingproxy", "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined)


def render(template: str, request: web.Request, base: str, context: Mapping[str, object],
           *, status: int = 200) -> web.Response:
    """A page from a template; base is this pingproxy's public address (no trailing slash)."""
    nonce = secrets.token_urlsafe(16)
    response = aiohttp_jinja2.render_template(
        template, request, {**context, "base": base, "nonce": nonce, "version": __version__},
        status=status)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def tags(base: str, endpoint: str) -> dict[str, str]:
    """The tags that send a site's pingbacks to endpoint through the pingproxy at base."""
    path_link, path_header = pingback_tags(pingback_url(base, endpoint))
    discovery_link, discovery_header = pingback_tags(discovery_address(base))
    return {"path_link": path_link, "path_header": path_header,
            "discovery_link": discovery_link, "discovery_header": discovery_header,
            "webmention_link": f'<link rel="webmention" href="{escape(endpoint)}">'}


def landing(base: str, endpoint_text: str | None, policy: DestinationPolicy,
            checks: bool) -> dict[str, object]:
    """The landing page: what this is, the tags for an endpoint when one is given, the check."""
    endpoint_error, endpoint_tags = None, None
    if endpoint_text is not None:
        endpoint_error = endpoint_problem(endpoint_text, policy)
        if endpoint_error is None:
            endpoint_tags = tags(base, endpoint_text.strip())
    return {
        "endpoint": endpoint_text or "",
        "endpoint_error": endpoint_error,
        "tags": endpoint_tags,
        "checks": checks,
        "example": {
            "path": pingback_url(base, _EXAMPLE_ENDPOINT),
            "encoded": pingback_url(base, _EXAMPLE_ENDPOINT + "?key=1"),
            "forward": f"{base}/webmention?forward={_EXAMPLE_ENDPOINT}",
            "discovery_link": pingback_tags(discovery_address(base))[0],
            "header": pingback_tags(pingback_url(base, _EXAMPLE_ENDPOINT))[1],
        },
    }


def endpoint_problem(text: str, policy: DestinationPolicy) -> str | None:
    """Why this pingproxy cannot forward to text as an endpoint, or None when it can."""
    url = http_url(text)
    if url is None:
        return "Enter the endpoint's full address, starting with https:// or http://."
    try:
        policy.check_url(url)
    except AccessDenied as denied:
        return f"This pingproxy will not forward there: {denied}."
    return None


def endpoint(base: str, endpoint_text: str) -> dict[str, object]:
    """The page behind a site's pingback URL: where its pingbacks go."""
    return {"endpoint": endpoint_text, "tags": tags(base, endpoint_text)}


def unusable_endpoint(base: str, endpoint_text: str, policy: DestinationPolicy, *,
                      max_url_characters: int) -> tuple[int, dict[str, object]] | None:
    """The HTTP status and the page for a pingback URL whose pingbacks would all get a fault
    before any forward, as the relay checks them (an endpoint that is no absolute http(s)
    URL within the length cap: 404; one the address guard refuses: 403); None when its
    pingbacks can be forwarded. The page names the fault by errors.py's own words."""
    url = http_url(endpoint_text) if len(endpoint_text) <= max_url_characters else None
    if url is None:
        outcome, status, reason = Outcome.INVALID_ENDPOINT, 404, None
    else:
        try:
            policy.check_url(url)
        except AccessDenied as denied:
            outcome, status, reason = denied.outcome, 403, f"{denied}."
        else:
            return None
    code = FAULT_CODES[outcome]
    return status, {"endpoint": endpoint_text, "fault_code": code, "meaning": fault_meaning(code),
                    "reason": reason, "max_url_characters": max_url_characters,
                    "example": pingback_url(base, _EXAMPLE_ENDPOINT)}


def check(url_text: str, url_error: str | None, document: dict | None) -> dict[str, object]:
    """The check page: the form, and the report when a check ran."""
    return {"url": url_text, "url_error": url_error, "report": document, "senders": SENDERS,
            "forms": FORMS}


def refused(title: str, message: str) -> dict[str, object]:
    """A page that says why a request was turned away (rate limit, capacity)."""
    return {"title": title, "message": message}

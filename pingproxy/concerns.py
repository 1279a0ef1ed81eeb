"""What some senders or tools will still trip on, each with the line that mends it (pure).

A concern never changes check's verdict; it says what is wrong and ends with the exact
line to write instead (the <link> element or the header for this page) or to remove, so
that a reader can act on it without knowing the specifications. findings.py decides the
right pingback URL for the page first (the one that works, or the fix's) and hands it in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from yarl import URL

from pingproxy.urls import DISCOVERY_FORM, http_url, pingback_tags, pingback_url

if TYPE_CHECKING:  # findings imports this module: its types are only read here
    from pingproxy.findings import PageView, Probe, ProxyUse

# The concerns a report may list, by code (the JSON report's "code"; documented in the README).
HEADER_ELEMENT_DISAGREE = "header_element_disagree"
LENIENT_ONLY = "lenient_only"
SEVERAL_SERVERS = "several_pingback_servers"
SENDERS_DISAGREE = "senders_disagree"
ENTITY_IN_HREF = "entity_in_href"
RELATIVE_HREF = "relative_href"
HOME_DIFFERS = "home_page_differs"
HOME_UNREACHABLE = "home_page_unreachable"
NO_WEBMENTION_ON_PAGE = "no_webmention_endpoint"
ACCEPTS_SELF_MENTION = "accepts_self_mention"
CONCERN_CODES = (HEADER_ELEMENT_DISAGREE, LENIENT_ONLY, SEVERAL_SERVERS, SENDERS_DISAGREE,
                 ENTITY_IN_HREF, RELATIVE_HREF, HOME_DIFFERS, HOME_UNREACHABLE,
                 NO_WEBMENTION_ON_PAGE, ACCEPTS_SELF_MENTION)
# A character reference in an href, which WordPress sends on as written.
_ENTITY = re.compile(r"&(#[0-9]+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)
_NO_RIGHT_URL = "Make them name one pingback URL: the one in the fix below."


@dataclass(frozen=True, slots=True)
class Concern:
    """What is wrong; then what to do (fix) and the exact lines to write (none when no line
    of the page can mend it, as for a receiver's own behaviour)."""

    code: str
    text: str
    fix: str
    lines: tuple[str, ...] = ()


def concerns(page: PageView, home: PageView | None, proxy: ProxyUse | None,
             probes: tuple[Probe, ...], right: str | None) -> tuple[Concern, ...]:
    """Every concern, in the order a reader should mend them; right: the pingback URL the
    page should advertise, when it is known."""
    return (*_pingback_concerns(page, proxy, right), *_home_concerns(page, home, right),
            *_probe_concerns(page, proxy, probes))


def link_line(address: str) -> str:
    return pingback_tags(address)[0]


def header_line(address: str) -> str:
    return pingback_tags(address)[1]


def webmention_line(endpoint: str) -> str:
    return f'<link rel="webmention" href="{escape(endpoint)}">'


def _one_element(text: str, right: str | None, code: str, fix: str) -> Concern:
    if right is None:
        return Concern(code, text, _NO_RIGHT_URL)
    return Concern(code, text, fix, (link_line(right),))


def _pingback_concerns(page: PageView, proxy: ProxyUse | None,
                       right: str | None) -> list[Concern]:
    """Where senders of different kinds find different things, or trip on the href."""
    found = []
    header, link, wordpress = page.pingback_header, page.pingback_link, page.wordpress_link
    if header and link and header.written != link.written:
        found.append(_disagreement(header.written, link.written, right))
    if not header and not link and wordpress:
        found.append(_one_element(
            f"Only a lenient reader (WordPress) finds {wordpress.written}: the element does not "
            'match Pingback 1.0\'s pattern <link rel="pingback" href="..."> (attributes in that '
            "order, double quotes, nothing between).", right or _text(wordpress.url),
            LENIENT_ONLY, "Write the element exactly so:"))
    hrefs = list(dict.fromkeys(page.pingback_hrefs))
    if len(hrefs) > 1:
        others = ", ".join(href for href in hrefs if href != right)
        found.append(_one_element(
            f"The page has {len(hrefs)} different pingback links; a page should carry one.",
            right, SEVERAL_SERVERS, f"Keep this one and remove the others ({others}):"))
    elif link and wordpress and link.url != wordpress.url and not header:
        found.append(_one_element(
            f"Pingback 1.0 senders find {link.written}, WordPress finds {wordpress.written}.",
            right, SENDERS_DISAGREE, "Write one element that every sender reads alike:"))
    # The header wins for every sender: what the element holds then misleads none of them.
    if not header and wordpress and _ENTITY.search(wordpress.written):
        found.append(_entity_concern(wordpress.written, proxy, right))
    relative = next((f for f in (link, wordpress) if f and f.url is None), None)
    if not header and relative is not None:
        found.append(_one_element(
            f"The href {relative.written!r} is not an absolute http(s) URL: senders take it "
            "verbatim and cannot use it.", right or _absolute(page, relative.written),
            RELATIVE_HREF, "Write it as an absolute URL:"))
    return found


def _disagreement(header: str, element: str, right: str | None) -> Concern:
    text = (f"The X-Pingback header names {header}, the <link> element {element}: "
            "Pingback 1.0 senders take the header.")
    if right is None:
        return Concern(HEADER_ELEMENT_DISAGREE, text, _NO_RIGHT_URL)
    if right == header:
        return Concern(HEADER_ELEMENT_DISAGREE, text,
                       "Change the <link> element to this, or remove it:", (link_line(right),))
    if right == element:
        return Concern(HEADER_ELEMENT_DISAGREE, text, "Change the header to this:",
                       (header_line(right),))
    return Concern(HEADER_ELEMENT_DISAGREE, text, "Change both to these:",
                   (link_line(right), header_line(right)))


def _entity_concern(written: str, proxy: ProxyUse | None, right: str | None) -> Concern:
    text = (f"The href {written} holds an entity such as &amp;: Pingback 1.0 senders decode "
            "it, but WordPress sends to the URL verbatim, entity and all.")
    if proxy is not None and proxy.endpoint is not None and proxy.form != DISCOVERY_FORM:
        address = pingback_url(proxy.base, str(proxy.endpoint))  # percent-encoded: no "&"
        return Concern(ENTITY_IN_HREF, text,
                       "Percent-encode the endpoint in the path, so the href holds no entity:",
                       (link_line(address),))
    if right is None:
        return Concern(ENTITY_IN_HREF, text, _NO_RIGHT_URL)
    if "&" in right:
        return Concern(ENTITY_IN_HREF, text, "Advertise it in the header instead, where no "
                       "entity is needed, and remove the element:", (header_line(right),))
    return Concern(ENTITY_IN_HREF, text, "Write the element so:", (link_line(right),))


def _home_concerns(page: PageView, home: PageView | None, right: str | None) -> list[Concern]:
    """Many senders read the post, some tools the home page: both should advertise alike."""
    if home is None:
        return []
    if home.error is not None:
        return [Concern(HOME_UNREACHABLE,
                        f"The home page {home.url} could not be fetched: {home.error}.",
                        "Make it answer HTTP 200 with the same tags as this page:",
                        _tags(page, right))]
    found = []
    for kind, here, there in (("a pingback server", page.pingback, home.pingback),
                              ("a WebMention endpoint", page.webmention, home.webmention)):
        if bool(here) == bool(there):
            continue
        which, other = ("this page", "the home page") if here else ("the home page", "this page")
        text = (f"Only {which} advertises {kind}, not {other} ({home.url}): tools that look "
                "there find none.")
        present = here or there
        if kind == "a WebMention endpoint":
            lines = (webmention_line(str(present.url)),) if present.url else ()
        else:
            address = right or _text(present.url)
            lines = (link_line(address),) if address else ()
        found.append(Concern(HOME_DIFFERS, text, f"Add to {other}:", lines))
    return found


def _probe_concerns(page: PageView, proxy: ProxyUse | None,
                    probes: tuple[Probe, ...]) -> list[Concern]:
    found = []
    if page.webmention is None and proxy is not None and proxy.form != DISCOVERY_FORM:
        found.append(Concern(NO_WEBMENTION_ON_PAGE,
                             "The page advertises no WebMention endpoint: pingbacks reach "
                             f"{proxy.endpoint}, but WebMention senders find nothing.",
                             "Add to the page:", (webmention_line(str(proxy.endpoint)),)))
    for probe in probes:
        if probe.accepted:
            found.append(Concern(
                ACCEPTS_SELF_MENTION,
                f"{probe.url} accepted check's probe, a mention whose source is its target: a "
                "receiver must refuse it (W3C WebMention 3.2.1), and one that does not verify "
                "what it is sent may have recorded this check as a mention.",
                "No line of the page mends this: have the receiver refuse a source equal to "
                "its target and verify the source, and delete any mention of this page by "
                "itself that it recorded."))
    return found


def _tags(page: PageView, right: str | None) -> tuple[str, ...]:
    address = right or (_text(page.pingback.url) if page.pingback else None)
    lines = [webmention_line(str(page.webmention.url))] if page.webmention and \
        page.webmention.url else []
    return (*lines, *([link_line(address)] if address else []))


def _absolute(page: PageView, written: str) -> str | None:
    try:
        address = (page.final_url or page.url).join(URL(written))
    except ValueError:
        return None
    return str(address) if http_url(str(address)) is not None else None


def _text(url: URL | None) -> str | None:
    return None if url is None else str(url)

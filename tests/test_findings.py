"""From what a check found to concerns, verdict and fix, without a network."""

import pytest
from yarl import URL

from pingproxy import concerns, findings
from pingproxy.discovery import STEP_PINGBACK_HEADER, STEP_PINGBACK_LINK, STEP_WORDPRESS, Found
from pingproxy.findings import PageView, Probe, ProxyUse, Status, conclude
from pingproxy.urls import http_url

PAGE = URL("https://example.com/notes/1")
OWN = URL("https://example.com/webmention")
SERVER = URL(f"https://proxy.example/{OWN}")
OTHER = "https://proxy.example/elsewhere"


def found(text: str, step: str) -> Found:
    return Found(http_url(text), text, step)


def page(*, header=None, link=None, wordpress=None, hrefs=(), webmention=True,
         error=None) -> PageView:
    return PageView(
        PAGE, final_url=PAGE, http_status=200, content_type="text/html", error=error,
        webmention=Found(OWN, str(OWN), '<link rel="webmention"> element') if webmention
        else None,
        pingback_header=header and found(header, STEP_PINGBACK_HEADER),
        pingback_link=link and found(link, STEP_PINGBACK_LINK),
        wordpress_link=wordpress and found(wordpress, STEP_WORDPRESS),
        pingback_hrefs=hrefs)


def linked(address: str = str(SERVER)) -> PageView:
    """A page whose element both readers find alike."""
    return page(link=address, wordpress=address, hrefs=(address,))


ALIVE = (Probe(findings.WEBMENTION_PROBE, OWN, findings.PROBE_WEBMENTION, True, "alive", 0.01),
         Probe(findings.XMLRPC_PROBE, SERVER, findings.PROBE_LIST, True, "lists", 0.01))
PROXY = ProxyUse(SERVER, "path", OWN, "https://proxy.example")


def concerns_of(view: PageView, home: PageView | None = None) -> list[str]:
    report = conclude(view, home, PROXY, ALIVE, proxy_base=None, seconds=0.1)
    return [concern.code for concern in report.concerns]


@pytest.mark.parametrize(("view", "codes"), [
    (linked(), []),
    (page(header=str(SERVER), link=OTHER, wordpress=OTHER, hrefs=(OTHER,)),
     [concerns.HEADER_ELEMENT_DISAGREE]),
    (page(wordpress=str(SERVER), hrefs=(str(SERVER),)), [concerns.LENIENT_ONLY]),
    (page(link=str(SERVER), wordpress=str(SERVER), hrefs=(str(SERVER), OTHER)),
     [concerns.SEVERAL_SERVERS]),
    (page(link=str(SERVER), wordpress=OTHER, hrefs=(str(SERVER),)),
     [concerns.SENDERS_DISAGREE]),
    (page(link=f"{SERVER}?a=1&b=2", wordpress=f"{SERVER}?a=1&amp;b=2",
          hrefs=(f"{SERVER}?a=1&b=2",)), [concerns.SENDERS_DISAGREE, concerns.ENTITY_IN_HREF]),
    (page(header=str(SERVER), wordpress=str(SERVER), link=str(SERVER) + "&amp;x",
          hrefs=(str(SERVER),)), [concerns.HEADER_ELEMENT_DISAGREE]),
    (page(header=str(SERVER), link="/xmlrpc.php", wordpress="/xmlrpc.php",
          hrefs=("/xmlrpc.php",)), [concerns.HEADER_ELEMENT_DISAGREE]),
], ids=["agreeing", "header-wins", "lenient-only", "several", "readers-differ", "entity",
        "entity-behind-a-header", "relative-behind-a-header"])
def test_each_disagreement_is_one_concern(view, codes):
    assert concerns_of(view) == codes


def test_a_home_page_that_advertises_nothing_is_two_concerns():
    home = PageView(URL("https://example.com/"), http_status=200)

    assert concerns_of(linked(), home) == [concerns.HOME_DIFFERS, concerns.HOME_DIFFERS]


def test_a_home_page_that_cannot_be_fetched_is_a_concern():
    home = PageView(URL("https://example.com/"), error="it answered HTTP 500")

    assert concerns_of(linked(), home) == [concerns.HOME_UNREACHABLE]


def test_a_page_that_could_not_be_fetched_has_no_verdict_beyond_that():
    report = conclude(page(error="it answered HTTP 404 Not Found"), None, None, (),
                      proxy_base=None, seconds=0.1)

    assert report.status is Status.UNREACHABLE
    assert report.verdict == ("Not checked: the page could not be fetched: it answered HTTP 404 "
                              "Not Found.")
    assert report.fix is None and report.concerns == ()


@pytest.mark.parametrize(("view", "proxy", "reason"), [
    (page(), None, "the page advertises no pingback server, so senders send no pingback"),
    (page(link="/xmlrpc.php", wordpress="/xmlrpc.php"), None,
     "its pingback server, '/xmlrpc.php' (<link rel=\"pingback\" href=\"...\"> (Pingback 1.0 "
     "pattern)), is not an absolute http(s) URL"),
    (linked("https://proxy.example/"), ProxyUse(URL("https://proxy.example/"), "discovery",
                                                None, "https://proxy.example"),
     "the pingback URL is pingproxy's discovery form, but the page advertises no WebMention "
     "endpoint for it to discover"),
])
def test_each_reason_reads_in_the_verdict(view, proxy, reason):
    report = conclude(view, None, proxy, ALIVE, proxy_base=None, seconds=0.1)

    assert report.status is Status.BROKEN
    assert report.verdict == ("No: pingbacks to this page will not reach its WebMention "
                              f"endpoint: {reason}.")


def test_the_fix_keeps_the_pages_pingproxy_when_it_answers():
    elsewhere = ProxyUse(SERVER, "path", URL("https://example.com/old"), "https://proxy.example")

    fix = conclude(linked(), None, elsewhere, ALIVE, proxy_base=None, seconds=0.1).fix

    assert fix.address == f"https://proxy.example/{OWN}"
    assert fix.link == f'<link rel="pingback" href="https://proxy.example/{OWN}">'


def test_the_fix_names_this_pingproxy_when_it_is_known():
    fix = conclude(page(), None, None, ALIVE, proxy_base="https://pingproxy.example",
                   seconds=0.1).fix

    assert fix.header == f"X-Pingback: https://pingproxy.example/{OWN}"


def test_a_fix_does_not_keep_a_pingproxy_that_is_blocked():
    blocked = (ALIVE[0], Probe(findings.XMLRPC_PROBE, SERVER, findings.PROBE_LIST, False,
                               "refuses XML-RPC (HTTP 403)", 0.01, 403))

    report = conclude(linked(), None, PROXY, blocked, proxy_base=None, seconds=0.1)

    assert "the pingback server" in report.verdict and "HTTP 403" in report.verdict
    assert report.fix.address == f"{findings.PROXY_PLACEHOLDER}/{OWN}"


def test_no_tag_is_offered_when_the_endpoint_itself_is_down():
    down = (Probe(findings.WEBMENTION_PROBE, OWN, findings.PROBE_WEBMENTION, False,
                  "is not there (HTTP 404)", 0.01, 404), ALIVE[1])

    report = conclude(linked(), None, PROXY, down, proxy_base=None, seconds=0.1)

    assert report.status is Status.BROKEN
    assert report.fix.link is None
    assert report.fix.text == (f"Make the WebMention endpoint {OWN} answer first: it is not "
                               "there (HTTP 404).")


def link_tag(address: str) -> str:
    return f'<link rel="pingback" href="{address}">'


QUERY_ENDPOINT = "https://example.com/webmention?key=1&site=2"
QUERY_PROXY = ProxyUse(URL(f"https://proxy.example/webmention?forward={QUERY_ENDPOINT}"),
                       "forward", URL(QUERY_ENDPOINT), "https://proxy.example")
ENCODED = "https://proxy.example/https%3A%2F%2Fexample.com%2Fwebmention%3Fkey%3D1%26site%3D2"


@pytest.mark.parametrize(("view", "proxy", "fix", "lines"), [
    (page(header=str(SERVER), link=OTHER, wordpress=OTHER, hrefs=(OTHER,)), PROXY,
     "Change the <link> element to this, or remove it:", (link_tag(str(SERVER)),)),
    (page(wordpress=str(SERVER), hrefs=(str(SERVER),)), PROXY,
     "Write the element exactly so:", (link_tag(str(SERVER)),)),
    (page(link=str(SERVER), wordpress=str(SERVER), hrefs=(str(SERVER), OTHER)), PROXY,
     f"Keep this one and remove the others ({OTHER}):", (link_tag(str(SERVER)),)),
    (page(link=str(SERVER), wordpress=OTHER, hrefs=(str(SERVER),)), PROXY,
     "Write one element that every sender reads alike:", (link_tag(str(SERVER)),)),
    (page(link=f"https://proxy.example/webmention?forward={QUERY_ENDPOINT}",
          wordpress="https://proxy.example/webmention?forward=https://example.com/webmention"
                    "?key=1&amp;site=2", hrefs=(QUERY_ENDPOINT,)), QUERY_PROXY,
     "Percent-encode the endpoint in the path, so the href holds no entity:",
     (link_tag(ENCODED),)),
], ids=["header-wins", "lenient-only", "several", "readers-differ", "entity"])
def test_each_pingback_concern_ends_with_the_line_to_write(view, proxy, fix, lines):
    report = conclude(view, None, proxy, ALIVE, proxy_base=None, seconds=0.1)

    assert (report.concerns[-1].fix, report.concerns[-1].lines) == (fix, lines)


def test_when_the_header_is_wrong_the_fix_changes_the_header_to_the_fixs_url():
    view = page(header=OTHER, link=str(SERVER), wordpress=str(SERVER), hrefs=(str(SERVER),))
    broken = (ALIVE[0], Probe(findings.XMLRPC_PROBE, URL(OTHER), findings.PROBE_LIST, False,
                              "is not there (HTTP 404)", 0.01, 404))

    report = conclude(view, None, None, broken, proxy_base="https://proxy.example", seconds=0.1)

    [concern] = report.concerns
    assert report.fix.address == str(SERVER)
    assert (concern.fix, concern.lines) == ("Change the header to this:",
                                            (f"X-Pingback: {SERVER}",))


def test_a_relative_href_is_fixed_with_the_absolute_url():
    view = page(link="/xmlrpc.php", wordpress="/xmlrpc.php", hrefs=("/xmlrpc.php",))

    report = conclude(view, None, None, ALIVE, proxy_base=None, seconds=0.1)

    relative = next(c for c in report.concerns if c.code == concerns.RELATIVE_HREF)
    assert relative.lines == (link_tag(f"{findings.PROXY_PLACEHOLDER}/{OWN}"),)


def test_a_home_page_without_tags_is_told_the_tags_to_add():
    home = PageView(URL("https://example.com/"), http_status=200)

    report = conclude(linked(), home, PROXY, ALIVE, proxy_base=None, seconds=0.1)

    assert [(c.fix, c.lines) for c in report.concerns] == [
        ("Add to the home page:", (link_tag(str(SERVER)),)),
        ("Add to the home page:", (f'<link rel="webmention" href="{OWN}">',))]


def test_a_home_page_that_cannot_be_fetched_is_told_to_answer_with_the_pages_tags():
    home = PageView(URL("https://example.com/"), error="it answered HTTP 500")

    [concern] = conclude(linked(), home, PROXY, ALIVE, proxy_base=None, seconds=0.1).concerns

    assert concern.fix == "Make it answer HTTP 200 with the same tags as this page:"
    assert concern.lines == (f'<link rel="webmention" href="{OWN}">', link_tag(str(SERVER)))


def test_a_page_without_a_webmention_endpoint_is_told_the_link_to_add():
    view = page(link=str(SERVER), wordpress=str(SERVER), hrefs=(str(SERVER),),
                webmention=False)

    [concern] = conclude(view, None, PROXY, ALIVE, proxy_base=None, seconds=0.1).concerns

    assert concern.code == concerns.NO_WEBMENTION_ON_PAGE
    assert concern.lines == (f'<link rel="webmention" href="{OWN}">',)


def test_an_accepted_probe_stays_a_concern_that_says_a_mention_may_be_recorded():
    accepted = (Probe(findings.WEBMENTION_PROBE, OWN, findings.PROBE_WEBMENTION, True,
                      "accepted", 0.01, 202, accepted=True), ALIVE[1])

    [concern] = conclude(linked(), None, PROXY, accepted, proxy_base=None, seconds=0.1).concerns

    assert concern.code == concerns.ACCEPTS_SELF_MENTION
    assert "may have recorded this check as a mention" in concern.text
    assert concern.fix.startswith("No line of the page mends this") and concern.lines == ()


"""Reports as text and JSON, without a network."""

import json
from pathlib import Path

from yarl import URL

from pingproxy import findings, ping, report
from pingproxy.discovery import STEP_PINGBACK_HEADER, Found
from pingproxy.findings import Probe, conclude
from tests.test_findings import ALIVE, OTHER, OWN, PROXY, SERVER, linked, page


def test_the_text_ends_in_the_verdict_with_the_fix_just_before():
    document = report.check_json(conclude(page(), None, None, ALIVE,
                                          proxy_base="https://p.example", seconds=0.2))

    lines = report.check_text(document).splitlines()

    assert lines[-3:-1] == [f'  <link rel="pingback" href="https://p.example/{OWN}">',
                            f"  X-Pingback: https://p.example/{OWN}"]
    assert lines[-1].startswith("No: pingbacks to this page will not reach")


def test_the_text_names_each_sender_and_the_pingproxy_form():
    document = report.check_json(conclude(linked(), None, PROXY, ALIVE, proxy_base=None,
                                          seconds=0.2))

    text = report.check_text(document)

    assert f"  Pingback 1.0 sender:        {SERVER} (<link rel" in text
    assert "  WebMention sender (W3C):    https://example.com/webmention" in text
    assert f"pingproxy: path form, forwards to {OWN} (the page's own WebMention endpoint)" in text


def test_a_probe_line_shows_status_type_fault_meaning_and_time():
    probe = Probe(findings.XMLRPC_PROBE, SERVER, findings.PROBE_PING, True, "refused it", 0.0123,
                  200, "text/xml", fault_code=33)
    document = report.check_json(conclude(linked(), None, None, (ALIVE[0], probe),
                                          proxy_base=None, seconds=0.2))

    assert ("  Sent a pingback, pingback.ping with source and target both this page, to the "
            f"pingback server {SERVER} -> HTTP 200, text/xml, fault 33 (the target URI cannot "
            "be used as a target), 12 ms: refused it") in report.check_text(document)


def test_each_probe_is_labelled_by_what_check_sent_and_to_whom():
    document = report.check_json(conclude(linked(), None, PROXY, ALIVE, proxy_base=None,
                                          seconds=0.2))

    assert [probe["sent"] for probe in document["probes"]] == [
        f"a WebMention POST, source and target both this page, to the WebMention endpoint {OWN}",
        f"an XML-RPC call, system.listMethods, to the pingback server {SERVER}"]
    text = report.check_text(document)
    assert f"  Sent a WebMention POST, source and target both this page, to the WebMention " \
           f"endpoint {OWN} -> " in text
    assert "forwarded" not in text


def test_the_promise_of_the_probes_says_it_holds_for_receivers_that_verify_the_source():
    document = report.check_json(conclude(linked(), None, PROXY, ALIVE, proxy_base=None,
                                          seconds=0.2))

    assert report.PROBES_TITLE in report.check_text(document).splitlines()
    assert "a receiver that verifies the source refuses" in report.PROBES_TITLE
    assert "harmless" not in report.check_text(document).lower()


def test_each_concern_ends_with_its_fix_and_the_exact_line_in_text_and_json():
    view = page(header=str(SERVER), link=OTHER, wordpress=OTHER,
                hrefs=(OTHER,))
    document = report.check_json(conclude(view, None, PROXY, ALIVE, proxy_base=None,
                                          seconds=0.2))

    [concern] = document["concerns"]
    assert concern["fix"] == {"text": "Change the <link> element to this, or remove it:",
                              "lines": [f'<link rel="pingback" href="{SERVER}">']}
    lines = report.check_text(document).splitlines()
    at = lines.index(f"  - {concern['text']}")
    assert lines[at + 1:at + 3] == ["    Fix: Change the <link> element to this, or remove it:",
                                    f'      <link rel="pingback" href="{SERVER}">']


def test_the_json_is_plain_json():
    document = report.check_json(conclude(linked(), None, PROXY, ALIVE, proxy_base=None,
                                          seconds=0.2))

    assert json.loads(json.dumps(document)) == document
    assert document["pingproxy"]["is_page_endpoint"] is True


def result(outcome: str, detail: str, **fields) -> ping.PingResult:
    server = Found(URL("https://example.com/xmlrpc.php"), "https://example.com/xmlrpc.php",
                   STEP_PINGBACK_HEADER)
    return ping.PingResult("https://a.example/", "https://b.example/", outcome, detail,
                           server=server, **fields)


def test_ping_text_for_success_already_registered_and_failure():
    success = report.ping_text(result(ping.SUCCESS, "Thanks!"))
    again = report.ping_text(result(ping.FAULT, "seen it", fault_code=48))
    failed = report.ping_text(result(ping.FAILED, "the pingback server answered HTTP 403"))

    assert success == ("Pingback server: https://example.com/xmlrpc.php (X-Pingback header)\n"
                       "Success: Thanks!\n")
    assert again.splitlines()[1:] == [
        "Fault 48 (the pingback has already been registered): seen it",
        "Already registered: the pingback was delivered before."]
    assert failed.splitlines()[1] == "Not delivered: the pingback server answered HTTP 403"


def test_the_readmes_check_example_uses_the_words_check_prints():
    readme = (Path(__file__).parent.parent / "README.md").read_text()

    assert f"\n{report.PROBES_TITLE}\n" in readme
    assert "\n    Fix: Change the <link> element to this, or remove it:\n" in readme

"""`pingproxy check` and `pingproxy ping` as a user runs them: a process, its output, its exit code.

The test sites run in the test's own event loop, so the command runs as an asyncio
subprocess: a blocking one would stop the sites from answering it.
"""

import asyncio
import json
import os
import sys
import xmlrpc.client

import pytest

from pingproxy.errors import FAULT_MEANINGS
from tests.conftest import pseudo_terminal, read_terminal
from tests.test_diagnose_functional import (
    SELF_MENTION_REFUSAL,
    a_site,
    assert_no_mention,
    html,
    pingback_link,
    webmention_link,
)

COMMAND_TIMEOUT_SECONDS = 60
SOURCE = "http://blog.example/2026/11/a-post"


async def run(*args: str, stderr=asyncio.subprocess.PIPE) -> tuple[int, str, str]:
    """The command run to its end: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pingproxy", *args, stdout=asyncio.subprocess.PIPE,
        stderr=stderr, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_SECONDS)
    return process.returncode, out.decode(), (err or b"").decode()


def base_of(proxy) -> str:
    return str(proxy.make_url("")).rstrip("/")


@pytest.fixture
def good_site(proxy, endpoint, site) -> str:
    endpoint.reply(400, json=SELF_MENTION_REFUSAL)
    return a_site(site, html(webmention_link(endpoint.url()),
                             pingback_link(f"{base_of(proxy)}/{endpoint.url()}")))


async def test_a_working_set_up_exits_0_and_ends_in_yes(good_site, endpoint, site):
    code, out, err = await run("check", "--allow-private", good_site)

    assert code == 0
    assert err == ""  # piped: no progress
    lines = out.splitlines()
    assert lines[0] == f"Page {good_site}: HTTP 200, text/html"
    assert lines[-1].startswith("Yes: pingbacks to this page will reach its WebMention "
                                f"endpoint {endpoint.url()}")
    assert f"  WebMention sender (W3C):    {endpoint.url()} (<link rel=\"webmention\"> " \
           "element)" in lines
    assert any(line.startswith("  Sent a WebMention POST, source and target both this page, "
                               f"to the WebMention endpoint {endpoint.url()} -> HTTP 400, "
                               "application/json, ") for line in lines)
    assert_no_mention(endpoint, site)


async def test_a_broken_set_up_exits_1_with_the_fix_before_the_verdict(endpoint, site):
    page = a_site(site, html(webmention_link(endpoint.url())))

    code, out, _ = await run("check", "--allow-private", "--public-url",
                             "https://pingproxy.example", page)

    assert code == 1
    address = f"https://pingproxy.example/{endpoint.url()}"
    assert out.splitlines()[-4:] == [
        "Fix: Advertise this pingback URL, which names the page's WebMention endpoint:",
        f'  <link rel="pingback" href="{address}">',
        f"  X-Pingback: {address}",
        "No: pingbacks to this page will not reach its WebMention endpoint: the page "
        "advertises no pingback server, so senders send no pingback.",
    ]


async def test_a_page_that_cannot_be_fetched_exits_2(site):
    code, out, _ = await run("check", "--allow-private",
                             site.page("/gone", "", status=410))

    assert code == 2
    assert out.splitlines()[-1] == ("Not checked: the page could not be fetched: it answered "
                                    "HTTP 410 Gone.")


async def test_loopback_is_refused_unless_allowed(site):
    code, out, _ = await run("check", "--allowed-ports", str(site.server.port),
                             site.page("/post/1", html()))

    assert code == 2
    assert "127.0.0.1 is a loopback address" in out
    assert site.fetched == []


@pytest.mark.parametrize("args", [["check"], ["check", "example.com/post"],
                                  ["check", "https://example.com/", "--no-such-flag"],
                                  ["ping", "https://a.example/"],
                                  ["ping", "mailto:me@example.com", "https://b.example/"]])
async def test_bad_usage_exits_2(args):
    code, out, err = await run(*args)

    assert code == 2 and out == ""
    assert err.startswith(("usage:", "pingproxy: ")) or "\nusage:" in err or "error:" in err


# Every key of the JSON report, as the README documents it.
REPORT_KEYS = {"url", "status", "works", "verdict", "page", "home", "pingproxy", "probes",
               "concerns", "fix", "seconds"}
PAGE_KEYS = {"url", "final_url", "http_status", "content_type", "redirects", "error",
             "webmention", "pingback", "wordpress"}
FOUND_KEYS = {"url", "written", "step"}
PROBE_KEYS = {"kind", "url", "request", "sent", "ok", "http_status", "content_type",
              "fault_code", "fault_meaning", "detail", "seconds"}
CONCERN_KEYS = {"code", "text", "fix"}
CONCERN_FIX_KEYS = {"text", "lines"}


async def test_json_has_the_documented_shape(good_site, proxy, endpoint):
    code, out, _ = await run("check", "--allow-private", "--json", good_site)

    document = json.loads(out)
    assert code == 0
    assert set(document) == REPORT_KEYS
    assert (document["status"], document["works"]) == ("works", True)
    for page in (document["page"], document["home"]):
        assert set(page) == PAGE_KEYS
        for key in ("webmention", "pingback", "wordpress"):
            assert set(page[key]) == FOUND_KEYS
    assert set(document["pingproxy"]) == {"url", "form", "endpoint", "is_page_endpoint"}
    assert document["probes"] and all(set(p) == PROBE_KEYS for p in document["probes"])
    assert isinstance(document["seconds"], float)
    assert document["concerns"] == [] and document["fix"] is None


async def test_json_of_a_broken_set_up_has_concerns_and_a_fix(endpoint, site):
    page = a_site(site, html(webmention_link(endpoint.url()), pingback_link("/xmlrpc.php")),
                  home=html())

    code, out, _ = await run("check", "--allow-private", "--json", page)

    document = json.loads(out)
    assert code == 1 and document["status"] == "broken"
    assert all(set(c) == CONCERN_KEYS and set(c["fix"]) == CONCERN_FIX_KEYS
               for c in document["concerns"])
    assert set(document["fix"]) == {"text", "address", "link", "header"}


async def test_a_terminal_shows_progress_on_stderr(good_site):
    controller, terminal = pseudo_terminal()
    try:
        code, out, _ = await run("check", "--allow-private", good_site, stderr=terminal)
    finally:
        os.close(terminal)
    shown = read_terminal(controller)

    assert code == 0 and out.splitlines()[-1].startswith("Yes:")
    assert b"checking" in shown and b"steps" in shown


async def test_a_receiver_that_accepts_the_probe_is_told_as_check_sent_it_and_stays_a_concern(
        proxy, endpoint, site):
    page = a_site(site, html(webmention_link(endpoint.url()),
                             pingback_link(f"{base_of(proxy)}/{endpoint.url()}")))

    code, out, _ = await run("check", "--allow-private", page)

    assert code == 0
    lines = out.splitlines()
    assert ("  Sent a WebMention POST, source and target both this page, to the WebMention "
            f"endpoint {endpoint.url()} -> HTTP 202") in "\n".join(lines)
    assert (f"accepted the self-mention (HTTP 202 Accepted, status at "
            f"{endpoint.url('/status/42')}): alive, but it should refuse it, and may have "
            "recorded it as a mention") in out
    assert "forwarded as a WebMention" not in out
    assert any("a receiver that verifies the source refuses" in line for line in lines)
    assert "    Fix: No line of the page mends this: have the receiver refuse a source equal " \
           "to its target" in out
    assert_no_mention(endpoint, site)


async def test_each_concern_ends_with_the_line_to_write_in_text_and_json(proxy, endpoint, site):
    endpoint.reply(400, json=SELF_MENTION_REFUSAL)
    address = f"{base_of(proxy)}/{endpoint.url()}"
    page = a_site(site, html(webmention_link(endpoint.url()),
                             pingback_link(f"{base_of(proxy)}/{endpoint.url('/old')}")),
                  headers=[("X-Pingback", address)])

    code, out, _ = await run("check", "--allow-private", page)
    json_code, json_out, _ = await run("check", "--allow-private", "--json", page)

    assert code == json_code == 0
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  - The X-Pingback header"))
    assert lines[at + 1:at + 3] == ["    Fix: Change the <link> element to this, or remove it:",
                                    f'      <link rel="pingback" href="{address}">']
    [concern] = json.loads(json_out)["concerns"]
    assert concern["fix"]["lines"] == [f'<link rel="pingback" href="{address}">']


@pytest.fixture
def target(site, pingback_server) -> str:
    """A post whose pingback server is the stdlib's XML-RPC server."""
    return site.page("/post/1", html(), headers=[("X-Pingback", pingback_server.url)])


async def test_ping_sends_one_pingback_and_exits_0(target, pingback_server):
    code, out, _ = await run("ping", "--allow-private", SOURCE, target)

    assert code == 0
    assert pingback_server.calls == [(SOURCE, target)]
    assert out.splitlines() == [
        f"Pingback server: {pingback_server.url} (X-Pingback header)",
        f"Success: {pingback_server.answer}",
    ]


@pytest.mark.parametrize("code", [0, 16, 17, 32, 33, 48, 49, 50, -32601])
async def test_ping_names_each_fault_with_its_meaning(target, pingback_server, code):
    pingback_server.answer = xmlrpc.client.Fault(code, f"the server says {code}")

    exit_code, out, _ = await run("ping", "--allow-private", SOURCE, target)

    assert exit_code == (0 if code == 48 else 1)
    assert f"Fault {code} ({FAULT_MEANINGS[code]}): the server says {code}" in out


async def test_ping_json_has_the_documented_shape(target, pingback_server):
    pingback_server.answer = xmlrpc.client.Fault(17, "no link")

    code, out, _ = await run("ping", "--allow-private", "--json", SOURCE, target)

    assert code == 1
    assert json.loads(out) == {
        "source": SOURCE, "target": target, "outcome": "fault", "delivered": False,
        "server": {"url": pingback_server.url, "written": pingback_server.url,
                   "step": "X-Pingback header"},
        "http_status": 200, "fault_code": 17,
        "fault_meaning": "the source URI does not contain a link to the target URI",
        "detail": "no link", "seconds": json.loads(out)["seconds"],
    }


async def test_ping_without_a_pingback_server_exits_1(site, pingback_server):
    code, out, _ = await run("ping", "--allow-private", SOURCE, site.page("/post/1", html()))

    assert code == 1
    assert out.startswith("Not delivered: the target advertises no pingback server")
    assert pingback_server.calls == []


async def test_ping_finds_the_server_as_wordpress_does_when_the_pattern_fails(site,
                                                                             pingback_server):
    page = site.page("/post/1", html(f"<link rel='pingback' href='{pingback_server.url}'>"))

    code, out, _ = await run("ping", "--allow-private", SOURCE, page)

    assert code == 0 and "(rel=\"pingback\" then href= (WordPress string search))" in out


async def test_ping_follows_no_redirect_on_the_post(site):
    site.reply(301, headers={"Location": site.url("/decoy")})
    page = site.page("/post/1", html(pingback_link(site.url("/xmlrpc.php"))))

    code, out, _ = await run("ping", "--allow-private", SOURCE, page)

    assert code == 1
    assert "Not delivered: the pingback server answered HTTP 301 Moved Permanently" in out
    assert len(site.received) == 1  # the site's decoy fails the test if it was followed


async def test_ping_to_a_target_that_cannot_be_fetched_exits_2(site):
    code, out, _ = await run("ping", "--allow-private", SOURCE,
                             site.page("/missing", "", status=404))

    assert code == 2 and "the target could not be fetched: it answered HTTP 404" in out


async def test_each_subcommand_is_listed_and_has_its_own_help():
    _, listing, _ = await run("--help")
    helps = [await run(name, "--help") for name in ("check", "ping")]

    assert "check" in listing and "ping" in listing
    assert [code for code, _, _ in helps] == [0, 0]
    assert "URL" in helps[0][1] and "--public-url" in helps[0][1] and "--port" not in helps[0][1]
    assert "SOURCE" in helps[1][1] and "TARGET" in helps[1][1] and "--json" in helps[1][1]

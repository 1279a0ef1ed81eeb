"""`pingproxy send` as a user runs it: a process, its output and its exit code."""

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from tests.conftest import pseudo_terminal, read_terminal
from tests.feed_samples import NEWEST_FIRST, POSTS, Site, make_site
from tests.send_web import Answer, advertising, h_entry


async def pingproxy(*args: str, stderr_tty: bool = False) -> tuple[int, str, str]:
    """Run the command to its end while this loop keeps serving the local web."""
    stderr, reader = asyncio.subprocess.PIPE, None
    if stderr_tty:
        reader, stderr = pseudo_terminal()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pingproxy", *args, stdout=asyncio.subprocess.PIPE, stderr=stderr)
    if stderr_tty:
        os.close(stderr)
        terminal = asyncio.create_task(asyncio.to_thread(read_terminal, reader))
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    if stderr_tty:
        err = await asyncio.wait_for(terminal, 10)
    return process.returncode, out.decode(), err.decode(errors="replace")


def targets_with(sites, endpoint: str, count: int = 2) -> list[str]:
    return [sites.page(f"/t/{n}", *advertising(endpoint)[0:1]) for n in range(count)]


async def test_send_prints_a_table_and_exits_0_when_every_target_accepted(blog, sites):
    endpoint = sites.endpoint("/wm", Answer(201, "", [("Location", "/status/1")]))
    first, second = targets_with(sites, endpoint)
    source = blog.page("/post", h_entry(first, second, outside=[sites.url("/nav")]))

    status, out, err = await pingproxy("send", source, "--allow-private")

    assert (status, err) == (0, "")
    assert f"Source {source} (HTTP 200; links read from e-content)" in out
    assert f"accepted  {first}  (e-content)" in out
    assert f"WebMention endpoint {endpoint} (found by <link rel=\"webmention\"> element)" in out
    assert f"status page: {sites.url('/status/1')}" in out
    assert f"outside the post: {sites.url('/nav')}" in out
    assert "2 targets (2 accepted), 1 links skipped" in out
    assert len(sites.posts("/wm")) == 2


async def test_send_exits_1_when_any_target_refused(blog, sites):
    endpoint = sites.endpoint("/wm", Answer(400, '{"error": "no_link_found"}',
                                            [("Content-Type", "application/json")]))
    [target] = targets_with(sites, endpoint, 1)
    source = blog.page("/post", h_entry(target))

    status, out, _ = await pingproxy("send", source, "--allow-private")

    assert status == 1
    assert f"refused  {target}" in out and "no_link_found" in out


async def test_json_report_and_previous_reach_a_link_the_post_dropped(blog, sites, tmp_path):
    endpoint = sites.endpoint("/wm")
    old, new = targets_with(sites, endpoint)
    source = blog.page("/post", h_entry(old))
    status, out, _ = await pingproxy("send", source, "--allow-private", "--json")
    assert status == 0
    first = json.loads(out)
    assert [(t["target"], t["status"]) for t in first["targets"]] == [(old, "accepted")]
    (tmp_path / "report.json").write_text(out)

    blog.page("/post", h_entry(new))
    status, out, _ = await pingproxy("send", source, "--allow-private", "--json",
                                     "--previous", str(tmp_path / "report.json"))

    assert status == 0
    assert [(t["target"], t["found_in"]) for t in json.loads(out)["targets"]] == [
        (new, "e-content"), (old, "previous")]
    assert [hit.form["target"] for hit in sites.posts("/wm")] == [old, new, old]


async def test_dry_run_sends_nothing(blog, sites):
    endpoint = sites.endpoint("/wm")
    targets = targets_with(sites, endpoint)
    source = blog.page("/post", h_entry(*targets))

    status, out, _ = await pingproxy("send", source, "--allow-private", "--dry-run", "--json")

    assert status == 0
    assert [t["status"] for t in json.loads(out)["targets"]] == ["not_sent", "not_sent"]
    assert sites.posts() == []


async def test_also_adds_targets(blog, sites):
    endpoint = sites.endpoint("/wm")
    [removed] = targets_with(sites, endpoint, 1)
    source = blog.page("/post", h_entry())

    status, out, _ = await pingproxy("send", source, "--also", removed, "--allow-private")

    assert status == 0 and f"accepted  {removed}  (also)" in out
    assert [hit.form["target"] for hit in sites.posts("/wm")] == [removed]


async def test_a_progress_bar_shows_on_a_terminal_only(blog, sites):
    targets = targets_with(sites, sites.endpoint("/wm"))
    source = blog.page("/post", h_entry(*targets))

    status, _, err = await pingproxy("send", source, "--allow-private", stderr_tty=True)

    assert status == 0
    assert "2/2" in err and "target" in err


async def test_a_source_that_cannot_be_fetched_is_exit_2(blog):
    status, out, err = await pingproxy("send", blog.url("/missing"), "--allow-private")

    assert (status, out) == (2, "")
    assert err == "pingproxy: the source answered HTTP 404 Not Found\n"


async def test_the_guard_refuses_loopback_without_allow_private(blog):
    source = blog.page("/post", h_entry("https://elsewhere.example/"))

    status, _, err = await pingproxy("send", source, "--allowed-ports", str(blog.server.port))

    assert status == 2
    assert "127.0.0.1 is a loopback address" in err
    assert blog.hits == []


@pytest.mark.parametrize(("args", "message"), [
    (["send", "not-a-url"], "pingproxy: SOURCE_URL must be an absolute http(s) URL: 'not-a-url'"),
    (["send", "https://blog.example/", "--previous", "/nonexistent/report.json"],
     "pingproxy: --previous /nonexistent/report.json: [Errno 2] No such file or directory"),
    (["send"], "the following arguments are required: SOURCE_URL"),
    (["send", "https://blog.example/", "--send-per-host", "0"],
     "PINGPROXY_SEND_PER_HOST"),
])
async def test_bad_usage_is_exit_2_with_one_line(args, message):
    status, out, err = await pingproxy(*args)

    assert (status, out) == (2, "")
    assert message in err.replace("--send-per-host", "PINGPROXY_SEND_PER_HOST")


async def test_a_previous_file_that_is_no_report_is_exit_2(tmp_path):
    (tmp_path / "other.json").write_text('{"hello": "world"}')

    status, _, err = await pingproxy("send", "https://blog.example/", "--previous",
                                     str(tmp_path / "other.json"))

    assert status == 2 and "not a pingproxy send report of version 1" in err


@pytest.fixture
async def site(blog, sites, aiohttp_server, pingback_server) -> Site:
    return await make_site(blog, sites, aiohttp_server, pingback_server)


async def test_a_feed_is_sent_entry_by_entry_with_a_json_entry_list(site):
    status, out, err = await pingproxy("send", site.feed("atom"), "--allow-private", "--json")

    assert (status, err) == (0, "")
    report = json.loads(out)
    assert (report["format"], report["ok"], report["counts"]["accepted"]) == ("atom", True, 9)
    assert [(e["source"], e["reason"]) for e in report["entries"]] == [
        (site.post_url(path), "taken") for path in NEWEST_FIRST]
    assert [t["found_in"] for t in report["entries"][0]["targets"]] == ["e-content"] * 3
    assert len(site.stored()) == 6 and len(site.pingback.calls) == 3


async def test_the_feed_table_says_which_entries_were_sent_and_why_the_rest_were_left(site):
    status, out, _ = await pingproxy("send", site.feed("rss"), "--allow-private",
                                     "--since", "2026-11-02", "--entries", "1")

    assert status == 0
    assert f"Feed {site.feed('rss')} (HTTP 200; rss \"A blog\"; entries after " in out
    assert f"  {site.post_url('/2026/11/second')}  (number 1 of the newest 1; dated " in out
    assert f"  past the newest 1 (--entries): {site.post_url('/2026/11/third')}" in out
    assert ("  dated 2026-11-01T09:00:00+00:00, not after --since 2026-11-02T00:00:00+00:00: "
            f"{site.post_url('/2026/11/first')}") in out
    assert out.rstrip().splitlines()[-1].startswith(
        "1 entries sent, 2 left; 3 targets (3 accepted), in ")


async def test_previous_from_one_run_keeps_the_next_from_sending_again(site, tmp_path):
    feed = site.feed("json-feed")
    _, out, _ = await pingproxy("send", feed, "--allow-private", "--json")
    (tmp_path / "last.json").write_text(out)

    status, out, _ = await pingproxy("send", feed, "--allow-private", "--json",
                                     "--previous", str(tmp_path / "last.json"))

    assert status == 0
    assert {e["reason"] for e in json.loads(out)["entries"]} == {"unchanged"}
    assert len(site.django.received) == 3


async def test_a_failed_target_of_any_entry_exits_1(site):
    broken = site.sites.endpoint("/wm/broken", Answer(500, "oops"))
    target = site.sites.page("/t/broken", *advertising(broken)[0:1])
    site.blog.page(POSTS[2].path, h_entry(target))

    status, out, _ = await pingproxy("send", site.feed("rss"), "--allow-private", "--json")

    assert status == 1
    assert [t["status"] for e in json.loads(out)["entries"] for t in e["targets"]].count(
        "failed") == 1


@pytest.mark.parametrize(("body", "content_type", "message"), [
    ("<rss version='2.0'><channel>", "application/rss+xml",
     "pingproxy: the feed cannot be read: the feed is not well-formed XML (no element "
     "found: line 1, column 28)\n"),
    ('{"version": "https://jsonfeed.org/version/1.1"}', "application/feed+json",
     "pingproxy: the feed cannot be read: the JSON Feed has no list of items\n"),
])
async def test_an_unreadable_feed_is_exit_2_with_one_line(blog, body, content_type, message):
    status, out, err = await pingproxy("send", blog.document("/feed", body, content_type),
                                       "--allow-private")

    assert (status, out, err) == (2, "", message)


async def test_a_feed_that_answers_404_is_exit_2(blog):
    status, _, err = await pingproxy("send", blog.url("/feed.xml"), "--allow-private")

    assert (status, err) == (2, "pingproxy: the source answered HTTP 404 Not Found\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "last tuesday"], "pingproxy: --since 'last tuesday': expected an ISO 8601 "
                                  "date or time"),
    (["--entries", "0"], "pingproxy: --entries 0: expected a number from 1 to 50 "
                         "(--send-max-entries)"),
    (["--entries", "51"], "pingproxy: --entries 51: expected a number from 1 to 50"),
])
async def test_bad_feed_options_are_exit_2_with_one_line(args, message):
    status, out, err = await pingproxy("send", "https://blog.example/feed", *args)

    assert (status, out) == (2, "")
    assert err.startswith(message) and err.count("\n") == 1


async def test_progress_shows_entries_and_targets_on_a_terminal_and_nothing_when_piped(site):
    status, _, err = await pingproxy("send", site.feed("rss"), "--allow-private",
                                     stderr_tty=True)
    piped_status, _, piped_err = await pingproxy("send", site.feed("rss"), "--allow-private")

    assert status == 0 and "3/3" in err and "entry/s" in err and "/9" in err and "target" in err
    assert (piped_status, piped_err) == (0, "")


def readme_cron_command(tmp_path, feed: str) -> str:
    """The README's cron line, on this machine: its directory, this pingproxy, the local feed
    (allowed on loopback) and a --since that reaches the sample posts' dates."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("0 * * * * "))
    return (line.removeprefix("0 * * * * ")
            .replace("cd /var/lib/pingproxy", f"cd {shlex.quote(str(tmp_path))}")
            .replace("/opt/pingproxy/.venv/bin/pingproxy",
                     f"{shlex.quote(sys.executable)} -m pingproxy")
            .replace("https://blog.example/feed.xml", f"{feed} --allow-private")
            .replace("--since 1d", "--since 2026-10-01"))


async def test_the_readmes_cron_line_sends_each_entry_once_across_runs(site, tmp_path):
    command = readme_cron_command(tmp_path, site.feed("rss"))

    for _ in range(2):
        shell = await asyncio.create_subprocess_exec("/bin/sh", "-c", command)
        assert await asyncio.wait_for(shell.wait(), 30) == 0

    last = json.loads((tmp_path / "last.json").read_text())
    assert {e["reason"] for e in last["entries"]} == {"unchanged"}
    assert not (tmp_path / "next.json").exists()
    assert len(site.django.received) == len(site.webmentions.received) == 3
    assert len(site.pingback.calls) == 3


async def test_the_default_entries_follow_a_lower_cap_on_entries(site):
    status, out, _ = await pingproxy("send", site.feed("rss"), "--allow-private", "--json",
                                     "--send-max-entries", "2")

    assert status == 0
    assert json.loads(out)["entries_limit"] == 2
    assert [e["reason"] for e in json.loads(out)["entries"]] == ["taken", "taken",
                                                                 "beyond_entries"]

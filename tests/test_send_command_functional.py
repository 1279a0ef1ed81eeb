"""`pingproxy send` as a user runs it: a process, its output and its exit code."""

import asyncio
import json
import os
import sys

import pytest

from tests.conftest import pseudo_terminal, read_terminal
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

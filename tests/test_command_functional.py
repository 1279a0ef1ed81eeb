"""The real pingproxy command, started as a process."""

import asyncio
import configparser
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from pingproxy.config import Settings


async def wait_until_serving(url: str, process: subprocess.Popen, seconds: float = 10.0) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(seconds / 0.05)):
            assert process.poll() is None, "pingproxy exited early"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"pingproxy did not serve {url} in {seconds} s")


# gunicorn loses a SIGTERM that reaches a worker before it has set its handlers: a test that
# stops several workers lets them boot first.
WORKER_BOOT_SECONDS = 1.5


async def workers_ready(process: subprocess.Popen, count: int) -> None:
    """Wait until the process has count worker processes, and they have had time to boot."""
    if count < 2:  # one worker is the process itself
        return
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    for _ in range(200):
        if len(children.read_text().split()) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(WORKER_BOOT_SECONDS)


def start(args: list[str], environ: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, **(environ or {})}
    return subprocess.Popen([sys.executable, "-m", "pingproxy", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop(process: subprocess.Popen) -> tuple[bytes, bytes]:
    process.terminate()
    try:
        return process.communicate(timeout=10)
    finally:
        process.kill()


async def test_serves_on_the_flagged_host_and_port(unused_tcp_port):
    process = start(["--host", "127.0.0.1", "--port", str(unused_tcp_port)])
    try:
        await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}/", process)
    finally:
        stop(process)


async def test_serves_on_the_platform_port(unused_tcp_port):
    process = start([], {"PORT": str(unused_tcp_port), "HOST": "127.0.0.1"})
    try:
        await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}/", process)
    finally:
        stop(process)


def run(args: list[str], **options) -> subprocess.CompletedProcess:
    """The pingproxy command run to its end, its output as text."""
    return subprocess.run([sys.executable, "-m", "pingproxy", *args], capture_output=True,
                          text=True, timeout=30, **options)


def test_help_lists_the_subcommands():
    result = run(["--help"])

    assert result.returncode == 0
    assert "serve" in result.stdout
    assert "Plain 'pingproxy [options]' is 'pingproxy serve [options]'" in result.stdout


def test_serve_help_lists_its_options_with_their_variables():
    result = run(["serve", "--help"])

    assert result.returncode == 0
    assert "--port" in result.stdout and "PINGPROXY_TIMEOUT" in result.stdout


async def test_serve_named_serves_like_plain_flags(unused_tcp_port):
    process = start(["serve", "--host", "127.0.0.1", "--port", str(unused_tcp_port)])
    try:
        await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}/healthz", process)
    finally:
        stop(process)


def test_an_unknown_flag_is_bad_usage_with_exit_2():
    result = run(["--no-such-flag"])

    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def test_a_bad_setting_stops_start_up_with_exit_2_and_one_line():
    result = subprocess.run([sys.executable, "-m", "pingproxy"], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "PINGPROXY_TIMEOUT": "abc"})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pingproxy: PINGPROXY_TIMEOUT: invalid value 'abc': expected a number greater than 0"
    ]


def run_with(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run(list(args), env={**os.environ, **environ})


@pytest.mark.parametrize(("environ", "line"), [
    ({"PORT": "abc"}, "pingproxy: PORT: invalid value 'abc': expected a port number, 1 to 65535"),
    ({"PINGPROXY_MAX_BODY": "64k"},
     "pingproxy: PINGPROXY_MAX_BODY: invalid value '64k': expected a whole number of 1 or more"),
])
def test_a_numeric_setting_in_words_says_what_is_expected(environ, line):
    result = run_with(environ)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [line]


# Each list setting, a command that takes it, and what one of its items is called.
LIST_SETTINGS = [("--allowed-endpoints", "PINGPROXY_ALLOWED_ENDPOINTS", "serve", "host"),
                 ("--allowed-ports", "PINGPROXY_ALLOWED_PORTS", "serve", "port"),
                 ("--send-token", "PINGPROXY_SEND_TOKEN", "serve", "token"),
                 ("--send-allowed-sources", "PINGPROXY_SEND_ALLOWED_SOURCES", "serve", "host"),
                 ("--allowed-ports", "PINGPROXY_ALLOWED_PORTS", "send", "port"),
                 ("--allowed-endpoints", "PINGPROXY_ALLOWED_ENDPOINTS", "check", "host")]


@pytest.mark.parametrize("text", ["", ",", " , ,,"])
@pytest.mark.parametrize(("flag", "variable", "command", "noun"), LIST_SETTINGS)
def test_a_list_variable_that_names_nothing_stops_the_command_with_one_line(
        flag, variable, command, noun, text, unused_tcp_port):
    result = run_with({variable: text, "PINGPROXY_PORT": str(unused_tcp_port)}, command,
                      *(["https://example.com/post"] if command != "serve" else []))

    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"pingproxy: {variable}: ")
    assert f"names no {noun}: name at least one, or leave it unset for the default" in line


@pytest.mark.parametrize(("flag", "variable", "command", "noun"), LIST_SETTINGS)
def test_a_list_flag_that_names_nothing_stops_the_command_with_one_line(
        flag, variable, command, noun, unused_tcp_port):
    result = run([command, f"{flag}=,", "--port" if command == "serve" else "https://x.example/",
                  *([str(unused_tcp_port)] if command == "serve" else [])])

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"pingproxy: {flag}: ") and f" names no {noun}: " in line


SECRET = "a-token-nobody-may-ever-read-42"


def test_a_bad_token_is_named_in_the_start_up_error_and_never_shown():
    result = run_with({"PINGPROXY_SEND_TOKEN": f"{SECRET},short"})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pingproxy: PINGPROXY_SEND_TOKEN: invalid value (not shown: it is a secret): each token "
        "must have at least 16 characters"]
    assert SECRET not in result.stderr + result.stdout and "short" not in result.stderr


def test_a_bad_token_flag_is_named_and_never_shown():
    result = run(["--send-token", "short-secret"])

    assert result.returncode == 2
    assert "--send-token: invalid value (not shown: it is a secret)" in result.stderr
    assert "short-secret" not in result.stderr


@pytest.mark.parametrize("variable", ["PINGPROXY_REDIS_URL", "REDIS_URL"])
def test_an_empty_redis_url_stops_start_up_rather_than_counting_limits_per_process(variable):
    result = run_with({variable: " "})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"pingproxy: {variable}: invalid value (not shown: it is a secret): names no Redis: "
        "give its URL, or leave it unset to count limits in each process"]


def test_an_unknown_command_is_named_with_the_commands_and_the_nearest():
    result = run(["chek", "https://example.com/post"])

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "pingproxy: unknown command 'chek' (commands: serve, check, ping, send); did you mean "
        "'check'?"]


def test_an_unknown_command_far_from_any_says_the_commands_only():
    result = run(["frobnicate"])

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pingproxy: unknown command 'frobnicate' (commands: serve, check, ping, send)"]


@pytest.mark.parametrize("command", ["serve", "check", "ping", "send"])
def test_an_unknown_flag_of_a_subcommand_prints_that_subcommands_usage(command):
    result = run([command, "--bogus", *(["https://a.example/"] * (command != "serve")),
                  *(["https://b.example/"] * (command == "ping"))])

    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: pingproxy {command} ")
    assert result.stderr.splitlines()[-1] == (
        f"pingproxy {command}: error: unrecognized arguments: --bogus")


def test_also_before_the_source_says_to_put_the_source_first_or_use_a_double_dash():
    result = run(["send", "--also", "https://a.example/old", "https://blog.example/post"])

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: pingproxy send ")
    assert result.stderr.splitlines()[-1] == (
        "pingproxy send: error: the following arguments are required: SOURCE_URL (--also takes "
        "every value after it: put SOURCE_URL first, or end the list with --)")


def test_a_missing_source_without_also_gets_no_hint_about_also():
    result = run(["send", "--dry-run"])

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "pingproxy send: error: the following arguments are required: SOURCE_URL")


def test_a_double_dash_ends_the_also_list():
    result = run(["send", "--also", "https://a.example/old", "--", "http://127.0.0.1:9/post"])

    assert result.returncode == 2  # parsed: the source is then refused by the address guard
    assert "pingproxy: the source could not be fetched: port 9 is not allowed" in result.stderr


PORT_REFUSAL = ("port 4001 is not allowed (allowed: 80, 443, 8080, 8443); --allow-private "
                "allows any port on 127.0.0.1 (safe for a site on your own machine, or a "
                "sidecar next to its endpoint)")
LOOPBACK_REFUSAL = ("127.0.0.1 is a loopback address; only public addresses are forwarded to; "
                    "--allow-private allows it (safe for a site on your own machine, or a "
                    "sidecar next to its endpoint)")


@pytest.mark.parametrize(("args", "output", "refusal"), [
    (["check", "http://127.0.0.1:4001/post"], "stdout", PORT_REFUSAL),
    (["ping", "https://blog.example/post", "http://127.0.0.1:4001/post"], "stdout",
     PORT_REFUSAL),
    (["send", "http://127.0.0.1:4001/post"], "stderr", PORT_REFUSAL),
    (["check", "--allowed-ports", "4001", "http://127.0.0.1:4001/post"], "stdout",
     LOOPBACK_REFUSAL),
    (["ping", "--allowed-ports", "4001", "https://blog.example/post",
      "http://127.0.0.1:4001/post"], "stdout", LOOPBACK_REFUSAL),
    (["send", "--allowed-ports", "4001", "http://127.0.0.1:4001/post"], "stderr",
     LOOPBACK_REFUSAL),
], ids=["check-port", "ping-port", "send-port", "check-loopback", "ping-loopback",
        "send-loopback"])
def test_a_refusal_on_your_own_machine_names_allow_private_and_when_it_is_safe(args, output,
                                                                                refusal):
    result = run(args)

    assert result.returncode == 2
    assert refusal in getattr(result, output)


def test_a_port_refusal_on_a_public_host_names_allowed_ports_with_the_whole_list():
    result = run(["check", "https://example.com:4001/post"])

    assert result.returncode == 2
    assert result.stdout.splitlines()[-1] == (
        "Not checked: the page could not be fetched: port 4001 is not allowed (allowed: 80, "
        "443, 8080, 8443); --allowed-ports 80,443,4001,8080,8443 allows it (safe when you know "
        "what listens there).")


def test_a_host_outside_the_allowlist_names_allowed_endpoints():
    result = run(["check", "--allowed-endpoints", "example.org", "https://example.com/post"])

    assert result.returncode == 2
    assert ("example.com is not among this proxy's allowed endpoints; add it to "
            "--allowed-endpoints (now example.org) if you trust it") in result.stdout


@pytest.mark.parametrize("command", ["check", "send"])
def test_a_receiver_that_is_down_is_named_by_host_and_port(command, unused_tcp_port):
    result = run([command, "--allow-private", f"http://127.0.0.1:{unused_tcp_port}/post"])

    assert result.returncode == 2
    assert f"could not connect to 127.0.0.1:{unused_tcp_port}" in result.stdout + result.stderr


ROOT = Path(__file__).parent.parent


async def test_the_procfile_web_process_serves_on_the_platform_port(unused_tcp_port, tmp_path):
    [command] = [line.removeprefix("web:").strip() for line in
                 (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PORT": str(unused_tcp_port),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(["sh", "-c", f"exec {command}"], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}/healthz", process)
    finally:
        stop(process)


def test_the_platform_files_install_the_package_on_the_pinned_python():
    requirements = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    pinned = (ROOT / ".python-version").read_text().strip()

    assert requirements == ["."]
    assert f"python_requires = >={pinned}" in (ROOT / "setup.cfg").read_text()


def test_the_systemd_unit_allows_the_open_files_of_a_full_worker():
    unit = (ROOT / "deploy" / "pingproxy.service").read_text()

    [limit] = re.findall(r"^LimitNOFILE=(\d+)$", unit, re.MULTILINE)
    assert int(limit) >= 3 * Settings().max_inflight + 64


def test_uvloop_is_a_dependency_wherever_it_runs():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    requirements = setup["options"]["install_requires"].splitlines()

    [uvloop] = [line for line in requirements if line.startswith("uvloop")]
    _, _, marker = uvloop.partition(";")
    assert 'sys_platform != "win32"' in marker
    assert "uvloop" not in setup["options.extras_require"].get("test", "")


async def test_without_uvloop_it_starts_on_asyncio(unused_tcp_port):
    # Where uvloop cannot be installed, importing it finds nothing.
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.modules['uvloop'] = None; "
         "from pingproxy.__main__ import main; sys.exit(main())", "--port", str(unused_tcp_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}/healthz", process)
    finally:
        _, stderr = stop(process)

    assert "event loop asyncio" in stderr.decode()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(("choice", "loop"), [("asyncio", "asyncio"), ("uvloop", "uvloop"),
                                              ("auto", "uvloop")])
async def test_the_start_up_line_names_the_event_loop_chosen(unused_tcp_port, choice, loop,
                                                             workers):
    process = start(["--port", str(unused_tcp_port), "--event-loop", choice,
                     "--workers", workers])
    try:
        await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}/healthz", process)
        await workers_ready(process, int(workers))
    finally:
        _, stderr = stop(process)

    assert f"event loop {loop}" in stderr.decode()


def test_a_port_in_use_stops_start_up_with_one_line(unused_tcp_port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", unused_tcp_port))
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "pingproxy", "--port",
                                 str(unused_tcp_port)], capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"pingproxy: cannot listen on 127.0.0.1:{unused_tcp_port}:" in result.stderr

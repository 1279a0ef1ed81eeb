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
        "pingproxy: PINGPROXY_TIMEOUT: invalid value 'abc': "
        "could not convert string to float: 'abc'"
    ]


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

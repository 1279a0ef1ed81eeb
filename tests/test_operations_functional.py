"""Production behaviour of the real pingproxy command: workers, metrics, logs, SIGTERM."""

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import metric_value, ping_body, read_answer
from tests.test_command_functional import WORKER_BOOT_SECONDS, wait_until_serving

SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"


class Pingproxy:
    """A pingproxy process on a free loopback port."""

    def __init__(self, port: int, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pingproxy", "--port", str(port), "--allow-private", *args],
            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def started(self) -> "Pingproxy":
        await wait_until_serving(self.url("/healthz"), self.process)
        return self

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    async def workers_booted(self, count: int) -> list[int]:
        for _ in range(200):
            if len(pids := self.worker_pids()) >= count:
                return pids
            await asyncio.sleep(0.05)
        return self.worker_pids()

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=30)
        finally:
            self.process.kill()
        return self.process.returncode, stderr.decode()


@pytest.fixture
async def start_pingproxy(unused_tcp_port_factory):
    started: list[Pingproxy] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> Pingproxy:
        proxy = Pingproxy(unused_tcp_port_factory(), *args, env=env)
        started.append(proxy)
        return await proxy.started()

    yield start
    for proxy in started:
        proxy.stop()


async def post_ping(session: aiohttp.ClientSession, url: str, source: str = SOURCE,
                    **kwargs) -> object:
    async with session.post(url, data=ping_body(source, TARGET), **kwargs) as response:
        assert response.status == 200
        return read_answer(await response.read())


async def connection_refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_lets_the_forward_in_flight_finish_and_refuses_new_connections(
        start_pingproxy, endpoint, workers):
    # The endpoint holds its answer until new connections are refused (aiohttp's gunicorn
    # worker looks for SIGTERM once a second), so the order is shown, not raced; each wait
    # is bounded within the forward's 8 s timeout and the 10 s grace.
    refusing = asyncio.Event()

    async def answer_once_refusing(request: web.Request) -> web.Response:
        await asyncio.wait_for(refusing.wait(), 7)
        return web.Response(status=202)

    endpoint.answer = answer_once_refusing
    proxy = await start_pingproxy("--workers", workers, "--grace", "10")

    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(post_ping(session, proxy.url("/" + endpoint.url())))
        while not endpoint.received:
            await asyncio.sleep(0.02)
        proxy.process.send_signal(signal.SIGTERM)
        refused = False
        for _ in range(120):
            await asyncio.sleep(0.05)
            if refused := await connection_refused(proxy.port):
                break
        answered_before_refusing = in_flight.done()
        refusing.set()
        answer = await asyncio.wait_for(in_flight, 10)

    assert refused and not answered_before_refusing
    assert "forwarded" in answer and "202" in answer
    assert endpoint.received[0].form == {"source": SOURCE, "target": TARGET}
    assert await asyncio.to_thread(proxy.process.wait, 15) == 0


async def test_two_workers_share_the_port_and_their_metrics(start_pingproxy, endpoint):
    proxy = await start_pingproxy("--workers", "2")

    assert len(await proxy.workers_booted(2)) == 2
    for number in range(20):
        async with aiohttp.ClientSession() as session:  # a new connection each time
            await post_ping(session, proxy.url("/" + endpoint.url()), f"{SOURCE}/{number}")
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/metrics")) as response:
            text = await response.text()

    assert metric_value(text, "pingproxy_pingbacks_total", outcome="success") == 20
    assert metric_value(text, "pingproxy_upstream_replies_total", status_class="2xx") == 20
    assert metric_value(text, "pingproxy_forwards_in_flight") == 0
    assert len(endpoint.received) == 20


async def test_web_concurrency_sets_the_worker_count(start_pingproxy):
    proxy = await start_pingproxy(env={"WEB_CONCURRENCY": "2"})

    assert len(await proxy.workers_booted(2)) == 2
    await asyncio.sleep(0.5)
    assert len(proxy.worker_pids()) == 2


async def test_json_logs_carry_the_request_id_sent_upstream(start_pingproxy, endpoint):
    proxy = await start_pingproxy("--log-format", "json")

    async with aiohttp.ClientSession() as session:
        await post_ping(session, proxy.url("/" + endpoint.url()),
                        headers={"X-Request-Id": "req-42"})
    _, stderr = proxy.stop()

    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    [pingback] = [r for r in records if r["logger"] == "pingproxy.relay"]
    assert pingback["outcome"] == "success" and pingback["request_id"] == "req-42"
    assert pingback["source"] == SOURCE and pingback["upstream_status"] == 202
    assert endpoint.received[0].headers["X-Request-Id"] == "req-42"
    assert all(line.startswith("{") for line in stderr.splitlines())


async def test_a_pingback_line_reaches_stderr_within_a_second_while_serving(start_pingproxy,
                                                                         endpoint):
    proxy = await start_pingproxy()
    stderr = proxy.process.stderr.fileno()
    os.set_blocking(stderr, False)

    async with aiohttp.ClientSession() as session:
        await post_ping(session, proxy.url("/" + endpoint.url()))
    seen = b""
    for _ in range(20):
        await asyncio.sleep(0.05)
        seen += os.read(stderr, 65536) if select.select([stderr], [], [], 0)[0] else b""
        if b"pingback outcome=success" in seen:
            break

    assert b"pingback outcome=success" in seen
    assert proxy.process.poll() is None


async def test_log_level_warning_keeps_pingback_lines_out(start_pingproxy, endpoint):
    proxy = await start_pingproxy("--log-level", "warning")

    async with aiohttp.ClientSession() as session:
        await post_ping(session, proxy.url("/" + endpoint.url()))
    _, stderr = proxy.stop()

    assert "pingback outcome" not in stderr


@pytest.mark.parametrize(("environ", "setting"), [
    ({"PINGPROXY_TIMEOUT": "abc"}, "PINGPROXY_TIMEOUT"),
    ({"PINGPROXY_ALLOWED_ENDPOINTS": "exa mple.com,"}, "PINGPROXY_ALLOWED_ENDPOINTS"),
    ({"WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY"),
    ({"PINGPROXY_LOG_FORMAT": "xml"}, "PINGPROXY_LOG_FORMAT"),
    ({"PINGPROXY_METRICS": "sometimes"}, "PINGPROXY_METRICS"),
])
def test_an_invalid_setting_stops_start_up_with_one_line(environ, setting):
    result = subprocess.run([sys.executable, "-m", "pingproxy"], capture_output=True, text=True,
                            timeout=30, env={**os.environ, **environ})

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"pingproxy: {setting}: invalid value")
    assert "Traceback" not in result.stderr


async def test_metrics_count_known_traffic(proxy, endpoint):
    await proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET))
    await proxy.post("/" + endpoint.url(), data=ping_body(f"{SOURCE}/2", TARGET))
    endpoint.reply(400, json={"error": "no_link_found"})
    await proxy.post("/" + endpoint.url(), data=ping_body(f"{SOURCE}/3", TARGET))
    await proxy.post("/" + endpoint.url(), data=b"<junk")

    text = await (await proxy.get("/metrics")).text()

    assert metric_value(text, "pingproxy_pingbacks_total", outcome="success",
                        fault_code="none") == 2
    assert metric_value(text, "pingproxy_pingbacks_total", outcome="no_link",
                        fault_code="17") == 1
    assert metric_value(text, "pingproxy_rejected_requests_total", outcome="not_well_formed",
                        fault_code="-32700") == 1
    assert metric_value(text, "pingproxy_upstream_replies_total", status_class="4xx") == 1
    assert metric_value(text, "pingproxy_forward_duration_seconds_count") == 3
    assert metric_value(text, "pingproxy_requests_shed_total") == 0


async def test_shed_requests_are_counted(make_proxy, endpoint):
    endpoint.reply(202, delay=0.5)
    proxy = await make_proxy(max_inflight=1)
    first = asyncio.create_task(proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET)))
    while not endpoint.received:
        await asyncio.sleep(0.01)

    assert (await proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET))).status == 503
    text = await (await proxy.get("/metrics")).text()
    assert metric_value(text, "pingproxy_requests_shed_total") == 1
    assert metric_value(text, "pingproxy_forwards_in_flight") == 1
    await first


async def test_metrics_off_removes_the_route(make_proxy):
    proxy = await make_proxy(metrics=False)

    response = await proxy.get("/metrics")

    assert response.status == 404 and "Not a pingback endpoint" in await response.text()


async def test_healthz_answers_without_touching_upstream(proxy, endpoint):
    response = await proxy.get("/healthz")

    assert response.status == 200 and await response.text() == "ok"
    assert endpoint.received == []


async def test_request_id_is_generated_and_sent_upstream(proxy, endpoint):
    response = await proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET),
                                headers={"X-Request-Id": "bad id, with spaces"})

    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 32 and request_id == endpoint.received[0].headers["X-Request-Id"]


@pytest.mark.parametrize("form", ["path", "forward", "discovery"])
async def test_a_refused_pingback_leaves_its_one_info_line_in_every_form(start_pingproxy,
                                                                         endpoint, form):
    proxy = await start_pingproxy("--allowed-endpoints", "example.com")
    path = {"path": "/" + endpoint.url(), "forward": "/webmention?forward=" + endpoint.url(),
            "discovery": "/"}[form]

    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.url(path), data=ping_body(SOURCE, TARGET)) as response:
            with pytest.raises(xmlrpc.client.Fault) as fault:
                read_answer(await response.read())
    _, stderr = proxy.stop()

    assert fault.value.faultCode == 0x31
    [line] = [line for line in stderr.splitlines() if "pingback outcome=" in line]
    assert " INFO pingproxy.relay pingback outcome=forbidden_destination fault=49 " in line
    assert endpoint.received == []


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_and_exit_1_with_any_number_of_workers(
        unused_tcp_port_factory, workers):
    port = unused_tcp_port_factory()
    with socket.create_server(("127.0.0.1", port)):
        result = subprocess.run(
            [sys.executable, "-m", "pingproxy", "--port", str(port), "--workers", workers],
            capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    starting, refusal = result.stderr.strip().splitlines()
    assert " INFO pingproxy.server pingproxy " in starting
    assert refusal.startswith(f"pingproxy: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in refusal.lower()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_said_in_json_when_every_line_must_be_json(
        unused_tcp_port_factory, workers):
    port = unused_tcp_port_factory()
    with socket.create_server(("127.0.0.1", port)):
        result = subprocess.run(
            [sys.executable, "-m", "pingproxy", "--port", str(port), "--workers", workers,
             "--log-format", "json"], capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    starting, refusal = map(json.loads, result.stderr.strip().splitlines())
    assert starting["level"] == "info"
    assert refusal["level"] == "error"
    assert refusal["logger"] == "pingproxy.server"
    assert refusal["message"].startswith(f"cannot listen on 127.0.0.1:{port}: ")


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_a_clean_stop_with_workers_prints_nothing_alarming(start_pingproxy, endpoint,
                                                                 event_loop):
    proxy = await start_pingproxy("--workers", "2", "--event-loop", event_loop)
    await proxy.workers_booted(2)
    await asyncio.sleep(WORKER_BOOT_SECONDS)

    async with aiohttp.ClientSession() as session:
        await post_ping(session, proxy.url("/" + endpoint.url()))
    returncode, stderr = proxy.stop()

    assert returncode == 0
    assert "Worker exiting" in stderr  # gunicorn's lines were read
    for alarming in ("Error", "Errno", "ERROR", "WARNING", "Traceback"):
        assert alarming not in stderr


async def test_with_workers_every_line_of_the_json_log_is_json(start_pingproxy, endpoint):
    proxy = await start_pingproxy("--workers", "2", "--log-format", "json")
    await proxy.workers_booted(2)
    await asyncio.sleep(WORKER_BOOT_SECONDS)

    async with aiohttp.ClientSession() as session:
        await post_ping(session, proxy.url("/" + endpoint.url()))
    returncode, stderr = proxy.stop()

    records = [json.loads(line) for line in stderr.splitlines()]
    loggers = {record["logger"] for record in records}
    assert {"pingproxy.server", "pingproxy.relay", "gunicorn.error"} <= loggers
    assert any(record["message"].startswith("Booting worker") for record in records)
    assert returncode == 0

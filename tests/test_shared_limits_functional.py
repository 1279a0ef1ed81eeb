"""Two real pingproxy processes sharing one real Redis: every limit counts across both, a
killed instance's slot frees itself, and Redis going away never costs a pingback."""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import xmlrpc.client

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import metric_value, ping_body, read_answer
from tests.send_web import advertising, h_entry
from tests.test_command_functional import wait_until_serving

SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"
TOKEN = "a-deploy-hook-token-0123456789"
# Bounds on the waits below, so that no test can hang: never asserted as timings.
SLOT_TIMEOUT_SECONDS = 2.0
HOLD_LIMIT_SECONDS = 10.0


class Instance:
    """One pingproxy process on a free port, its log in a file that can be read as it runs."""

    def __init__(self, port: int, redis_url: str, prefix: str, *args: str) -> None:
        self.port = port
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pingproxy", "--port", str(port), "--allow-private",
             "--redis-prefix", prefix, *args],
            env={**os.environ, "PINGPROXY_REDIS_URL": redis_url, "PINGPROXY_SEND_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL, stderr=self.log)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def logged(self) -> str:
        self.log.seek(0)
        return self.log.read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        finally:
            self.process.kill()
            self.process.wait()
            self.log.close()


@pytest.fixture
async def start_instance(unused_tcp_port_factory, redis_server, redis_prefix):
    started: list[Instance] = []

    async def start(*args: str, redis_url: str = redis_server.url) -> Instance:
        instance = Instance(unused_tcp_port_factory(), redis_url, redis_prefix, *args)
        started.append(instance)
        await wait_until_serving(instance.url("/healthz"), instance.process)
        return instance

    yield start
    for instance in started:
        instance.stop()


async def ping(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    """HTTP status and answer (a value, or the Fault) of one pingback."""
    async with session.post(url, data=ping_body(SOURCE, TARGET)) as response:
        try:
            return response.status, read_answer(await response.read())
        except xmlrpc.client.Fault as fault:
            return response.status, fault


async def test_a_client_under_the_rate_at_each_instance_is_refused_over_it_at_both(
        start_instance, endpoint):
    one = await start_instance("--rate-limit", "4/min")
    other = await start_instance("--rate-limit", "4/min")
    path = "/" + endpoint.url()

    async with aiohttp.ClientSession() as session:
        statuses = [(await ping(session, instance.url(path)))[0]
                    for instance in (one, other, one, other, one)]

    assert statuses == [200, 200, 200, 200, 429]  # 3 at one, 2 at the other
    assert len(endpoint.received) == 4


async def test_a_deploy_hook_repeated_at_the_other_instance_is_refused(start_instance, blog,
                                                                       sites):
    target = sites.page("/t/1", *advertising(sites.endpoint("/wm"))[0:1])
    post = blog.page("/post", h_entry(target))
    one, other = await start_instance(), await start_instance()
    authorized = {"Authorization": f"Bearer {TOKEN}"}

    async with aiohttp.ClientSession() as session:
        async with session.post(one.url("/api/send"), data={"source": post},
                                headers=authorized) as first:
            assert first.status == 200
        async with session.post(other.url("/api/send"), data={"source": post},
                                headers=authorized) as again:
            assert again.status == 429
            assert (await again.json())["error"] == "sent_recently"

    assert len(sites.posts("/wm")) == 1


async def test_a_slot_held_at_one_instance_counts_at_the_other_until_it_is_killed(
        start_instance, endpoint):
    held = asyncio.Event()
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/hold":
            held.set()
            await asyncio.wait_for(release.wait(), HOLD_LIMIT_SECONDS)
        return web.json_response({"status": "queued"}, status=202)

    endpoint.answer = answer
    limits = ("--max-per-endpoint-host", "1", "--timeout", str(SLOT_TIMEOUT_SECONDS))
    one, other = await start_instance(*limits), await start_instance(*limits)

    async with aiohttp.ClientSession() as session:
        holding = asyncio.create_task(ping(session, one.url("/" + endpoint.url("/hold"))))
        await asyncio.wait_for(held.wait(), HOLD_LIMIT_SECONDS)
        _, busy = await ping(session, other.url("/" + endpoint.url()))
        one.process.send_signal(signal.SIGKILL)
        with pytest.raises(aiohttp.ClientError):
            await holding
        answers = []
        for _ in range(int(HOLD_LIMIT_SECONDS / SLOT_TIMEOUT_SECONDS) + 1):
            answers.append((await ping(session, other.url("/" + endpoint.url())))[1])
            if isinstance(answers[-1], str):
                break
    release.set()

    assert isinstance(busy, xmlrpc.client.Fault) and "busy" in busy.faultString
    assert isinstance(answers[-1], str)  # the killed instance's slot expired


async def test_a_check_running_at_one_instance_counts_against_the_cap_at_the_other(
        make_shared_proxy, site):
    one, other = await make_shared_proxy(max_checks=1), await make_shared_proxy(max_checks=1)
    slow = site.page("/slow", "<p>a page</p>", delay=1.0)
    json_only = {"Accept": "application/json"}
    running = asyncio.create_task(one.get("/check", params={"url": slow}, headers=json_only))
    while not site.serving:
        await asyncio.sleep(0.01)

    refused = await other.get("/check", params={"url": slow}, headers=json_only)

    assert refused.status == 503
    assert (await running).status == 200
    assert (await other.get("/check", params={"url": slow}, headers=json_only)).status == 200


def test_a_redis_url_of_another_scheme_stops_start_up_with_one_line_hiding_it():
    done = subprocess.run([sys.executable, "-m", "pingproxy", "--port", "1"],
                          env={**os.environ, "REDIS_URL": "http://:s3cret@cache.internal/"},
                          capture_output=True, text=True, timeout=30)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "REDIS_URL" in done.stderr
    assert "s3cret" not in done.stderr


async def test_redis_stopped_and_started_mid_run_loses_no_pingback(
        start_instance, endpoint, own_redis_server):
    proxy = await start_instance("--rate-limit", "100/s", "--max-per-endpoint-host", "20",
                                 redis_url=own_redis_server.url)
    path = "/" + endpoint.url()
    answers, health = [], []

    async with aiohttp.ClientSession() as session:
        for step in range(60):
            if step == 20:
                own_redis_server.stop()
            if step == 40:
                own_redis_server.start()
                await asyncio.sleep(1.2)  # past the second before Redis is asked again
            if step in (30, 59):
                async with session.get(proxy.url("/healthz")) as response:
                    health.append((response.status, await response.text()))
            answers.append(await ping(session, proxy.url(path)))
            await asyncio.sleep(0.02)
        async with session.get(proxy.url("/metrics")) as response:
            metrics = await response.text()

    assert all(answer == (200, answers[0][1]) for answer in answers)
    assert isinstance(answers[0][1], str) and len(endpoint.received) == 60
    assert health[0][0] == 200 and health[0][1].startswith("degraded")
    assert health[1] == (200, "ok")
    assert metric_value(metrics, "pingproxy_shared_limits_fallbacks_total") > 0
    assert metric_value(metrics, "pingproxy_shared_limits_switches_total", to="memory") >= 1
    assert metric_value(metrics, "pingproxy_shared_limits_switches_total", to="redis") >= 1
    assert metric_value(metrics, "pingproxy_shared_limits_degraded") == 0
    logged = proxy.logged()
    assert "did not answer" in logged and "answers again" in logged


async def test_with_every_limit_off_redis_is_never_asked(make_proxy, endpoint, own_redis_server,
                                                         redis_prefix):
    own_redis_server.stop()  # anything asked of it would fail and be counted
    proxy = await make_proxy(redis_url=own_redis_server.url, redis_prefix=redis_prefix,
                             max_checks=0)

    response = await proxy.post("/" + endpoint.url(), data=ping_body(SOURCE, TARGET))
    assert isinstance(read_answer(await response.read()), str)
    health = await (await proxy.get("/healthz")).text()
    metrics = await (await proxy.get("/metrics")).text()

    assert health == "ok"
    assert metric_value(metrics, "pingproxy_shared_limits_fallbacks_total") == 0

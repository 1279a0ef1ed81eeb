"""The README's recipes, run: the one-line install with pipx, and the sidecar's nginx and
Caddy blocks with Debian's nginx and caddy.

The install: the README's ``pipx install .`` runs in a copy of the checkout (its files, not
its venv or caches), with pipx's directories in a temporary one; the command it installs
then serves a page. pip fetches the dependencies as a user's would (from its cache when warm).

The sidecar's blocks are read from the README itself (the fenced ```nginx and ```caddy blocks of
"Sidecar next to your site, behind nginx or Caddy"), and pingproxy is started with that
section's own command line and environment. What the test changes, and only that:

- pingproxy's port, 8080 in the command line and in both blocks, becomes a free loopback
  port; the endpoint's address, 127.0.0.1:3000, becomes the fake endpoint's;
- nginx: the location blocks go into ``server { listen 127.0.0.1:PORT; }`` of a minimal
  nginx.conf that runs in the foreground, as this user, with its files in a temporary
  directory;
- Caddy: the site name ``example.com`` becomes ``http://127.0.0.1:PORT``, under global
  options that turn off its admin endpoint and automatic HTTPS and bind it to loopback,
  with its data in a temporary directory.

The public address stays ``https://example.com/pingback``: a URL the page writes there is
requested at the front server's loopback address with the same path. `make test` installs
nginx and caddy from Debian's packages when missing, so these tests never skip.
"""

import asyncio
import html
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import xmlrpc.client
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.test_command_functional import wait_until_serving

CHECKOUT = Path(__file__).parent.parent
README = CHECKOUT / "README.md"
SECTION = "### Sidecar next to your site, behind nginx or Caddy"
INSTALL_SECTION = "### Install only the command"
NGINX, CADDY, PIPX = "/usr/sbin/nginx", "/usr/bin/caddy", "/usr/bin/pipx"
# What a checkout holds that is no part of it: what .gitignore names, and git's own.
NOT_THE_CHECKOUT = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build",
                                          "dist", ".pytest_cache", ".hypothesis", "screenshots",
                                          "results.json", "profiles")
INSTALL_SECONDS = 600
PROXY_ADDRESS, ENDPOINT_ADDRESS = "127.0.0.1:8080", "127.0.0.1:3000"
SOURCE, TARGET = "https://blog.example/2026/11/a-post", "https://example.com/notes/1"
START_SECONDS = 15

NGINX_CONF = """daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log stderr warn;
events {{}}
http {{
    access_log off;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 127.0.0.1:{port};
{block}
    }}
}}
"""
CADDY_GLOBAL_OPTIONS = """{
    admin off
    auto_https off
    default_bind 127.0.0.1
}
"""


def recipe(heading: str = SECTION) -> dict[str, str]:
    """A section's fenced blocks by language (the sidecar's: sh, nginx, caddy, html)."""
    text = README.read_text()
    section = text[text.index(heading) + len(heading):]
    section = section[:re.search(r"^##", section, re.MULTILINE).start()]
    return {language: body for language, body
            in re.findall(r"^```(\w+)\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)}


def command_line(block: str) -> tuple[dict[str, str], list[str]]:
    """The environment and the command of the section's shell block."""
    words = shlex.split(block.replace("\\\n", " "))
    environment = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    return environment, [word for word in words if not re.match(r"^[A-Z_]+=", word)]


def with_address(text: str, old: str, new: str) -> str:
    """text with every old address replaced, checking that there was one to replace."""
    assert old in text, f"the README's recipe no longer names {old}"
    return text.replace(old, new)


async def until_listening(port: int, process: subprocess.Popen) -> None:
    for _ in range(int(START_SECONDS / 0.05)):
        assert process.poll() is None, process.communicate()[1]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {START_SECONDS} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=15)
    finally:
        process.kill()


@pytest.fixture
async def sidecar(endpoint, unused_tcp_port_factory) -> AsyncIterator[tuple[str, int]]:
    """pingproxy started as the README says, with its public address and its port."""
    environment, command = command_line(recipe()["sh"])
    environment["PINGPROXY_DEFAULT_ENDPOINT"] = with_address(
        environment["PINGPROXY_DEFAULT_ENDPOINT"], ENDPOINT_ADDRESS,
        URL(endpoint.url()).raw_authority)
    port = unused_tcp_port_factory()
    assert command[0] == "pingproxy" and command[-2:] == ["--port", "8080"]
    process = subprocess.Popen([sys.executable, "-m", *command[:-1], str(port)],
                               env={**os.environ, **environment},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_until_serving(f"http://127.0.0.1:{port}/healthz", process)
        yield environment["PINGPROXY_PUBLIC_URL"], port
    finally:
        stop(process)


def run_nginx(directory: Path, port: int, proxy_port: int) -> subprocess.Popen:
    block = with_address(recipe()["nginx"], PROXY_ADDRESS, f"127.0.0.1:{proxy_port}")
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(directory=directory, port=port, block=block))
    return subprocess.Popen([NGINX, "-p", str(directory), "-c", str(conf), "-e", "stderr"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_caddy(directory: Path, port: int, proxy_port: int) -> subprocess.Popen:
    block = with_address(recipe()["caddy"], PROXY_ADDRESS, f"127.0.0.1:{proxy_port}")
    block = with_address(block, "example.com {", f"http://127.0.0.1:{port} {{")
    caddyfile = directory / "Caddyfile"
    caddyfile.write_text(CADDY_GLOBAL_OPTIONS + block)
    home = {"HOME": str(directory), "XDG_DATA_HOME": str(directory / "data"),
            "XDG_CONFIG_HOME": str(directory / "config")}
    return subprocess.Popen([CADDY, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                            env={**os.environ, **home},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(params=["nginx", "caddy"])
async def front(request, sidecar, tmp_path, unused_tcp_port_factory) -> AsyncIterator[
        tuple[str, str]]:
    """The README's nginx or Caddy block in front of the sidecar: (public URL, its origin on
    loopback)."""
    public_url, proxy_port = sidecar
    port = unused_tcp_port_factory()
    run = run_nginx if request.param == "nginx" else run_caddy
    process = run(tmp_path, port, proxy_port)
    try:
        await until_listening(port, process)
        yield public_url, f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def at_front(url: str, public_url: str, origin: str) -> str:
    """A URL under the public address, as requested from the front server on loopback."""
    public = URL(public_url)
    assert url.startswith(f"{public.scheme}://{public.raw_authority}/"), url
    return origin + url.removeprefix(f"{public.scheme}://{public.raw_authority}").split("#")[0]


def ping(url: str) -> str:
    """One pingback, as Python's own XML-RPC client sends it."""
    with xmlrpc.client.ServerProxy(url) as server:
        return server.pingback.ping(SOURCE, TARGET)


async def pingproxy_page(session: aiohttp.ClientSession, url: str) -> str:
    """The text of a pingproxy page at url, checking that pingproxy served it."""
    async with session.get(url) as response:
        assert response.status == 200, url
        assert "nonce-" in response.headers.get("Content-Security-Policy", ""), url
        return await response.text()


async def test_the_page_through_the_recipe_links_only_to_urls_the_recipe_routes(front):
    public_url, origin = front
    public_host = URL(public_url).host

    async with aiohttp.ClientSession() as session:
        page = await pingproxy_page(session, at_front(public_url, public_url, origin))
        links = {html.unescape(link) for link in re.findall(r'(?:href|action)="([^"]*)"', page)}
        ours = {link for link in links if URL(link).host == public_host}
        for link in ours:
            await pingproxy_page(session, at_front(link, public_url, origin))

    assert len(ours) >= 2, links  # the front page's own link and the form that writes tags


@pytest.mark.parametrize("endpoint_path", ["/webmention", "/webmention?key=1"])
async def test_every_tag_the_page_writes_through_the_recipe_carries_a_real_pingback(
        front, endpoint, endpoint_path):
    public_url, origin = front
    readme_tag = recipe()["html"].strip()
    endpoint_url = endpoint.url(endpoint_path)

    form = at_front(public_url, public_url, origin)
    async with aiohttp.ClientSession() as session:
        page = await pingproxy_page(session, str(URL(form).with_query(endpoint=endpoint_url)))
    tags = re.findall(r'<link rel="pingback" href="([^"]+)">', html.unescape(page))
    for tag in set(tags):
        answer = await asyncio.to_thread(ping, at_front(tag, public_url, origin))
        assert "forwarded as a WebMention" in answer, tag

    assert readme_tag in html.unescape(page)
    assert len(set(tags)) == 2  # the path form, and discovery (the README's own tag)
    # The path form reaches the endpoint named, its query kept; discovery the default one.
    assert sorted((r.path, r.query) for r in endpoint.received) == \
        sorted([("/webmention", endpoint_path.partition("?")[2]), ("/webmention", "")])
    assert all(r.form == {"source": SOURCE, "target": TARGET} for r in endpoint.received)


async def test_the_one_line_install_gives_a_pingproxy_command_that_serves(
        tmp_path, unused_tcp_port):
    [install] = recipe(INSTALL_SECTION)["sh"].strip().splitlines()
    command = shlex.split(install)
    assert command[:2] == ["pipx", "install"]
    checkout = tmp_path / "checkout"
    shutil.copytree(CHECKOUT, checkout, ignore=NOT_THE_CHECKOUT)
    pipx_home = {"PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
                 "PIPX_MAN_DIR": str(tmp_path / "man")}

    installed = await asyncio.to_thread(
        subprocess.run, [PIPX, *command[1:]], cwd=checkout, env={**os.environ, **pipx_home},
        capture_output=True, text=True, timeout=INSTALL_SECONDS)
    assert installed.returncode == 0, installed.stderr
    command_path = tmp_path / "bin" / "pingproxy"
    version = subprocess.run([command_path, "--version"], capture_output=True, text=True,
                             timeout=60)
    process = subprocess.Popen([command_path, "--port", str(unused_tcp_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}/healthz", process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{unused_tcp_port}/nope/x") as response:
                status, page = response.status, await response.text()
    finally:
        stop(process)

    assert version.stdout.startswith("pingproxy ")
    assert not str(command_path.resolve()).startswith(str(CHECKOUT / ".venv"))
    assert status == 404 and "Not a pingback endpoint" in page  # templates installed too

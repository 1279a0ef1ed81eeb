"""A small web on loopback for send's tests: hosts that serve pages and scripted endpoints.

Each Host is a real aiohttp server on its own 127.0.0.x address (the address guard and the
per-host limit both go by host), records every request, and measures how many it was
serving at once. The source's site, the targets' sites and the endpoints' sites are different
hosts, as on the web.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import ClientSession, web
from multidict import CIMultiDict


@dataclass
class Hit:
    """One request a host received."""

    method: str
    path: str
    form: dict
    body: bytes
    user_agent: str


@dataclass
class Meter:
    """Requests being served at once, across every host that shares it."""

    serving: int = 0
    most_serving_at_once: int = 0

    def enter(self) -> None:
        self.serving += 1
        self.most_serving_at_once = max(self.most_serving_at_once, self.serving)


@dataclass
class Answer:
    """One scripted response."""

    status: int = 200
    body: str | bytes = ""
    headers: Sequence[tuple[str, str]] = ()
    delay: float = 0.0


@dataclass
class Host:
    """A site on one loopback address; unknown paths answer 404."""

    address: str
    server: object = None
    routes: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    meter: Meter = field(default_factory=Meter)
    shared: Meter | None = None

    @property
    def most_serving_at_once(self) -> int:
        return self.meter.most_serving_at_once

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def page(self, path: str, body: str = "", *, status: int = 200,
             headers: Sequence[tuple[str, str]] = (), delay: float = 0.0) -> str:
        """Serve an HTML page to GET; returns its URL."""
        typed = [("Content-Type", "text/html; charset=utf-8"), *headers]
        self.routes["GET", path] = [Answer(status, body, typed, delay)]
        return self.url(path)

    def document(self, path: str, body: str | bytes, content_type: str, *,
                 status: int = 200) -> str:
        """Serve any document (a feed) to GET with its content type; returns its URL."""
        self.routes["GET", path] = [Answer(status, body, [("Content-Type", content_type)])]
        return self.url(path)

    def endpoint(self, path: str, *answers: Answer) -> str:
        """Answer POSTs with each answer in turn, the last one from then on (202 if none)."""
        self.routes["POST", path] = list(answers) or [Answer(202, "queued")]
        return self.url(path)

    def posts(self, path: str | None = None) -> list[Hit]:
        return [hit for hit in self.hits
                if hit.method == "POST" and (path is None or hit.path == path)]

    def gets(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.method == "GET" and hit.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = dict(await request.post()) if request.content_type.endswith("urlencoded") else {}
        self.hits.append(Hit(request.method, request.path, form, body,
                             request.headers.get("User-Agent", "")))
        script = self.routes.get((request.method, request.path))
        if script is None:
            return web.Response(status=404, text="not here")
        answer = script.pop(0) if len(script) > 1 else script[0]
        meters = [self.meter, *([self.shared] if self.shared else [])]
        for meter in meters:
            meter.enter()
        try:
            await asyncio.sleep(answer.delay)
        finally:
            for meter in meters:
                meter.serving -= 1
        content = answer.body.encode() if isinstance(answer.body, str) else answer.body
        return web.Response(status=answer.status, body=content,
                            headers=CIMultiDict(answer.headers))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app


async def start_host(aiohttp_server, address: str, shared: Meter | None = None) -> Host:
    host = Host(address, shared=shared)
    host.server = await aiohttp_server(host.app(), host=address)
    return host


def h_entry(*links: str, outside: Sequence[str] = (), reply_to: str | None = None) -> str:
    """A post marked up with microformats2: links inside e-content, others around it."""
    content = " ".join(f'<a href="{link}">link {n}</a>' for n, link in enumerate(links))
    around = " ".join(f'<a href="{link}">elsewhere</a>' for link in outside)
    reply = f'<a class="u-in-reply-to" href="{reply_to}">in reply to</a>' if reply_to else ""
    return (f"<!doctype html><html><body><nav>{around}</nav>"
            f'<article class="h-entry"><h1 class="p-name">A post</h1>{reply}'
            f'<div class="e-content"><p>{content}</p></div></article></body></html>')


def advertising(endpoint: str, how: str = "link-element") -> tuple[str, list[tuple[str, str]]]:
    """A target page (body, headers) advertising a WebMention endpoint in one of the ways."""
    if how == "link-header":
        return "<html><body>a target</body></html>", [("Link", f'<{endpoint}>; rel="webmention"')]
    element = {"link-element": f'<link rel="webmention" href="{endpoint}">',
               "a-element": f'<a rel="webmention" href="{endpoint}">mentions</a>'}[how]
    return f"<html><head>{element}</head><body>a target</body></html>", []


@dataclass
class Receiver:
    """A WebMention receiver that checks as real ones do before it stores: it fetches the
    source and looks for the target in it. A mention whose source no longer links to the
    target, or answers other than 200, is marked no longer current, as both do.

    Answers as django-webmention 4.0.0 (views.py, receive(): 202 with a sentence on success,
    HttpResponseBadRequest(sentence) on refusal) or as webmentions 0.2.0's Flask adapter
    (webmention_route(): 200 {"status": "ok"}, 400 {"error": str(e)}).
    """

    kind: str  # "django-webmention" or "webmentions"
    server: object = None
    # (source, target) -> whether the mention is current (shown) or invalidated.
    stored: dict[tuple[str, str], bool] = field(default_factory=dict)
    received: list[tuple[str, str]] = field(default_factory=list)

    def url(self) -> str:
        return str(self.server.make_url("/webmention"))

    def current(self) -> set[tuple[str, str]]:
        return {mention for mention, shown in self.stored.items() if shown}

    async def _receive(self, request: web.Request) -> web.Response:
        form = await request.post()
        source, target = str(form.get("source", "")), str(form.get("target", ""))
        self.received.append((source, target))
        async with ClientSession() as session, session.get(source) as reply:
            status, text = reply.status, await reply.text()
        if status != 200:
            return self._refuse(source, target, "Could not fetch source URL")
        if target not in text:
            return self._refuse(source, target, "Source URL did not contain target URL")
        self.stored[source, target] = True
        if self.kind == "django-webmention":
            return web.Response(status=202, text="The webmention was successfully received",
                                content_type="text/html")
        return web.json_response({"status": "ok"})

    def _refuse(self, source: str, target: str, sentence: str) -> web.Response:
        if (source, target) in self.stored:
            self.stored[source, target] = False
        if self.kind == "django-webmention":
            return web.Response(status=400, text=sentence, content_type="text/html")
        return web.json_response(
            {"error": f"Invalid Webmention from '{source}' to '{target}': {sentence}"},
            status=400)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webmention", self._receive)
        return app


async def start_receiver(aiohttp_server, kind: str, address: str) -> Receiver:
    receiver = Receiver(kind)
    receiver.server = await aiohttp_server(receiver.app(), host=address)
    return receiver

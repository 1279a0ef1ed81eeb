"""Real receivers' refusals keep their meaning: local endpoints answer exactly as the
WebMention receivers people run do (status, content type, body, each cited to the source it
imitates), and a stdlib XML-RPC client sees the fault each refusal means, with its reason."""

import asyncio
import json
import xmlrpc.client
from collections.abc import Callable

import pytest
from aiohttp import web

SOURCE = "https://blog.example/2026/11/a-post"
TARGET = "https://site.example/notes/1"
# Long enough that echoing both used to fill the whole excerpt before the reason.
LONG_SOURCE = "https://blog.example/2026/11/" + "a-post-with-a-long-slug-" * 6
LONG_TARGET = "https://site.example/notes/" + "replying-at-length-" * 8

UNLINKED_SOURCE = "https://blog.example/2026/11/no-link"
DUPLICATE_TARGET = SOURCE + "/"


def django_bad_request(text: str) -> web.Response:
    """django.http.HttpResponseBadRequest(text): 400, text/html; charset=utf-8, the bare text."""
    return web.Response(status=400, body=text.encode(),
                        headers={"Content-Type": "text/html; charset=utf-8"})


def json_reply(status: int, document: dict) -> web.Response:
    """Flask's jsonify and FastAPI's JSONResponse: application/json, compact JSON."""
    return web.Response(status=status, body=json.dumps(document).encode() + b"\n",
                        headers={"Content-Type": "application/json"})


def webmentions_message(source: str, target: str, message: str) -> str:
    """webmentions 0.2.0, _exceptions.py, WebmentionException.__init__: the echoed URLs first."""
    return f"Invalid Webmention from '{source}' to '{target}': {message}"


def answering(endpoint, reply: Callable[[dict], web.Response]) -> None:
    """Make the endpoint answer each WebMention with reply(its form)."""

    async def answer(request: web.Request) -> web.Response:
        return reply(endpoint.received[-1].form)

    endpoint.answer = answer


async def pingback_fault(proxy, endpoint, source: str, target: str) -> xmlrpc.client.Fault:
    """The fault Python's xmlrpc.client sees for this pingback through the proxy."""
    url = str(proxy.make_url("/" + endpoint.url()))

    def call() -> xmlrpc.client.Fault:
        with xmlrpc.client.ServerProxy(url) as server:
            try:
                server.pingback.ping(source, target)
            except xmlrpc.client.Fault as fault:
                return fault
        raise AssertionError("the pingback succeeded")

    return await asyncio.wait_for(asyncio.to_thread(call), 10)


# django-webmention 4.0.0, src/webmention/views.py, receive(), and
# src/webmention/resolution.py, fetch_and_validate_source(): every refusal is
# HttpResponseBadRequest(a sentence), and an unexpected error HttpResponseServerError(str(e)).
DJANGO_WEBMENTION = [
    # views.py line 18: url_resolves(target) is false.
    pytest.param(lambda form: django_bad_request(
        "Target URL did not resolve to a resource on the server"),
        0x20, "Target URL did not resolve to a resource on the server",
        id="target-did-not-resolve"),
    # resolution.py line 61, raised as TargetNotFoundError, answered on views.py line 32.
    pytest.param(lambda form: django_bad_request("Source URL did not contain target URL"),
                 0x11, "Source URL did not contain target URL", id="source-without-link"),
    # resolution.py line 63: the source answered other than 200 (SourceFetchError).
    pytest.param(lambda form: django_bad_request("Could not fetch source URL"),
                 0x10, "Could not fetch source URL", id="source-not-fetched"),
    # views.py line 36: a form without source or target; nothing more to it than its status.
    pytest.param(lambda form: django_bad_request(
        "webmention source and/or target not in request"),
        0, "webmention source and/or target not in request", id="fields-missing"),
    # views.py line 34: requests.get(source) raised, its text as the body of a 500.
    pytest.param(lambda form: web.Response(
        status=500, headers={"Content-Type": "text/html; charset=utf-8"},
        body=b"HTTPSConnectionPool(host='blog.example', port=443): Max retries exceeded with "
             b"url: /2026/11/a-post (Caused by NewConnectionError('<urllib3.connection."
             b"HTTPSConnection object at 0x7f3c>: Failed to establish a new connection'))"),
        0x32, "Max retries exceeded", id="server-error"),
]


@pytest.mark.parametrize(("reply", "code", "reason"), DJANGO_WEBMENTION)
async def test_django_webmention_refusals_keep_their_meaning_and_text(
        proxy, endpoint, reply, code, reason):
    answering(endpoint, reply)

    fault = await pingback_fault(proxy, endpoint, SOURCE, TARGET)

    assert (fault.faultCode, reason in fault.faultString) == (code, True), fault.faultString
    assert "object at 0x" not in fault.faultString


# webmentions 0.2.0, src/python/webmentions/server/adapters/: flask.py webmention_route()
# answers {"error": str(e)} with 400 (tornado.py's handler the same), fastapi.py raises
# HTTPException(400, detail=str(e)); str(e) is WebmentionException's sentence, which echoes
# both URLs before the message of handlers/_parser.py WebmentionParser.parse() line 117.
WEBMENTIONS_ADAPTERS = [
    pytest.param("error", id="flask-and-tornado"),
    pytest.param("detail", id="fastapi"),
]


@pytest.mark.parametrize("key", WEBMENTIONS_ADAPTERS)
async def test_webmentions_foreign_target_is_fault_33_with_its_reason_after_long_urls(
        proxy, endpoint, key):
    answering(endpoint, lambda form: json_reply(400, {key: webmentions_message(
        form["source"], form["target"], "Target URL domain does not match server domain")}))

    fault = await pingback_fault(proxy, endpoint, LONG_SOURCE, LONG_TARGET)

    assert fault.faultCode == 0x21
    assert "Target URL domain does not match server domain" in fault.faultString
    assert "'https://blog.example/…' to 'https://site.example/…'" in fault.faultString
    assert len(fault.faultString) <= 500


async def test_webmentions_refusal_without_a_known_reason_keeps_its_reason(proxy, endpoint):
    # webmentions 0.2.0, handlers/_fetch.py line 83: the source's host is not public.
    answering(endpoint, lambda form: json_reply(400, {"error": webmentions_message(
        form["source"], form["target"], "host blog.example resolves to a non-public address")}))

    fault = await pingback_fault(proxy, endpoint, LONG_SOURCE, LONG_TARGET)

    assert fault.faultCode == 0
    assert fault.faultString.endswith("host blog.example resolves to a non-public address")


async def test_capjamesg_receiver_refuses_a_source_equal_to_its_target_as_fault_33(
        proxy, endpoint):
    # capjamesg/webmention-receiver, main.py, receiver(): source and target equal once their
    # trailing slashes are stripped, answered with Flask's jsonify({"message": ...}), 400.
    answering(endpoint, lambda form: json_reply(400, {"message": "Source cannot be equal to "
                                                                 "target."}))

    fault = await pingback_fault(proxy, endpoint, SOURCE, DUPLICATE_TARGET)

    assert fault.faultCode == 0x21
    assert "Source cannot be equal to target." in fault.faultString


async def test_django_wm_empty_bad_request_falls_back_on_its_status(proxy, endpoint):
    # django-wm 4.2.0, mentions/views/submit.py, WebmentionView.post(): a form that fails
    # validation gets HttpResponseBadRequest(), an empty text/html 400.
    answering(endpoint, lambda form: django_bad_request(""))

    fault = await pingback_fault(proxy, endpoint, SOURCE, TARGET)

    assert fault.faultCode == 0
    assert fault.faultString == "the endpoint answered HTTP 400 Bad Request"


async def test_bussator_bare_400_falls_back_on_its_status(proxy, endpoint):
    # Bussator 0.2, bussator/application.py, Request.make_error('400 Bad Request'): a WSGI
    # start_response with no headers and no body, for a missing or non-http source or target.
    answering(endpoint, lambda form: web.Response(status=400))

    fault = await pingback_fault(proxy, endpoint, SOURCE, TARGET)

    assert fault.faultCode == 0
    assert "HTTP 400" in fault.faultString


async def test_webmentiond_plain_text_error_falls_back_on_its_status(proxy, endpoint):
    # zerok/webmentiond, pkg/server/error.go, sendError(): Go's http.Error(w, "Error", 400),
    # text/plain with the single word, whatever went wrong.
    answering(endpoint, lambda form: web.Response(
        status=400, body=b"Error\n",
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}))

    fault = await pingback_fault(proxy, endpoint, SOURCE, TARGET)

    assert fault.faultCode == 0
    assert fault.faultString == "the endpoint answered HTTP 400 Bad Request: Error"

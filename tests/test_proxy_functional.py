"""The proxy over real sockets: pingbacks in, WebMentions out, every reply a correct answer."""

import asyncio
import html
import logging
import xmlrpc.client
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from pingproxy import __version__
from tests.conftest import fault_of, metric_value, ping_body, read_answer, relay_lines

SOURCE = "http://blog.example/2026/11/a-post"
TARGET = "https://site.example/notes/1"


async def ping(proxy, path: str, *, source: str = SOURCE, target: str = TARGET, **kwargs):
    return await proxy.post(path, data=ping_body(source, target), **kwargs)


async def test_pingback_is_forwarded_as_a_webmention_form(proxy, endpoint):
    response = await ping(proxy, "/" + endpoint.url(), headers={"Content-Type": "text/xml"})

    assert response.status == 200
    text = read_answer(await response.read())
    [received] = endpoint.received
    assert received.form == {"source": SOURCE, "target": TARGET}
    headers = received.headers
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Accept"].startswith("application/json")
    assert f"pingproxy/{__version__}" in headers["User-Agent"]
    assert "Webmention" in headers["User-Agent"]
    assert headers["Forwarded"] == "for=127.0.0.1"
    assert headers["Via"] == "1.1 pingproxy-testproxy"
    assert SOURCE in text and TARGET in text and "202" in text
    assert endpoint.url("/status/42") in text
    assert "Webmention was queued" in text


async def test_form_body_is_properly_encoded(proxy, endpoint):
    target = "https://site.example/ab?x=1&y=é"
    await ping(proxy, "/" + endpoint.url(), target=target)

    [received] = endpoint.received
    assert received.form == {"source": SOURCE, "target": target}
    assert b"x%3D1%26y%3D%C3%A9" in received.body


@pytest.mark.parametrize("path_for", [
    pytest.param(lambda url: "/" + url + "?k=1", id="path-form"),
    pytest.param(lambda url: "/" + quote(url + "?k=1", safe=""), id="percent-encoded"),
    pytest.param(lambda url: "/" + url.replace("://", ":/") + "?k=1", id="merged-slashes"),
    pytest.param(lambda url: "/webmention?forward=" + quote(url + "?k=1", safe=""),
                 id="forward-parameter"),
    pytest.param(lambda url: "/webmention?forward=" + url + "?k=1", id="forward-unescaped"),
])
async def test_every_route_form_reaches_the_endpoint_with_its_query(proxy, endpoint, path_for):
    response = await ping(proxy, path_for(endpoint.url("/webmention")))

    assert "forwarded" in read_answer(await response.read())
    [received] = endpoint.received
    assert received.path == "/webmention"
    assert received.query == "k=1"
    assert received.form == {"source": SOURCE, "target": TARGET}


async def test_two_endpoint_parameters_stay_in_the_endpoint_url(proxy, endpoint):
    await ping(proxy, "/" + endpoint.url("/webmention") + "?a=1&b=2")

    assert endpoint.received[0].query == "a=1&b=2"


SUCCESS_REPLIES = [
    pytest.param({"status": 200, "text": "ok"}, "200", id="200"),
    pytest.param({"status": 201, "json": {"result": "created"},
                  "headers": {"Location": "https://site.example/status/9"}},
                 "https://site.example/status/9", id="201-location"),
    pytest.param({"status": 202, "json": {"summary": "queued for processing"}},
                 "queued for processing", id="202-summary"),
    pytest.param({"status": 204}, "204", id="204"),
]


@pytest.mark.parametrize(("reply", "expected"), SUCCESS_REPLIES)
async def test_any_2xx_reply_is_a_success_string(proxy, endpoint, reply, expected):
    endpoint.reply(**reply)

    response = await ping(proxy, "/" + endpoint.url())

    text = read_answer(await response.read())
    assert isinstance(text, str) and expected in text


def webmention_io(status, name, description="details"):
    return {"status": status, "json": {"error": name, "error_description": description}}


def wordpress(name, status=400):
    return {"status": status,
            "json": {"code": name, "message": "explained", "data": {"status": status}}}


ERROR_REPLIES = [
    pytest.param(webmention_io(400, "source_not_found"), 0x10, "source_not_found: details"),
    pytest.param(webmention_io(400, "invalid_source"), 0x10, "invalid_source"),
    pytest.param(webmention_io(400, "no_link_found"), 0x11, "no_link_found: details"),
    pytest.param(webmention_io(400, "target_not_found"), 0x20, "target_not_found"),
    pytest.param(webmention_io(400, "invalid_target"), 0x21, "invalid_target"),
    pytest.param(webmention_io(400, "target_not_supported"), 0x21, "target_not_supported"),
    pytest.param(webmention_io(400, "already_registered"), 0x30, "already_registered"),
    pytest.param({"status": 401, "text": "no"}, 0x31, "401"),
    pytest.param({"status": 403, "text": "no"}, 0x31, "403"),
    pytest.param(webmention_io(400, "forbidden"), 0x31, "forbidden"),
    pytest.param(webmention_io(400, "access_denied"), 0x31, "access_denied"),
    pytest.param(webmention_io(400, "blocked"), 0x31, "blocked"),
    pytest.param({"status": 429, "text": "slow down", "headers": {"Retry-After": "30"}},
                 0x31, "rate limited by the endpoint, retry after 30 s", id="429"),
    pytest.param(webmention_io(429, "rate_limit_exceeded"), 0x31, "rate limited"),
    pytest.param({"status": 404, "text": "Not Found"}, 0, "404", id="404"),
    pytest.param({"status": 400, "text": "Bad Request"}, 0, "Bad Request", id="bare-400"),
    pytest.param({"status": 400, "text": "no_link_found\n\nThe source has no link."},
                 0x11, "no_link_found: The source has no link.", id="plain-text-name"),
    pytest.param({"status": 400, "json": {"error": "Source URL does not link to you."}},
                 0x11, "Source URL does not link to you.", id="error-sentence"),
    pytest.param({"status": 400, "json": {"error": "Your request could not be processed."}},
                 0, "Your request could not be processed.", id="unknown-sentence"),
    pytest.param(wordpress("target_not_found"), 0x11, "target_not_found: explained"),
    pytest.param(wordpress("target_not_valid"), 0x21, "target_not_valid"),
    pytest.param(wordpress("target_mismatching_domain"), 0x21, "target_mismatching_domain"),
    pytest.param(wordpress("source_equals_target"), 0x21, "source_equals_target"),
    pytest.param(wordpress("webmentions_disabled"), 0x21, "webmentions_disabled"),
    pytest.param(wordpress("http_error", 404), 0x10, "http_error"),
    pytest.param(webmention_io(500, "internal_server_error"), 0x32, "internal_server_error"),
    pytest.param({"status": 502, "text": "Bad Gateway"}, 0x32, "502", id="502"),
    pytest.param({"status": 503, "text": ""}, 0x32, "503", id="503"),
    pytest.param({"status": 301, "headers": {"Location": "/elsewhere"}}, 0x32, "301", id="301"),
    pytest.param({"status": 302, "headers": {"Location": "/elsewhere"}}, 0x32, "302", id="302"),
]


@pytest.mark.parametrize(("reply", "code", "text"), ERROR_REPLIES)
async def test_endpoint_errors_become_the_right_fault(proxy, endpoint, reply, code, text):
    endpoint.reply(**reply)

    response = await ping(proxy, "/" + endpoint.url())

    assert response.status == 200
    fault = await fault_of(response)
    assert fault.faultCode == code
    assert text in fault.faultString
    assert "Traceback" not in fault.faultString


async def test_fault_text_of_a_noisy_body_is_a_short_clean_excerpt(proxy, endpoint):
    endpoint.reply(400, text="bad\x00\x07 thing\n" + "x" * 5000)

    fault = await fault_of(await ping(proxy, "/" + endpoint.url()))

    assert fault.faultCode == 0
    assert "\x00" not in fault.faultString and len(fault.faultString) < 400


@pytest.mark.parametrize("status", [307, 308])
async def test_307_and_308_are_followed_with_the_same_post(proxy, endpoint, status):
    async def answer(request):
        if request.path == "/old":
            raise _redirect(status, "/new")
        return web.Response(status=202)

    endpoint.answer = answer

    response = await ping(proxy, "/" + endpoint.url("/old"))

    assert "202" in read_answer(await response.read())
    assert [r.path for r in endpoint.received] == ["/old", "/new"]
    assert endpoint.received[1].form == {"source": SOURCE, "target": TARGET}


def _redirect(status, location):
    return web.HTTPTemporaryRedirect(location) if status == 307 else web.HTTPPermanentRedirect(
        location)


async def test_more_than_three_redirects_is_fault_50(proxy, endpoint):
    async def answer(request):
        hop = int(request.query.get("hop", "0"))
        raise web.HTTPTemporaryRedirect(f"/wm?hop={hop + 1}")

    endpoint.answer = answer

    fault = await fault_of(await ping(proxy, "/" + endpoint.url("/wm")))

    assert fault.faultCode == 0x32 and "redirects" in fault.faultString
    assert len(endpoint.received) == 4


async def test_refused_connection_is_fault_50(proxy, unused_tcp_port):
    fault = await fault_of(await ping(proxy, f"/http://127.0.0.1:{unused_tcp_port}/wm"))

    assert fault.faultCode == 0x32
    assert "could not connect" in fault.faultString


async def test_timeout_is_fault_50(make_proxy, endpoint):
    endpoint.reply(202, delay=2.0)
    proxy = await make_proxy(forward_timeout_seconds=0.3)

    fault = await fault_of(await ping(proxy, "/" + endpoint.url()))

    assert fault.faultCode == 0x32 and "0.3 s" in fault.faultString


async def test_reply_over_the_cap_is_fault_50(make_proxy, endpoint):
    endpoint.reply(202, text="x" * 1001)
    proxy = await make_proxy(max_reply_bytes=1000)

    fault = await fault_of(await ping(proxy, "/" + endpoint.url()))

    assert fault.faultCode == 0x32 and "larger than 1000 bytes" in fault.faultString


async def test_reply_at_the_cap_is_read(make_proxy, endpoint):
    endpoint.reply(202, text="x" * 1000)
    proxy = await make_proxy(max_reply_bytes=1000)

    assert "202" in read_answer(await (await ping(proxy, "/" + endpoint.url())).read())


async def test_tls_failure_is_fault_50(proxy, endpoint):
    https_url = endpoint.url().replace("http://", "https://")

    fault = await fault_of(await ping(proxy, "/" + https_url))

    assert fault.faultCode == 0x32


async def test_an_xmlrpc_fault_on_2xx_is_not_a_success(proxy, endpoint):
    endpoint.reply(200, text=xmlrpc.client.dumps(xmlrpc.client.Fault(-32700, "parse error"),
                                                 methodresponse=True), content_type="text/xml")

    fault = await fault_of(await ping(proxy, "/" + endpoint.url()))

    assert fault.faultCode == 0x21 and "not a WebMention endpoint" in fault.faultString


CALL_FAULTS = [
    pytest.param(b"<methodCall><methodName>pingback.ping</methodName>", -32700, id="truncated"),
    pytest.param(b"", -32700, id="empty"),
    pytest.param(b"<html><body>hi</body></html>", -32600, id="not-xmlrpc"),
    pytest.param(xmlrpc.client.dumps((), "weblogUpdates.ping").encode(), -32601, id="unknown"),
    pytest.param(xmlrpc.client.dumps((SOURCE,), "pingback.ping").encode(), -32602, id="one-param"),
    pytest.param(xmlrpc.client.dumps((SOURCE, 7), "pingback.ping").encode(), -32602, id="int"),
    pytest.param(ping_body("not a url", TARGET), 0x10, id="bad-source"),
    pytest.param(ping_body("ftp://blog.example/x", TARGET), 0x10, id="ftp-source"),
    pytest.param(ping_body(SOURCE, "/relative"), 0x21, id="bad-target"),
    pytest.param(ping_body(SOURCE, SOURCE), 0x21, id="target-is-source"),
]


@pytest.mark.parametrize(("body", "code"), CALL_FAULTS)
async def test_bad_calls_get_their_fault_and_nothing_is_forwarded(proxy, endpoint, body, code):
    response = await proxy.post("/" + endpoint.url(), data=body)

    assert response.status == 200
    assert (await fault_of(response)).faultCode == code
    assert endpoint.received == []


@pytest.mark.parametrize("path", ["/ftp://site.example/wm", "/not-a-url",
                                  "/webmention", "/webmention?forward=/relative"])
async def test_a_pingback_url_without_a_valid_endpoint_is_fault_33(proxy, path):
    fault = await fault_of(await ping(proxy, path))

    assert fault.faultCode == 0x21
    assert "names no valid WebMention endpoint" in fault.faultString


SLOPPY_BODIES = [
    pytest.param(lambda b: b.replace(b"<?xml version='1.0'?>\n", b""), id="no-declaration"),
    pytest.param(lambda b: b, id="single-quoted-declaration"),
    pytest.param(lambda b: b.replace(b"'", b'"'), id="double-quoted-declaration"),
    pytest.param(lambda b: b"\xef\xbb\xbf \r\n" + b + b"\n\n", id="bom-and-whitespace"),
    pytest.param(lambda b: b.replace(b"<string>", b"").replace(b"</string>", b""), id="untyped"),
]


@pytest.mark.parametrize("sloppy", SLOPPY_BODIES)
async def test_sloppy_but_honest_calls_are_accepted(proxy, endpoint, sloppy):
    response = await proxy.post("/" + endpoint.url(), data=sloppy(ping_body(SOURCE, TARGET)))

    assert "forwarded" in read_answer(await response.read())
    assert endpoint.received[0].form == {"source": SOURCE, "target": TARGET}


async def test_form_content_type_with_an_xml_body_is_accepted(proxy, endpoint):
    response = await ping(proxy, "/" + endpoint.url(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert "forwarded" in read_answer(await response.read())
    assert endpoint.received[0].form == {"source": SOURCE, "target": TARGET}


async def test_unescaped_ampersands_in_urls_are_repaired(proxy, endpoint):
    target = "https://site.example/post?a=1&b=2"
    body = (f"<?xml version=\"1.0\"?><methodCall><methodName>pingback.ping</methodName><params>"
            f"<param><value><string>{SOURCE}?x=1&y=2</string></value></param>"
            f"<param><value><string>{target}</string></value></param>"
            f"</params></methodCall>").encode()

    response = await proxy.post("/" + endpoint.url(), data=body)

    assert "forwarded" in read_answer(await response.read())
    assert endpoint.received[0].form == {"source": SOURCE + "?x=1&y=2", "target": target}


@pytest.mark.parametrize("encoding", ["utf-8", "iso-8859-1", "utf-16"])
async def test_declared_encodings_are_honoured(proxy, endpoint, encoding):
    target = "https://site.example/café"
    body = xmlrpc.client.dumps((SOURCE, target), "pingback.ping", encoding=encoding)

    await proxy.post("/" + endpoint.url(), data=body.encode(encoding))

    assert endpoint.received[0].form == {"source": SOURCE, "target": target}


async def test_wordpress_style_http_10_request_gets_a_complete_answer(proxy, endpoint):
    body = ping_body(SOURCE, TARGET)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        f"POST /{endpoint.url()} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    raw = await asyncio.wait_for(reader.read(), 5)  # to EOF: the server closes
    writer.close()

    head, _, answer = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {len(answer)}".encode() in head
    assert b"Content-Type: text/xml; charset=utf-8" in head
    assert "forwarded" in read_answer(answer)


async def test_stdlib_server_proxy_sees_each_fault_code(proxy, endpoint):
    endpoint.reply(400, json={"error": "no_link_found", "error_description": "no link"})

    def call(*args):
        with xmlrpc.client.ServerProxy(str(proxy.make_url("/" + endpoint.url()))) as server:
            try:
                return server.pingback.ping(*args)
            except xmlrpc.client.Fault as fault:
                return fault.faultCode

    assert await asyncio.to_thread(call, SOURCE, TARGET) == 0x11
    assert await asyncio.to_thread(call, "nonsense", TARGET) == 0x10
    assert await asyncio.to_thread(call, SOURCE, "nonsense") == 0x21
    endpoint.reply(202)
    assert "202" in await asyncio.to_thread(call, SOURCE, TARGET)


async def test_introspection_follows_the_convention(proxy):
    def introspect():
        with xmlrpc.client.ServerProxy(str(proxy.make_url("/"))) as server:
            return (server.system.listMethods(), server.system.methodSignature("pingback.ping"),
                    server.system.methodHelp("pingback.ping"))

    methods, signature, help_text = await asyncio.to_thread(introspect)

    assert "pingback.ping" in methods and "system.multicall" not in methods
    assert signature == [["string", "string", "string"]]
    assert "WebMention" in help_text


async def test_multicall_is_refused_and_nothing_is_forwarded(proxy, endpoint):
    body = xmlrpc.client.dumps(([{"methodName": "pingback.ping", "params": [SOURCE, TARGET]}],),
                               "system.multicall").encode()

    fault = await fault_of(await proxy.post("/" + endpoint.url(), data=body))

    assert fault.faultCode == -32601
    assert endpoint.received == []


async def test_landing_page_shows_usage(proxy):
    response = await proxy.get("/")

    page = html.unescape(await response.text())
    assert response.status == 200 and response.content_type == "text/html"
    assert 'rel="pingback"' in page and "X-Pingback" in page


@pytest.mark.parametrize("path", ["/https://site.example/webmention",
                                  "/webmention?forward=https://site.example/webmention"])
async def test_following_a_pingback_url_shows_where_it_forwards(proxy, path):
    response = await proxy.get(path)

    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert "pingback endpoint" in page and "https://site.example/webmention" in page


async def test_head_on_a_pingback_url_is_answered(proxy):
    response = await proxy.head("/https://site.example/webmention")

    assert response.status == 200


async def test_other_methods_get_405_with_allow(proxy):
    response = await proxy.put("/https://site.example/webmention", data=b"x")

    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


async def test_forward_finishes_after_the_sender_hangs_up(proxy, endpoint, caplog):
    finished = asyncio.Event()

    async def slow_answer(request):
        await asyncio.sleep(0.6)
        still_connected = request.transport is not None and not request.transport.is_closing()
        finished.set()
        return web.Response(status=202 if still_connected else 599)

    endpoint.answer = slow_answer
    caplog.set_level(logging.INFO, logger="pingproxy.relay")

    with pytest.raises(asyncio.TimeoutError):
        await ping(proxy, "/" + endpoint.url(), timeout=aiohttp.ClientTimeout(total=0.2))
    await asyncio.wait_for(finished.wait(), 5)
    await asyncio.sleep(0.1)

    assert endpoint.received[0].form == {"source": SOURCE, "target": TARGET}
    lines = relay_lines(proxy, caplog)
    assert any("outcome=success" in line and "upstream_status=202" in line for line in lines)


async def test_a_request_carrying_this_proxys_via_name_is_a_loop_and_leaves_its_line(
        proxy, endpoint, caplog):
    caplog.set_level(logging.INFO, logger="pingproxy.relay")
    response = await ping(proxy, "/" + endpoint.url(), headers={"Via": "1.1 pingproxy-testproxy"})

    fault = await fault_of(response)
    assert fault.faultCode == 0x21 and "loop" in fault.faultString
    assert endpoint.received == []
    [line] = relay_lines(proxy, caplog)
    assert line.startswith("pingback outcome=loop fault=33 ")


async def test_a_proxy_pointed_at_itself_stops_after_one_hop(proxy, endpoint):
    itself = str(proxy.make_url("/" + endpoint.url()))

    fault = await fault_of(await ping(proxy, "/" + itself))

    assert fault.faultCode == 0x21
    assert endpoint.received == []


async def test_two_proxies_pointed_at_each_other_stop(make_proxy, endpoint):
    first, second = await make_proxy(instance_id="first"), await make_proxy(instance_id="second")
    chain = "/" + str(second.make_url("/" + str(first.make_url("/" + endpoint.url()))))

    fault = await fault_of(await ping(first, chain))

    assert fault.faultCode == 0x21
    assert endpoint.received == []


async def test_each_pingback_leaves_one_log_line_with_its_fields(proxy, endpoint, caplog):
    caplog.set_level(logging.DEBUG, logger="pingproxy.relay")

    await ping(proxy, "/" + endpoint.url())
    endpoint.reply(400, json={"error": "no_link_found"})
    await ping(proxy, "/" + endpoint.url())
    await ping(proxy, "/" + endpoint.url(), source="not-a-url")

    success, refused, invalid = relay_lines(proxy, caplog)
    assert success.startswith("pingback outcome=success fault=- upstream_status=202 duration_ms=")
    assert f"endpoint=127.0.0.1 source={SOURCE} target={TARGET}" in success
    assert "outcome=no_link fault=17 upstream_status=400" in refused
    assert "outcome=invalid_source fault=16 upstream_status=-" in invalid


async def test_a_call_refused_before_any_forward_leaves_its_line_at_info(proxy, endpoint, caplog):
    caplog.set_level(logging.INFO, logger="pingproxy.relay")

    for _ in range(3):
        await ping(proxy, "/" + endpoint.url(), source="not-a-url")
    await ping(proxy, "/" + endpoint.url())

    *refused, forwarded = relay_lines(proxy, caplog)
    assert [line.split()[1] for line in refused] == ["outcome=invalid_source"] * 3
    assert forwarded.startswith("pingback outcome=success ")
    metrics = await (await proxy.get("/metrics")).text()
    assert metric_value(metrics, "pingproxy_pingbacks_total", outcome="invalid_source") == 3


async def test_log_lines_cannot_be_forged_and_never_hold_the_body(proxy, endpoint, caplog):
    caplog.set_level(logging.DEBUG, logger="pingproxy.relay")
    forged = f"{TARGET}\n2026-01-01 INFO pingproxy.relay pingback outcome=success"
    body = ping_body(SOURCE, forged).replace(b"<params>", b"<!-- BODY-MARKER --><params>")

    await proxy.post("/" + endpoint.url(), data=body)

    [line] = relay_lines(proxy, caplog)
    assert "\n" not in line and "BODY-MARKER" not in line
    assert line.startswith("pingback outcome=invalid_target ")
    assert 'target="https://site.example/notes/1\\n2026' in line
    assert endpoint.received == []

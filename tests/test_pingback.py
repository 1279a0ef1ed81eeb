"""XML-RPC reading and writing, without a network."""

import xmlrpc.client

import pytest

from pingproxy import pingback
from pingproxy.errors import Outcome, RequestError

SOURCE, TARGET = "http://a.example/post", "https://b.example/page"


def call_xml(inner: str, declaration: str = "<?xml version='1.0'?>") -> bytes:
    return f"{declaration}<methodCall>{inner}</methodCall>".encode()


PING = ("<methodName>pingback.ping</methodName><params>"
        f"<param><value><string>{SOURCE}</string></value></param>"
        f"<param><value><string>{TARGET}</string></value></param></params>")


def test_reads_a_stdlib_call():
    call = pingback.parse_call(xmlrpc.client.dumps((SOURCE, TARGET), "pingback.ping").encode())

    assert call == pingback.Call("pingback.ping", (SOURCE, TARGET))
    assert pingback.ping_arguments(call) == (SOURCE, TARGET)


def test_untyped_values_are_strings():
    call = pingback.parse_call(call_xml(PING.replace("<string>", "").replace("</string>", "")))

    assert call.params == (SOURCE, TARGET)


def test_a_call_without_params_has_none():
    assert pingback.parse_call(call_xml("<methodName>system.listMethods</methodName>")).params == ()


BAD_BODIES = [
    pytest.param(b"", Outcome.NOT_WELL_FORMED, id="empty"),
    pytest.param(b"<methodCall>", Outcome.NOT_WELL_FORMED, id="unclosed"),
    pytest.param(call_xml(PING) + b"<junk/>", Outcome.NOT_WELL_FORMED, id="trailing-element"),
    pytest.param(call_xml(PING) + b"garbage", Outcome.NOT_WELL_FORMED, id="trailing-text"),
    pytest.param(call_xml(PING).replace(b"a.example", b"a.\xff\xfe"),
                 Outcome.NOT_WELL_FORMED, id="invalid-utf8"),
    pytest.param(call_xml(PING).replace(b"a.example", b"a.\x00"),
                 Outcome.NOT_WELL_FORMED, id="nul-byte"),
    pytest.param(call_xml(PING, "<?xml version='1.0' encoding='x-unknown-42'?>"),
                 Outcome.UNSUPPORTED_ENCODING, id="unknown-encoding"),
    pytest.param(call_xml(PING, "<?xml version='1.0' encoding='shift_jis'?>"),
                 Outcome.UNSUPPORTED_ENCODING, id="multibyte-encoding"),
    pytest.param(b"<methodResponse><params/></methodResponse>", Outcome.INVALID_REQUEST,
                 id="a-response"),
    pytest.param(b"<html/>", Outcome.INVALID_REQUEST, id="html"),
    pytest.param(call_xml("<params/>"), Outcome.INVALID_REQUEST, id="no-method-name"),
    pytest.param(call_xml("<methodName/>"), Outcome.INVALID_REQUEST, id="empty-method-name"),
    pytest.param(call_xml(PING + "<extra/>"), Outcome.INVALID_REQUEST, id="extra-element"),
    pytest.param(call_xml("<methodName>a</methodName><methodName>b</methodName>"),
                 Outcome.INVALID_REQUEST, id="two-method-names"),
    pytest.param(call_xml(PING.replace("<string>", "<string><b>")
                          .replace("</string>", "</b></string>")),
                 Outcome.INVALID_REQUEST, id="markup-in-string"),
    pytest.param(call_xml("<methodName>m</methodName><params><param><value><int>x</int>"
                          "</value></param></params>"), Outcome.INVALID_REQUEST, id="bad-int"),
    pytest.param(call_xml("<methodName>m</methodName><params><param><value><boolean>7"
                          "</boolean></value></param></params>"),
                 Outcome.INVALID_REQUEST, id="bad-boolean"),
    pytest.param(call_xml("<methodName>m</methodName><params><param><value><struct><member>"
                          "<value>1</value></member></struct></value></param></params>"),
                 Outcome.INVALID_REQUEST, id="member-without-name"),
    pytest.param(call_xml("<methodName>m</methodName><params><param><value><i4>" + "9" * 5000
                          + "</i4></value></param></params>"),
                 Outcome.INVALID_REQUEST, id="huge-int"),
]


@pytest.mark.parametrize(("body", "outcome"), BAD_BODIES)
def test_bad_bodies_get_their_fault(body, outcome):
    with pytest.raises(RequestError) as caught:
        pingback.parse_call(body)

    assert caught.value.outcome is outcome


def test_nesting_beyond_the_limit_is_refused():
    depth = pingback.MAX_XML_DEPTH
    value = "<value><array><data>" * depth + "</data></array></value>" * depth
    body = call_xml(f"<methodName>m</methodName><params><param>{value}</param></params>")

    with pytest.raises(RequestError) as caught:
        pingback.parse_call(body)

    assert caught.value.outcome is Outcome.INVALID_REQUEST
    assert "deeper" in str(caught.value)


def test_honest_nesting_is_read():
    value = xmlrpc.client.dumps(([[["deep"]]], {"k": [1, 2]}), "m").encode()

    assert pingback.parse_call(value).params == ([[["deep"]]], {"k": [1, 2]})


@pytest.mark.parametrize("declaration", [
    '<?xml version="1.0" encoding="ISO-8859-1"?>', "<?xml version='1.0' encoding='latin-1'?>",
    "<?xml version='1.0' encoding='windows-1252'?>",
])
def test_single_byte_encodings_are_decoded(declaration):
    body = call_xml(PING.replace(TARGET, TARGET + "/café"), declaration)

    call = pingback.parse_call(body.decode().encode("latin-1"))

    assert call.params[1] == TARGET + "/café"


def test_bare_ampersands_are_repaired_and_entities_kept():
    body = call_xml(PING.replace(TARGET, TARGET + "?a=1&b=2&amp;c=3&#38;d"))

    assert pingback.parse_call(body).params[1] == TARGET + "?a=1&b=2&c=3&d"


def test_repair_does_not_hide_other_errors():
    with pytest.raises(RequestError) as caught:
        pingback.parse_call(call_xml(PING.replace(TARGET, TARGET + "?a&b")) + b"<")

    assert caught.value.outcome is Outcome.NOT_WELL_FORMED


@pytest.mark.parametrize("params", [(), (SOURCE,), (SOURCE, TARGET, "x"), (SOURCE, 1),
                                    (SOURCE, xmlrpc.client.Binary(b"x")), ([SOURCE], TARGET)])
def test_ping_takes_exactly_two_strings(params):
    with pytest.raises(RequestError) as caught:
        pingback.ping_arguments(pingback.Call("pingback.ping", params))

    assert caught.value.outcome is Outcome.INVALID_PARAMS


@pytest.mark.parametrize(("method", "params", "expected"), [
    ("system.listMethods", (), ["pingback.ping", "system.listMethods", "system.methodHelp",
                                "system.methodSignature"]),
    ("system.methodSignature", ("pingback.ping",), [["string", "string", "string"]]),
    ("system.methodSignature", ("system.listMethods",), [["array"]]),
])
def test_introspection(method, params, expected):
    assert pingback.introspect(pingback.Call(method, params)) == expected


@pytest.mark.parametrize(("method", "params", "outcome"), [
    ("system.multicall", ([],), Outcome.METHOD_NOT_FOUND),
    ("blogger.getUsersBlogs", (), Outcome.METHOD_NOT_FOUND),
    ("system.methodHelp", ("nope",), Outcome.INVALID_PARAMS),
    ("system.methodSignature", (), Outcome.INVALID_PARAMS),
])
def test_introspection_refusals(method, params, outcome):
    with pytest.raises(RequestError) as caught:
        pingback.introspect(pingback.Call(method, params))

    assert caught.value.outcome is outcome


def test_answers_are_read_by_the_stdlib():
    assert xmlrpc.client.loads(pingback.render_success("ok & <done>"))[0] == ("ok & <done>",)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(pingback.render_fault(17, "no link\x00\x1b here"))
    assert caught.value.faultCode == 17 and caught.value.faultString == "no link here"


def test_clean_text_bounds_length():
    assert len(pingback.clean_text("x" * 1000, 50)) == 50


@pytest.mark.parametrize(("body", "expected"), [
    (xmlrpc.client.dumps(xmlrpc.client.Fault(-32700, "parse error"), methodresponse=True).encode(),
     (-32700, "parse error")),
    (xmlrpc.client.dumps(("ok",), methodresponse=True).encode(), None),
    (b"<fault>not xml", None),
    (b'{"json": true}', None),
])
def test_read_fault(body, expected):
    assert pingback.read_fault(body) == expected


def response(value: object) -> bytes:
    """A methodResponse as the stdlib's SimpleXMLRPCServer writes it."""
    return xmlrpc.client.dumps(value if isinstance(value, xmlrpc.client.Fault) else (value,),
                               methodresponse=True).encode()


@pytest.mark.parametrize(("body", "expected"), [
    (response("Pingback registered"), pingback.ServerAnswer(value="Pingback registered")),
    (response(["pingback.ping", "system.listMethods"]),
     pingback.ServerAnswer(value=["pingback.ping", "system.listMethods"])),
    (response(xmlrpc.client.Fault(48, "already")), pingback.ServerAnswer(fault=(48, "already"))),
    (response(xmlrpc.client.Fault("17", "odd code")), pingback.ServerAnswer(fault=(0, "odd code"))),
])
def test_read_answer_reads_values_and_faults(body, expected):
    assert pingback.read_answer(body) == expected


@pytest.mark.parametrize("body", [
    b"<html><body>Forbidden</body></html>",
    b"",
    b'{"error": "nope"}',
    pingback.call_body(pingback.PING_METHOD, ("http://a.example/", "http://b.example/")),
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodResponse/>',
    b"<methodResponse><fault><value><struct></struct></value></fault></methodResponse>",
])
def test_read_answer_refuses_what_is_not_a_response(body):
    with pytest.raises(ValueError):
        pingback.read_answer(body)


def test_call_body_is_what_the_stdlib_reads():
    body = pingback.call_body(pingback.PING_METHOD, ("http://a.example/?x=1&y=2", "http://b/"))

    assert xmlrpc.client.loads(body) == (("http://a.example/?x=1&y=2", "http://b/"),
                                         "pingback.ping")


@pytest.mark.parametrize("text", ["ok", "a & b < c > d \"e\" 'f'", "é\U0001F600", "x\x00\x1by",
                                  "]]>", "z" * 1000])
def test_a_string_answer_is_written_byte_for_byte_as_the_stdlib_writes_it(text):
    expected = xmlrpc.client.dumps((pingback.clean_text(text),), methodresponse=True,
                                   encoding="utf-8").encode()

    assert pingback.render_success(text) == expected

"""pingback.ping's own reader against the stdlib's: the same call or the same fault, body by body.

The corpus is every body the other tests send (the fuzz tests' calls, the hostile-body
table, the bad bodies and bad calls), the bodies six real senders write, and, by hypothesis,
those bodies mutated around the one shape the fast reader takes.
"""

import xmlrpc.client
from html import escape
from xml.parsers.expat import ExpatError

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.hostile_bodies import hostile_bodies, nested
from pingproxy import pingback
from pingproxy.errors import RequestError
from pingproxy.pingback_call import read_ping
from tests.test_fuzz_functional import VALID_CALLS, mutated_calls
from tests.test_pingback import BAD_BODIES
from tests.test_proxy_functional import CALL_FAULTS

SOURCE = "https://blog.example/2026/12/a-post?ref=feed&utm=x"
TARGET = "https://site.example/notes/1"


def python_xmlrpc(source: str, target: str) -> bytes:
    """Python's xmlrpc.client: <?xml version='1.0'?>, a line per element, escaped text."""
    return xmlrpc.client.dumps((source, target), "pingback.ping").encode()


def wordpress_ixr(source: str, target: str) -> bytes:
    """WordPress's IXR_Request: each param on one line, htmlspecialchars in <string>."""
    params = "".join(f"<param><value><string>{escape(text, quote=True)}</string></value>"
                     "</param>\n" for text in (source, target))
    return ('<?xml version="1.0"?>\n<methodCall>\n<methodName>pingback.ping</methodName>\n'
            f"<params>\n{params}</params></methodCall>").encode()


def webmention_app(source: str, target: str) -> bytes:
    """webmention.app (remy/wm, lib/send/pingback.js): an indented template; "&" left bare."""
    return ('<?xml version="1.0"?>\n<methodCall>\n  <methodName>pingback.ping</methodName>\n'
            f"  <params>\n    <param><value><string>{source}</string></value></param>\n"
            f"    <param><value><string>{target}</string></value></param>\n  </params>\n"
            "</methodCall>").encode()


def go_jamming(source: str, target: str) -> bytes:
    """go-jamming (app/pingback/send/send.go): a tab-indented template, UTF-8 declared,
    the URLs put in unescaped."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<methodCall>\n'
            "\t<methodName>pingback.ping</methodName>\n\t<params>\n"
            f"\t\t<param>\n\t\t\t<value><string>{source}</string></value>\n\t\t</param>\n"
            f"\t\t<param>\n\t\t\t<value><string>{target}</string></value>\n\t\t</param>\n"
            "\t</params>\n</methodCall>").encode()


def node_xmlrpc(source: str, target: str) -> bytes:
    """npm's xmlrpc: one line, strings without "<" or "&" in CDATA sections."""
    def string(text: str) -> str:
        plain = "<" not in text and "&" not in text and "]]>" not in text
        return f"<![CDATA[{text}]]>" if plain else escape(text, quote=False)
    params = "".join(f"<param><value><string>{string(text)}</string></value></param>"
                     for text in (source, target))
    return ('<?xml version="1.0"?><methodCall><methodName>pingback.ping</methodName>'
            f"<params>{params}</params></methodCall>").encode()


def php_xmlrpc(source: str, target: str) -> bytes:
    """PHP's xmlrpc_encode_request (mention-client-php, Fat-Free's Pingback): ISO-8859-1
    declared, an element a line, indented by one space a level."""
    params = "".join(f" <param>\n  <value>\n   <string>{escape(text, quote=False)}</string>\n"
                     "  </value>\n </param>\n" for text in (source, target))
    return ('<?xml version="1.0" encoding="iso-8859-1"?>\n<methodCall>\n'
            f"<methodName>pingback.ping</methodName>\n<params>\n{params}</params>\n"
            "</methodCall>\n").encode("iso-8859-1")


REAL_CLIENTS = {client.__name__: client for client in (
    python_xmlrpc, wordpress_ixr, webmention_app, go_jamming, node_xmlrpc, php_xmlrpc)}
CLIENT_BODIES = [client(source, target) for client in REAL_CLIENTS.values()
                 for source, target in ((SOURCE, TARGET), ("not a url", "http://b.example/é"),
                                        (" http://a.example/ ", ""))]
CORPUS = [
    *VALID_CALLS,
    *CLIENT_BODIES,
    *(body for body, _ in hostile_bodies("http://127.0.0.1:9", "/nonexistent").values()),
    nested(100_000),
    *(param.values[0] for param in BAD_BODIES),
    *(param.values[0] for param in CALL_FAULTS),
]
EQUIVALENCE = settings(max_examples=400, deadline=None, database=None,
                       suppress_health_check=[HealthCheck.too_slow])


def reading(parse, body: bytes) -> tuple:
    """What a reader makes of a body: its call, or its fault's outcome and text."""
    try:
        return "call", parse(body)
    except RequestError as error:
        return "fault", error.outcome, str(error)


def assert_same_reading(body: bytes) -> None:
    assert reading(pingback.parse_call, body) == reading(pingback.parse_call_in_general, body)


@pytest.mark.parametrize("client", REAL_CLIENTS)
def test_each_real_clients_pingback_takes_the_fast_path_and_reads_as_the_stdlib_does(client):
    body = REAL_CLIENTS[client](SOURCE, TARGET)

    call = pingback.parse_call(body)

    assert takes_the_fast_path(body.replace(b"&utm", b"&amp;utm"))
    assert call == pingback.parse_call_in_general(body)
    assert pingback.ping_arguments(call) == (SOURCE, TARGET)


@pytest.mark.parametrize("body", CORPUS)
def test_every_body_of_the_corpus_gets_the_same_call_or_fault_from_both_readers(body):
    assert_same_reading(body)


def takes_the_fast_path(body: bytes) -> bool:
    try:
        return read_ping(body, pingback._safe_parser) is not None
    except ExpatError:
        return False


def test_the_corpus_exercises_both_the_fast_path_and_the_general_one():
    taken = [takes_the_fast_path(pingback._trim(body)) for body in CORPUS]

    assert sum(taken) >= 10 and taken.count(False) >= 30


# Pieces that keep a call within the XML-RPC grammar or take it just outside the one shape.
_FILLERS = ["", " ", "\n\t", "<!-- c -->", "<?pi x?>", "x", "&amp;", "&#60;", "<![CDATA[c]]>"]
_TEXTS = st.sampled_from([SOURCE, TARGET, " http://a.example/ ", "", "a&amp;b", "&lt;&gt;",
                          "<![CDATA[http://a.example/?a=1&b=2]]>", "é", "\x85", "\r\n",
                          "http://a.example/<!-- c -->x", "<b/>", "&#x1F600;"])


@st.composite
def near_shape_calls(draw) -> bytes:
    """pingback.ping calls of the one shape with fillers, variations and stray elements."""
    def fill() -> str:
        return draw(st.sampled_from(_FILLERS))

    def value() -> str:
        text = draw(_TEXTS)
        inner = draw(st.sampled_from([f"<string>{text}</string>", text, f"<int>{text}</int>",
                                      f"<string>{text}</string><string/>", "<string/>",
                                      f"<x:string>{text}</x:string>",
                                      f'<string lang="en">{text}</string>']))
        return f"<value>{fill()}{inner}{fill()}</value>"

    params = [f"<param>{fill()}{value()}{fill()}</param>"
              for _ in range(draw(st.sampled_from([2, 2, 2, 1, 3, 0])))]
    method = draw(st.sampled_from(["pingback.ping", " pingback.ping\n", "pingback.pong",
                                   "pingback.<!-- c -->ping", "pingback&#46;ping", ""]))
    declaration = draw(st.sampled_from(["", "<?xml version='1.0'?>\n",
                                        '<?xml version="1.0" encoding="iso-8859-1"?>',
                                        '<?xml version="1.0" encoding="utf-16"?>']))
    body = (f"{declaration}<methodCall>{fill()}<methodName>{method}</methodName>{fill()}"
            f"<params>{fill()}{fill().join(params)}{fill()}</params>{fill()}</methodCall>")
    encoding = "utf-16" if "utf-16" in declaration else "utf-8"
    if "iso-8859-1" in declaration:
        encoding = "iso-8859-1"
    return body.encode(encoding, errors="xmlcharrefreplace")


@EQUIVALENCE
@given(body=near_shape_calls())
def test_calls_near_the_one_shape_read_the_same_by_both_readers(body):
    assert_same_reading(body)


@EQUIVALENCE
@given(body=mutated_calls() | st.sampled_from(CLIENT_BODIES).flatmap(
    lambda body: st.binary(max_size=8).map(lambda chunk: body.replace(b"</", chunk + b"</", 1))))
def test_mutated_calls_read_the_same_by_both_readers(body):
    assert_same_reading(body)


@EQUIVALENCE
@given(body=st.binary(max_size=512))
def test_arbitrary_bytes_read_the_same_by_both_readers(body):
    assert_same_reading(body)

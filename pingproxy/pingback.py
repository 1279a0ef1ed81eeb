"""XML-RPC for Pingback: read a call, write an answer; write a call, read an answer.

Every call is read by an expat parser that refuses DTDs, entity declarations and external
references exactly as defusedxml's DefusedExpatParser does, with defusedxml's own
exceptions, so nothing is ever expanded or fetched; it is configured here rather than
through that class because building one per call cost a sixth of the parse. A
``pingback.ping`` of the usual shape is read by its own small reader (pingback_call.py);
every other call, and every fault, by the stdlib's XML-RPC Unmarshaller, with a small
grammar check on top that turns its tolerance of bogus structure into the -32600 fault
XML-RPC asks for. All of it is pure functions but ``call``, which sends one call to a
pingback server.
"""

import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from xml.parsers import expat
from xmlrpc.client import Fault, ResponseError, Unmarshaller, dumps, escape

import aiohttp
from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from yarl import URL

from pingproxy import outbound
from pingproxy.errors import Outcome, RequestError
from pingproxy.netguard import DestinationPolicy
from pingproxy.outbound import Reply
from pingproxy.pingback_call import PING_METHOD, read_ping

LIST_METHODS = "system.listMethods"
MULTICALL_METHOD = "system.multicall"
# What real pingback servers expect (WordPress's IXR client sends the same).
XML_CONTENT_TYPE = "text/xml"

# Deep enough for any honest XML-RPC value, shallow enough that nesting costs nothing.
MAX_XML_DEPTH = 32
# Calls with at most this many elements have their structure's verdict remembered: honest
# calls come in a handful of shapes, so the grammar check runs once per shape.
MAX_REMEMBERED_SHAPE_EVENTS = 64

_VALUE_TYPES = frozenset({
    "array", "base64", "bigdecimal", "biginteger", "boolean", "dateTime.iso8601", "double",
    "float", "i1", "i2", "i4", "i8", "int", "nil", "string", "struct",
})
# XML-RPC specification: the children each element may have, in order.
_SEQUENCES: dict[str, frozenset[tuple[str, ...]]] = {
    "methodCall": frozenset({("methodName",), ("methodName", "params")}),
    "param": frozenset({("value",)}),
    "member": frozenset({("name", "value")}),
    "array": frozenset({("data",)}),
    "value": frozenset({()} | {(name,) for name in _VALUE_TYPES}),
}
_REPEATED = {"params": "param", "data": "value", "struct": "member"}
_ALLOWED_CHILDREN: dict[str | None, frozenset[str]] = {
    None: frozenset({"methodCall"}),
    **{tag: frozenset(name for seq in seqs for name in seq) for tag, seqs in _SEQUENCES.items()},
    **{tag: frozenset({child}) for tag, child in _REPEATED.items()},
}

# Senders such as webmention.app and go-jamming put URLs into <string> without escaping "&".
_BARE_AMPERSAND = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")
# XML 1.0 section 2.2: characters a document may not contain, even escaped.
_NOT_XML_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_UTF8_BOM = b"\xef\xbb\xbf"
# xmlrpc.client.dumps((text,), methodresponse=True, encoding="utf-8") around its text.
_RESPONSE_HEAD = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>"
_RESPONSE_TAIL = "</string></value>\n</param>\n</params>\n</methodResponse>\n"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

INTROSPECTION: dict[str, tuple[list[list[str]], str]] = {
    PING_METHOD: (
        [["string", "string", "string"]],
        "pingback.ping(sourceURI, targetURI): notify the target's site that the source links "
        "to it. pingproxy forwards the notification as a WebMention.",
    ),
    "system.listMethods": ([["array"]], "List the methods this server answers."),
    "system.methodHelp": ([["string", "string"]], "Describe a method."),
    "system.methodSignature": ([["array", "string"]], "Give a method's signatures."),
}


@dataclass(frozen=True, slots=True)
class Call:
    """One XML-RPC method call."""

    method: str
    params: tuple


class _CallReader(Unmarshaller):
    """The stdlib Unmarshaller, recording the elements' structure for the grammar check."""

    def __init__(self) -> None:
        super().__init__()
        self.xml(None, None)  # expat hands over text, as the stdlib's ExpatParser tells it
        self.shape: list[str | None] = []  # each element's tag as it opens, None as it closes
        self._depth = 0

    def start(self, tag: str, attrs: dict) -> None:
        self._depth += 1
        if self._depth > MAX_XML_DEPTH:
            raise _Invalid(f"elements nested deeper than {MAX_XML_DEPTH} levels")
        self.shape.append(tag)
        Unmarshaller.start(self, tag, attrs)

    def end(self, tag: str) -> None:
        self._depth -= 1
        self.shape.append(None)
        Unmarshaller.end(self, tag)


class _Invalid(Exception):
    """Structure the XML-RPC grammar does not allow; becomes -32600."""


def _refuse_doctype(name, sysid, pubid, has_internal_subset):
    raise DTDForbidden(name, sysid, pubid)


def _refuse_entity(name, is_parameter_entity, value, base, sysid, pubid, notation_name):
    raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)


def _refuse_unparsed_entity(name, base, sysid, pubid, notation_name):
    raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)


def _refuse_external_reference(context, base, sysid, pubid):
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


def _safe_parser(start: Callable, end: Callable, data: Callable) -> expat.XMLParserType:
    """An expat parser calling these element and text handlers, refusing what defusedxml's
    DefusedExpatParser refuses (with forbid_dtd=True): DTDs, entity declarations, external
    references."""
    parser = expat.ParserCreate(None, None)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_unparsed_entity
    parser.ExternalEntityRefHandler = _refuse_external_reference
    return parser


def parse_call(body: bytes) -> Call:
    """Read an XML-RPC methodCall, repairing the bare "&" real senders leave in URLs."""
    return _repairing(_parse, body)


def parse_call_in_general(body: bytes) -> Call:
    """parse_call without pingback.ping's own reader: every call through the stdlib, the
    reading that the fast path must match, call for call and fault for fault."""
    return _repairing(_parse_in_general, body)


def _repairing(parse: Callable[[bytes], Call], body: bytes) -> Call:
    body = _trim(body)
    try:
        return parse(body)
    except expat.ExpatError as error:
        repaired = _BARE_AMPERSAND.sub(b"&amp;", body)
        if repaired == body:
            raise _expat_fault(error) from None
        try:
            return parse(repaired)
        except expat.ExpatError:
            raise _expat_fault(error) from None


def _trim(body: bytes) -> bytes:
    """Drop a UTF-8 BOM and surrounding whitespace, which expat refuses before <?xml."""
    if body.startswith(_UTF16_BOMS):
        return body
    return body.removeprefix(_UTF8_BOM).strip()


def _parse(body: bytes) -> Call:
    """pingback.ping's own reader first, the stdlib for whatever it leaves."""
    ping = read_ping(body, _safe_parser)
    if ping is not None:
        return Call(PING_METHOD, ping)
    return _parse_in_general(body)


def _parse_in_general(body: bytes) -> Call:
    reader = _CallReader()
    try:
        _safe_parser(reader.start, reader.end, reader.data).Parse(body, True)
        problem = _shape_problem(tuple(reader.shape))
        if problem is not None:
            raise _Invalid(problem)
        params = reader.close()
    except _Invalid as error:
        raise RequestError(Outcome.INVALID_REQUEST, f"not an XML-RPC request: {error}") from None
    except DefusedXmlException:
        raise RequestError(
            Outcome.INVALID_REQUEST, "not an XML-RPC request: DTDs and entities are refused"
        ) from None
    except (ValueError, TypeError, LookupError, ResponseError, Fault):
        if not reader.shape:  # expat looks the declared encoding up before any element
            raise RequestError(Outcome.UNSUPPORTED_ENCODING, "unsupported encoding") from None
        raise RequestError(Outcome.INVALID_REQUEST, "not an XML-RPC request: bad value") from None
    method = reader.getmethodname()
    if not method:
        raise RequestError(Outcome.INVALID_REQUEST, "not an XML-RPC request: no methodName")
    return Call(method.strip(), params)


def _shape_problem(shape: tuple[str | None, ...]) -> str | None:
    """Why a call's element structure breaks the XML-RPC grammar, or None when it does not."""
    if len(shape) <= MAX_REMEMBERED_SHAPE_EVENTS:
        return _remembered_shape_problem(shape)
    return _check_shape(shape)


@functools.lru_cache(maxsize=256)
def _remembered_shape_problem(shape: tuple[str | None, ...]) -> str | None:
    return _check_shape(shape)


def _check_shape(shape: tuple[str | None, ...]) -> str | None:
    open_tags: list[str] = []
    children: list[list[str]] = [[]]
    for tag in shape:
        if tag is None:
            local = open_tags.pop()
            found = tuple(children.pop())
            allowed = _SEQUENCES.get(local)
            if allowed is not None and found not in allowed:
                return f"<{local}> has the wrong children"
            continue
        local = tag.rpartition(":")[2]
        parent = open_tags[-1] if open_tags else None
        if local not in _ALLOWED_CHILDREN.get(parent, ()):
            return f"<{local}> is not allowed inside <{parent or 'the document'}>"
        children[-1].append(local)
        open_tags.append(local)
        children.append([])
    return None


def _expat_fault(error: expat.ExpatError) -> RequestError:
    if error.code == expat.errors.codes[expat.errors.XML_ERROR_UNKNOWN_ENCODING]:
        return RequestError(Outcome.UNSUPPORTED_ENCODING, "unsupported encoding")
    if error.code == expat.errors.codes[expat.errors.XML_ERROR_INCORRECT_ENCODING]:
        return RequestError(Outcome.INVALID_CHARACTER, "invalid character for the encoding")
    reason = expat.errors.messages[error.code]
    return RequestError(Outcome.NOT_WELL_FORMED, f"not well-formed XML: {reason}")


def ping_arguments(call: Call) -> tuple[str, str]:
    """The (source, target) of a pingback.ping call."""
    if len(call.params) != 2 or not all(isinstance(p, str) for p in call.params):
        raise RequestError(
            Outcome.INVALID_PARAMS, "pingback.ping takes two strings: sourceURI, targetURI"
        )
    source, target = call.params
    return source.strip(), target.strip()


def introspect(call: Call) -> object:
    """Answer the system.* introspection methods, or fault -32601 for any other method."""
    if call.method == "system.listMethods":
        return sorted(INTROSPECTION)
    if call.method in ("system.methodHelp", "system.methodSignature"):
        if len(call.params) != 1 or call.params[0] not in INTROSPECTION:
            raise RequestError(Outcome.INVALID_PARAMS, f"{call.method} takes a known method name")
        signatures, help_text = INTROSPECTION[call.params[0]]
        return help_text if call.method == "system.methodHelp" else signatures
    if call.method == MULTICALL_METHOD:
        raise RequestError(
            Outcome.METHOD_NOT_FOUND, "system.multicall is not supported: send one call a request"
        )
    raise RequestError(Outcome.METHOD_NOT_FOUND, f"no such method: {clean_text(call.method, 80)}")


def render_success(value: object) -> bytes:
    """An XML-RPC methodResponse carrying one value, as UTF-8."""
    if isinstance(value, str):
        # Every pingback's answer: what dumps writes for one string, without its Marshaller.
        return (f"{_RESPONSE_HEAD}{escape(clean_text(value))}{_RESPONSE_TAIL}").encode()
    return dumps((value,), methodresponse=True, encoding="utf-8").encode()


@functools.lru_cache(maxsize=256)
def render_fault(code: int, text: str) -> bytes:
    """An XML-RPC fault response, as UTF-8; most faults' texts are fixed, so the last few
    hundred answers are remembered rather than marshalled again."""
    return dumps(Fault(code, clean_text(text)), methodresponse=True, encoding="utf-8").encode()


def clean_text(text: str, limit: int = 500) -> str:
    """Text safe to put in XML and show to people: no control characters, bounded length."""
    text = _NOT_XML_CHARACTERS.sub("", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class ServerAnswer:
    """What an XML-RPC server answered one call: a value, or a fault's (code, text)."""

    value: object = None
    fault: tuple[int, str] | None = None


def call_body(method: str, params: tuple) -> bytes:
    """An XML-RPC methodCall as the stdlib writes it, in UTF-8."""
    return dumps(params, method, encoding="utf-8").encode()


async def call(
    session: aiohttp.ClientSession,
    policy: DestinationPolicy,
    server: URL,
    method: str,
    params: tuple,
    *,
    headers: Mapping[str, str],
    max_reply_bytes: int,
    follow: Collection[int] = (),
    max_redirects: int = 0,
    timeout: aiohttp.ClientTimeout | None = None,
) -> Reply:
    """POST one call to an XML-RPC server as text/xml; a redirect is followed only when its
    status is in follow, and re-checked by the policy like every hop."""
    return await outbound.request(
        session, policy, "POST", server,
        headers={"Content-Type": XML_CONTENT_TYPE, **headers}, data=call_body(method, params),
        follow=follow, max_redirects=max_redirects, max_bytes=max_reply_bytes, timeout=timeout,
    )


def read_answer(body: bytes) -> ServerAnswer:
    """An XML-RPC methodResponse; ValueError when the body is not one."""
    reader = Unmarshaller()
    reader.xml(None, None)
    try:
        _safe_parser(reader.start, reader.end, reader.data).Parse(_trim(body), True)
        values = reader.close()
    except Fault as fault:
        code = fault.faultCode
        return ServerAnswer(fault=(code if isinstance(code, int) else 0, str(fault.faultString)))
    except (expat.ExpatError, DefusedXmlException, ValueError, TypeError, LookupError,
            ResponseError):
        raise ValueError("not an XML-RPC response") from None
    if reader.getmethodname() is not None or len(values) != 1:
        raise ValueError("not an XML-RPC response")
    return ServerAnswer(value=values[0])


def read_fault(body: bytes) -> tuple[int, str] | None:
    """The (code, text) of an XML-RPC fault response, or None when the body is not one."""
    if b"<fault>" not in body:
        return None
    try:
        return read_answer(body).fault
    except ValueError:
        return None

"""The pingback.ping call's own reader: one call shape, read without the general machinery.

Nearly every request is ``pingback.ping`` with two strings. The stdlib's Unmarshaller, the
grammar check on top of it and the Call built from its stack cost twice what this reader
does: it follows that one shape through a table of expat events, and keeps the
Unmarshaller's reading exactly: an element's text is what arrived since the last start tag,
the text of a ``<value>`` without a type is its string, the text of ``<string>`` is the
value, and attributes and text anywhere else are ignored. The caller configures the expat
parser, with the same refusals of DTDs, entities and external references as for every call
(pingback.py), so nothing it reads is ever expanded or fetched.

Anything else (another method, another type, a third param, a prefix, any element out of
place) stops this reader at that element and the caller reads the body with the stdlib:
every fault comes from that one path, so the same input always gets the same fault. XML that
is not well formed stops expat here exactly where it stops it there, since nothing before
that point left the shape: its ExpatError is passed on as it is.
"""

from collections.abc import Callable
from xml.parsers import expat

PING_METHOD = "pingback.ping"

# The shape as states: methodCall, methodName, params, then two params each holding a value
# that holds a <string> or bare text. _STARTS[state] and _ENDS[state] give, for each tag the
# shape allows there, the next state.
_DONE = 18
_STARTS: list[dict[str, int]] = [{} for _ in range(_DONE)]
_ENDS: list[dict[str, int]] = [{} for _ in range(_DONE)]
_STARTS[0]["methodCall"] = 1
_STARTS[1]["methodName"] = 2
_ENDS[2]["methodName"] = 3
_STARTS[3]["params"] = 4
# Each param, from its base state: + 1 in <param>, + 2 in <value>, + 3 in <string>,
# + 4 after </string>, + 5 after </value>.
_FIRST_PARAM, _SECOND_PARAM, _AFTER_PARAMS = 4, 10, 16
for _base, _next in ((_FIRST_PARAM, _SECOND_PARAM), (_SECOND_PARAM, _AFTER_PARAMS)):
    _STARTS[_base]["param"] = _base + 1
    _STARTS[_base + 1]["value"] = _base + 2
    _STARTS[_base + 2]["string"] = _base + 3
    _ENDS[_base + 3]["string"] = _base + 4
    _ENDS[_base + 2]["value"] = _base + 5  # bare text: the value's own text is the string
    _ENDS[_base + 4]["value"] = _base + 5
    _ENDS[_base + 5]["param"] = _next
_ENDS[_AFTER_PARAMS]["params"] = _AFTER_PARAMS + 1
_ENDS[_AFTER_PARAMS + 1]["methodCall"] = _DONE
# The states whose element's text is kept when it ends: the method's name, each string, and
# each value that ends with no element inside.
_TEXT_STATES = {2, _FIRST_PARAM + 2, _FIRST_PARAM + 3, _SECOND_PARAM + 2, _SECOND_PARAM + 3}
_KEEPS_TEXT = [state in _TEXT_STATES for state in range(_DONE)]


class _NotPing(Exception):
    """The body left the one shape: it is read by the general path."""


def read_ping(body: bytes, parser_for: Callable[..., expat.XMLParserType]
              ) -> tuple[str, str] | None:
    """The (source, target) of a pingback.ping call of the one shape, as the stdlib reads
    them (not stripped), or None for any other body. parser_for(start, end, data) gives the
    configured expat parser calling those handlers; an ExpatError is raised as expat
    raised it."""
    parts: list[str] = []  # every piece of text, in order
    texts: list[str] = []  # the method name, the source, the target
    state = 0
    mark = 0  # where the text of the element last started begins in parts

    def start(tag: str, attributes: list) -> None:
        nonlocal state, mark
        state = _STARTS[state].get(tag)
        if state is None:
            raise _NotPing
        mark = len(parts)

    def end(tag: str) -> None:
        nonlocal state
        if _KEEPS_TEXT[state]:
            texts.append("".join(parts[mark:]))
        state = _ENDS[state].get(tag)
        if state is None:
            raise _NotPing

    parser = parser_for(start, end, parts.append)
    parser.ordered_attributes = True  # a list is cheaper to build than a dict; both ignore it
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        raise
    except Exception:  # _NotPing, a refusal, an encoding expat cannot take: the stdlib's
        return None
    if state != _DONE:
        return None
    method, source, target = texts
    return (source, target) if method.strip() == PING_METHOD else None

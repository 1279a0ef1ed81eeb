"""WebMention out: send one (W3C WebMention, section 3.1.3) and read the endpoint's reply.

Receivers report errors in their own words; ENDPOINT_ERRORS maps each vocabulary by what
its names mean to the outcomes of errors.FAULT_CODES, ERROR_PHRASES does the same for
receivers that answer with a plain sentence (in JSON, plain text or HTML), and the HTTP
status decides the rest.
"""

import json
import re
from html.parser import HTMLParser
from urllib.parse import quote_plus

import aiohttp
from yarl import URL

from pingproxy import outbound, pingback
from pingproxy.discovery import HTML_CONTENT_TYPES, decoded_html
from pingproxy.errors import EndpointRefused, Outcome
from pingproxy.netguard import DestinationPolicy
from pingproxy.outbound import Reply

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
ACCEPT = "application/json, text/plain;q=0.9, */*;q=0.1"
# A 307 or 308 repeats the POST with its body (RFC 9110 section 15.4.8, 15.4.9).
REPOST_REDIRECT_STATUSES = frozenset({307, 308})
MAX_ENDPOINT_REDIRECTS = 3

ENDPOINT_ERRORS: dict[str, dict[str, Outcome]] = {
    # webmention.io and most receivers: {"error": NAME, "error_description": TEXT}, or
    # plain text "NAME\n\nDESCRIPTION".
    "error": {
        "source_not_found": Outcome.SOURCE_NOT_FOUND,
        "invalid_source": Outcome.SOURCE_NOT_FOUND,
        "no_link_found": Outcome.NO_LINK,
        "target_not_found": Outcome.TARGET_NOT_FOUND,
        "invalid_target": Outcome.TARGET_NOT_SUPPORTED,
        "target_not_supported": Outcome.TARGET_NOT_SUPPORTED,
        "already_registered": Outcome.ALREADY_REGISTERED,
        "forbidden": Outcome.ACCESS_DENIED,
        "access_denied": Outcome.ACCESS_DENIED,
        "blocked": Outcome.ACCESS_DENIED,
        "rate_limit_exceeded": Outcome.RATE_LIMITED,
    },
    # WordPress Webmention plugin: {"code": NAME, "message": TEXT, "data": {"status": N}};
    # its target_not_found means the source does not link to the target.
    "code": {
        "target_not_found": Outcome.NO_LINK,
        "target_not_valid": Outcome.TARGET_NOT_SUPPORTED,
        "target_mismatching_domain": Outcome.TARGET_NOT_SUPPORTED,
        "source_equals_target": Outcome.TARGET_NOT_SUPPORTED,
        "webmentions_disabled": Outcome.TARGET_NOT_SUPPORTED,
        "http_error": Outcome.SOURCE_NOT_FOUND,
    },
}

# Receivers that answer a sentence, with the source each phrase was read in. A phrase is
# looked for, in this order, in the lower-cased sentence without its URLs and without the
# words "URL" and "URI": "Source URL did not contain target URL" reads "source did not
# contain target".
ERROR_PHRASES: dict[str, Outcome] = {
    # django-webmention 4.0.0, webmention/resolution.py, fetch_and_validate_source().
    "source did not contain target": Outcome.NO_LINK,
    # webmention.io, controllers/webmention.rb: the description of no_link_found.
    "source does not contain a link to": Outcome.NO_LINK,
    # The {"error": "a sentence"} receivers of PROTOCOLS.md ("Source URL does not link to you.").
    "does not link to": Outcome.NO_LINK,
    # django-webmention 4.0.0, webmention/resolution.py, fetch_and_validate_source().
    "could not fetch source": Outcome.SOURCE_NOT_FOUND,
    # Issue 10's list; webmentions 0.2.0 says "Source URL not found" (handlers/_parser.py,
    # WebmentionParser.parse()) but answers it with a deletion and 200.
    "source not found": Outcome.SOURCE_NOT_FOUND,
    # webmention.io, controllers/webmention.rb: the description of source_not_found.
    "source does not exist": Outcome.SOURCE_NOT_FOUND,
    # django-webmention 4.0.0, webmention/views.py, receive(): the target is not a page of
    # the site ("Target URL did not resolve to a resource on the server").
    "target did not resolve": Outcome.TARGET_NOT_FOUND,
    # webmention.io, controllers/webmention.rb: the description of target_not_found.
    "target does not exist": Outcome.TARGET_NOT_FOUND,
    # Issue 10's list; no receiver read so far says it in these words.
    "no such post": Outcome.TARGET_NOT_FOUND,
    # webmentions 0.2.0, handlers/_parser.py, WebmentionParser.parse() ("Target URL domain
    # does not match server domain").
    "target domain does not match": Outcome.TARGET_NOT_SUPPORTED,
    # Issue 10's list; no receiver read so far says it in these words.
    "not a valid target for this site": Outcome.TARGET_NOT_SUPPORTED,
    # capjamesg/webmention-receiver, main.py, receiver(): "Source cannot be equal to target."
    "source cannot be equal to target": Outcome.TARGET_NOT_SUPPORTED,
    # webmention.io, controllers/webmention.rb: the description of already_registered.
    "already been registered": Outcome.ALREADY_REGISTERED,
    "already registered": Outcome.ALREADY_REGISTERED,
}
# Where receivers put a sentence in JSON: {"error": ...} (Flask and Tornado apps, webmention.io
# style), {"detail": ...} (FastAPI's HTTPException), {"message": ...} (Flask and Express apps).
SENTENCE_KEYS = ("error", "error_description", "detail", "message")
EXCERPT_CHARACTERS = 200
# What is kept of the end of a longer excerpt: receivers put their reason last, after the
# URLs they echo.
EXCERPT_TAIL_CHARACTERS = 100
# A longer URL is shown as its origin and an ellipsis; the sender knows its own URLs.
SHORT_URL_CHARACTERS = 40
# An HTML error page is read for its text until this much is found, and no further than this
# much markup: the reason is near its top, and a refusal costs little to read (at most
# about 4 ms of parsing on the 2-core test machine, for 16 KiB of nothing but tags).
MAX_HTML_TEXT_CHARACTERS = 4096
MAX_HTML_MARKUP_CHARACTERS = 16 * 1024

# quote_plus's escapes of the characters URLs use, "%" and "+" first (what they write is
# not escaped again), the space last; any other character it escapes is rare in a URL.
_URL_ESCAPES = (("%", "%25"), ("+", "%2B"), (":", "%3A"), ("/", "%2F"), ("?", "%3F"),
                ("=", "%3D"), ("&", "%26"), ("#", "%23"), (" ", "+"))
_RARELY_IN_URLS = re.compile(r"[^A-Za-z0-9_.\-~%+:/?=&# ]")
_ERROR_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_WHITESPACE = re.compile(r"\s+")
_URL = re.compile(
    r"(?P<origin>https?://[^\s/?#'\"<>]+)(?:[^\s'\"<>]*[^\s'\"<>.,;:!?)\]])?", re.IGNORECASE
)
_URL_WORD = re.compile(r"\bur[li]s?\b")
# Elements whose content a browser does not show as the page's text (the title repeats the
# heading of most error pages).
_HIDDEN_ELEMENTS = frozenset({"script", "style", "template", "title"})
_FEED_CHARACTERS = 8 * 1024


async def send(
    session: aiohttp.ClientSession,
    policy: DestinationPolicy,
    endpoint: URL,
    source: str,
    target: str,
    *,
    headers: dict[str, str],
    max_reply_bytes: int,
    max_redirects: int = MAX_ENDPOINT_REDIRECTS,
    timeout: aiohttp.ClientTimeout | None = None,
    checked: bool = False,
) -> Reply:
    """POST source and target as a form to the endpoint; its own query stays in its URL.

    Only a 307 or 308 is followed, re-posting the form, up to max_redirects times (send
    allows one); any other 3xx comes back as the reply, never turned into a GET. checked:
    the caller has passed the endpoint through the policy already.
    """
    # What urlencode writes, without its general machinery (a third of the cost).
    form = f"source={form_value(source)}&target={form_value(target)}".encode()
    headers = {"Content-Type": FORM_CONTENT_TYPE, "Accept": ACCEPT, **headers}
    return await outbound.request(
        session, policy, "POST", endpoint, headers=headers, data=form,
        follow=REPOST_REDIRECT_STATUSES, max_redirects=max_redirects,
        max_bytes=max_reply_bytes, timeout=timeout, checked=checked,
    )


def form_value(text: str) -> str:
    """quote_plus(text), at a fifth of its cost for a URL: one replace per character URLs
    use, when those are all it has to escape; quote_plus itself otherwise."""
    if _RARELY_IN_URLS.search(text):
        return quote_plus(text)
    for character, escaped in _URL_ESCAPES:
        if character in text:
            text = text.replace(character, escaped)
    return text


def read_reply(reply: Reply, source: str, target: str) -> str:
    """The success text for a 2xx reply; EndpointRefused, with its outcome, for any other."""
    if 200 <= reply.status < 300:
        fault = pingback.read_fault(reply.body) if "xml" in reply.content_type else None
        if fault is not None:
            raise EndpointRefused(
                Outcome.INVALID_ENDPOINT,
                f"the endpoint answered with XML-RPC fault {fault[0]} ({excerpt(fault[1])}): "
                "it is a pingback server, not a WebMention endpoint",
                upstream_status=reply.status,
            )
        return _success_text(reply, source, target)
    vocabulary, name, description = _error_fields(reply)
    outcome = (
        ENDPOINT_ERRORS[vocabulary].get(name)
        or meaning_of(description or "")
        or _outcome_by_status(reply.status)
    )
    raise EndpointRefused(
        outcome, _refusal_text(reply, outcome, name, description), upstream_status=reply.status
    )


def _success_text(reply: Reply, source: str, target: str) -> str:
    parts = [
        f"Pingback from {source} to {target} forwarded as a WebMention to "
        f"{reply.url.host}: {reply.status} {reply.reason}".rstrip()
    ]
    location = reply.headers.get("Location")
    if location:
        try:
            parts.append(f"status: {reply.url.join(URL(location))}")
        except ValueError:
            pass
    document = _json(reply)
    if isinstance(document, dict):
        for key in ("summary", "result"):
            if isinstance(document.get(key), str):
                parts.append(excerpt(document[key]))
                break
    return "; ".join(parts)


def _error_fields(reply: Reply) -> tuple[str, str | None, str | None]:
    """(vocabulary, error name, description) from a JSON, plain-text or HTML error body."""
    document = _json(reply)
    if isinstance(document, dict):
        code = document.get("code")
        if isinstance(code, str) and ("message" in document or "data" in document):
            return "code", code, _text(document.get("message"))
        error = document.get("error")
        if isinstance(error, str) and _ERROR_NAME.match(error):
            return "error", error, _text(document.get("error_description"))
        return "error", None, _first_sentence(document)
    if reply.content_type in ("text/plain", ""):
        text = decoded_html(reply).strip()
        name, _, rest = text.partition("\n")
        if _ERROR_NAME.match(name.strip()):
            return "error", name.strip(), rest.strip() or None
        return "error", None, text or None
    if reply.content_type in HTML_CONTENT_TYPES:
        return "error", None, html_text(decoded_html(reply)) or None
    return "error", None, None


def _first_sentence(document: dict) -> str | None:
    return next((text for key in SENTENCE_KEYS if (text := _text(document.get(key)))), None)


def meaning_of(sentence: str) -> Outcome | None:
    """The outcome the first of ERROR_PHRASES found in a receiver's sentence names, if any."""
    words = _URL_WORD.sub(" ", _URL.sub(" ", sentence).lower())
    words = _WHITESPACE.sub(" ", words)
    return next((outcome for phrase, outcome in ERROR_PHRASES.items() if phrase in words), None)


def html_text(html: str) -> str:
    """The text an HTML page shows, its whitespace collapsed: what an error page says."""
    reader = _TextReader()
    html = html[:MAX_HTML_MARKUP_CHARACTERS]
    for start in range(0, len(html), _FEED_CHARACTERS):
        reader.feed(html[start:start + _FEED_CHARACTERS])
        if reader.characters >= MAX_HTML_TEXT_CHARACTERS:
            break
    return _WHITESPACE.sub(" ", "".join(reader.parts)).strip()


class _TextReader(HTMLParser):
    """Keeps the text outside hidden elements; comments and markup never reach handle_data,
    and a tag separates words as a browser's block boxes do."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.characters = 0
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden_depth += tag in _HIDDEN_ELEMENTS
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_ELEMENTS and self._hidden_depth:
            self._hidden_depth -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)
            self.characters += len(data)


def _json(reply: Reply) -> object:
    if "json" not in reply.content_type and not reply.body.lstrip().startswith(b"{"):
        return None
    try:
        return json.loads(reply.body)
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _outcome_by_status(status: int) -> Outcome:
    if status in (401, 403):
        return Outcome.ACCESS_DENIED
    if status == 429:
        return Outcome.RATE_LIMITED
    if 400 <= status < 500:
        return Outcome.REJECTED
    return Outcome.UPSTREAM_FAILED


def _refusal_text(reply: Reply, outcome: Outcome, name: str | None, description: str | None) -> str:
    if name is not None:
        text = f"{name}: {excerpt(description)}" if description else name
        text += f" (HTTP {reply.status})"
    else:
        text = f"the endpoint answered HTTP {reply.status} {reply.reason}".rstrip()
        if description:
            text += f": {excerpt(description)}"
    if outcome is Outcome.RATE_LIMITED:
        retry = reply.headers.get("Retry-After", "").strip()
        later = f", retry after {retry} s" if retry.isdigit() else ""
        text = f"rate limited by the endpoint{later}: {text}"
    return text


def excerpt(text: str) -> str:
    """One clean line of at most EXCERPT_CHARACTERS: long URLs shortened to their origin,
    and a line still too long cut in its middle, so that the reason at its end survives."""
    line = _URL.sub(_shortened, _WHITESPACE.sub(" ", text).strip())
    if len(line) > EXCERPT_CHARACTERS:
        head = EXCERPT_CHARACTERS - EXCERPT_TAIL_CHARACTERS - len(" … ")
        line = f"{line[:head]} … {line[-EXCERPT_TAIL_CHARACTERS:]}"
    return pingback.clean_text(line, EXCERPT_CHARACTERS)


def _shortened(url: re.Match[str]) -> str:
    if len(url[0]) <= SHORT_URL_CHARACTERS:
        return url[0]
    return f"{url['origin']}/…"

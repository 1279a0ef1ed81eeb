"""WebMention out: send one (W3C WebMention, section 3.1.3) and read the endpoint's reply.

Receivers report errors in their own words; ENDPOINT_ERRORS maps each vocabulary by what
its names mean to the outcomes of errors.FAULT_CODES, and the HTTP status decides the rest.
"""

import json
import re
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from pingproxy import outbound, pingback
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

_ERROR_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_WHITESPACE = re.compile(r"\s+")
_EXCERPT_CHARACTERS = 200


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
) -> Reply:
    """POST source and target as a form to the endpoint; its own query stays in its URL.

    Only a 307 or 308 is followed, re-posting the form, up to max_redirects times (send
    allows one); any other 3xx comes back as the reply, never turned into a GET.
    """
    form = urlencode({"source": source, "target": target}).encode()
    headers = {"Content-Type": FORM_CONTENT_TYPE, "Accept": ACCEPT, **headers}
    return await outbound.request(
        session, policy, "POST", endpoint, headers=headers, data=form,
        follow=REPOST_REDIRECT_STATUSES, max_redirects=max_redirects,
        max_bytes=max_reply_bytes, timeout=timeout,
    )


def read_reply(reply: Reply, source: str, target: str) -> str:
    """The success text for a 2xx reply; EndpointRefused, with its outcome, for any other."""
    if 200 <= reply.status < 300:
        fault = pingback.read_fault(reply.body) if "xml" in reply.content_type else None
        if fault is not None:
            raise EndpointRefused(
                Outcome.INVALID_ENDPOINT,
                f"the endpoint answered with XML-RPC fault {fault[0]} ({_excerpt(fault[1])}): "
                "it is a pingback server, not a WebMention endpoint",
                upstream_status=reply.status,
            )
        return _success_text(reply, source, target)
    vocabulary, name, description = _error_fields(reply)
    outcome = ENDPOINT_ERRORS[vocabulary].get(name) or _outcome_by_status(reply.status)
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
                parts.append(_excerpt(document[key]))
                break
    return "; ".join(parts)


def _error_fields(reply: Reply) -> tuple[str, str | None, str | None]:
    """(vocabulary, error name, description) from a JSON or plain-text error body."""
    document = _json(reply)
    if isinstance(document, dict):
        code = document.get("code")
        if isinstance(code, str) and ("message" in document or "data" in document):
            return "code", code, _text(document.get("message"))
        error = document.get("error")
        if isinstance(error, str) and _ERROR_NAME.match(error):
            return "error", error, _text(document.get("error_description"))
        return "error", None, _text(error) or _text(document.get("error_description"))
    if reply.content_type in ("text/plain", ""):
        text = reply.body.decode("utf-8", "replace").strip()
        name, _, rest = text.partition("\n")
        if _ERROR_NAME.match(name.strip()):
            return "error", name.strip(), rest.strip() or None
        return "error", None, text or None
    return "error", None, None


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
        text = f"{name}: {_excerpt(description)}" if description else name
        text += f" (HTTP {reply.status})"
    else:
        text = f"the endpoint answered HTTP {reply.status} {reply.reason}".rstrip()
        if description:
            text += f": {_excerpt(description)}"
    if outcome is Outcome.RATE_LIMITED:
        retry = reply.headers.get("Retry-After", "").strip()
        later = f", retry after {retry} s" if retry.isdigit() else ""
        text = f"rate limited by the endpoint{later}: {text}"
    return text


def _excerpt(text: str) -> str:
    """One line of at most a couple of hundred characters, safe to show."""
    return pingback.clean_text(_WHITESPACE.sub(" ", text).strip(), _EXCERPT_CHARACTERS)

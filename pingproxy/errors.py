"""Every way a pingback can end, and the one table that gives each its fault code.

Pingback 1.0 and the XML-RPC interoperability conventions fix the fault codes; this module
names each outcome once, so the answer, the log line and the metrics all speak of it alike.

    PingproxyError            .outcome -> FAULT_CODES[outcome], HTTP_STATUS.get(outcome, 200)
     +-- RequestError         the XML-RPC request itself is unusable (-327xx, 413, 408, 503)
     +-- PingbackRejected     the call is well formed but its arguments or endpoint are not
     +-- AccessDenied         the destination is not one this proxy may contact (49)
     +-- UpstreamError        the endpoint or its network failed (50)
     +-- EndpointRefused      the endpoint answered with an error, mapped by meaning
     +-- DiscoveryFailed      the target names no usable endpoint: gone (32), failing (50),
                              or advertising none (33)
     +-- Throttled            an opt-in limit turned it away for now: a client over its rate
                              (429), an endpoint host with its share in flight (50)
"""

from enum import Enum


class Outcome(str, Enum):
    """Names used in faults, logs and metrics; the values are stable label strings."""

    SUCCESS = "success"
    NOT_WELL_FORMED = "not_well_formed"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    INVALID_CHARACTER = "invalid_character"
    INVALID_REQUEST = "invalid_request"
    BODY_TOO_LARGE = "body_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    OVER_CAPACITY = "over_capacity"
    METHOD_NOT_FOUND = "method_not_found"
    INVALID_PARAMS = "invalid_params"
    INTERNAL_ERROR = "internal_error"
    INVALID_SOURCE = "invalid_source"
    SOURCE_NOT_FOUND = "source_not_found"
    NO_LINK = "no_link"
    TARGET_NOT_FOUND = "target_not_found"
    TARGET_FAILED = "target_failed"
    INVALID_TARGET = "invalid_target"
    TARGET_NOT_SUPPORTED = "target_not_supported"
    INVALID_ENDPOINT = "invalid_endpoint"
    NO_ENDPOINT = "no_endpoint"
    LOOP = "loop"
    ALREADY_REGISTERED = "already_registered"
    ACCESS_DENIED = "access_denied"
    RATE_LIMITED = "rate_limited"
    CLIENT_RATE_LIMITED = "client_rate_limited"
    ENDPOINT_BUSY = "endpoint_busy"
    FORBIDDEN_DESTINATION = "forbidden_destination"
    REJECTED = "rejected"
    UPSTREAM_FAILED = "upstream_failed"


# Pingback 1.0, "Error codes"; XML-RPC "specification for fault code interoperability".
FAULT_CODES: dict[Outcome, int] = {
    Outcome.NOT_WELL_FORMED: -32700,
    Outcome.UNSUPPORTED_ENCODING: -32701,
    Outcome.INVALID_CHARACTER: -32702,
    Outcome.INVALID_REQUEST: -32600,
    Outcome.BODY_TOO_LARGE: -32600,
    Outcome.REQUEST_TIMEOUT: -32600,
    Outcome.METHOD_NOT_FOUND: -32601,
    Outcome.INVALID_PARAMS: -32602,
    Outcome.INTERNAL_ERROR: -32603,
    Outcome.OVER_CAPACITY: 0,
    Outcome.REJECTED: 0,
    Outcome.INVALID_SOURCE: 0x0010,
    Outcome.SOURCE_NOT_FOUND: 0x0010,
    Outcome.NO_LINK: 0x0011,
    Outcome.TARGET_NOT_FOUND: 0x0020,
    Outcome.INVALID_TARGET: 0x0021,
    Outcome.TARGET_NOT_SUPPORTED: 0x0021,
    Outcome.INVALID_ENDPOINT: 0x0021,
    Outcome.NO_ENDPOINT: 0x0021,
    Outcome.LOOP: 0x0021,
    Outcome.ALREADY_REGISTERED: 0x0030,
    Outcome.ACCESS_DENIED: 0x0031,
    Outcome.RATE_LIMITED: 0x0031,
    Outcome.CLIENT_RATE_LIMITED: 0x0031,
    Outcome.FORBIDDEN_DESTINATION: 0x0031,
    Outcome.UPSTREAM_FAILED: 0x0032,
    Outcome.TARGET_FAILED: 0x0032,
    Outcome.ENDPOINT_BUSY: 0x0032,
}

# What each fault code means, in the words of Pingback 1.0 ("Error codes") and of the XML-RPC
# fault code interoperability specification: check and send name every fault they receive.
FAULT_MEANINGS: dict[int, str] = {
    0: "a generic fault",
    0x0010: "the source URI does not exist",
    0x0011: "the source URI does not contain a link to the target URI",
    0x0020: "the target URI does not exist",
    0x0021: "the target URI cannot be used as a target",
    0x0030: "the pingback has already been registered",
    0x0031: "access denied",
    0x0032: "the server could not communicate with an upstream server, or got an error from it",
    -32700: "parse error: not well formed",
    -32701: "parse error: unsupported encoding",
    -32702: "parse error: invalid character for encoding",
    -32600: "server error: invalid XML-RPC, not conforming to the specification",
    -32601: "server error: requested method not found",
    -32602: "server error: invalid method parameters",
    -32603: "server error: internal XML-RPC error",
}
# Pingback 1.0: a sender stops retrying a link on success or on this fault.
ALREADY_REGISTERED_FAULT = 0x0030


def fault_meaning(code: int) -> str:
    """What a fault code means, for people; codes outside both specifications say so."""
    return FAULT_MEANINGS.get(code, "a fault code that neither Pingback 1.0 nor XML-RPC defines")


# XML-RPC answers travel on HTTP 200 (clients ignore a fault on any other status); only
# refusals that happen before any XML-RPC exchange use the HTTP status of their kind.
HTTP_STATUS: dict[Outcome, int] = {
    Outcome.BODY_TOO_LARGE: 413,
    Outcome.REQUEST_TIMEOUT: 408,
    Outcome.OVER_CAPACITY: 503,
    Outcome.CLIENT_RATE_LIMITED: 429,
}


class PingproxyError(Exception):
    """A failure that ends a request with a fault; str() is the faultString, fit for people."""

    def __init__(self, outcome: Outcome, message: str, *, upstream_status: int | None = None,
                 retry_after_seconds: int | None = None):
        super().__init__(message)
        self.outcome = outcome
        self.upstream_status = upstream_status
        self.retry_after_seconds = retry_after_seconds

    @property
    def fault_code(self) -> int:
        return FAULT_CODES[self.outcome]

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.outcome, 200)


class RequestError(PingproxyError):
    """The request is not a usable XML-RPC call, or arrived in a way we refuse."""


class PingbackRejected(PingproxyError):
    """The pingback's source, target or endpoint cannot be used."""


class AccessDenied(PingproxyError):
    """The destination is outside what this proxy may contact."""

    def __init__(self, message: str):
        super().__init__(Outcome.FORBIDDEN_DESTINATION, message)


class UpstreamError(PingproxyError):
    """The endpoint could not be reached, or its reply could not be read."""

    def __init__(self, message: str, *, upstream_status: int | None = None):
        super().__init__(Outcome.UPSTREAM_FAILED, message, upstream_status=upstream_status)


class EndpointRefused(PingproxyError):
    """The endpoint answered and refused the mention."""


class DiscoveryFailed(PingproxyError):
    """The target's WebMention endpoint could not be discovered; the outcome says why."""


class Throttled(PingproxyError):
    """An opt-in limit of this pingproxy turned the request away; it may come back later."""

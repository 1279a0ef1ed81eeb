"""Settings: one frozen object, built from command-line flags and environment variables.

Every setting is one row of OPTIONS: its flag, its environment variables (first set wins,
the flag beats them all), its parser, its help, and the subcommands that take it. Nothing
here reads os.environ: the command line passes the environment in, and tests build Settings
directly.
"""

import argparse
import importlib.util
import ipaddress
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from yarl import URL

from pingproxy import __version__
from pingproxy.limits import Rate
from pingproxy.logs import LOG_FORMATS, LOG_LEVELS
from pingproxy.urls import http_url

_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class Settings:
    """How one pingproxy runs; the defaults serve a laptop or a platform dyno as they are."""

    host: str = "127.0.0.1"
    port: int = 8080
    connect_timeout_seconds: float = 3.0
    forward_timeout_seconds: float = 8.0
    request_timeout_seconds: float = 10.0
    header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 15.0
    max_body_bytes: int = 64 * 1024
    max_headers: int = 32
    max_header_field_bytes: int = 4 * 1024
    max_request_line_bytes: int = 8 * 1024
    max_head_bytes: int = 32 * 1024
    max_url_characters: int = 4096
    max_reply_bytes: int = 64 * 1024
    max_inflight: int = 1024
    allow_private: bool = False
    allowed_endpoints: tuple[str, ...] = ()
    allowed_ports: frozenset[int] | None = None
    instance_id: str = field(default_factory=lambda: secrets.token_hex(6))
    workers: int = 1
    grace_seconds: float = 25.0
    metrics: bool = True
    metrics_dir: str | None = None
    log_format: str = "text"
    log_level: str = "info"
    event_loop: str = "auto"
    default_endpoint: str | None = None
    discovery_cache_seconds: float = 300.0
    discovery_max_page_bytes: int = 1024 * 1024
    max_per_endpoint_host: int = 0
    rate_limit: Rate | None = None
    rate_limit_burst: int | None = None
    send_concurrency: int = 8
    send_per_host: int = 2
    send_request_timeout_seconds: float = 10.0
    send_read_timeout_seconds: float = 5.0
    send_run_timeout_seconds: float = 60.0
    send_retry_max_wait_seconds: float = 10.0
    send_retry_backoff_seconds: float = 1.0
    send_max_targets: int = 100
    send_max_entries: int = 50
    send_max_run_targets: int = 500
    send_tokens: tuple[str, ...] = field(default=(), repr=False)
    send_allowed_sources: tuple[str, ...] = ()
    send_source_interval_seconds: float = 300.0
    send_rate_limit: Rate = Rate(30, 3600)
    public_url: str | None = None
    trust_forwarded: str = "off"
    check_rate_limit: Rate | None = Rate(6, 60)
    max_checks: int = 4
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_prefix: str = "pingproxy:"

    def __repr__(self) -> str:
        """Every setting but the secrets, so that no log or traceback ever shows one."""
        hidden = {option.name for option in OPTIONS if option.secret}
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                          if name not in hidden)
        return f"Settings({shown})"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    return _finite(kind, zero_allowed=False)


def _non_negative(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    return _finite(kind, zero_allowed=True)


# What a numeric setting expects, said in words rather than in Python's ("invalid literal").
_NUMBER_WORDS = {int: "a whole number", float: "a number"}


def _finite(kind: Callable[[str], float | int], *,
            zero_allowed: bool) -> Callable[[str], float | int]:
    least = "of 0 or more" if zero_allowed else ("of 1 or more" if kind is int
                                                 else "greater than 0")
    expected = f"expected {_NUMBER_WORDS[kind]} {least}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(expected) from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
            raise ValueError(expected)
        return value

    parse.__name__ = kind.__name__
    return parse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ValueError("expected a port number, 1 to 65535")
    return port


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be 1/0, true/false, yes/no or on/off")


class NamesNothing(ValueError):
    """A list setting that was set, yet names nothing once its commas and spaces are dropped."""


def _listing(item: Callable[[str], object], noun: str,
             collect: Callable = tuple) -> Callable[[str], object]:
    """A comma-separated list of items; set but empty is a mistake, never "no limit".

    PINGPROXY_ALLOWED_ENDPOINTS=$SITES, with $SITES empty must not open a relay that its
    operator believes confined, so a list that names nothing refuses to start.
    """
    def parse(text: str):
        items = [part.strip() for part in text.split(",") if part.strip()]
        if not items:
            raise NamesNothing(f"names no {noun}")
        return collect(item(part) for part in items)

    return parse


def _host_pattern(item: str) -> str:
    item = item.lower().rstrip(".")
    wildcard, name = ("*.", item[2:]) if item.startswith("*.") else ("", item)
    host = _host_name(name)
    if host is None:
        raise ValueError(f"{item!r} is not a host name or *.domain pattern")
    return wildcard + host


def _host_name(name: str) -> str | None:
    """The name as URLs spell it (IDNA for international names), or None if it is not one."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        host = URL.build(host=name).host
    except ValueError:
        return None
    return host if host and _HOST_NAME.match(host) else None


def _listed_port(item: str) -> int:
    try:
        return _port(item)
    except ValueError:
        raise ValueError(f"{item!r} is not a port number, 1 to 65535") from None


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text.lower()

    return parse


def _event_loop(text: str) -> str:
    choice = _one_of("auto", "asyncio", "uvloop")(text)
    if choice == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ValueError("uvloop is not installed (pip install uvloop)")
    return choice


def _optional_http_url(text: str) -> str | None:
    if not text.strip():
        return None
    if http_url(text) is None:
        raise ValueError("must be an absolute http(s) URL")
    return text.strip()


def _optional_rate(text: str) -> Rate | None:
    return None if text.strip().lower() in ("", "off", "0") else Rate.parse(text)


def _token(token: str) -> str:
    """A bearer token; the error never holds the token, as it is a secret."""
    if len(token) < MIN_TOKEN_CHARACTERS:
        raise ValueError(f"each token must have at least {MIN_TOKEN_CHARACTERS} characters")
    return token


def _public_url(text: str) -> str | None:
    """An absolute http(s) URL without query or fragment, kept without a trailing slash."""
    url = _optional_http_url(text)
    if url is not None and (http_url(url).query_string or http_url(url).fragment):
        raise ValueError("must have no query string or fragment")
    return url.rstrip("/") if url else None


def _redis_url(text: str) -> str:
    """A Redis URL (redis://, rediss:// or unix://), usable only with the redis extra.

    Set but empty (a template whose value was empty) is refused, as an empty allowlist is:
    it would quietly count every limit per process while the operator believes it shared."""
    if not text.strip():
        raise ValueError("names no Redis: give its URL, or leave it unset to count limits in "
                         "each process")
    if URL(text.strip()).scheme not in REDIS_SCHEMES:
        raise ValueError(f"must be a Redis URL: {', '.join(s + '://...' for s in REDIS_SCHEMES)}")
    if any(importlib.util.find_spec(name) is None for name in ("limits", "redis", "hiredis")):
        raise ValueError("shared limits need the redis extra: pip install 'pingproxy[redis]'")
    return text.strip()


def _key_prefix(text: str) -> str:
    if not 1 <= len(text) <= MAX_KEY_PREFIX_CHARACTERS or not text.isprintable() or " " in text:
        raise ValueError(f"must be 1 to {MAX_KEY_PREFIX_CHARACTERS} printable characters, "
                         "without spaces")
    return text


def _identifier(text: str) -> str:
    if not text or not text.replace("-", "").replace("_", "").isalnum():
        raise ValueError("must be letters, digits, '-' or '_'")
    return text


# --trust-forwarded: off, or which headers the front proxy sets (a client can forge the other).
TRUSTED_FORWARDING = ("off", "x-forwarded", "forwarded")
SERVE = frozenset({"serve"})
SEND = frozenset({"send"})
# Settings of a send, which POST /api/send runs inside serve too.
SEND_AND_SERVE = SEND | SERVE
# A bearer token shorter than this could be guessed.
MIN_TOKEN_CHARACTERS = 16
REDIS_SCHEMES = ("redis", "rediss", "unix")
MAX_KEY_PREFIX_CHARACTERS = 64
# The subcommands that check a set-up: each step bounded like a forward.
CHECK = frozenset({"check", "ping"})
# The subcommands that fetch pages and call endpoints, under the same guard and bounds.
OUTBOUND = SERVE | CHECK | SEND


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its Settings field, its flag, and PINGPROXY_<FLAG> plus any platform names."""

    name: str
    flag: str
    metavar: str | None  # None: a switch, which takes no value
    parse: Callable[[str], object]
    help: str
    platform_environment: tuple[str, ...] = ()
    default_text: str | None = None
    commands: frozenset[str] = SERVE
    # A secret (a token, a URL with a password) is never shown: not in an error, a log line,
    # /metrics, --help's defaults or the Settings' repr.
    secret: bool = False

    @property
    def environment(self) -> tuple[str, ...]:
        own = "PINGPROXY_" + self.flag.removeprefix("--").replace("-", "_").upper()
        return (own, *self.platform_environment)


OPTIONS = (
    Option("host", "--host", "ADDRESS", str, "address to listen on", ("HOST",)),
    Option("port", "--port", "PORT", _port, "port to listen on", ("PORT",)),
    Option("connect_timeout_seconds", "--connect-timeout", "SECONDS", _positive(float),
           "seconds to wait for a connection to an endpoint, a page or a pingback server",
           commands=OUTBOUND),
    Option("forward_timeout_seconds", "--timeout", "SECONDS", _positive(float),
           "seconds one whole forward may take, discovery and redirects included (check and "
           "ping: each step)", commands=SERVE | CHECK),
    Option("request_timeout_seconds", "--request-timeout", "SECONDS", _positive(float),
           "seconds a sender may take to send its request body"),
    Option("header_timeout_seconds", "--header-timeout", "SECONDS", _positive(float),
           "seconds a sender may take to send a request's line and headers, from their first "
           "byte; then the connection is closed"),
    Option("idle_timeout_seconds", "--idle-timeout", "SECONDS", _positive(float),
           "seconds a connection may wait for its next request before it is closed"),
    Option("max_body_bytes", "--max-body", "BYTES", _positive(int),
           "largest pingback request body accepted"),
    Option("max_headers", "--max-headers", "N", _positive(int),
           "most header fields in a request; more gets HTTP 400"),
    Option("max_header_field_bytes", "--max-header-field", "BYTES", _positive(int),
           "longest header field in a request; longer gets HTTP 400"),
    Option("max_request_line_bytes", "--max-request-line", "BYTES", _positive(int),
           "longest request target (the URL in the request line); longer gets HTTP 400"),
    Option("max_head_bytes", "--max-head", "BYTES", _positive(int),
           "largest request head (request line and header fields together); larger gets "
           "HTTP 431 and the connection closes, the rest never read"),
    Option("max_url_characters", "--max-url", "CHARACTERS", _positive(int),
           "longest source, target or endpoint URL accepted, named or discovered"),
    Option("max_reply_bytes", "--max-reply", "BYTES", _positive(int),
           "most bytes read of an endpoint's or a pingback server's reply", commands=OUTBOUND),
    Option("max_inflight", "--max-inflight", "N", _positive(int),
           "forwards in flight at once; beyond it, HTTP 503 with Retry-After"),
    Option("allow_private", "--allow-private", None, _boolean,
           "allow endpoints, pingback servers and fetched pages on loopback and private "
           "networks, on any port (a sidecar, or checking or sending from a site on your own "
           "machine)", commands=OUTBOUND),
    Option("allowed_endpoints", "--allowed-endpoints", "HOSTS", _listing(_host_pattern, "host"),
           "comma-separated hosts (example.com, *.example.com) that endpoints, pingback "
           "servers and fetched pages must be on",
           default_text="any public host", commands=SERVE | CHECK),
    Option("allowed_ports", "--allowed-ports", "PORTS",
           _listing(_listed_port, "port", frozenset),
           "comma-separated ports that endpoints, pingback servers and fetched pages may use",
           default_text="80,443,8080,8443; any with --allow-private", commands=OUTBOUND),
    Option("instance_id", "--instance-id", "NAME", _identifier,
           "name in the Via header that stops forwarding loops; give a fleet one name",
           default_text="random at start-up"),
    Option("workers", "--workers", "N", _positive(int),
           "worker processes sharing the port (gunicorn with aiohttp's worker when over 1)",
           ("WEB_CONCURRENCY",)),
    Option("grace_seconds", "--grace", "SECONDS", _positive(float),
           "on SIGTERM, seconds to let forwards in flight finish before exiting"),
    Option("metrics", "--metrics", "on|off", _boolean, "serve Prometheus metrics at /metrics"),
    Option("metrics_dir", "--metrics-dir", "DIR", str,
           "directory where several workers share their metrics (emptied at start)",
           default_text="a temporary directory"),
    Option("log_format", "--log-format", "text|json", _one_of(*LOG_FORMATS),
           "log line format"),
    Option("log_level", "--log-level", "LEVEL", _one_of(*LOG_LEVELS),
           "lowest level logged: debug, info, warning or error"),
    Option("event_loop", "--event-loop", "auto|asyncio|uvloop", _event_loop,
           "event loop: auto takes uvloop when it is installed, else asyncio's own"),
    Option("default_endpoint", "--default-endpoint", "URL", _optional_http_url,
           "WebMention endpoint that POST / forwards to instead of discovering the target's "
           "(sidecar use)", default_text="none: discover"),
    Option("discovery_cache_seconds", "--discovery-cache-seconds", "SECONDS",
           _non_negative(float),
           "seconds a discovered endpoint, or its absence, is remembered (less if the target's "
           "Cache-Control says so); 0 turns the memory off"),
    Option("discovery_max_page_bytes", "--discovery-max-page", "BYTES", _positive(int),
           "most bytes of a page's HTML read (a target's in discovery; in check and ping, "
           "each page's; in send, the source's and each target's); a longer page is read that "
           "far", commands=OUTBOUND),
    Option("max_per_endpoint_host", "--max-per-endpoint-host", "N", _non_negative(int),
           "forwards in flight at once to one endpoint host; beyond it a pingback waits up to "
           "1 s, then gets fault 50, busy (public instances)", default_text="0: off"),
    Option("rate_limit", "--rate-limit", "RATE", _optional_rate,
           "pingback requests per client address (an IPv6 client is its /64), as 10/s, 30/min "
           "or 500/h; beyond it, HTTP 429 with Retry-After (public instances)",
           default_text="off"),
    Option("rate_limit_burst", "--rate-limit-burst", "N", _positive(int),
           "requests a client may send at once within --rate-limit",
           default_text="the rate's count"),
    Option("send_concurrency", "--send-concurrency", "N", _positive(int),
           "requests a send makes at once", commands=SEND_AND_SERVE),
    Option("send_per_host", "--send-per-host", "N", _positive(int),
           "requests a send makes at once to one host (a target's page and its endpoint each "
           "count for their own host)", commands=SEND_AND_SERVE),
    Option("send_request_timeout_seconds", "--send-request-timeout", "SECONDS", _positive(float),
           "seconds one request of a send may take, its reply read", commands=SEND_AND_SERVE),
    Option("send_read_timeout_seconds", "--send-read-timeout", "SECONDS", _positive(float),
           "seconds a send waits for each read of a reply", commands=SEND_AND_SERVE),
    Option("send_run_timeout_seconds", "--send-run-timeout", "SECONDS", _positive(float),
           "seconds a whole send may take; targets unfinished by then have failed",
           commands=SEND_AND_SERVE),
    Option("send_retry_max_wait_seconds", "--send-retry-max-wait", "SECONDS",
           _non_negative(float),
           "longest Retry-After a send waits before its one retry (a longer one is cut to it)",
           commands=SEND_AND_SERVE),
    Option("send_retry_backoff_seconds", "--send-retry-backoff", "SECONDS", _non_negative(float),
           "seconds a send waits before its one retry when no Retry-After says",
           commands=SEND_AND_SERVE),
    Option("send_max_targets", "--send-max-targets", "N", _positive(int),
           "most targets one send notifies; further links are skipped", commands=SEND_AND_SERVE),
    Option("send_max_entries", "--send-max-entries", "N", _positive(int),
           "most entries of a feed one send takes (--entries may ask for fewer)",
           commands=SEND_AND_SERVE),
    Option("send_max_run_targets", "--send-max-run-targets", "N", _positive(int),
           "most targets one send of a feed notifies across all its entries; the older "
           "entries' further links are skipped", commands=SEND_AND_SERVE),
    Option("send_tokens", "--send-token", "TOKENS", _listing(_token, "token"),
           "comma-separated bearer tokens that open POST /api/send, each of at least "
           f"{MIN_TOKEN_CHARACTERS} characters (prefer the environment: ps shows flags)",
           default_text="none: /api/send answers 404", secret=True),
    Option("send_allowed_sources", "--send-allowed-sources", "HOSTS",
           _listing(_host_pattern, "host"),
           "comma-separated hosts (example.com, *.example.com) whose pages /api/send may send "
           "from", default_text="any host"),
    Option("send_source_interval_seconds", "--send-source-interval", "SECONDS",
           _non_negative(float),
           "seconds before /api/send sends from the same source again, unless force=1"),
    Option("send_rate_limit", "--send-rate-limit", "RATE", Rate.parse,
           "/api/send requests per token, as 10/min or 30/h; beyond it, HTTP 429"),
    Option("public_url", "--public-url", "URL", _public_url,
           "the address people reach this pingproxy at (behind a router, or under a path): "
           "the pingback URLs the pages show, and check's fix, use it",
           default_text="the address each request came to; check: none",
           commands=SERVE | {"check"}),
    Option("trust_forwarded", "--trust-forwarded", "off|x-forwarded|forwarded",
           _one_of(*TRUSTED_FORWARDING),
           "behind a front proxy, take the client's address, the scheme and the host from "
           "the headers it sets: x-forwarded (X-Forwarded-For, -Proto, -Host) or forwarded "
           "(Forwarded); only the values the nearest proxy added count"),
    Option("check_rate_limit", "--check-rate-limit", "RATE", _optional_rate,
           "checks per client address at /check (an IPv6 client is its /64), as 6/min or "
           "30/h; beyond it, HTTP 429 with Retry-After; off turns the limit off"),
    Option("max_checks", "--max-checks", "N", _non_negative(int),
           "checks running at once at /check; beyond it, HTTP 503 with Retry-After; 0 turns "
           "/check off"),
    Option("redis_url", "--redis-url", "URL", _redis_url,
           "Redis that every instance counts its limits in (rates, /api/send's interval, "
           "slots per endpoint host, checks running), as redis://[:PASSWORD@]HOST:PORT/DB; "
           "needs pingproxy[redis]; prefer the environment: ps shows flags", ("REDIS_URL",),
           default_text="none: limits per process", secret=True),
    Option("redis_prefix", "--redis-prefix", "PREFIX", _key_prefix,
           "prefix of every key pingproxy writes in Redis, so one Redis serves several "
           "deployments"),
)


def build_parser(command: str = "serve") -> argparse.ArgumentParser:
    """The command line of one subcommand, its settings only."""
    parser = argparse.ArgumentParser(
        prog="pingproxy",
        description="Receive Pingbacks (XML-RPC) and forward them as WebMentions.",
    )
    parser.add_argument("--version", action="version", version=f"pingproxy {__version__}")
    add_options(parser, command)
    return parser


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the settings a subcommand takes, each showing its default and environment."""
    defaults = Settings()
    for option in OPTIONS:
        if command not in option.commands:
            continue
        default = option.default_text or _show(getattr(defaults, option.name))
        help_text = f"{option.help} (default: {default}; env: {', '.join(option.environment)})"
        if option.metavar is None:
            parser.add_argument(option.flag, dest=option.name, action="store_const",
                                const="1", help=help_text)
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.metavar,
                                help=help_text)


def _show(default: object) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def load(argv: Sequence[str], environ: Mapping[str, str], command: str = "serve") -> Settings:
    """Settings from flags, then environment variables, then defaults; ConfigError if unusable."""
    return settings_from(vars(build_parser(command).parse_args(argv)), environ, command)


def settings_from(flags: Mapping[str, object], environ: Mapping[str, str],
                  command: str) -> Settings:
    """Settings from parsed flags (by field name), then the environment, then the defaults."""
    values = {}
    for option in OPTIONS:
        if command not in option.commands:
            continue
        text, source = flags.get(option.name), option.flag
        if text is None:
            source = next((name for name in option.environment if name in environ), None)
            text = environ[source] if source else None
        if text is None:
            continue
        try:
            values[option.name] = option.parse(text)
        except ValueError as error:
            raise ConfigError(_refusal(option, source, text, error)) from None
    return Settings(**values)


def _refusal(option: Option, source: str, text: str, error: ValueError) -> str:
    """One line naming the setting as it was given and what is wrong; a secret is not shown."""
    shown = "(not shown: it is a secret)" if option.secret else repr(text)
    if isinstance(error, NamesNothing):
        default = option.default_text or _show(getattr(Settings(), option.name))
        return (f"{source}: {shown} {error}: name at least one, or leave it unset for the "
                f"default ({default})")
    return f"{source}: invalid value {shown}: {error}"

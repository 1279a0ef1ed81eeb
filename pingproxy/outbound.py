"""Outbound HTTP: the one client session, and guarded requests with bounded replies.

Redirects are followed here, not by aiohttp, so that every hop passes the destination
policy; reply bodies are read to a cap plus one byte, never further (or, for a caller that
can use a part, to the cap and no further).
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.resolver import ThreadedResolver
from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from pingproxy.config import Settings
from pingproxy.errors import UpstreamError
from pingproxy.netguard import DestinationPolicy, GuardedResolver


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream reply, read to its end or to the cap."""

    url: URL  # after redirects
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    links: MultiDictProxy
    body: bytes
    # Each redirect followed on the way, as (its status, the URL that answered it).
    redirects: tuple[tuple[int, URL], ...] = ()

    @property
    def content_type(self) -> str:
        return _media_type(self.headers)

    @property
    def charset(self) -> str | None:
        """The charset parameter of the Content-Type, if the reply names one."""
        for parameter in self.headers.get("Content-Type", "").split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip('"') or None
        return None


def policy_for(settings: Settings, *, way_out: bool = False) -> DestinationPolicy:
    """The destination policy the settings describe; way_out: refusals name the flag that
    lifts them (for the command line's user, never in a fault to a stranger)."""
    return DestinationPolicy(
        allow_private=settings.allow_private,
        allowed_ports=settings.allowed_ports,
        allowed_hosts=settings.allowed_endpoints,
        way_out=way_out,
    )


def open_session(settings: Settings, policy: DestinationPolicy) -> aiohttp.ClientSession:
    """The process's one client session: pooled, guarded, cookie-less, sized to the cap."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, ThreadedResolver()),
        # Every forward in flight gets a connection at once: a pool smaller than the
        # in-flight cap would queue forwards silently inside the connector, and a per-host
        # limit below it would do the same for a busy endpoint.
        limit=settings.max_inflight,
        limit_per_host=0,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        # The relay bounds each whole journey; the session bounds only the connect.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout_seconds),
        auto_decompress=True,
        trust_env=False,
    )


async def request(
    session: aiohttp.ClientSession,
    policy: DestinationPolicy,
    method: str,
    url: URL,
    *,
    headers: Mapping[str, str],
    data: bytes | None = None,
    follow: Collection[int],
    max_redirects: int,
    max_bytes: int,
    truncate: bool = False,
    body_content_types: Collection[str] | None = None,
    links: bool = False,
    timeout: aiohttp.ClientTimeout | None = None,
    checked: bool = False,
) -> Reply:
    """Request url, following redirects whose status is in follow, each hop checked.

    A body over max_bytes is an UpstreamError, or with truncate its first max_bytes; with
    body_content_types, only replies of those types have their body read at all; the Link
    headers are parsed only when links is true (discovery reads them, a forward never does).
    A timeout replaces the session's for each hop (send bounds connect, each read and the
    whole). checked: the caller has passed url itself through the policy, so only the
    redirects' hops are checked here.
    """
    redirects: list[tuple[int, URL]] = []
    # aiohttp reads timeout=None as "no timeout at all": pass it only when there is one.
    hop_timeout = {} if timeout is None else {"timeout": timeout}
    for hop in range(max_redirects + 1):
        if hop or not checked:
            policy.check_url(url)
        try:
            async with session.request(
                method, url, headers=headers, data=data, allow_redirects=False, **hop_timeout
            ) as response:
                location = response.headers.get("Location")
                if response.status in follow and location:
                    redirects.append((response.status, url))
                    url = _redirect_target(url, location)
                    continue
                body = b""
                media_type = _media_type(response.headers)
                if body_content_types is None or media_type in body_content_types:
                    body = await _read_capped(response.content, max_bytes, response.status,
                                              truncate=truncate)
                return Reply(url, response.status, response.reason or "", response.headers,
                             _links(response) if links else _NO_LINKS, body, tuple(redirects))
        except aiohttp.ClientError as error:
            raise UpstreamError(_describe(error, url)) from error
        except TimeoutError:
            raise UpstreamError(f"{url.host} did not answer in time") from None
    raise UpstreamError(f"more than {max_redirects} redirects")


def _redirect_target(url: URL, location: str) -> URL:
    try:
        return url.join(URL(location))
    except ValueError:
        raise UpstreamError(f"{url.host} redirected to an invalid URL") from None


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").partition(";")[0].strip().lower()


_NO_LINKS: MultiDictProxy = MultiDictProxy(MultiDict())


def _links(response: aiohttp.ClientResponse) -> MultiDictProxy:
    """The parsed Link headers; a link whose URL cannot be parsed spoils them all in aiohttp."""
    try:
        return response.links
    except ValueError:
        return _NO_LINKS


async def _read_capped(stream: aiohttp.StreamReader, max_bytes: int, status: int, *,
                       truncate: bool) -> bytes:
    # One byte past the cap tells a body over it; truncating needs no such proof.
    limit = max_bytes if truncate else max_bytes + 1
    chunks, size = [], 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if truncate:
        return b"".join(chunks)
    raise UpstreamError(f"the reply was larger than {max_bytes} bytes", upstream_status=status)


def _host_and_port(url: URL) -> str:
    """host:port as people write it, an IPv6 address in brackets: a receiver that is down is
    often only on another port of the same host."""
    host = f"[{url.host}]" if url.host and ":" in url.host else url.host
    return f"{host}:{url.port}"


def _describe(error: aiohttp.ClientError, url: URL) -> str:
    """A short, public account of a client error: what failed, never internal detail."""
    host = url.host
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return f"TLS with {host} failed"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"{host} could not be resolved"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"could not connect to {_host_and_port(url)}"
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return f"could not connect to {_host_and_port(url)} in time"
    if isinstance(error, aiohttp.ServerTimeoutError):
        return f"{host} did not answer in time"
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return f"{host} closed the connection"
    if isinstance(error, aiohttp.ClientPayloadError):
        return f"{host} cut its reply short"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{host} sent a malformed reply"
    if isinstance(error, aiohttp.InvalidURL):
        return "the URL is not valid"
    return f"the request to {host} failed"


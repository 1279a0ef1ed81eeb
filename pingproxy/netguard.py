"""Where outbound connections may go: the destination policy and the guarded resolver.

A public pingback endpoint makes requests to URLs that strangers choose: unguarded, it scans
and reaches the operator's private network (SSRF) and reflects floods at third parties. The
guard has two layers:

1. ``DestinationPolicy.check_url`` on every URL before it is requested, redirect hops included:
   scheme, credentials, port, the operator's host allowlist, and hosts written as IP
   addresses, which aiohttp's connector never passes to a resolver.
2. ``GuardedResolver`` filters what DNS returns, inside the connector, so the address that is
   checked is the very address that is connected: a name that resolves to 127.0.0.1, or that
   rebinds between a check and the connect, never gets through.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass, field

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from pingproxy.errors import AccessDenied

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ports a web endpoint listens on; anything else would let fault texts and timings map the
# open ports of a host.
WEB_PORTS = frozenset({80, 443, 8080, 8443})

# IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and successors): ranges
# that are not globally reachable. The first match names the reason.
BLOCKED_NETWORKS = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::1/128", "a loopback address"),
        ("::/128", "an unspecified address"),
        ("fc00::/7", "a unique local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("2001::/23", "an IETF protocol address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a segment routing address"),
    )
)
# RFC 4291 section 2.4: everything outside 2000::/3 is not global unicast.
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# Forms that carry an IPv4 address inside an IPv6 one, judged by the IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # RFC 3056
# Legacy numeric host forms (2130706433, 0x7f.1, 127.1) that resolvers turn into addresses.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address stands for, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def address_problem(address: IPAddress, networks=BLOCKED_NETWORKS) -> str | None:
    """Why an address is not globally routable, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return address_problem(inner, networks)
        address = address.__class__(int(address))  # drop any zone id before matching
    for network, reason in networks:
        if address.version == network.version and address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "not a global unicast address"
    return None


def host_matches(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether host is one of patterns: "example.com" exactly, "*.example.com" any subdomain."""
    host = host.rstrip(".").lower()
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


# When lifting the address guard is safe, said with the flag that lifts it.
_PRIVATE_IS_SAFE = "safe for a site on your own machine, or a sidecar next to its endpoint"


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """The rules for every outbound URL and address."""

    allow_private: bool = False
    allowed_ports: frozenset[int] | None = None  # None: WEB_PORTS, or any with allow_private
    allowed_hosts: tuple[str, ...] = ()  # empty: any host
    blocked_networks: tuple = field(default=BLOCKED_NETWORKS, repr=False)
    # Name the flag that lifts each refusal: the command line's user can pass it, while a
    # stranger whose pingback is refused cannot, and a fault tells them no settings.
    way_out: bool = False

    def check_url(self, url: URL) -> None:
        """Raise AccessDenied unless url may be requested (its resolved address aside)."""
        if url.scheme not in ("http", "https") or not url.host:
            raise AccessDenied("only http and https URLs with a host are forwarded to")
        if url.user is not None or url.password is not None:
            raise AccessDenied("URLs with credentials (user:password@) are refused")
        ports = self.allowed_ports
        if ports is None and not self.allow_private:
            ports = WEB_PORTS
        if ports is not None and url.port not in ports:
            raise AccessDenied(self._port_refusal(url, ports))
        host = url.host
        if self.allowed_hosts and not host_matches(host, self.allowed_hosts):
            raise AccessDenied(self._with_way_out(
                f"{host} is not among this proxy's allowed endpoints",
                f"add it to --allowed-endpoints (now {','.join(self.allowed_hosts)}) if you "
                "trust it"))
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            if _NUMERIC_HOST.match(host):
                raise AccessDenied(
                    "numeric host names that are not IP addresses are refused") from None
            return
        self._check_address(literal, f"{host} is")

    def check_address(self, address: str, host: str) -> None:
        """Raise AccessDenied unless the connector may connect to this resolved address."""
        self._check_address(ipaddress.ip_address(address), f"{host} resolves to")

    def _check_address(self, address: IPAddress, subject: str) -> None:
        if self.allow_private:
            return
        problem = address_problem(address, self.blocked_networks)
        if problem is not None:
            raise AccessDenied(self._with_way_out(
                f"{subject} {problem}; only public addresses are forwarded to",
                f"--allow-private allows it ({_PRIVATE_IS_SAFE})"))

    def _port_refusal(self, url: URL, ports: frozenset[int]) -> str:
        allowed = ", ".join(str(port) for port in sorted(ports))
        refusal = f"port {url.port} is not allowed (allowed: {allowed})"
        widened = ",".join(str(port) for port in sorted({*ports, url.port}))
        if self.allowed_ports is None and self._private_host(url.host):
            # --allowed-ports alone would only meet the private-address refusal next.
            return self._with_way_out(
                refusal, f"--allow-private allows any port on {url.host} ({_PRIVATE_IS_SAFE})")
        return self._with_way_out(
            refusal, f"--allowed-ports {widened} allows it (safe when you know what listens "
                     "there)")

    def _private_host(self, host: str) -> bool:
        """Whether host is written as a private address, or is localhost."""
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return address_problem(ipaddress.ip_address(host), self.blocked_networks) is not None
        except ValueError:
            return False

    def _with_way_out(self, refusal: str, way_out: str) -> str:
        return f"{refusal}; {way_out}" if self.way_out else refusal


class GuardedResolver(AbstractResolver):
    """A resolver that returns only the addresses the policy allows, checked at connect time."""

    def __init__(self, policy: DestinationPolicy, resolver: AbstractResolver) -> None:
        self._policy = policy
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed, refusal = [], None
        for result in results:
            try:
                self._policy.check_address(result["host"], host)
            except AccessDenied as denied:
                refusal = denied
            else:
                allowed.append(result)
        if not allowed and refusal is not None:
            raise refusal
        return allowed

    async def close(self) -> None:
        await self._resolver.close()

"""The destination policy, without a network."""

import ipaddress
from dataclasses import replace

import pytest
from yarl import URL

from pingproxy.errors import AccessDenied, Outcome
from pingproxy.netguard import DestinationPolicy, address_problem, host_matches

BLOCKED = [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("100.64.0.1", "shared"), ("100.127.255.254", "shared"),
    ("0.0.0.0", "this network"), ("0.1.2.3", "this network"), ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("192.0.2.1", "documentation"), ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"), ("198.18.0.1", "benchmarking"), ("192.0.0.8", "IETF"),
    ("::1", "loopback"), ("::", "unspecified"), ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("ff02::1", "multicast"), ("2001:db8::1", "documentation"), ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"), ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a00:1", "private"), ("64:ff9b:1::1", "NAT64"), ("2002:7f00:1::1", "loopback"),
    ("2002:c0a8:101::1", "private"), ("::127.0.0.1", "global unicast"),
    ("2001::1", "IETF"), ("100::1", "global unicast"),
]
ALLOWED = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111",
           "::ffff:93.184.216.34", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_non_global_addresses_are_blocked_with_their_reason(address, reason):
    problem = address_problem(ipaddress.ip_address(address))

    assert problem is not None and reason in problem


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_pass(address):
    assert address_problem(ipaddress.ip_address(address)) is None


REFUSED_URLS = [
    ("http://127.0.0.1/wm", "loopback"),
    ("http://[::1]/wm", "loopback"),
    ("http://[::ffff:127.0.0.1]/wm", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://2130706433/", "numeric"),
    ("http://0x7f.1/", "numeric"),
    ("http://127.1/", "numeric"),
    ("http://user:pass@example.com/wm", "credentials"),
    ("http://user@example.com/wm", "credentials"),
    ("http://example.com:22/wm", "port 22"),
    ("http://example.com:6379/wm", "port 6379"),
    ("ftp://example.com/wm", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_refused_urls_say_why(url, reason):
    with pytest.raises(AccessDenied) as caught:
        DestinationPolicy().check_url(URL(url))

    assert reason in str(caught.value)
    assert caught.value.outcome is Outcome.FORBIDDEN_DESTINATION and caught.value.fault_code == 49


@pytest.mark.parametrize("url", ["https://example.com/wm", "http://example.com:8080/wm",
                                 "https://example.com:8443/", "http://93.184.216.34/wm"])
def test_public_web_urls_pass(url):
    DestinationPolicy().check_url(URL(url))


def test_allow_private_lifts_the_address_and_port_rules():
    policy = DestinationPolicy(allow_private=True)

    policy.check_url(URL("http://127.0.0.1:9999/wm"))
    policy.check_url(URL("http://[::1]:1/wm"))
    with pytest.raises(AccessDenied):
        policy.check_url(URL("http://user:pw@127.0.0.1/wm"))


def test_allowed_ports_replace_the_web_ports():
    policy = DestinationPolicy(allowed_ports=frozenset({8000}))

    policy.check_url(URL("http://example.com:8000/"))
    with pytest.raises(AccessDenied):
        policy.check_url(URL("https://example.com/"))


def test_allowed_ports_apply_with_allow_private_too():
    with pytest.raises(AccessDenied):
        DestinationPolicy(allow_private=True, allowed_ports=frozenset({443})).check_url(
            URL("http://127.0.0.1:22/"))


@pytest.mark.parametrize(("host", "allowed"), [
    ("example.com", True), ("EXAMPLE.com.", True), ("www.example.com", False),
    ("blog.example.org", True), ("a.b.example.org", True), ("example.org", False),
    ("evilexample.org", False), ("example.com.evil.net", False),
])
def test_host_patterns(host, allowed):
    assert host_matches(host, ("example.com", "*.example.org")) is allowed


def test_hosts_outside_the_allowlist_are_refused():
    policy = DestinationPolicy(allowed_hosts=("example.com",))

    policy.check_url(URL("https://example.com/wm"))
    with pytest.raises(AccessDenied) as caught:
        policy.check_url(URL("https://webmention.io/wm"))
    assert "allowed endpoints" in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:4001/", "http://127.0.0.1/",
                                 "https://example.com:4001/", "https://example.org/"])
def test_the_servers_refusals_name_no_flag_for_a_stranger_to_read(url):
    with pytest.raises(AccessDenied) as caught:
        DestinationPolicy(allowed_hosts=("example.com",)).check_url(URL(url))

    assert "--" not in str(caught.value)


@pytest.mark.parametrize(("policy", "url", "way_out"), [
    (DestinationPolicy(), "http://127.0.0.1:4001/", "--allow-private allows any port on "
                                                    "127.0.0.1"),
    (DestinationPolicy(), "http://localhost:4001/", "--allow-private allows any port on "
                                                    "localhost"),
    (DestinationPolicy(allowed_ports=frozenset({4001})), "http://10.0.0.1:4001/",
     "--allow-private allows it"),
    (DestinationPolicy(), "https://example.com:4001/",
     "--allowed-ports 80,443,4001,8080,8443 allows it"),
    (DestinationPolicy(allowed_ports=frozenset({443})), "http://127.0.0.1:4001/",
     "--allowed-ports 443,4001 allows it"),
    (DestinationPolicy(allowed_hosts=("example.org",)), "https://example.com/",
     "add it to --allowed-endpoints (now example.org)"),
])
def test_the_commands_refusals_name_the_flag_that_lifts_them(policy, url, way_out):
    with pytest.raises(AccessDenied) as caught:
        replace(policy, way_out=True).check_url(URL(url))

    assert way_out in str(caught.value)

"""Hostile request bodies: XML bombs, external entities, deep nesting, bad bytes, huge strings.

Shared by the tests that check each one's fault (tests/test_hostile_input_functional.py) and
by the benchmark that times them (bench/hostile.py). Pure data, no I/O.
"""

import xmlrpc.client

SOURCE, TARGET = "http://blog.example/post", "http://site.example/page"


def ping_body(source: str, target: str) -> bytes:
    return xmlrpc.client.dumps((source, target), "pingback.ping").encode()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<methodCall><methodName>pingback.ping</methodName><params>
<param><value><string>&lol9;</string></value></param>
<param><value><string>http://site.example/page</string></value></param></params></methodCall>"""

QUADRATIC_BLOWUP = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "' + b"x" * 20000
                    + b'">]><methodCall><methodName>pingback.ping</methodName><params><param>'
                    + b"<value><string>" + b"&a;" * 10000 + b"</string></value></param>"
                    + b"</params></methodCall>")


def external_entity(system_id: str) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e SYSTEM "{system_id}">]>'
            "<methodCall><methodName>pingback.ping</methodName><params>"
            "<param><value><string>&e;</string></value></param>"
            f"<param><value><string>{TARGET}</string></value></param></params></methodCall>"
            ).encode()


def external_dtd(system_id: str) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE methodCall SYSTEM "{system_id}">'
            "<methodCall><methodName>pingback.ping</methodName></methodCall>").encode()


def parameter_entity(system_id: str) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY % p SYSTEM "{system_id}"> %p;]>'
            "<methodCall><methodName>pingback.ping</methodName></methodCall>").encode()


def nested(levels: int) -> bytes:
    return (b"<?xml version='1.0'?><methodCall><methodName>pingback.ping</methodName><params>"
            b"<param>" + b"<value><array><data>" * levels + b"</data></array></value>" * levels
            + b"</param></params></methodCall>")


def nested_structs(levels: int) -> bytes:
    opening = b"<value><struct><member><name>k</name>"
    closing = b"</member></struct></value>"
    return (b"<methodCall><methodName>pingback.ping</methodName><params><param>"
            + opening * levels + b"<value>x</value>" + closing * levels
            + b"</param></params></methodCall>")


def hostile_bodies(decoy_url: str, secret_file: str) -> dict[str, tuple[bytes, set[int]]]:
    return {
        "billion-laughs": (BILLION_LAUGHS, {-32600}),
        "quadratic-blowup": (QUADRATIC_BLOWUP, {-32600}),
        "external-entity-file": (external_entity(f"file://{secret_file}"), {-32600}),
        "external-entity-url": (external_entity(f"{decoy_url}/entity"), {-32600}),
        "external-dtd": (external_dtd(f"{decoy_url}/dtd"), {-32600}),
        "parameter-entity": (parameter_entity(f"{decoy_url}/parameter"), {-32600}),
        "nested-arrays": (nested(1000), {-32600}),
        "nested-structs": (nested_structs(1000), {-32600}),
        "invalid-utf8": (ping_body(SOURCE, TARGET).replace(b"blog", b"bl\xc3\x28g"), {-32700}),
        "nul-bytes": (ping_body(SOURCE, TARGET).replace(b"blog", b"bl\x00og"), {-32700}),
        "60-KiB-source": (ping_body("http://blog.example/" + "a" * 60 * 1024, TARGET), {0x10}),
        "60-KiB-target": (ping_body(SOURCE, "http://site.example/" + "a" * 60 * 1024), {0x21}),
        "60-KiB-junk-string": (ping_body("x" * 60 * 1024, TARGET), {0x10}),
        "extra-elements": (ping_body(SOURCE, TARGET).replace(b"</methodCall>",
                                                             b"<extra/></methodCall>"), {-32600}),
        "trailing-garbage": (ping_body(SOURCE, TARGET) + b"<<garbage>>", {-32700}),
        "processing-instruction-only": (b"<?xml version='1.0'?><?pi data?>", {-32700}),
    }

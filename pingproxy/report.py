"""Reports as people and scripts read them: plain text, and JSON of a stable shape (pure).

The JSON shapes are documented in the README ("Check a set-up"); the check page renders the
same document as the command prints with --json, so the browser, the command and a script
all see one report.
"""

from pingproxy.discovery import Found
from pingproxy.findings import PageView, Report, Status
from pingproxy.ping import PingResult

_SENDERS = (("webmention", "WebMention sender (W3C)"), ("pingback", "Pingback 1.0 sender"),
            ("wordpress", "Lenient sender (WordPress)"))
_FORMS = {"path": "path form", "forward": "?forward= form", "discovery": "discovery mode"}
# Where the check's promise is made, with the receivers it holds for (W3C WebMention 3.2.1
# requires refusing a source equal to its target; not every receiver checks).
PROBES_TITLE = ("Probes this check sent (a mention or ping in them names the page as its own "
                "source and target, which a receiver that verifies the source refuses: it "
                "makes no mention of it):")


def check_json(report: Report) -> dict:
    """The check report as one JSON object."""
    proxy = report.proxy
    own = report.page.webmention.url if report.page.webmention else None
    return {
        "url": str(report.url),
        "status": report.status.value,
        "works": report.status is Status.WORKS,
        "verdict": report.verdict,
        "page": _page_json(report.page),
        "home": _page_json(report.home) if report.home else None,
        "pingproxy": None if proxy is None else {
            "url": str(proxy.url),
            "form": proxy.form,
            "endpoint": _text(proxy.endpoint),
            "is_page_endpoint": None if proxy.endpoint is None or own is None
            else proxy.endpoint == own,
        },
        "probes": [{
            "kind": probe.kind,
            "url": str(probe.url),
            "request": probe.request,
            "sent": probe.sent,
            "ok": probe.ok,
            "http_status": probe.http_status,
            "content_type": probe.content_type,
            "fault_code": probe.fault_code,
            "fault_meaning": probe.fault_meaning,
            "detail": probe.detail,
            "seconds": round(probe.seconds, 3),
        } for probe in report.probes],
        "concerns": [{"code": c.code, "text": c.text,
                      "fix": {"text": c.fix, "lines": list(c.lines)}} for c in report.concerns],
        "fix": None if report.fix is None else {
            "text": report.fix.text,
            "address": report.fix.address,
            "link": report.fix.link,
            "header": report.fix.header,
        },
        "seconds": round(report.seconds, 3),
    }


def _page_json(page: PageView) -> dict:
    return {
        "url": str(page.url),
        "final_url": _text(page.final_url),
        "http_status": page.http_status,
        "content_type": page.content_type,
        "redirects": [{"status": status, "url": str(url)} for status, url in page.redirects],
        "error": page.error,
        "webmention": _found_json(page.webmention),
        "pingback": _found_json(page.pingback),
        "wordpress": _found_json(page.lenient),
    }


def _found_json(found: Found | None) -> dict | None:
    if found is None:
        return None
    return {"url": _text(found.url), "written": found.written, "step": found.step}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def check_text(document: dict) -> str:
    """The check report (check_json's document) for people, ending in the verdict line."""
    lines = [*_page_lines("Page", document["page"])]
    if document["home"] is not None:
        lines += _page_lines("Home page", document["home"])
    proxy = document["pingproxy"]
    if proxy is not None:
        lines.append(f"pingproxy: {_FORMS[proxy['form']]}, {_forwards(proxy)}")
    if document["probes"]:
        lines.append(PROBES_TITLE)
        lines += [f"  {_probe_line(probe)}" for probe in document["probes"]]
    if document["concerns"]:
        lines.append("Concerns:")
        for concern in document["concerns"]:
            lines += [f"  - {concern['text']}", f"    Fix: {concern['fix']['text']}"]
            lines += [f"      {line}" for line in concern["fix"]["lines"]]
    fix = document["fix"]
    if fix is not None:
        lines.append(f"Fix: {fix['text']}")
        if fix["link"]:
            lines += [f"  {fix['link']}", f"  {fix['header']}"]
    lines.append(document["verdict"])
    return "\n".join(lines) + "\n"


def _page_lines(title: str, page: dict) -> list[str]:
    head = f"{title} {page['url']}"
    if page["error"] is not None:
        return [f"{head}: could not be fetched: {page['error']}"]
    head += f": HTTP {page['http_status']}, {page['content_type'] or 'no content type'}"
    if page["redirects"]:
        hops = ", ".join(f"{hop['status']} from {hop['url']}" for hop in page["redirects"])
        head += f", after {hops}"
    lines = [head]
    for key, label in _SENDERS:
        found = page[key]
        seen = "nothing" if found is None else (
            f"{found['url'] or repr(found['written']) + ' (not an absolute URL)'}"
            f" ({found['step']})")
        lines.append(f"  {label + ':':<28}{seen}")
    return lines


def _forwards(proxy: dict) -> str:
    if proxy["endpoint"] is None:
        return "but the page names no WebMention endpoint for it to forward to"
    own = {True: " (the page's own WebMention endpoint)",
           False: " (not the page's own WebMention endpoint)", None: ""}
    return f"forwards to {proxy['endpoint']}{own[proxy['is_page_endpoint']]}"


def _probe_line(probe: dict) -> str:
    came = []
    if probe["http_status"] is not None:
        came.append(f"HTTP {probe['http_status']}")
    if probe["content_type"]:
        came.append(probe["content_type"])
    if probe["fault_code"] is not None:
        came.append(f"fault {probe['fault_code']} ({probe['fault_meaning']})")
    came.append(f"{probe['seconds'] * 1000:.0f} ms")
    return f"Sent {probe['sent']} -> {', '.join(came)}: {probe['detail']}"


def ping_json(result: PingResult) -> dict:
    """The ping result as one JSON object."""
    return {
        "source": result.source,
        "target": result.target,
        "outcome": result.outcome,
        "delivered": result.delivered,
        "server": _found_json(result.server),
        "http_status": result.http_status,
        "fault_code": result.fault_code,
        "fault_meaning": result.fault_meaning,
        "detail": result.detail,
        "seconds": round(result.seconds, 3),
    }


def ping_text(result: PingResult) -> str:
    """The ping result for people: where it went, and what came back."""
    lines = []
    if result.server is not None:
        lines.append(f"Pingback server: {result.server.url} ({result.server.step})")
    if result.fault_code is not None:
        lines.append(f"Fault {result.fault_code} ({result.fault_meaning}): {result.detail}")
        if result.delivered:
            lines.append("Already registered: the pingback was delivered before.")
    elif result.delivered:
        lines.append(f"Success: {result.detail}")
    else:
        lines.append(f"Not delivered: {result.detail}")
    return "\n".join(lines) + "\n"

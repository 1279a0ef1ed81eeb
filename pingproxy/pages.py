"""The HTML pages people see when they open a pingback URL in a browser."""

from html import escape

from pingproxy import __version__
from pingproxy.urls import pingback_url

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em}}
code,pre{{background:#f4f4f4;padding:.1em .3em;overflow-x:auto}}</style>
</head><body>
<h1>{title}</h1>
{body}
<p><small>pingproxy {version}</small></p>
</body></html>
"""

_EXAMPLE_ENDPOINT = "https://example.com/webmention"


def landing(origin: str) -> str:
    """The front page: what this is, and how a site uses it."""
    example = pingback_url(origin, _EXAMPLE_ENDPOINT)
    body = f"""<p>This is <strong>pingproxy</strong>: it receives
<a href="https://www.hixie.ch/specs/pingback/pingback">Pingbacks</a> (XML-RPC) and forwards each one
as a <a href="https://www.w3.org/TR/webmention/">WebMention</a> to your site's WebMention
endpoint, then answers the blog that sent it. It stores nothing.</p>
<h2>Use it on your site</h2>
<p>If your pages already advertise their WebMention endpoint (an HTTP <code>Link</code> header,
or a <code>&lt;link&gt;</code> or <code>&lt;a&gt;</code> with <code>rel="webmention"</code>), the
shortest pingback URL is this server's address itself: pingproxy fetches the page a pingback
targets and discovers its endpoint, as a WebMention sender would.</p>
<pre>{escape(f'<link rel="pingback" href="{origin}/">')}</pre>
<p>Otherwise, put your WebMention endpoint after this server's address, and advertise the
result as your pingback URL, in your pages' <code>&lt;head&gt;</code>:</p>
<pre>{escape(f'<link rel="pingback" href="{example}">')}</pre>
<p>or as an HTTP header:</p>
<pre>{escape(f"X-Pingback: {example}")}</pre>
<p>If your endpoint has its own query string, percent-encode the whole endpoint after the
slash, since some senders drop a pingback URL's query string:
<code>{escape(pingback_url(origin, _EXAMPLE_ENDPOINT + "?key=1"))}</code>.
The form <code>{escape(origin)}/webmention?forward={escape(_EXAMPLE_ENDPOINT)}</code>
works too.</p>"""
    return _PAGE.format(title="pingproxy: Pingback to WebMention", body=body, version=__version__)


def endpoint(origin: str, endpoint_text: str, pingback_address: str) -> str:
    """The page behind a site's pingback URL: where its pingbacks go."""
    body = f"""<p>This address is a <strong>pingback endpoint</strong>. Blogs send
<code>pingback.ping(source, target)</code> to it as an XML-RPC <code>POST</code>; pingproxy
forwards each one as a WebMention to:</p>
<pre>{escape(endpoint_text or "(no endpoint named)")}</pre>
<p>To use it, advertise it on your pages:</p>
<pre>{escape(f'<link rel="pingback" href="{pingback_address}">')}</pre>
<p>See <a href="{escape(origin)}/">the front page</a> for how it works.</p>"""
    return _PAGE.format(title="pingproxy: a pingback endpoint", body=body, version=__version__)

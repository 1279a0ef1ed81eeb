"""One site's three posts as each kind of feed: RSS 2.0, Atom, JSON Feed and an h-feed page,
and that site on loopback with its targets and the receivers they advertise.

The posts are given newest last in every feed, so that the order a send takes them in comes
from their dates, never from the feed's order.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from yarl import URL

from tests.send_web import Host, h_entry, start_receiver


@dataclass(frozen=True)
class Post:
    path: str
    title: str
    updated: str  # RFC 3339
    published: str


POSTS = (
    Post("/2026/11/first", "First", "2026-11-01T09:00:00Z", "2026-11-01T09:00:00Z"),
    Post("/2026/11/second", "Second", "2026-11-05T09:00:00Z", "2026-11-02T09:00:00Z"),
    Post("/2026/11/third", "Third", "2026-11-03T09:00:00Z", "2026-11-03T09:00:00Z"),
)
# Newest first by updated: second (11-05), third (11-03), first (11-01).
NEWEST_FIRST = ("/2026/11/second", "/2026/11/third", "/2026/11/first")

def _rfc_822(rfc_3339: str) -> str:
    when = datetime.fromisoformat(rfc_3339)
    return f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>"


def rss(base: str, posts: Sequence[Post] = POSTS) -> str:
    """RSS 2.0: each item's link, and pubDate (RSS has no updated: the newest date stands)."""
    items = "".join(
        f"<item><title>{post.title}</title><link>{base}{post.path}</link>"
        f"<guid isPermaLink='true'>{base}{post.path}</guid>"
        f"{_rfc_822(post.updated) if post.updated else ''}</item>" for post in posts)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>A blog</title><link>{base}/</link>{items}</channel></rss>")


def atom(base: str, posts: Sequence[Post] = POSTS) -> str:
    """Atom 1.0 with relative links (resolved against xml:base)."""
    entries = "".join(
        f'<entry><title>{post.title}</title><link rel="alternate" href="{post.path}"/>'
        f"<id>{base}{post.path}</id><updated>{post.updated}</updated>"
        f"<published>{post.published}</published></entry>" for post in posts)
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            f'xml:base="{base}/"><title>A blog</title><id>{base}/</id>'
            f"<updated>2026-11-05T09:00:00Z</updated>{entries}</feed>")


def json_feed(base: str, posts: Sequence[Post] = POSTS) -> str:
    return json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "A blog",
        "items": [{"id": post.path, "url": f"{base}{post.path}", "title": post.title,
                   "date_published": post.published, "date_modified": post.updated,
                   "content_html": "<p>see the page</p>"} for post in posts]})


def h_feed(base: str, posts: Sequence[Post] = POSTS) -> str:
    """A home page marked up as an h-feed of h-entries, each with u-url and dt-updated."""
    entries = "".join(
        f'<article class="h-entry"><a class="u-url p-name" href="{post.path}">{post.title}</a>'
        f'<time class="dt-published" datetime="{post.published}"></time>'
        f'<time class="dt-updated" datetime="{post.updated}"></time></article>'
        for post in posts)
    return (f'<!doctype html><html><body><main class="h-feed"><h1 class="p-name">A blog</h1>'
            f"{entries}</main></body></html>")


FEEDS = {"rss": ("/feed.rss", rss, "application/rss+xml"),
         "atom": ("/feed.atom", atom, "application/atom+xml"),
         "json-feed": ("/feed.json", json_feed, "application/feed+json"),
         "h-feed": ("/", h_feed, "text/html; charset=utf-8")}


@dataclass
class Site:
    """The blog, its targets, and what each receiver holds."""

    blog: object
    sites: object
    django: object
    webmentions: object
    pingback: object

    @property
    def base(self) -> str:
        return self.blog.url("/").rstrip("/")

    def post_url(self, path: str) -> str:
        return self.base + path

    def targets(self, path: str) -> tuple[str, str, str]:
        slug = path.rsplit("/", 1)[1]
        return (self.sites.url(f"/django/{slug}"), self.sites.url(f"/py/{slug}"),
                self.sites.url(f"/pingback/{slug}"))

    def publish(self, post: Post, *, links: tuple[str, ...] | None = None,
                status: int = 200) -> None:
        self.blog.page(post.path, h_entry(*(self.targets(post.path) if links is None
                                            else links)), status=status)

    def feed(self, kind: str, posts=POSTS) -> str:
        path, write, content_type = FEEDS[kind]
        return self.blog.document(path, write(self.base, posts), content_type)

    def stored(self) -> set[tuple[str, str]]:
        return self.django.current() | self.webmentions.current()


async def make_site(blog: Host, sites: Host, aiohttp_server, pingback_server) -> Site:
    """The blog's three posts, each linking to a target of each receiver and a pingback one."""
    django = await start_receiver(aiohttp_server, "django-webmention", "127.0.0.3")
    webmentions = await start_receiver(aiohttp_server, "webmentions", "127.0.0.4")
    made = Site(blog, sites, django, webmentions, pingback_server)
    for post in POSTS:
        django_target, py_target, pingback_target = made.targets(post.path)
        # django-webmention's middleware and webmentions' after_request hook: a Link header.
        sites.page(URL(django_target).path, "<p>a target</p>",
                   headers=[("Link", f'<{django.url()}>; rel="webmention"')])
        sites.page(URL(py_target).path,
                   f'<link rel="webmention" href="{webmentions.url()}"><p>a target</p>')
        sites.page(URL(pingback_target).path, "<p>pingbacks only</p>",
                   headers=[("X-Pingback", pingback_server.url)])
        made.publish(post)
    return made

"""Which links a post makes, and why each other link was skipped: pure, no sockets."""

import pytest
from yarl import URL

from pingproxy.links import (
    ALSO,
    BLOCKED_ADDRESS,
    DUPLICATE,
    E_CONTENT,
    H_ENTRY,
    MEDIA,
    OUTSIDE_POST,
    PREVIOUS,
    SCHEME,
    SELF,
    SOURCE_ITSELF,
    TOO_MANY,
    Choice,
    choose,
)

PAGE = URL("https://me.example/2026/post")
CHOICE = Choice(source_urls=(PAGE,))

H_ENTRY_PAGE = """<!doctype html><html><head><base href="/2026/notes/"></head><body>
<nav><a href="/">home</a> <a href="https://elsewhere.example/blogroll">blogroll</a></nav>
<article class="h-entry">
  <a class="u-in-reply-to" href="https://replied.example/a">in reply to</a>
  <div class="u-like-of h-cite"><a class="u-url" href="https://liked.example/b">liked</a></div>
  <div class="e-content">
    <p>See <a href="relative/1">a relative link</a>,
    <a href="https://other.example/c#section">one with a fragment</a>,
    <a href="HTTPS://OTHER.EXAMPLE/c">the same one shouting</a>,
    <a href="mailto:me@me.example">mail</a>, <a href="https://me.example/about">myself</a>,
    <a href="/2026/post">this very post</a> and
    <a href="https://elsewhere.example/blogroll">the blogroll again</a>.</p>
    <img src="https://pictures.example/cat.jpg" alt="a cat">
  </div>
  <a class="u-syndication" href="https://social.example/@me/1">also posted</a>
</article>
<footer><a href="https://sponsor.example/">sponsor</a></footer>
</body></html>"""


def targets(html: str, choice: Choice = CHOICE) -> list[tuple[str, str]]:
    return [(str(link.url), link.found_in) for link in choose(html, PAGE, choice).links]


def skips(html: str, choice: Choice = CHOICE) -> list[tuple[str, str | None, str]]:
    return [(skip.written, skip.url, skip.reason) for skip in choose(html, PAGE, choice).skipped]


def test_an_h_entry_gives_its_properties_then_its_e_content_links():
    chosen = choose(H_ENTRY_PAGE, PAGE, CHOICE)

    assert chosen.container == E_CONTENT
    assert targets(H_ENTRY_PAGE) == [
        ("https://replied.example/a", "in-reply-to"),
        ("https://liked.example/b", "like-of"),
        ("https://social.example/@me/1", "syndication"),
        ("https://other.example/c", E_CONTENT),
        ("https://elsewhere.example/blogroll", E_CONTENT),
    ]


def test_every_other_link_of_an_h_entry_page_is_skipped_with_its_reason():
    assert skips(H_ENTRY_PAGE) == [
        ("relative/1", "https://me.example/2026/notes/relative/1", SELF),
        ("HTTPS://OTHER.EXAMPLE/c", "https://other.example/c", DUPLICATE),
        ("mailto:me@me.example", None, SCHEME),
        ("https://me.example/about", "https://me.example/about", SELF),
        ("/2026/post", "https://me.example/2026/post", SOURCE_ITSELF),
        ("/", "https://me.example/", OUTSIDE_POST),
        ("https://elsewhere.example/blogroll", "https://elsewhere.example/blogroll", DUPLICATE),
        ("https://replied.example/a", "https://replied.example/a", DUPLICATE),
        ("https://liked.example/b", "https://liked.example/b", DUPLICATE),
        ("https://social.example/@me/1", "https://social.example/@me/1", DUPLICATE),
        ("https://sponsor.example/", "https://sponsor.example/", OUTSIDE_POST),
    ]


def test_self_links_are_targets_with_self():
    chosen = targets(H_ENTRY_PAGE, Choice(source_urls=(PAGE,), include_self=True))

    assert ("https://me.example/2026/notes/relative/1", E_CONTENT) in chosen
    assert ("https://me.example/about", E_CONTENT) in chosen
    assert ("https://me.example/2026/post", E_CONTENT) not in chosen


def test_media_sources_are_targets_only_when_asked():
    assert ("https://pictures.example/cat.jpg", MEDIA) not in targets(H_ENTRY_PAGE)
    assert ("https://pictures.example/cat.jpg", MEDIA) in targets(
        H_ENTRY_PAGE, Choice(source_urls=(PAGE,), media=True))


@pytest.mark.parametrize(("body", "container", "inside"), [
    ("<nav><a href='https://n.example/'>n</a></nav><main><a href='https://m.example/'>m</a>"
     "</main><article><a href='https://a.example/'>a</a></article>", "main", "https://m.example/"),
    ("<nav><a href='https://n.example/'>n</a></nav><article><a href='https://a.example/'>a</a>"
     "</article><article><a href='https://b.example/'>b</a></article>", "article",
     "https://a.example/"),
    ("<p><a href='https://b.example/'>b</a></p>", "body", "https://b.example/"),
])
def test_without_microformats_main_then_article_then_body_is_the_post(body, container, inside):
    chosen = choose(f"<html><body>{body}</body></html>", PAGE, CHOICE)

    assert chosen.container == container
    assert [str(link.url) for link in chosen.links] == [inside]
    assert all(skip.reason == OUTSIDE_POST for skip in chosen.skipped)


def test_an_h_entry_without_e_content_gives_only_its_properties():
    page = ("<div class='h-entry'><a class='u-like-of' href='https://liked.example/'>like</a>"
            "<p class='p-name'>Liked it, see <a href='https://aside.example/'>this</a></p></div>")
    chosen = choose(page, PAGE, CHOICE)

    assert chosen.container == H_ENTRY
    assert targets(page) == [("https://liked.example/", "like-of")]
    assert ("https://aside.example/", OUTSIDE_POST) in [(s.url, s.reason) for s in chosen.skipped]


def test_the_callers_targets_come_after_the_posts_and_may_be_on_its_own_site():
    choice = Choice(source_urls=(PAGE,), also=("https://removed.example/x", "ftp://old.example/"),
                    previous=("https://me.example/other-post", "https://replied.example/a"))

    assert targets(H_ENTRY_PAGE, choice)[-2:] == [("https://removed.example/x", ALSO),
                                                  ("https://me.example/other-post", PREVIOUS)]
    assert ("ftp://old.example/", None, SCHEME) in skips(H_ENTRY_PAGE, choice)


def test_links_beyond_the_cap_are_skipped_as_too_many():
    chosen = choose(H_ENTRY_PAGE, PAGE, Choice(source_urls=(PAGE,), max_links=2))

    assert len(chosen.links) == 2
    assert [s.url for s in chosen.skipped if s.reason == TOO_MANY] == [
        "https://social.example/@me/1", "https://other.example/c",
        "https://elsewhere.example/blogroll"]


def test_links_the_guard_refuses_are_skipped_with_its_reason():
    def blocked(url: URL) -> str | None:
        return "a loopback address" if url.host == "127.0.0.1" else None

    page = "<main><a href='http://127.0.0.1/admin'>x</a><a href='https://ok.example/'>y</a></main>"
    chosen = choose(page, PAGE, Choice(source_urls=(PAGE,), blocked=blocked))

    assert [str(link.url) for link in chosen.links] == ["https://ok.example/"]
    [skip] = chosen.skipped
    assert (skip.reason, skip.detail) == (BLOCKED_ADDRESS, "a loopback address")


@pytest.mark.parametrize("html", ["", "just text", "http://looks.example/like-a-url", None])
def test_a_page_without_elements_has_no_links_and_no_warning(html):
    assert choose(html, PAGE, CHOICE).links == ()

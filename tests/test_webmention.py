"""Reading a receiver's refusal: the text of an HTML error page, the meaning of a sentence,
and an excerpt short enough for a fault that still says why."""

from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingproxy.errors import Outcome
from pingproxy.webmention import (
    ERROR_PHRASES,
    EXCERPT_CHARACTERS,
    MAX_HTML_MARKUP_CHARACTERS,
    excerpt,
    form_value,
    html_text,
    meaning_of,
)

HTML_PAGES = [
    # Django's HttpResponseBadRequest("...") sends the bare text as text/html.
    pytest.param("Target URL did not resolve to a resource on the server",
                 "Target URL did not resolve to a resource on the server", id="bare-text"),
    pytest.param("<html><head><title>502 Bad Gateway</title></head><body><center>"
                 "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
                 "502 Bad Gateway nginx", id="nginx-page-title-not-repeated"),
    pytest.param("<h1>Refused</h1><p>Source &amp; target\n\n  differ&nbsp;here</p>",
                 "Refused Source & target differ here", id="entities-and-whitespace"),
    pytest.param("<style>p { color: red }</style><script>alert('no')</script>"
                 "<!-- <p>hidden</p> --><p>shown</p>", "shown", id="script-style-comment"),
    pytest.param("Max retries (Caused by NewConnectionError('<urllib3.connection."
                 "HTTPSConnection object at 0x7f>: Failed to establish a new connection'))",
                 "Max retries (Caused by NewConnectionError(' : Failed to establish a new "
                 "connection'))", id="python-repr-is-markup"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("html", "text"), HTML_PAGES)
def test_html_text_is_what_the_page_shows(html, text):
    assert html_text(html) == text


def test_html_text_reads_no_further_than_its_markup_cap():
    html = "<p>" + "x" * (MAX_HTML_MARKUP_CHARACTERS - 3) + "</p><p>beyond</p>"

    assert "beyond" not in html_text(html)
    assert html_text(html).startswith("xxx")


SENTENCES = [
    # django-webmention 4.0.0, webmention/resolution.py and webmention/views.py
    ("Source URL did not contain target URL", Outcome.NO_LINK),
    ("Could not fetch source URL", Outcome.SOURCE_NOT_FOUND),
    ("Target URL did not resolve to a resource on the server", Outcome.TARGET_NOT_FOUND),
    ("webmention source and/or target not in request", None),
    # webmentions 0.2.0: _exceptions.py's sentence around handlers/_parser.py's message
    ("Invalid Webmention from 'https://blog.example/a' to 'https://site.example/b': "
     "Target URL domain does not match server domain", Outcome.TARGET_NOT_SUPPORTED),
    ("Invalid Webmention from 'https://blog.example/a' to 'https://site.example/b': "
     "host blog.example resolves to a non-public address", None),
    # webmention.io, controllers/webmention.rb, without its error names
    ("The source URI does not exist", Outcome.SOURCE_NOT_FOUND),
    ("The target URI does not exist", Outcome.TARGET_NOT_FOUND),
    ("The source URI does not contain a link to the target URI", Outcome.NO_LINK),
    ("The specified Webmention has already been registered", Outcome.ALREADY_REGISTERED),
    # capjamesg/webmention-receiver, main.py
    ("Source cannot be equal to target.", Outcome.TARGET_NOT_SUPPORTED),
    # PROTOCOLS.md's {"error": "a sentence"} and issue 10's other examples
    ("Source URL does not link to you.", Outcome.NO_LINK),
    ("No such post", Outcome.TARGET_NOT_FOUND),
    ("Source URL not found", Outcome.SOURCE_NOT_FOUND),
    ("That is not a valid target for this site", Outcome.TARGET_NOT_SUPPORTED),
    ("ALREADY REGISTERED", Outcome.ALREADY_REGISTERED),
    # No meaning beyond the status
    ("Bad Request", None),
    ("Error", None),
    ("", None),
]


@pytest.mark.parametrize(("sentence", "outcome"), SENTENCES, ids=lambda v: str(v)[:40])
def test_a_sentence_maps_by_what_it_says(sentence, outcome):
    assert meaning_of(sentence) is outcome


@pytest.mark.parametrize("phrase", ERROR_PHRASES)
def test_every_phrase_is_found_in_any_case(phrase):
    assert meaning_of(f"Refused: {phrase.upper()}.") is ERROR_PHRASES[phrase]


@pytest.mark.parametrize("url", [
    "https://blog.example/already registered",
    "https://blog.example/source%20not%20found/no-such-post",
])
def test_words_inside_an_echoed_url_carry_no_meaning(url):
    assert meaning_of(f"Invalid Webmention from '{url}': it failed") is None


LONG_PATH = "/2026/11/" + "a-very-long-slug-" * 8


@pytest.mark.parametrize(("text", "kept", "dropped"), [
    pytest.param(f"Invalid Webmention from 'https://blog.example{LONG_PATH}' to "
                 f"'https://site.example{LONG_PATH}': Target URL domain does not match server "
                 "domain",
                 ["'https://blog.example/…'", "'https://site.example/…'",
                  "Target URL domain does not match server domain"], [LONG_PATH],
                 id="echoed-urls-shortened"),
    pytest.param("could not fetch https://blog.example/post.", ["https://blog.example/post."],
                 [], id="short-url-kept"),
    pytest.param("x" * 5000 + " so the source has no link", ["so the source has no link"],
                 ["x" * 200], id="tail-kept"),
    pytest.param("bad\x00\x07 thing\n\n  more", ["bad thing more"], ["\x00"], id="cleaned"),
])
def test_excerpt_is_bounded_and_keeps_the_reason(text, kept, dropped):
    line = excerpt(text)

    assert len(line) <= EXCERPT_CHARACTERS
    for part in kept:
        assert part in line
    for part in dropped:
        assert part not in line


@given(st.text(alphabet=st.sampled_from("aZ09_.-~%+:/?=&# @;,!*'()[]$é\n\x00"), max_size=40)
       | st.text(max_size=20))
def test_form_values_are_what_quote_plus_writes(text):
    assert form_value(text) == quote_plus(text)

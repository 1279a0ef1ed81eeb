"""The pages in a real browser: Debian's Chromium (never a downloaded build) driven by Playwright.

`make test` installs the chromium package when /usr/bin/chromium is missing, so these tests
never skip. Screenshots at desktop and phone width go to tests/screenshots/ (git-ignored).
"""

from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from pingproxy.errors import FAULT_CODES, FAULT_MEANINGS, Outcome
from tests.test_diagnose_functional import (
    SELF_MENTION_REFUSAL,
    a_site,
    assert_no_mention,
    html,
    pingback_link,
    webmention_link,
)

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium reaches for the network at start, which a
# closed network (CI's) refuses.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ENDPOINT = "https://example.com/webmention"
# Each step waits at most this long: generous, on a machine shared with other test runs.
STEP_TIMEOUT_MS = 15_000

# WCAG 2.1 contrast ratio of every element's own text against the background it sits on.
LOWEST_CONTRAST = """() => {
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92
                                                   : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const rgba = text => text.match(/[\\d.]+/g).map(Number);
  const background = element => {
    for (let e = element; e; e = e.parentElement) {
      const color = rgba(getComputedStyle(e).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color;
    }
    return [255, 255, 255];
  };
  let lowest = {ratio: 21, text: ""};
  for (const element of document.querySelectorAll("body *")) {
    const own = [...element.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || element.closest("[hidden]") || !element.offsetParent) continue;
    const [a, b] = [luminance(rgba(getComputedStyle(element).color)),
                    luminance(background(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < lowest.ratio) lowest = {ratio, text: element.textContent.trim().slice(0, 60)};
  }
  return lowest;
}"""


@pytest.fixture
async def browser():
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=CHROMIUM_FLAGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser, viewport=DESKTOP, **options):
    context = await browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    return await context.new_page()


async def screenshots(browser, url: str, name: str) -> None:
    """The page at desktop and phone width, whole; at phone width it must not scroll sideways."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = await open_page(browser, viewport)
        await page.goto(url)
        await page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth"), width
        contrast = await page.evaluate(LOWEST_CONTRAST)
        assert contrast["ratio"] >= 4.5, contrast
        await page.context.close()


async def tab_to(page, name: str, most_presses: int = 20) -> None:
    """Press Tab until the element with this id (or copy:ID, the button copying ID) has focus."""
    for _ in range(most_presses):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("(document.activeElement.dataset.copy ? 'copy:' + "
                                      "document.activeElement.dataset.copy : '') || "
                                      "document.activeElement.id")
        if focused == name:
            return
    raise AssertionError(f"{name} never got the focus from the keyboard")


def base_of(proxy) -> str:
    return str(proxy.make_url("")).rstrip("/")


async def test_the_endpoint_form_writes_the_tags(browser, proxy):
    base = base_of(proxy)
    page = await open_page(browser)
    await page.goto(base + "/")

    await page.get_by_label("Your WebMention endpoint").fill(ENDPOINT)
    await page.get_by_role("button", name="Write the tags").click()

    assert await page.locator("#path-link").inner_text() == \
        f'<link rel="pingback" href="{base}/{ENDPOINT}">'
    assert await page.locator("#path-header").inner_text() == f"X-Pingback: {base}/{ENDPOINT}"
    assert await page.locator("#discovery-link").inner_text() == \
        f'<link rel="pingback" href="{base}/">'
    await screenshots(browser, page.url, "landing-tags")


async def test_the_copy_button_copies_the_tag(browser, proxy):
    base = base_of(proxy)
    page = await open_page(browser, permissions=["clipboard-read", "clipboard-write"])
    await page.goto(f"{base}/?endpoint={ENDPOINT}")

    await page.get_by_role("button", name="Copy the link tag, path form").click()

    assert await page.evaluate("navigator.clipboard.readText()") == \
        f'<link rel="pingback" href="{base}/{ENDPOINT}">'
    assert await page.locator("#path-link-status").inner_text() == "Copied."


async def test_the_forms_work_from_the_keyboard_alone(browser, proxy):
    page = await open_page(browser, permissions=["clipboard-read", "clipboard-write"])
    await page.goto(base_of(proxy) + "/")

    await tab_to(page, "endpoint")
    await page.keyboard.type(ENDPOINT)
    await page.keyboard.press("Enter")
    await page.locator("#path-link").wait_for()
    await tab_to(page, "copy:path-link")
    await page.keyboard.press("Enter")

    assert await page.evaluate("document.activeElement.dataset.copy") == "path-link"
    assert ENDPOINT in await page.evaluate("navigator.clipboard.readText()")


async def test_the_pages_work_without_javascript(browser, proxy):
    page = await open_page(browser, java_script_enabled=False)
    await page.goto(base_of(proxy) + "/")

    await page.get_by_label("Your WebMention endpoint").fill(ENDPOINT)
    await page.get_by_role("button", name="Write the tags").click()

    assert ENDPOINT in await page.locator("#path-link").inner_text()
    assert not await page.get_by_role("button", name="Copy the link tag, path form").count()


async def test_a_check_of_a_good_site_reads_yes(browser, proxy, endpoint, site):
    endpoint.reply(400, json=SELF_MENTION_REFUSAL)
    page_url = a_site(site, html(webmention_link(endpoint.url()),
                                 pingback_link(f"{base_of(proxy)}/{endpoint.url()}")))
    page = await open_page(browser)
    await page.goto(base_of(proxy) + "/")

    await page.get_by_label("Address of a page of your site").fill(page_url)
    await page.get_by_role("button", name="Check", exact=True).click()

    verdict = await page.locator("#verdict").inner_text()
    assert verdict.startswith("Yes: pingbacks to this page will reach its WebMention endpoint")
    await screenshots(browser, page.url, "check-works")
    assert_no_mention(endpoint, site)


async def test_a_check_of_a_broken_site_reads_no_and_gives_the_fix(browser, proxy, endpoint,
                                                                   site):
    endpoint.reply(400, json=SELF_MENTION_REFUSAL)
    page_url = a_site(site, html(webmention_link(endpoint.url()),
                                 pingback_link(f"{base_of(proxy)}/{endpoint.url('/old')}")),
                      home=html())
    page = await open_page(browser)
    await page.goto(base_of(proxy) + "/check")

    await page.get_by_label("Address of a page of your site").fill(page_url)
    await page.keyboard.press("Enter")

    assert (await page.locator("#verdict").inner_text()).startswith("No: pingbacks")
    assert await page.locator("#fix-link").inner_text() == \
        f'<link rel="pingback" href="{base_of(proxy)}/{endpoint.url()}">'
    await screenshots(browser, page.url, "check-broken")
    assert_no_mention(endpoint, site)


async def test_a_url_that_names_no_endpoint_shows_the_fault_and_no_tag(browser, proxy):
    code = FAULT_CODES[Outcome.INVALID_ENDPOINT]
    page = await open_page(browser)

    response = await page.goto(base_of(proxy) + "/nope/x")

    assert response.status == 404
    alert = " ".join((await page.get_by_role("alert").inner_text()).split())
    assert alert.startswith(f"A pingback sent to this address would get fault {code} "
                            f"({FAULT_MEANINGS[code]}): it names no WebMention endpoint")
    assert "rel=" not in await page.locator("main").inner_text()
    assert not await page.locator("button[data-copy]").count()
    await screenshots(browser, page.url, "no-endpoint")
    await page.get_by_role("link", name="Write the tags for your endpoint").click()
    assert await page.get_by_label("Your WebMention endpoint").is_visible()

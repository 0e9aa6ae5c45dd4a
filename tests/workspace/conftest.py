"""Browser fixtures for the workspace tests: real headless Chromium driven by Playwright (sync API)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("T2G_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

# Finds a phrase in #output-text across its text nodes and returns a Range over it (UTF-16 offsets).
_RANGE_JS = """
(phrase) => {
  const root = document.getElementById("output-text");
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  let total = 0, node;
  while ((node = walker.nextNode())) { nodes.push([node, total]); total += node.data.length; }
  const full = nodes.map(([n]) => n.data).join("");
  const at = full.indexOf(phrase);
  if (at < 0) throw new Error("phrase not in the output: " + phrase);
  const locate = (unit, preferNext) => {
    for (const [n, offset] of nodes) {
      const end = offset + n.data.length;
      if (unit < end || (unit === end && !preferNext)) return [n, unit - offset];
    }
    const [last, offset] = nodes[nodes.length - 1];
    return [last, unit - offset];
  };
  window.__t2gRange = (a, b) => {
    const range = document.createRange();
    range.setStart(...locate(a, true));
    range.setEnd(...locate(b, false));
    return range;
  };
  return [at, at + phrase.length];
}
"""


@pytest.fixture(scope="module")
def browser(django_db_setup):
    """One Chromium per test module. While Playwright's sync API is alive it marks an asyncio loop as
    running in this thread, and Django refuses ORM calls there; the test's own ORM calls (fixtures,
    assertions) are plain synchronous code, so the guard is lifted for exactly this fixture's lifetime."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (run `make browser`)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context on the live server; records dialogs, page errors and console errors."""
    # bypass_csp: these tests drive the page with Playwright's string predicates (wait_for_function),
    # which the app's CSP (no 'unsafe-eval') would block; tests/security/test_csp_browser.py checks the
    # policy itself, without bypassing it.
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.dialogs = []
    tab.errors = []

    def on_dialog(dialog):
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))

    def on_console(message):
        # The browser asks for /favicon.ico on its own; the app has none, which is not an app error.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            tab.errors.append(message.text)

    tab.on("console", on_console)
    yield tab
    context.close()


@pytest.fixture
def login_browser(page, live_server):
    """Log a user in by their session cookie (the login form itself is exercised in one test)."""
    from django.conf import settings
    from django.test import Client

    def _login(user):
        client = Client()
        client.force_login(user)
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
              "url": live_server.url}]
        )  # fmt: skip
        return page

    return _login


def open_workspace(page, path: str):
    page.goto(path)
    page.wait_for_selector('#workspace[data-ready="1"]')
    return page


def select_phrase(page, phrase: str, *, mouse: bool) -> None:
    """Select ``phrase`` in the output: by dragging the real mouse, or by setting the DOM selection."""
    start, end = page.evaluate(_RANGE_JS, phrase)
    if not mouse:
        page.evaluate(
            """([a, b]) => { const s = window.getSelection(); s.removeAllRanges(); s.addRange(window.__t2gRange(a, b)); }""",
            [start, end],
        )
        return
    first_len = 2 if ord(phrase[0]) > 0xFFFF else 1  # UTF-16 units of the first and last code point
    last_len = 2 if ord(phrase[-1]) > 0xFFFF else 1
    box = page.evaluate(
        """([a, a2, b2, b]) => {
            const first = window.__t2gRange(a, a2).getClientRects()[0];
            const rects = window.__t2gRange(b2, b).getClientRects();
            const last = rects[rects.length - 1];
            return {x0: first.left + 1, y0: first.top + first.height / 2, x1: last.right - 1, y1: last.top + last.height / 2};
        }""",
        [start, start + first_len, end - last_len, end],
    )
    page.mouse.move(box["x0"], box["y0"])
    page.mouse.down()
    page.mouse.move((box["x0"] + box["x1"]) / 2, (box["y0"] + box["y1"]) / 2, steps=4)
    page.mouse.move(box["x1"], box["y1"], steps=4)
    page.mouse.up()


def critique_first_word_by_keyboard(tab, text: str, critique: str) -> None:
    """As an annotator on the keyboard: a poor span on the output's first word with ``critique``, then an
    overall critique and a rating of 1, waiting for the autosave."""
    words = text.split()
    assert words, f"an empty output to annotate: {text!r}"
    select_phrase(tab, words[0], mouse=False)
    tab.keyboard.press("2")  # the second label: poor
    tab.wait_for_selector("#span-popover:not([hidden])")
    tab.keyboard.type(critique)
    tab.keyboard.press("Control+Enter")
    tab.wait_for_selector(".span-item")
    with tab.expect_response(lambda response: response.url.endswith("/save/")):
        tab.fill("#overall-critique", "Not a summary of the item: " + critique)
        tab.locator('input[name="rating"][value="1"]').check()


def tab_to(page, selector: str, limit: int = 60) -> int:
    """Press Tab until the focused element matches selector; the number of presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return presses
    raise AssertionError(f"Tab never reached {selector}")

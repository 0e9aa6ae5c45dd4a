"""The code view in Chromium: numbered lines, Pygments colours, scroll or wrap, exact offsets; snap to words;
a warning when the same text is labelled good and poor."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services
from annotations.highlight import code_tokens
from annotations.models import Annotation

from .conftest import open_workspace, select_phrase

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = (
    "def greet(name):\r\n"
    "\t# Grüße an 東京 😀\r\n"
    "\treturn f'Hallo {name} — ' + 'x' * 3  " + "# a very long comment " * 12 + "\r\n"
    "\n"
    "print(greet('Zoë'))\n"
)


def _open(page, login_browser, annotator, project, make_generation, text):
    generation = make_generation(project, text)
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    return annotation


def test_code_tokens_index_the_raw_text_exactly():
    tokens = code_tokens(CODE)
    assert tokens, "a Python output gets highlighted"
    for start, end, css_class in tokens:
        assert 0 <= start < end <= len(CODE) and css_class
    keyword = next(token for token in tokens if token[2] == "k")
    assert CODE[keyword[0] : keyword[1]] == "def"
    comment = next(token for token in tokens if token[2] == "c1")
    # Code points, not bytes or UTF-16; Pygments keeps the \r of CRLF in the comment (the raw text as given).
    assert CODE[comment[0] : comment[1]] == "# Grüße an 東京 😀\r"
    assert code_tokens("x" * 300_000) == []


def test_code_view_numbers_lines_highlights_scrolls_and_keeps_offsets_exact(
    page, login_browser, annotator, code_project, make_generation
):
    annotation = _open(page, login_browser, annotator, code_project, make_generation, CODE)
    assert page.evaluate("document.getElementById('output-text').textContent") == CODE
    assert page.locator("#output-text .line").count() == 5
    numbers = page.evaluate(
        "Array.from(document.querySelectorAll('#output-text .line')).map(l => getComputedStyle(l, '::before').content)"
    )
    assert numbers[0] != "none"
    assert page.locator("#output-text span.k", has_text="def").count() == 1
    assert page.locator("#output-text span.c1").first.text_content() == "# Grüße an 東京 😀\r"
    # Lines keep one line height each, so the numbers sit beside their lines.
    heights = page.evaluate(
        "Array.from(document.querySelectorAll('#output-text .line')).map(l => l.getBoundingClientRect().height)"
    )
    assert max(heights) - min(heights) < 2, heights
    # A long line scrolls sideways; "Wrap lines" wraps it instead.
    assert page.evaluate(
        "(() => { const o = document.getElementById('output-text'); return o.scrollWidth > o.clientWidth })()"
    )
    page.click("#wrap-toggle")
    assert page.get_attribute("#wrap-toggle", "aria-pressed") == "true"
    assert page.evaluate(
        "(() => { const o = document.getElementById('output-text'); return o.scrollWidth <= o.clientWidth })()"
    )

    # A selection across a tab, CRLF and non-ASCII, over highlighted tokens, stores exact code points.
    phrase = "東京 😀\r\n\treturn"
    select_phrase(page, phrase, mouse=False)
    page.keyboard.press("2")
    page.keyboard.type("Mixed languages.")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 1")
    span = annotation.spans.get()
    assert (span.start, span.end, span.text) == (CODE.index(phrase), CODE.index(phrase) + len(phrase), phrase)
    # Annotators see lines, not offsets.
    meta = page.inner_text(".span-item .span-meta")
    assert "lines 2–3" in meta and "[" not in meta
    assert page.errors == [], page.errors


def test_drag_snaps_to_whole_words_and_good_and_poor_on_one_text_warns(
    page, login_browser, annotator, project, make_generation
):
    text = "A water main burst on Elm Street today."
    annotation = _open(page, login_browser, annotator, project, make_generation, text)
    select_phrase(page, "A water ma", mouse=True)
    page.wait_for_selector("#span-popover:not([hidden])")
    assert page.inner_text("#popover-quote") == "A water main"
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 1")
    assert annotation.spans.get().text == "A water main"
    assert page.locator(".span-warning").count() == 0

    select_phrase(page, "water", mouse=False)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 2")
    warning = page.inner_text(".span-warning")
    assert "“water” is labelled both" in warning and "good" in warning and "poor" in warning


def test_a_span_can_be_made_from_the_keyboard_alone(page, login_browser, annotator, project, make_generation):
    text = "A water main burst on Elm Street today."
    annotation = _open(page, login_browser, annotator, project, make_generation, text)
    page.focus("#output-text")
    for _ in range(2):
        page.keyboard.press("ArrowRight")  # the caret moves: nothing selected yet
    assert page.evaluate("window.getSelection().toString()") == ""
    page.keyboard.press("Control+ArrowRight")  # to the end of "water"
    for _ in range(2):
        page.keyboard.press("Control+Shift+ArrowRight")
    selected = page.evaluate("window.getSelection().toString()")
    assert selected.strip() in ("main burst", "main"), selected
    page.keyboard.press("2")
    page.wait_for_selector("#span-popover:not([hidden])")
    page.keyboard.type("Keyboard only.")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 1")
    span = annotation.spans.get()
    assert text[span.start : span.end] == span.text and span.text.strip().startswith("main")
    assert span.critique == "Keyboard only."

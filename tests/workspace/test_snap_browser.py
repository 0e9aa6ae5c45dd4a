"""Snap-to-word in Chromium for scripts written without spaces: the browser's word segmenter decides the
words, so a selection grows only to the words it cuts, by mouse and by keyboard alike."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation

from .conftest import open_workspace, select_phrase

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# "Today the weather was good, so I went for a walk in the park." One run of 21 letters, no spaces.
JAPANESE = "今日は天気が良いので公園へ散歩に行きました。 A water main burst."


def _open(page, login_browser, annotator, project, make_generation, text):
    generation = make_generation(project, text)
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    return annotation


def _label(page, key: str, count: int) -> None:
    page.keyboard.press(key)
    page.wait_for_selector("#span-popover:not([hidden])")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"document.querySelectorAll('.span-item').length === {count}")


def test_snap_keeps_a_japanese_phrase_and_completes_only_the_cut_words(
    page, login_browser, annotator, project, make_generation
):
    annotation = _open(page, login_browser, annotator, project, make_generation, JAPANESE)

    # A five-character phrase on word edges, dragged with the mouse: stored as selected, not the whole run.
    select_phrase(page, "天気が良い", mouse=True)
    page.wait_for_selector("#span-popover:not([hidden])")
    assert page.inner_text("#popover-quote") == "天気が良い"
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 1")
    span = annotation.spans.get()
    assert (span.start, span.end, span.text) == (3, 8, "天気が良い")

    # A selection that cuts words ("園へ散" cuts 公園 and 散歩) grows to those two words, and no further.
    select_phrase(page, "園へ散", mouse=False)
    _label(page, "2", 2)
    assert annotation.spans.order_by("-pk").first().text == "公園へ散歩"

    # Latin text still snaps as before ("water ma" -> "water main").
    select_phrase(page, "water ma", mouse=True)
    page.wait_for_selector("#span-popover:not([hidden])")
    assert page.inner_text("#popover-quote") == "water main"
    assert page.errors == [], page.errors


def test_snap_after_a_keyboard_selection_keeps_the_japanese_phrase(
    page, login_browser, annotator, project, make_generation
):
    annotation = _open(page, login_browser, annotator, project, make_generation, JAPANESE)
    page.focus("#output-text")
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # the caret, before 天
    for _ in range(5):
        page.keyboard.press("Shift+ArrowRight")
    assert page.evaluate("window.getSelection().toString()") == "天気が良い"
    _label(page, "1", 1)
    span = annotation.spans.get()
    assert (span.start, span.end, span.text) == (3, 8, "天気が良い")
    assert page.errors == [], page.errors

"""Every action on the annotate page from the keyboard alone: the span list's items, which a click
highlights in the output, take focus with Tab (visibly) and highlight with Enter or Space."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation

from .conftest import browser, login_browser, open_workspace, page, tab_to  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_span_list_items_highlight_from_the_keyboard(
    page,  # noqa: F811
    login_browser,  # noqa: F811
    annotator,
    project,
    make_generation,
):
    text = "The council voted nine to two for the new library. Rain is expected on Sunday."
    make_generation(project, text)
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(annotator=annotator)
    first = services.span_create(annotation=annotation, start=4, end=11, label="good", user=annotator)
    second = services.span_create(annotation=annotation, start=51, end=55, label="poor", user=annotator)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))

    tab_to(page, f'.span-item[data-span-id="{first.pk}"]')
    # The focus is visible: an outline drawn by the stylesheet, not just the browser's default.
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    item = page.locator(f'.span-item[data-span-id="{first.pk}"]')
    assert "active" in item.get_attribute("class") and item.get_attribute("aria-current") == "true"
    active_marks = page.locator("#output-text mark.hl-active")
    assert active_marks.count() >= 1 and "council" in " ".join(active_marks.all_inner_texts())

    # Space on the next item moves the highlight (and does not scroll the page).
    scrolled = page.evaluate("window.scrollY")
    page.keyboard.press("Tab")  # the first item's Edit button
    page.keyboard.press("Tab")  # its Delete button
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.spanId") == str(second.pk)
    page.keyboard.press(" ")
    second_item = page.locator(f'.span-item[data-span-id="{second.pk}"]')
    assert "active" in second_item.get_attribute("class")
    assert "active" not in item.get_attribute("class") and item.get_attribute("aria-current") is None
    assert "Rain" in " ".join(page.locator("#output-text mark.hl-active").all_inner_texts())
    assert page.evaluate("window.scrollY") == scrolled

    # Enter on the item's own buttons still presses them: Edit opens the popover for that span.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.action") == "edit-span"
    page.keyboard.press("Enter")
    page.wait_for_selector("#span-popover:not([hidden])")
    assert page.locator("#popover-title").inner_text() == "Edit span"
    assert page.errors == [], page.errors

"""The review page from the keyboard alone: Tab reaches the overlaid output, Shift + arrows select in it,
a label key adds the selection to the gold, and Ctrl + S saves it (no mouse, no scripted selection)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import Annotation, Generation, Prompt
from annotations.services import project_create
from tests.workspace.test_accessibility_browser import _audit

from ..workspace.conftest import browser, login_browser, page, tab_to  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = "Canberra is the capital. Sydney is larger."


def test_gold_span_from_the_keyboard_alone(page, login_browser, annotator, annotator2, reviewer, submit):  # noqa: F811
    project = project_create(name="Capitals", annotations_per_output=2)  # labels: 1 good, 2 poor
    prompt = Prompt(project=project, text="What is the capital of Australia?")
    prompt.save()
    generation = Generation(prompt=prompt, text=TEXT, source_model="test")
    generation.save()
    submit(annotator, generation, [("Canberra", "good", "Right.")], rating=4)
    submit(annotator2, generation, [("Sydney is larger", "poor", "Off topic.")], rating=3)
    login_browser(reviewer)
    page.goto(reverse("review_output", args=[generation.pk]))
    page.wait_for_selector('#review[data-ready="1"]')

    tab_to(page, "#rv-text")
    for _ in range(len("Canberra")):
        page.keyboard.press("Shift+ArrowRight")
    assert page.evaluate("window.getSelection().toString()") == "Canberra"
    page.keyboard.press("1")
    assert page.locator("#gold-spans li").count() == 1
    assert "Canberra" in page.locator("#gold-spans li").first.inner_text()
    with page.expect_navigation():
        page.keyboard.press("Control+s")
    gold = Annotation.objects.get(generation=generation, is_gold=True)
    assert [(s.start, s.end, s.label) for s in gold.spans.all()] == [(0, 8, "good")]
    assert page.errors == [], page.errors
    problems = _audit(page, reverse("review_output", args=[generation.pk]))
    assert problems == [], "\n".join(problems)

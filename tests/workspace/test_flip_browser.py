"""Flip in Chromium (issue 24): a flipped suggestion never keeps the critique sentence that argues the
other verdict; the page asks for the span's critique, and without one the span says what was decided."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations import services
from annotations.models import Annotation, Span
from training.models import AlignmentRequest

from .conftest import open_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OUTPUT = "The grant was awarded in 2019 to the physics lab in Leeds."
CRITIQUE = 'The date "in 2019" is fine. The place "in Leeds" is fine.'


def _proposal(text: str, evidence: str) -> dict:
    start = OUTPUT.index(text)
    return {"start": start, "end": start + len(text), "text": text, "polarity": 1, "score": 0.8,
            "method": "quote", "evidence": evidence, "state": "open"}  # fmt: skip


def test_flip_asks_for_the_critique_and_never_keeps_the_contradicting_one(
    page, login_browser, annotator, project, make_generation
):
    generation = make_generation(project, OUTPUT)
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    AlignmentRequest.objects.create(
        annotation=annotation, critique=CRITIQUE, status=AlignmentRequest.Status.SUCCEEDED,
        finished_at=timezone.now(),
        proposals=[_proposal("in 2019", "in 2019"), _proposal("in Leeds", "in Leeds")],
    )  # fmt: skip
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    suggestions = page.locator("#suggestions .suggestion")
    suggestions.first.wait_for()
    assert suggestions.count() == 2
    # Not flipped: no question asked.
    assert page.locator(".suggestion-critique").count() == 0

    # 1) Flip the first to poor: the page asks for the span's critique; typed + Enter accepts it.
    suggestions.nth(0).get_by_role("button", name="Flip to poor").click()
    question = page.locator("#suggestions .suggestion").nth(0).locator(".suggestion-critique input")
    question.wait_for()
    assert question.get_attribute("placeholder") == "What is wrong here?"
    question.fill("Wrong year: the grant came in 2021.")
    question.press("Enter")
    page.wait_for_selector(".span-item")
    first = Span.objects.get(annotation=annotation)
    assert (first.text, first.label, first.critique) == (
        "in 2019",
        "poor",
        "Wrong year: the grant came in 2021.",
    )

    # 2) Flip the second and accept without typing: the span's critique is rewritten, not "… is fine".
    page.locator("#suggestions .suggestion").nth(1).get_by_role("button", name="Flip to poor").click()
    page.locator("#suggestions .suggestion").nth(1).locator(".suggestion-critique input").wait_for()
    page.locator("#suggestions .suggestion").nth(1).get_by_role("button", name="Accept").click()
    page.wait_for_function("document.querySelectorAll('.span-item').length === 2")
    second = Span.objects.get(annotation=annotation, text="in Leeds")
    assert second.label == "poor"
    assert "fine" not in second.critique and second.critique.startswith("Marked poor by the annotator")
    annotation.refresh_from_db()
    assert annotation.status == "draft"  # Enter in the question did not submit the overall form
    assert page.errors == [] and page.dialogs == [], page.errors

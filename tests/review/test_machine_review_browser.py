"""A machine critic's draft is reviewed with the same keyboard flow as people's work: it waits in the
review queue, J focuses it, A accepts it, R rejects the next one, T takes its spans into the gold."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import Annotation, Review
from annotations.services import project_create
from tests.workspace.test_accessibility_browser import _audit

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)
from .test_machine_critics import _draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_machine_drafts_from_the_keyboard(page, login_browser, reviewer, make_generation):  # noqa: F811
    project = project_create(name="Facts", annotations_per_output=2)
    first = make_generation(project, "It was invented in 1999 by aliens. The cat sat on the mat.")
    second = make_generation(project, "Cheese is blue. Water boils at 100 C.")
    accepted = _draft(first, "invented in 1999")
    rejected = _draft(second, "Cheese is blue")
    login_browser(reviewer)
    page.goto(reverse("review_queue", args=[project.pk]))
    page.click("#review-start")
    page.wait_for_selector('#review[data-ready="1"]')
    assert page.url.endswith(reverse("review_output", args=[first.pk]))
    assert "machine · reference v1" in page.locator(f"#annotation-{accepted.pk} h3").inner_text()
    assert page.locator("#rv-text mark.rv-poor").count() == 1
    page.keyboard.press("j")
    with page.expect_navigation():
        page.keyboard.press("a")
    page.wait_for_selector('#review[data-ready="1"]')
    assert Review.objects.get(annotation=accepted).verdict == "accepted"
    # Take the draft's span into the gold and save it: the edit path.
    page.keyboard.press("j")
    page.keyboard.press("t")
    assert page.locator("#gold-spans li").count() == 1
    with page.expect_navigation():
        page.keyboard.press("Control+s")
    gold = Annotation.objects.get(generation=first, is_gold=True)
    assert gold.origin == "people" and [s.text for s in gold.spans.all()] == ["invented in 1999"]
    page.goto(reverse("review_output", args=[second.pk]))
    page.wait_for_selector('#review[data-ready="1"]')
    page.keyboard.press("j")
    with page.expect_navigation():
        page.keyboard.press("r")
    assert Review.objects.get(annotation=rejected).verdict == "rejected"
    assert page.errors == [], page.errors
    problems = _audit(page, reverse("review_output", args=[second.pk]))
    assert problems == [], "\n".join(problems)

"""Suggest spans in the browser, through the real worker: critique → proposals → accept → heatmap."""

from __future__ import annotations

import pytest

from annotations import services
from annotations.models import Annotation, Span
from tests.conftest import wait_for
from training.models import TokenReward

from .conftest import open_workspace

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

OUTPUT = "The bridge opened in 1932. It is made of pure gold and spans 500 metres."


def test_critique_quote_becomes_a_span_and_shows_in_the_heatmap(
    celery_worker_process, login_browser, annotator, make_generation
):
    project = services.project_create(name="Suggest project", annotations_per_output=1)
    generation = make_generation(project, OUTPUT, prompt_text="Describe the bridge.")
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    page = login_browser(annotator)
    open_workspace(page, f"/annotations/{annotation.pk}/")

    page.fill("#overall-critique", 'The claim "made of pure gold" is invented; the bridge is steel.')
    page.click("#suggest-button")
    suggestion = page.locator("#suggestions .suggestion[data-state='open']").first
    suggestion.wait_for(timeout=60_000)  # the worker aligns the critique (MiniLM loads once)
    assert "made of pure gold" in suggestion.inner_text()
    # Shown in the output as a dashed proposal before anyone accepts it.
    assert page.locator("#output-text mark.hl-proposal").first.inner_text() == "made of pure gold"

    suggestion.get_by_role("button", name="Accept").click()
    page.wait_for_selector(".span-item")
    span = Span.objects.get(annotation=annotation)
    assert (OUTPUT[span.start : span.end], span.origin, span.label) == (
        "made of pure gold",
        "aligned",
        "poor",
    )
    assert page.locator("#output-text mark.hl-proposal").count() == 0
    assert "made of pure gold" in page.locator(".span-item").first.inner_text()

    page.click("#submit-button")
    wait_for(lambda: TokenReward.objects.filter(annotation=annotation).exists(), timeout=60,
             message="token rewards from the worker")  # fmt: skip
    page.goto(f"/annotations/{annotation.pk}/heatmap/")
    negative = page.locator("pre.heatmap span.tok[data-reward^='-']")
    assert negative.count() >= 3
    assert "".join(negative.all_inner_texts()).strip() == "made of pure gold"
    assert "invented" in negative.first.get_attribute("title")
    assert not page.errors and not page.dialogs


def test_flip_a_suggestion_then_accept_it(celery_worker_process, login_browser, annotator, make_generation):
    """Issue 17: a suggestion read as criticism is flipped to good in the page, then accepted as good."""
    project = services.project_create(name="Flip project", annotations_per_output=1)
    generation = make_generation(project, OUTPUT, prompt_text="Describe the bridge.")
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    page = login_browser(annotator)
    open_workspace(page, f"/annotations/{annotation.pk}/")

    page.fill("#overall-critique", 'The claim "made of pure gold" is invented; the bridge is steel.')
    page.click("#suggest-button")
    suggestion = page.locator("#suggestions .suggestion[data-state='open']").first
    suggestion.wait_for(timeout=60_000)
    assert suggestion.get_attribute("data-polarity") == "-1"
    assert suggestion.locator(".suggestion-label").inner_text() == "poor"
    mark = page.locator("#output-text mark.hl-proposal").first
    assert mark.evaluate("m => m.style.getPropertyValue('--c')") == "#c62828"  # poor: red

    suggestion.get_by_role("button", name="Flip to good").click()
    flipped = page.locator("#suggestions .suggestion[data-state='open'][data-polarity='1']")
    flipped.wait_for()
    assert "(flipped)" in flipped.inner_text()
    # The dashed proposal in the output is redrawn in the good colour, and nothing is stored yet.
    mark = page.locator("#output-text mark.hl-proposal").first
    assert mark.inner_text() == "made of pure gold"
    page.wait_for_function(
        "() => document.querySelector('#output-text mark.hl-proposal').style.getPropertyValue('--c') === '#2e7d32'"
    )
    assert not Span.objects.filter(annotation=annotation).exists()

    flipped.get_by_role("button", name="Accept").click()
    page.wait_for_selector(".span-item")
    span = Span.objects.get(annotation=annotation)
    assert (OUTPUT[span.start : span.end], span.label, span.polarity) == ("made of pure gold", "good", 1)
    assert not page.errors and not page.dialogs


DESCRIBED = (
    "The council approved a new grant for the library. The grant pays for two new reading rooms. "
    "The mayor said the library will open in 1850."
)


def test_an_unquoted_description_suggests_the_part_it_describes(
    celery_worker_process, login_browser, annotator, make_generation
):
    """Issue 24: the help promises Suggest spans finds "what it describes"; a critique that quotes nothing
    ("the part about the grant is accurate and concise") proposes the sentence about the grant, as good."""
    project = services.project_create(name="Described project", annotations_per_output=1)
    generation = make_generation(project, DESCRIBED, prompt_text="Summarize the council meeting.")
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    page = login_browser(annotator)
    open_workspace(page, f"/annotations/{annotation.pk}/")
    assert "what it describes" in page.inner_text("#workspace")

    page.fill("#overall-critique", "The part about the grant is accurate and concise.")
    page.click("#suggest-button")
    suggestion = page.locator("#suggestions .suggestion[data-state='open']").first
    suggestion.wait_for(timeout=60_000)
    assert page.locator("#suggestions .suggestion[data-state='open']").count() == 1
    assert suggestion.get_attribute("data-polarity") == "1"
    assert suggestion.locator(".suggestion-label").inner_text() == "good"
    assert page.locator("#output-text mark.hl-proposal").first.inner_text() == (
        "The grant pays for two new reading rooms."
    )
    suggestion.get_by_role("button", name="Accept").click()
    page.wait_for_selector(".span-item")
    span = Span.objects.get(annotation=annotation)
    assert (DESCRIBED[span.start : span.end], span.label) == (
        "The grant pays for two new reading rooms.",
        "good",
    )
    assert not page.errors and not page.dialogs

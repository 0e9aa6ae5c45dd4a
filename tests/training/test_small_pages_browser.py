"""Issue 24's smaller page defects, in Chromium: the heatmap page's label chips keep their colours, a
suggestion's source line is quoted once, and the API docs page leads back into the app."""

from __future__ import annotations

import os

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations import services
from annotations.models import Annotation
from training.models import AlignmentRequest

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OUTPUT = "The bridge opened in 1932. It is made of pure gold."


def _chip_colour(tab, label: str) -> str:
    chip = tab.locator("#span-critiques .chip", has_text=label)
    return chip.evaluate("c => getComputedStyle(c).getPropertyValue('--c').trim()")


def test_heatmap_chips_are_coloured_and_suggestion_sources_quoted_once(
    page,  # noqa: F811
    login_browser,  # noqa: F811
    annotator,
    project,
    make_generation,
):
    generation = make_generation(project, OUTPUT)
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    for label, text in (("good", "opened in 1932"), ("poor", "made of pure gold")):
        start = OUTPUT.index(text)
        services.span_create(annotation=annotation, start=start, end=start + len(text), text=text, label=label,
                             critique="", user=annotator)  # fmt: skip
    colours = {label["name"]: label["color"] for label in project.label_set}
    login_browser(annotator)
    page.goto(reverse("annotation_heatmap", args=[annotation.pk]))
    assert _chip_colour(page, "good") == colours["good"]
    assert _chip_colour(page, "poor") == colours["poor"]

    # A proposal whose evidence is a quote already is not wrapped in a second pair of quotes.
    AlignmentRequest.objects.create(
        annotation=annotation, critique='"pure gold" is invented', status=AlignmentRequest.Status.SUCCEEDED,
        finished_at=timezone.now(),
        proposals=[
            {"start": 0, "end": 3, "text": "The", "polarity": -1, "score": 0.5, "method": "quote",
             "evidence": '"pure gold"', "state": "open"},
            {"start": 4, "end": 10, "text": "bridge", "polarity": -1, "score": 0.5, "method": "semantic",
             "evidence": "the bridge", "state": "open"},
        ],
    )  # fmt: skip
    page.goto(reverse("annotate", args=[annotation.pk]))
    page.wait_for_selector("#suggestions .suggestion")
    sources = page.locator("#suggestions .suggestion .muted.small").all_inner_texts()
    assert 'from "pure gold"' in sources[0] and '“"' not in sources[0], sources
    assert "from “the bridge”" in sources[1], sources
    assert page.errors == [], page.errors


def test_api_docs_lead_back_into_the_app(page, login_browser, admin_user):  # noqa: F811
    login_browser(admin_user)
    page.goto(reverse("api-docs"))
    back = page.get_by_role("link", name="← Back to Text2Grad Studio")
    back.click()
    page.wait_for_url(lambda url: "/api/" not in url)
    assert page.locator("nav, header").first.is_visible()


def test_long_version_names_stay_on_one_line_and_the_table_stays_in_its_card(page, login_browser, admin_user):  # noqa: F811
    from training.models import ModelVersion, TrainingRound

    base = ModelVersion.objects.create(name="v0-HuggingFaceTB-SmolLM2-135M-Instruct-base")
    for n in range(1, 3):
        training_round = TrainingRound.objects.create(status=TrainingRound.Status.SUCCEEDED)
        base = ModelVersion.objects.create(
            name=f"v{n}-round-{n}-code-review-project-2026-12-07", parent=base, created_by_round=training_round,
            is_active=n == 2,
        )  # fmt: skip
    login_browser(admin_user)
    page.goto(reverse("training_home"))
    names = page.locator(".versions-table .version-name")
    assert names.count() == 5  # three names, two parents
    line_height = names.first.evaluate("a => parseFloat(getComputedStyle(a).lineHeight) || 20")
    heights = [box["height"] for box in (names.nth(i).bounding_box() for i in range(names.count()))]
    assert max(heights) < 1.6 * line_height, heights
    assert names.last.get_attribute("title") == "v0-HuggingFaceTB-SmolLM2-135M-Instruct-base"
    card, table = page.evaluate(
        """() => { const t = document.querySelector('.versions-table');
                   const c = t.closest('.card').getBoundingClientRect();
                   const w = t.closest('.table-scroll').getBoundingClientRect();
                   return [c.right, w.right]; }"""
    )
    assert table <= card + 0.5, (table, card)
    if os.environ.get("T2G_SCREENSHOTS"):
        page.locator(".versions-table").screenshot(
            path=os.path.join(os.environ["T2G_SCREENSHOTS"], "versions.png")
        )
    assert page.errors == [], page.errors

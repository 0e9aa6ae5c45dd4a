"""The judging page and the charts from the keyboard alone: a judge Tabs to the reason, types it, Tabs
to a verdict and presses Enter, and after each verdict Tab carries on inside the next pair; a chart's
arrow keys show the values of each point in its legend, and Enter on a legend entry hides that series."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evaluation.models import PairwiseJudgement
from tests.workspace.conftest import browser, login_browser, page, tab_to  # noqa: F401  (the browser fixtures)
from tests.workspace.test_accessibility_browser import _audit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_judging_from_the_keyboard_alone(page, login_browser, versions, make_campaign, annotator):  # noqa: F811
    campaign = make_campaign(versions[:2], prompt_count=2)
    login_browser(annotator)
    page.goto(reverse("campaign_judge", args=[campaign.pk]))
    page.wait_for_selector("[data-judge-form]")
    tab_to(page, "textarea[name=reason]")
    page.keyboard.type("B answers the question.")
    tab_to(page, 'button[data-verdict="b"]', limit=6)
    page.keyboard.press("Enter")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'judge-task'")
    first = PairwiseJudgement.objects.get(judge=annotator, status="submitted")
    assert (first.verdict, first.reason) == ("b", "B answers the question.")
    # The next pair has the focus: Tab reaches its reason box without going through the page's header.
    presses = tab_to(page, "textarea[name=reason]", limit=4)
    assert presses <= 3
    tab_to(page, 'button[data-verdict="tie"]', limit=6)
    page.keyboard.press("Space")
    page.wait_for_selector(".eval-done")
    assert PairwiseJudgement.objects.filter(judge=annotator, status="submitted").count() == 2
    assert page.errors == [], page.errors
    problems = _audit(page, reverse("campaign_judge", args=[campaign.pk]))
    assert problems == [], "\n".join(problems)


def test_charts_answer_the_keyboard(
    page,  # noqa: F811
    login_browser,  # noqa: F811
    versions,
    make_campaign,
    judge_all,
    annotator,
    researcher,
):
    campaign = make_campaign(versions, prompt_count=3)
    judge_all(campaign, [annotator], ["v2-round", "v1-round", "v0-base"])
    login_browser(researcher)
    page.goto(reverse("campaign_detail", args=[campaign.pk]))
    page.wait_for_function("(window.t2gCharts || []).length === 2")
    tab_to(page, "figure[data-chart-kind='intervals'] .chart-plot")
    figure = page.locator("figure[data-chart-kind='intervals']").first
    names = page.evaluate("window.t2gCharts[0].data[0].map((_, i) => i)")
    assert names == [0, 1, 2]
    legend = figure.locator(".u-legend")
    page.keyboard.press("ArrowRight")  # the first point: the leader
    page.wait_for_function("window.t2gCharts[0].cursor.idx === 0")
    assert "v2-round" in legend.inner_text()
    page.keyboard.press("End")
    page.wait_for_function("window.t2gCharts[0].cursor.idx === 2")
    assert "v0-base" in legend.inner_text()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("window.t2gCharts[0].cursor.idx === 1")
    assert "v1-round" in legend.inner_text()
    # Tab on to the legend's first series (the points) and hide it with Enter, then show it again.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('u-series')")
    page.keyboard.press("Enter")
    assert page.evaluate("window.t2gCharts[0].series[1].show") is False
    page.keyboard.press(" ")
    assert page.evaluate("window.t2gCharts[0].series[1].show") is True
    assert page.errors == [], page.errors

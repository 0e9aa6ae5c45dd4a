"""The results page's and the critic page's charts in Chromium, under the app's own CSP (not bypassed):
uPlot charts from static/js/charts.js, the round page's module, with legends, labelled axes with ticks,
values under the cursor, the numbers as a table, and no serious or critical axe-core violation."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.security.test_csp_browser import RECORD_VIOLATIONS
from tests.workspace.conftest import browser  # noqa: F401  (the browser fixture)
from tests.workspace.test_accessibility_browser import _audit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def strict_page(browser, live_server):  # noqa: F811
    """A tab that keeps the CSP (no bypass): waits poll with page.evaluate, which the CSP allows."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))

    def login(user):
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])

    tab.login = login
    yield tab
    context.close()


def _until(page, script: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while (value := page.evaluate(script)) in (None, False):
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        page.wait_for_timeout(100)
    return value


def _axes(page):
    return page.evaluate("window.t2gCharts.map(u => u.axes.map(a => [a.label, (a._splits || []).length]))")


def _hover(page, figure, fraction_x: float, fraction_y: float = 0.5) -> str:
    box = figure.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * fraction_x, box["y"] + box["height"] * fraction_y)
    first_value = figure.locator(".u-legend .u-value").first
    for _ in range(50):  # uPlot updates the legend on the next animation frame
        if first_value.inner_text() != "—":
            break
        page.wait_for_timeout(50)
    return figure.locator(".u-legend").inner_text()


def test_results_page_draws_scores_with_intervals_and_win_rates(
    strict_page, versions, make_campaign, judge_all, annotator, researcher
):
    page = strict_page
    campaign = make_campaign(versions, prompt_count=4)
    judge_all(campaign, [annotator], ["v1-round", "v2-round", "v0-base"], tie_every=5)
    page.login(researcher)
    page.goto(reverse("campaign_detail", args=[campaign.pk]))
    assert _until(page, "(window.t2gCharts || []).length === 2")
    assert page.locator("svg").count() == 0  # the hand-drawn SVG chart is gone
    figures = page.locator("figure[data-chart-kind='intervals']")
    scores, rates = figures.nth(0), figures.nth(1)
    assert scores.locator("figcaption").inner_text() == "Bradley–Terry scores"
    assert rates.locator("figcaption").inner_text() == "Win rate by pair"
    # One point per version (best first) and one per judged pair, drawn on the canvas.
    data = page.evaluate("window.t2gCharts.map(u => u.data[0].length)")
    assert data == [3, 3]
    axes = _axes(page)
    assert [label for label, _ in axes[0]] == ["model version", "score (log-strength)"]
    assert [label for label, _ in axes[1]] == ["pair (first vs second)", "first version's win rate"]
    assert axes[0][0][1] == 3 and all(chart[1][1] > 2 for chart in axes), axes  # ticks beyond min and max
    legend = scores.locator(".u-legend").inner_text()
    assert "Score" in legend and "95% bootstrap interval" in legend and "Judgements" in legend
    # Hovering the first category shows the leader, its score and its interval in the legend.
    shown = _hover(page, scores, 1 / 6)
    leader = page.locator(".eval-leader").get_attribute("data-leader")
    theta = page.locator(".eval-standings tbody tr").first.locator("td").nth(2).inner_text()
    assert leader in shown and theta in shown and " to " in shown, shown
    # The numbers as a table, for screen readers and exact values.
    scores.locator("details.chart-data summary").click()
    rows = scores.locator("details.chart-data tbody tr")
    assert rows.count() == 3 and rows.first.locator("th").inner_text() == leader
    assert rates.locator("details.chart-data tbody tr").count() == 3
    assert page.evaluate("window.__csp") == [] and page.errors == []
    problems = _audit(page, reverse("campaign_detail", args=[campaign.pk]))
    assert problems == [], "\n".join(problems)


def _critic(project):
    from training.models import CriticVersion

    labels = {"precision": 0.6, "recall": 0.5, "f1": 0.55, "auroc": 0.7}
    bins = {
        "poor": [{"predicted": 0.1, "observed": 0.05, "count": 40}, {"predicted": 0.45, "observed": 0.5, "count": 12},
                 {"predicted": 0.85, "observed": 0.7, "count": 6}],
        "good": [{"predicted": 0.2, "observed": 0.3, "count": 30}, {"predicted": 0.6, "observed": 0.55, "count": 9}],
    }  # fmt: skip
    report = {
        "labels": {"poor": labels, "good": labels},
        "calibration": {label: {"bins": rows, "ece": 0.04} for label, rows in bins.items()},
    }
    return CriticVersion.objects.create(
        project=project, name="critic-v1", base_model="tiny", adapter_path="critics/critic-v1",
        metrics={"reports": {"critic": report}, "held_out_outputs": 4, "train_outputs": 12}, is_active=True,
    )  # fmt: skip


def test_critic_page_draws_calibration_with_the_same_module(strict_page, project, researcher):
    page = strict_page
    _critic(project)
    page.login(researcher)
    page.goto(reverse("critic_home", args=[project.pk]))
    assert _until(page, "(window.t2gCharts || []).length === 2")
    assert page.locator(".chart-card svg").count() == 0
    poor = page.locator("figure[data-chart-kind='reliability']").first
    assert poor.locator("figcaption").inner_text() == "P(poor) calibration"
    axes = _axes(page)
    assert [label for label, _ in axes[0]] == ["predicted P(poor)", "observed share poor"]
    assert all(ticks > 2 for chart in axes for _, ticks in chart), axes
    legend = poor.locator(".u-legend").inner_text()
    assert "Observed share" in legend and "Perfect calibration" in legend and "Tokens in bin" in legend
    # The diagonal spans 0..1 around the three bins; hovering the middle bin shows its numbers.
    assert page.evaluate("window.t2gCharts[0].data[0]") == [0, 0.1, 0.45, 0.85, 1]
    shown = _hover(page, poor, 0.45)
    assert "0.50" in shown and "12" in shown, shown
    poor.locator("details.chart-data summary").click()
    cells = poor.locator("details.chart-data tbody tr").nth(2).inner_text().split()
    assert cells == ["0.85", "0.70", "6"]
    assert page.evaluate("window.__csp") == [] and page.errors == []
    problems = _audit(page, reverse("critic_home", args=[project.pk]))
    assert problems == [], "\n".join(problems)

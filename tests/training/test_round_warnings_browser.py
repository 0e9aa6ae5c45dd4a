"""The round page in Chromium (issue 24): axes scaled from the data (no 0-100 KL axis after the first
point), and a warning when KL or the reward trends say the round went wrong."""

from __future__ import annotations

import os

import pytest
from django.urls import reverse

from training.charts import round_warnings
from training.models import ModelVersion, RoundMetric, TrainingRound

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("T2G_SCREENSHOTS")


def _round(points: list[dict], status="succeeded") -> TrainingRound:
    training_round = TrainingRound.objects.create(status=status, progress_step=len(points), progress_total=4)
    for step, data in enumerate(points):
        RoundMetric.objects.create(training_round=training_round, step=step, data=data)
    return training_round


def _y_range(tab, chart: int) -> list[float]:
    return tab.evaluate(f"[window.t2gCharts[{chart}].scales.y.min, window.t2gCharts[{chart}].scales.y.max]")


def test_the_first_point_gets_an_axis_of_its_own_size(page, login_browser, admin_user):  # noqa: F811
    # The first update's KL is exactly 0 (the policy still is its base): once drawn on a default 0-100 axis.
    training_round = _round(
        [{"kl": 0.0, "mean_token_reward": 0.1, "mean_shaped_reward": 0.09}], status="running"
    )
    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    page.wait_for_function("window.t2gCharts && window.t2gCharts.length === 4")
    low, high = _y_range(page, 1)  # KL to the base model
    assert low <= 0.0 < high < 0.1, (low, high)
    # Points added while the page watches: the axis follows the data.
    RoundMetric.objects.create(training_round=training_round, step=1, data={"kl": 0.05})
    page.wait_for_function("window.t2gCharts.length === 4 && window.t2gCharts[1].data[0].length === 2")
    low, high = _y_range(page, 1)
    assert low <= 0.0 and 0.05 < high < 0.1, (low, high)
    assert page.locator(".round-warnings").count() == 0
    assert page.errors == [], page.errors


def test_high_kl_falling_shaped_reward_and_flat_human_reward_are_warned(page, login_browser, admin_user):  # noqa: F811
    points = [
        {"kl": kl, "mean_token_reward": 0.25, "mean_shaped_reward": shaped}
        for kl, shaped in ((0.1, 0.2), (0.8, 0.05), (1.6, -0.1), (2.2, -0.3))
    ]
    training_round = _round(points)
    parent = ModelVersion.objects.create(name="v0-parent")
    child = ModelVersion.objects.create(name="v1-child", parent=parent, created_by_round=training_round)
    TrainingRound.objects.filter(pk=training_round.pk).update(output_version=child)
    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    page.wait_for_function("window.t2gCharts && window.t2gCharts.length === 4")
    banner = page.locator(".round-warnings")
    text = banner.inner_text()
    assert "KL to the base model reached 2.2 nats per token" in text
    assert "The shaped reward fell at every update (0.2 → -0.3)" in text
    assert "The human token reward stayed flat at 0.25" in text
    link = banner.get_by_role("link", name="Compare v1-child with its parent v0-parent")
    assert link.get_attribute("href").endswith(f"?a={parent.pk}&b={child.pk}")
    low, high = _y_range(page, 1)
    assert low < 0.1 and 2.2 < high < 2.6, (low, high)
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "round-warnings.png"), full_page=True)
    assert page.errors == [], page.errors
    # A round whose curves look healthy gets no warning.
    assert (
        round_warnings(
            [{"kl": 0.05, "mean_token_reward": r, "mean_shaped_reward": r} for r in (0.1, 0.3, 0.2)]
        )
        == []
    )

"""The win-rate chart's pair labels in Chromium (issue 24): a pair reads "first / vs second" on two
lines, with whole version names where they fit, instead of one line cut after 24 characters."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.workspace.conftest import browser  # noqa: F401  (the browser fixture)

from .test_charts_browser import _until, strict_page  # noqa: F401  (the CSP-keeping tab)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG = {
    "v0-base": "v0-SmolLM2-135M-base",
    "v1-round": "v1-round-3-summaries",
    "v2-round": "v2-round-4-summaries",
}


def test_win_rate_pair_labels_show_both_whole_names(
    strict_page,  # noqa: F811
    versions,
    make_campaign,
    judge_all,
    annotator,
    researcher,
):
    page = strict_page
    campaign = make_campaign(versions, prompt_count=4)
    judge_all(campaign, [annotator], ["v1-round", "v2-round", "v0-base"])
    for version in versions:  # names as rounds write them, longer than the old 24-character cut
        version.name = LONG[version.name]
        version.save(update_fields=["name"])
    page.login(researcher)
    page.goto(reverse("campaign_detail", args=[campaign.pk]))
    assert _until(page, "(window.t2gCharts || []).length === 2")
    labels = page.evaluate("window.t2gCharts[1].axes[0]._values.filter(v => v)")
    assert len(labels) == 3, labels
    for label in labels:
        first, second = label.split("\n")
        assert first in LONG.values() and second.removeprefix("vs ") in LONG.values(), labels
    assert page.errors == []

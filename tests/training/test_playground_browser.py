"""The playground in Chromium: two versions side by side on one prompt and seed, through the real endpoint
process, and an answer sent to a project's annotation queue."""

from __future__ import annotations

import pytest

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)
from .test_openai_endpoint import adapter_dir, endpoint, studio  # noqa: F401  (the endpoint fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.heavy, pytest.mark.django_db(transaction=True)]


def test_two_versions_side_by_side_and_send_one_to_the_queue(
    page,  # noqa: F811
    login_browser,  # noqa: F811
    endpoint,  # noqa: F811
    studio,  # noqa: F811
    researcher,
    settings,
):
    from annotations.models import Generation

    settings.T2G_ENDPOINT_URL = endpoint
    tab = login_browser(researcher)
    tab.set_default_navigation_timeout(180_000)  # the endpoint loads each version on first use (a busy CPU)
    tab.goto("/training/")
    tab.get_by_role("link", name="Playground").click()
    tab.select_option("#id_version_a", str(studio["v1-alpha"].pk))
    tab.select_option("#id_version_b", str(studio["base"].pk))
    tab.fill("#id_prompt", "Summarize: the council voted for the library.")
    tab.fill("#id_seed", "5")
    tab.fill("#id_max_tokens", "12")
    tab.get_by_role("button", name="Ask").click(timeout=180_000)
    answers = tab.locator(".playground-answer")
    answers.first.wait_for()
    assert answers.count() == 2
    assert answers.nth(0).locator("h2").inner_text() == "v1-alpha"
    assert answers.nth(1).locator("h2").inner_text() == "v0-base"
    texts = [answers.nth(i).locator("pre").inner_text() for i in range(2)]
    assert all(texts) and texts[0] != texts[1]
    # The same seed again gives the same answers.
    tab.get_by_role("button", name="Ask").click(timeout=180_000)
    tab.locator(".playground-answer").first.wait_for()
    assert [tab.locator(".playground-answer").nth(i).locator("pre").inner_text() for i in range(2)] == texts

    first = tab.locator(".playground-answer").nth(0)
    first.locator("select[name=project]").select_option(label="Beta code")
    first.get_by_role("button", name="Send to annotation queue").click()
    tab.get_by_text("Sent to Beta code's annotation queue").wait_for()
    generation = Generation.objects.get(prompt__project=studio["beta"])
    assert generation.model_version == studio["v1-alpha"]
    assert generation.text.strip() == texts[0].strip()
    assert not tab.errors

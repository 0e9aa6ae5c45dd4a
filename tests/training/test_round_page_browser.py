"""The round page in Chromium: uPlot charts (legend, axes, hover values), Cancel that goes away when the
watched round finishes, confirmations before Cancel and Promote / Roll back."""

from __future__ import annotations

import pytest
from django.urls import reverse

from training.models import ModelVersion, RoundMetric, TrainingRound

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _round(status="running", steps=6):
    training_round = TrainingRound.objects.create(
        status=status, config={"learning_rate": 0.0001, "lora_target_modules": ["q_proj", "v_proj"], "kl_coef": 0.1},
        progress_step=steps, progress_total=10,
    )  # fmt: skip
    for step in range(steps):
        data = {"mean_token_reward": 0.1 * step, "mean_shaped_reward": 0.1 * step - 0.05, "kl": 0.01 * step}
        data |= {"policy_loss": 1.0 / (step + 1), "value_loss": 0.5, "clipfrac": 0.1, "ratio": 1.0}
        RoundMetric.objects.create(training_round=training_round, step=step, data=data)
    return training_round


def test_round_charts_have_legends_axes_and_hover_values(page, login_browser, admin_user):  # noqa: F811
    training_round = _round(status="succeeded")
    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    page.wait_for_function("document.querySelectorAll('#round-live .uplot').length === 4")
    legend = page.inner_text("#round-live figure >> nth=0")
    assert "Human token reward" in legend and "Shaped reward (after KL penalty)" in legend
    assert "mean_token_reward" not in page.content()
    first = page.locator("#round-live figure").first
    # Axes are drawn on the canvas: labelled, and with more ticks than just min and max.
    axes = page.evaluate("window.t2gCharts.map(u => u.axes.map(a => [a.label, (a._splits || []).length]))")
    assert [axis[0] for axis in axes[0]] == ["optimizer step", "reward per token"]
    assert all(ticks > 2 for chart in axes for _, ticks in chart), axes
    # Hovering shows the values of that step in the legend.
    box = first.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#round-live figure')[0].querySelectorAll('.u-legend .u-value'))"
        ".some(el => el.textContent === '0.5')"
    )
    # The config is a labelled table.
    page.click("details.config summary")
    assert page.locator(".config-table th", has_text="Learning rate").count() == 1
    assert page.locator(".config-table td", has_text="q_proj, v_proj").count() == 1
    assert "Cancel" not in page.inner_text("#round-live")
    assert page.errors == [], page.errors


def test_cancel_asks_first_and_disappears_when_the_watched_round_finishes(page, login_browser, admin_user):  # noqa: F811
    training_round = _round(status="running", steps=2)
    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    page.wait_for_selector("#round-cancel")
    # Cancel asks first; Esc (or "Keep as it is") changes nothing.
    page.click("#round-cancel")
    page.wait_for_selector("#confirm-dialog[open]")
    assert page.evaluate("document.activeElement.id") == "confirm-no"
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    training_round.refresh_from_db()
    assert training_round.cancel_requested is False
    # The round finishes while the page watches: Cancel goes away without a reload.
    TrainingRound.objects.filter(pk=training_round.pk).update(status="succeeded", progress_step=10)
    page.wait_for_selector("#round-cancel", state="detached", timeout=8000)
    assert page.locator("#round-live .status").inner_text() == "succeeded"


def test_promote_and_roll_back_ask_first_and_work_from_the_keyboard(page, login_browser, admin_user):  # noqa: F811
    base = ModelVersion.objects.create(name="base-v0", is_active=True)
    login_browser(admin_user)
    page.goto(reverse("training_home"))
    other = ModelVersion.objects.create(name="v1-test")
    page.reload()
    form = page.locator(f'form[action="{reverse("version_activate", args=[other.pk])}"]')
    form.locator("button").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-dialog[open]")
    assert "v1-test" in page.inner_text("#confirm-message")
    page.keyboard.press("Escape")
    other.refresh_from_db()
    assert other.is_active is False
    form.locator("button").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-dialog[open]")
    page.keyboard.press("Shift+Tab")  # from "Keep as it is" to the confirming button
    assert page.evaluate("document.activeElement.id") == "confirm-yes"
    page.keyboard.press("Enter")
    # No evaluation campaign compares the two: the server answers with the evidence page (409), which
    # says why and asks once more; the dialog's question is not asked again there.
    page.wait_for_selector("text=is not shown to be significantly better")
    assert "No judged evaluation campaign compares v1-test with base-v0" in page.inner_text("main")
    other.refresh_from_db()
    assert other.is_active is False
    anyway = page.get_by_role("button", name="Activate v1-test anyway")
    anyway.focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    page.wait_for_function("document.querySelector('.messages') !== null")
    assert page.locator("#confirm-dialog[open]").count() == 0
    other.refresh_from_db()
    base.refresh_from_db()
    assert other.is_active and not base.is_active


def test_new_scripts_run_under_a_strict_script_policy(
    page,  # noqa: F811
    login_browser,  # noqa: F811
    admin_user,
    annotator,
    project,
    make_generation,
):
    """Charts, confirmations, the autosave and the output view need no inline script and no eval: with
    ``script-src 'self'`` the pages still work and the browser reports no violation."""
    from annotations import services
    from annotations.models import Annotation

    policy = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'"

    def with_policy(route):
        if route.request.resource_type != "document":
            route.continue_()
            return
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": policy})

    page.route("**/*", with_policy)
    violations = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and violations.append(message.text),
    )
    training_round = _round(status="succeeded")
    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    page.wait_for_function("document.querySelectorAll('#round-live .uplot').length === 4")
    ModelVersion.objects.create(name="v1-csp")
    page.goto(reverse("training_home"))
    page.locator("form[data-confirm] button").first.click()
    page.wait_for_selector("#confirm-dialog[open]")

    generation = make_generation(project, "Text under a policy.")
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    login_browser(annotator)
    page.goto(reverse("annotate", args=[annotation.pk]))
    page.wait_for_selector('#workspace[data-ready="1"]')
    with page.expect_response(lambda response: response.url.endswith("/save/") and response.status == 200):
        page.fill("#overall-critique", "Saved under a strict policy.")
    script_violations = [v for v in violations if not v.startswith("Applying inline style")]
    assert script_violations == [], violations

"""Issue 24 in Chromium: the critic page offers only what applies (no Deactivate or uncertainty order
before a critic is active), says what a queued critic job waits for, and a rollback asks once and is
not treated as a promotion that needs evidence."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations import services as annotation_services
from training.models import CriticTrainingJob, CriticVersion, ModelVersion, TrainingRound

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_critic_page_before_and_after_a_critic_and_a_queued_job_says_what_it_waits_for(
    page,  # noqa: F811
    login_browser,  # noqa: F811
    admin_user,
):
    project = annotation_services.project_create(name="Critic page project", annotations_per_output=1)
    running = TrainingRound.objects.create(status=TrainingRound.Status.RUNNING, progress_total=4)
    job = CriticTrainingJob.objects.create(project=project, snapshot=[1, 2, 3])
    login_browser(admin_user)
    page.goto(reverse("critic_home", args=[project.pk]))

    # No critic yet: nothing to deactivate, no order by a critic's uncertainty, and a note saying why.
    assert page.get_by_role("button", name="Deactivate critic").count() == 0
    assert page.locator('input[name="queue_order"][value="uncertainty"]').count() == 0
    assert "once a critic is trained and active" in page.inner_text("#queue-order-note")
    # The queued job says it waits behind the running round, not "0/0 queued".
    row = page.locator(f"#critic-job-{job.pk}")
    assert "0/0" not in row.inner_text()
    assert (
        f"queued behind training round #{running.pk} (running)" in row.locator(".job-standing").inner_text()
    )

    # With an active critic both come back.
    CriticVersion.objects.create(
        project=project, name="critic-1", base_model="tiny", adapter_path="critics/1", is_active=True,
        activated_at=timezone.now(),
    )  # fmt: skip
    page.reload()
    assert page.get_by_role("button", name="Deactivate critic").count() == 1
    assert page.locator('input[name="queue_order"][value="uncertainty"]').count() == 1
    assert page.locator("#queue-order-note").count() == 0
    assert page.errors == [], page.errors


def test_rolling_back_to_the_base_asks_once_and_warns_of_nothing(page, login_browser, admin_user):  # noqa: F811
    base = ModelVersion.objects.create(name="base-v0")
    training_round = TrainingRound.objects.create(status=TrainingRound.Status.SUCCEEDED)
    trained = ModelVersion.objects.create(
        name="v1-round", parent=base, created_by_round=training_round, is_active=True
    )
    login_browser(admin_user)
    page.goto(reverse("training_home"))
    form = page.locator(f'form[action="{reverse("version_activate", args=[base.pk])}"]')
    assert form.locator("button").inner_text() == "Roll back"
    form.locator("button").click()
    page.wait_for_selector("#confirm-dialog[open]")
    assert page.inner_text("#confirm-message").startswith("Roll back to base-v0?")
    page.click("#confirm-yes")
    page.wait_for_function("document.querySelector('.messages') !== null")
    assert "Rolled back to base-v0" in page.inner_text(".messages")
    # No evidence page: a rollback is no promotion (the launch form's help may mention the gate itself).
    assert "is not shown to be significantly better" not in page.content()
    base.refresh_from_db()
    trained.refresh_from_db()
    assert base.is_active and not trained.is_active

    # Going forward again is a promotion: without evidence the server still asks, and says why.
    page.locator(f'form[action="{reverse("version_activate", args=[trained.pk])}"] button').click()
    page.wait_for_selector("#confirm-dialog[open]")
    page.click("#confirm-yes")
    page.wait_for_selector("text=is not shown to be significantly better")
    trained.refresh_from_db()
    assert not trained.is_active
    # The evidence page answers 409, which the browser logs; nothing else went wrong.
    assert [error for error in page.errors if "409" not in error] == [], page.errors

"""An admin cancels a running generation job from the project page, in Chromium (htmx form + CSRF)."""

from __future__ import annotations

import pytest

from annotations.models import Prompt
from training.models import GenerationJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_cancels_a_running_job_and_the_row_stops_polling(login_browser, admin_user, project):
    prompts = [Prompt.objects.create(project=project, text=f"Summarize item {i}.") for i in range(3)]
    job = GenerationJob.objects.create(project=project, prompt_ids=[p.pk for p in prompts])
    assert job.claim()  # running, as if a worker had it (no worker here: it stays running)
    page = login_browser(admin_user)
    page.goto(f"/projects/{project.pk}/")
    row = page.locator(f"#generation-job-{job.pk}")
    assert "running" in row.inner_text()

    row.get_by_role("button", name="Cancel").click()
    # It asks first (a native <dialog>, not window.confirm); confirming sends the htmx request.
    page.wait_for_selector("#confirm-dialog[open]")
    assert f"Cancel generation job #{job.pk}?" in page.inner_text("#confirm-message")
    assert GenerationJob.objects.get(pk=job.pk).status == "running"
    page.click("#confirm-yes")
    page.wait_for_selector(f"#generation-job-{job.pk} .status-cancelled")
    row = page.locator(f"#generation-job-{job.pk}")
    assert row.get_by_role("button", name="Cancel").count() == 0
    assert row.get_attribute("hx-trigger") is None  # finished rows stop polling
    assert page.url.endswith(f"/projects/{project.pk}/")  # swapped in place, no navigation
    assert GenerationJob.objects.get(pk=job.pk).status == "cancelled"
    assert page.errors == [] and page.dialogs == []

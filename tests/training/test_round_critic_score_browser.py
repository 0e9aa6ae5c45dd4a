"""The round page's critic score in Chromium: beside the blind pairs, one click queues it, the section
follows the job without a reload and ends with the verdict. The worker's part is tested in
``test_round_critic_score_worker``; here the job's row moves as the worker would move it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import Project, Prompt
from training.models import CriticVersion, ModelVersion, RoundCriticScore, TrainingRound
from training.views.rounds import critic_verdict

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_score_with_the_critic_is_followed_to_its_verdict(page, login_browser, admin_user):  # noqa: F811
    project = Project.objects.create(name="Summaries")
    for i in range(6):
        Prompt.objects.create(project=project, text=f"Summarize item {i}.", held_out=i < 3)
    CriticVersion.objects.create(project=project, name="critic-a", base_model="tiny", is_active=True)
    base = ModelVersion.objects.create(name="v0-base", is_active=True)
    training_round = TrainingRound.objects.create(status="succeeded", project=project)
    child = ModelVersion.objects.create(name="v1-round", parent=base, created_by_round=training_round)
    TrainingRound.objects.filter(pk=training_round.pk).update(output_version=child)

    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    section = page.locator("section.round-evaluation")
    assert section.locator("#round-evaluate").inner_text() == "Evaluate against v0-base"  # both options
    page.click("#round-critic-score-start")
    page.wait_for_selector('#round-critic-score[data-status="queued"]')
    assert "critic-a scores 0 of 6 answers" in page.inner_text("#round-critic-score")
    job = RoundCriticScore.objects.get()
    assert job.prompt_ids == list(
        Prompt.objects.filter(held_out=True).order_by("id").values_list("id", flat=True)
    )

    RoundCriticScore.objects.filter(pk=job.pk).update(status="running", progress_step=3)
    page.wait_for_function(
        "document.querySelector('#round-critic-score').textContent.includes('3 of 6 answers')"
    )
    result = {
        "critic": "critic-a", "version": "v1-round", "parent": "v0-base", "n": 3, "baseline_mean": 0.1,
        "candidate_mean": 0.05, "wins": 1, "losses": 2, "ties": 0, "p_value": 1.0, "prompts": [],
    }  # fmt: skip
    RoundCriticScore.objects.filter(pk=job.pk).update(status="succeeded", progress_step=6, result=result)
    page.wait_for_selector('#round-critic-score[data-status="succeeded"]', timeout=8000)
    assert page.inner_text(".round-critic-verdict") == critic_verdict(result)
    assert page.locator("#round-critic-score-start").count() == 0
    assert page.locator("#round-critic-score").get_attribute("hx-get") is None  # it stopped polling
    assert page.errors == [], page.errors

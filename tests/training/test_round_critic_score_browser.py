"""The round page's "did it help?" in Chromium: beside the blind pairs, one click has the project's active
critic score the round's version and its parent through the session's real worker; the section follows the
job without a reload and ends with the verdict. The blind pairs start from the same section."""

# ruff: noqa: F811  (pytest fixtures imported from the workspace conftest are parameters here)
from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import Project, Prompt
from evaluation.models import EvaluationCampaign
from tests.conftest import wait_for
from training import services
from training.models import CriticTrainingJob, ModelVersion, RoundCriticScore, TrainingRound
from training.views.rounds import critic_verdict

from ..workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
FAST_CRITIC = {"epochs": 2, "learning_rate": 0.01, "held_out_fraction": 0.25}


def _finished_round(project, tiny_model_dir) -> TrainingRound:
    """A finished round whose new version (the tiny base model, as its parent) a worker can load."""
    base = ModelVersion.objects.create(name="v0-base", base_model=str(tiny_model_dir), is_active=True)
    training_round = TrainingRound.objects.create(status="succeeded", project=project)
    child = ModelVersion.objects.create(
        name="v1-round", base_model=str(tiny_model_dir), parent=base, created_by_round=training_round
    )
    TrainingRound.objects.filter(pk=training_round.pk).update(output_version=child)
    training_round.refresh_from_db()
    return training_round


@pytest.mark.worker
def test_score_with_the_critic_through_the_worker_is_followed_to_its_verdict(
    celery_worker_process,
    page,
    login_browser,
    admin_user,
    project,
    labelled,
    tiny_model_dir,
):
    """Through the session's real worker: it trains the project's critic, then scores the round's version
    and its parent. Both versions are the tiny base model here, so with one seed they answer alike and the
    critic must score every prompt a tie."""
    job = services.critic_job_create(
        project=project, config=FAST_CRITIC, created_by=admin_user, auto_activate=True
    )
    wait_for(lambda: CriticTrainingJob.objects.get(pk=job.pk).is_finished, timeout=240, message="the critic")
    critic = services.critic_active(project_id=project.pk)
    assert critic is not None, CriticTrainingJob.objects.get(pk=job.pk).error
    held_out = [g.prompt_id for g in labelled[5:]]
    Prompt.objects.filter(pk__in=held_out).update(held_out=True)
    training_round = _finished_round(project, tiny_model_dir)

    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    section = page.locator("section.round-evaluation")
    assert section.locator("#round-evaluate").inner_text() == "Evaluate against v0-base"  # both options
    page.click("#round-critic-score-start")
    page.wait_for_selector("#round-critic-score:not([data-status='none'])")
    score = RoundCriticScore.objects.get()
    assert score.prompt_ids == sorted(held_out) and score.critic_version == critic
    page.wait_for_selector('#round-critic-score[data-status="succeeded"]', timeout=180_000)
    score.refresh_from_db()
    assert (score.result["wins"], score.result["losses"], score.result["ties"]) == (0, 0, 3), score.result
    assert page.inner_text(".round-critic-verdict") == critic_verdict(score.result)
    assert page.inner_text(".round-critic-verdict").endswith("No clear difference by the critic's measure.")
    assert page.locator("#round-critic-score-start").count() == 0
    assert page.locator("#round-critic-score").get_attribute("hx-get") is None  # it stopped polling
    assert page.errors == [], page.errors


def test_the_blind_pairs_start_from_the_round_page_and_the_page_links_them(
    page,
    login_browser,
    admin_user,
    tiny_model_dir,
):
    """The other "did it help?" option (issue 24): one click starts the blind campaign against the parent;
    the round page then links it instead of offering it again."""
    project = Project.objects.create(name="Summaries")
    for i in range(4):
        Prompt.objects.create(project=project, text=f"Summarize item {i}.", held_out=True)
    training_round = _finished_round(project, tiny_model_dir)

    login_browser(admin_user)
    page.goto(reverse("round_detail", args=[training_round.pk]))
    assert "Summaries has no active critic" in page.inner_text("#round-critic-score")
    page.click("#round-evaluate")
    campaign = EvaluationCampaign.objects.get()
    page.wait_for_url(f"**{reverse('campaign_detail', args=[campaign.pk])}")
    assert "Round #" in page.inner_text("h1") or campaign.name in page.content()
    page.goto(reverse("round_detail", args=[training_round.pk]))
    section = page.locator("section.round-evaluation")
    assert section.get_by_role("link", name=campaign.name).count() == 1
    assert section.locator("#round-evaluate").count() == 0
    assert "The verdict appears here once annotators have judged the pairs." in section.inner_text()
    assert page.errors == [], page.errors

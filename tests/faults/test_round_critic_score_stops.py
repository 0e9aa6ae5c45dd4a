"""The round page's critic score through a real worker when it does not finish: an admin's cancel stops
it between the versions' answers and nothing of it is kept as a result; a worker killed under it (as the
OOM killer would) leaves it to the reaper, and the page says what happened and offers to score again.

The critic is trained in this process and published to a store the worker reads (``T2G_STORAGE_URL``);
both versions are the tiny base model. ``T2G_TEST_MODEL_LOAD_DELAY_S`` holds the worker in its first
model load, so the job is surely running (and not yet done) when the test acts."""

# ruff: noqa: F811  (pytest fixtures imported from tests/training/conftest.py are parameters here)
from __future__ import annotations

import os
import signal

import pytest
from django.urls import reverse

from annotations.models import Prompt
from jobs import reaper, registry
from tests.conftest import wait_for
from tests.training.conftest import labelled, tiny_settings  # noqa: F401  (fixtures)
from training import services
from training.models import CriticTrainingJob, ModelVersion, RoundCriticScore, TrainingRound
from training.worker import critic as critic_worker
from training.worker import round_scores

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
FAST_CRITIC = {"epochs": 2, "learning_rate": 0.01, "held_out_fraction": 0.25}
STALE_AFTER_S = 12  # fault_env's T2G_JOB_STALE_AFTER_S


@pytest.fixture
def scored_round(tiny_settings, project, labelled, admin_user, tiny_model_dir):
    """A finished round whose version and parent a worker can load, and the project's active critic."""
    job = services.critic_job_create(
        project=project, config=FAST_CRITIC, created_by=admin_user, auto_activate=True
    )
    assert critic_worker.critic_job_run(job_id=job.pk) == CriticTrainingJob.Status.SUCCEEDED
    Prompt.objects.filter(pk__in=[g.prompt_id for g in labelled[5:]]).update(held_out=True)
    base = ModelVersion.objects.create(name="v0-base", base_model=str(tiny_model_dir), is_active=True)
    training_round = TrainingRound.objects.create(status="succeeded", project=project)
    child = ModelVersion.objects.create(
        name="v1-round", base_model=str(tiny_model_dir), parent=base, created_by_round=training_round
    )
    TrainingRound.objects.filter(pk=training_round.pk).update(output_version=child)
    return training_round


def _start_score(client, training_round) -> RoundCriticScore:
    client.post(reverse("round_action", args=[training_round.pk, "critic_score"]))
    job = RoundCriticScore.objects.get()
    wait_for(lambda: RoundCriticScore.objects.get(pk=job.pk).status == "running", timeout=120,
             message="the worker to claim the score")  # fmt: skip
    return job


def _page(client, training_round) -> str:
    response = client.get(reverse("round_detail", args=[training_round.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_cancelled_score_stops_before_it_finishes_and_keeps_no_result(
    scored_round,
    tiny_settings,
    admin_user,
    login,
    fault_worker,
):
    fault_worker("score", queues="generation", T2G_STORAGE_URL=tiny_settings.T2G_STORAGE_URL,
                 T2G_TEST_MODEL_LOAD_DELAY_S="5")  # fmt: skip
    client = login(admin_user)
    job = _start_score(client, scored_round)
    response = client.post(reverse("round_action", args=[scored_round.pk, "critic_score_cancel"]))
    assert response.status_code == 302
    wait_for(lambda: RoundCriticScore.objects.get(pk=job.pk).is_finished, timeout=120,
             message="the worker to honour the cancel")  # fmt: skip
    job.refresh_from_db()
    assert job.status == "cancelled", job.error
    assert job.error == round_scores._Stopped.reason and job.result == {}
    # Stopped at a check: before the new version's answers (after the parent's) or while sampling them.
    assert job.progress_step in (0, len(job.prompt_ids)) and job.progress_step < job.progress_total
    page = _page(client, scored_round)
    assert 'data-status="cancelled"' in page and "The last score was cancelled" in page
    assert 'class="round-critic-verdict"' not in page  # the parent's scores were not shown as a result
    assert 'id="round-critic-score-start"' in page


def test_a_score_whose_worker_is_killed_is_given_up_by_the_reaper_and_offered_again(
    scored_round,
    tiny_settings,
    admin_user,
    login,
    fault_worker,
):
    """The score was already queued again as often as its kind allows (``max_requeues``), so the reaper
    gives up on it after this death rather than queue it once more (tests/training/test_round_critic_score.py
    shows the note of a score queued again)."""
    doomed = fault_worker("score-doomed", queues="generation", T2G_STORAGE_URL=tiny_settings.T2G_STORAGE_URL,
                          T2G_TEST_MODEL_LOAD_DELAY_S="120")  # fmt: skip
    client = login(admin_user)
    client.post(reverse("round_action", args=[scored_round.pk, "critic_score"]))
    job = RoundCriticScore.objects.get()
    RoundCriticScore.objects.filter(pk=job.pk).update(
        requeues=registry.kind_of(RoundCriticScore).max_requeues
    )
    wait_for(lambda: RoundCriticScore.objects.get(pk=job.pk).status == "running", timeout=120,
             message="the worker to claim the score")  # fmt: skip
    os.kill(doomed.pid, signal.SIGSTOP)  # frozen first, so it cannot finish meanwhile
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)

    def reaped() -> bool:
        reaper.reap(stale_after_s=STALE_AFTER_S)
        return RoundCriticScore.objects.get(pk=job.pk).is_finished

    wait_for(reaped, timeout=STALE_AFTER_S + 60, interval=1, message="the reaper to give up on the score")
    job.refresh_from_db()
    assert job.status == "failed" and job.result == {} and job.owner == ""
    assert "stopped 4 times while running this critic score of a round" in job.error
    assert job.error.endswith("Nothing of it was kept; score the round again.")
    page = _page(client, scored_round)
    assert "The last score stopped: " in page and "stopped 4 times" in page
    assert 'class="round-critic-verdict"' not in page and 'id="round-critic-score-start"' in page
    client.post(reverse("round_action", args=[scored_round.pk, "critic_score"]))
    assert RoundCriticScore.objects.exclude(pk=job.pk).get().status == "queued"

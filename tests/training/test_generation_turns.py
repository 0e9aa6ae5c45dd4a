"""Fair turns on the generation lane: a bulk job gives its turn to waiting work (another project's first
outputs, an evaluation campaign, a version comparison) and resumes after the outputs it committed."""

from __future__ import annotations

import pytest

from annotations.models import Generation, Prompt
from annotations.services import project_create
from evaluation.models import CampaignGeneration, EvaluationCampaign
from jobs.models import Outbox
from training import services
from training.models import CriticPredictionJob, CriticVersion, GenerationJob
from training.worker import generation as worker

pytestmark = pytest.mark.django_db


def _prompts(project, count: int) -> list[Prompt]:
    return [Prompt.objects.create(project=project, text=f"Summarize item {i}.") for i in range(count)]


@pytest.fixture
def other_project(db):
    return project_create(name="Second project", kind="summarization", annotations_per_output=1)


def _dispatched(job) -> int:
    return Outbox.objects.filter(task_name="training.generate", args=[job.pk]).count()


@pytest.mark.heavy
def test_a_bulk_job_gives_its_turn_to_another_projects_first_batch_and_resumes(
    project, other_project, tiny_settings
):
    tiny_settings.T2G_GENERATION_CHUNK = 2
    tiny_settings.T2G_GENERATION_TURN_S = 0
    bulk_prompts = _prompts(project, 6)
    small_prompts = _prompts(other_project, 2)
    bulk = services.generation_job_create(project=project)
    small = services.generation_job_create(project=other_project)
    dispatched_before = _dispatched(bulk)

    worker.generation_job_run(job_id=bulk.pk)
    bulk.refresh_from_db()
    # One chunk written, then the turn went to the waiting job: queued again (dispatched anew), not done.
    assert (bulk.status, bulk.progress_step, bulk.progress_total) == ("queued", 2, 6)
    assert _dispatched(bulk) == dispatched_before + 1
    assert Generation.objects.filter(prompt__in=bulk_prompts).count() == 2

    worker.generation_job_run(job_id=small.pk)  # a single chunk: it finishes within its turn
    small.refresh_from_db()
    assert (small.status, small.progress_step) == ("succeeded", 2), small.error

    worker.generation_job_run(job_id=bulk.pk)  # nothing waits any more: it runs to the end
    bulk.refresh_from_db()
    assert (bulk.status, bulk.progress_step) == ("succeeded", 6), bulk.error
    assert [Generation.objects.filter(prompt=p).count() for p in bulk_prompts] == [1] * 6  # none twice
    assert [Generation.objects.filter(prompt=p).count() for p in small_prompts] == [1, 1]


@pytest.mark.heavy
def test_a_bulk_job_keeps_its_turn_while_the_turn_lasts_or_nothing_waits(
    project, other_project, tiny_settings
):
    tiny_settings.T2G_GENERATION_CHUNK = 2
    tiny_settings.T2G_GENERATION_TURN_S = 3600  # the turn outlasts the job: no yielding though work waits
    _prompts(project, 4)
    _prompts(other_project, 1)
    bulk = services.generation_job_create(project=project)
    services.generation_job_create(project=other_project)
    worker.generation_job_run(job_id=bulk.pk)
    assert GenerationJob.objects.get(pk=bulk.pk).status == "succeeded"


def test_waiting_work_is_queued_jobs_and_campaigns_not_jobs_held_back_by_a_retry_countdown(
    project, other_project, admin_user
):
    _prompts(project, 2)
    running = GenerationJob.objects.create(project=project, status="running")
    assert not worker.lane_work_waiting(running)
    waiting = services.generation_job_create(project=other_project)
    assert worker.lane_work_waiting(running)
    # A job the reaper queued again with a backoff is not runnable yet: nobody to give the turn to.
    Outbox.objects.filter(args=[waiting.pk]).delete()
    from jobs import dispatch

    dispatch.enqueue("training.generate", waiting.pk, countdown=120)
    assert not worker.lane_work_waiting(running)
    campaign = EvaluationCampaign.objects.create(project=project, name="Blind pairs", created_by=admin_user)
    generation = CampaignGeneration.objects.create(campaign=campaign)
    assert worker.lane_work_waiting(running)
    CampaignGeneration.objects.filter(pk=generation.pk).update(status="running")
    assert not worker.lane_work_waiting(running)
    # A critic's predictions waiting for the lane count too.
    critic = CriticVersion.objects.create(project=project, name="critic-1", base_model="tiny")
    prediction = CriticPredictionJob.objects.create(critic_version=critic, generation_ids=[])
    assert worker.lane_work_waiting(running)
    CriticPredictionJob.objects.filter(pk=prediction.pk).update(status="succeeded")
    assert not worker.lane_work_waiting(running)


def test_outputs_for_evaluation_never_give_their_turn_away(project):
    bulk = GenerationJob(project=project)
    compare = GenerationJob(project=project, sampling_params={"purpose": "evaluation", "seed": 1234})
    assert worker.takes_turns(bulk) and not worker.takes_turns(compare)


def test_requeue_is_fenced_a_run_that_lost_its_job_changes_nothing(project):
    from jobs import reaper

    job = GenerationJob.objects.create(project=project)
    assert job.claim()
    stale = GenerationJob.objects.get(pk=job.pk)
    GenerationJob.objects.filter(pk=job.pk).update(status="cancelled")
    assert reaper.requeue(stale) is False
    assert GenerationJob.objects.get(pk=job.pk).status == "cancelled"

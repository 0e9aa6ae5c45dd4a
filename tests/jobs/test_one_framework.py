"""Issue 29, "one framework for all background work": campaign generation and critic predictions are jobs
of the framework (fenced claim, heartbeat, cancel, the one reaper, "queued behind"), and every dispatch,
the ``recompute_rewards`` command's included, goes through the outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from evaluation import services as evaluation_services
from evaluation.models import CampaignGeneration, EvaluationCampaign
from jobs import lifecycle, reaper, registry
from jobs.models import Outbox
from jobs.standing import standing
from training import services
from training.models import CriticPredictionJob, CriticVersion, GenerationJob, ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(project, admin_user):
    from annotations.models import Prompt

    for number in range(3):
        Prompt(
            project=project, text=f"Summarise item {number}.", external_id=f"i{number}", held_out=True
        ).save()
    versions = [ModelVersion.objects.create(name=f"v{n}", base_model="tiny") for n in range(2)]
    return evaluation_services.campaign_create(
        name="check", project=project, versions=versions, prompt_count=2, created_by=admin_user
    )


def _silence(model, pk: int) -> None:
    """The job's worker died: its heartbeat stopped a long time ago."""
    model.objects.filter(pk=pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))


def test_recompute_rewards_queue_goes_through_the_outbox(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("recompute_rewards", "--queue", "--project", project.name)
    row = Outbox.objects.get()
    assert (row.task_name, row.args, row.sent_at) == ("training.recompute_all_rewards", [project.pk], None)
    assert len(callbacks) == 1  # published after the commit (or by the relay), never in the command


def test_campaign_generation_is_a_job_the_one_reaper_resumes_then_gives_up_on(campaign):
    job = campaign.generation
    assert isinstance(job, CampaignGeneration) and job.status == "queued" and job.progress_total == 4
    row = Outbox.objects.get(task_name="training.evaluation_generate")
    assert row.args == [job.pk]  # the job's id, not the campaign's
    assert registry.kind_of(CampaignGeneration).label == "campaign generation"

    first = lifecycle.claim(CampaignGeneration, job.pk)
    assert first is not None and reaper.reap()["evaluation.campaigngeneration"] == {"resumed": 0, "failed": 0}
    _silence(CampaignGeneration, job.pk)
    assert reaper.reap()["evaluation.campaigngeneration"] == {"resumed": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == "queued" and job.requeues == 1 and "queued again" in job.error
    assert Outbox.objects.filter(task_name="training.evaluation_generate", args=[job.pk]).count() == 2

    second = lifecycle.claim(CampaignGeneration, job.pk)
    assert second.attempts == first.attempts + 1
    assert not lifecycle.progress(first, 1)  # fenced: the run the reaper gave up on writes nothing
    assert lifecycle.progress(second, 1)

    CampaignGeneration.objects.filter(pk=job.pk).update(requeues=3)
    _silence(CampaignGeneration, job.pk)
    assert reaper.reap()["evaluation.campaigngeneration"] == {"resumed": 0, "failed": 1}
    campaign.refresh_from_db()
    assert campaign.status == "failed" and "stopped 4 times" in campaign.error

    evaluation_services.campaign_retry(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.status == "generating" and campaign.generation.pk != job.pk
    assert campaign.worker_status == "queued" and campaign.error == ""


def test_there_is_no_second_reaper():
    from text2grad_web.celery import app

    app.loader.import_default_modules()
    assert "training.reap_stale_jobs" not in app.tasks
    assert not hasattr(evaluation_services, "campaigns_reap_stale")


def test_campaign_generation_can_be_cancelled_queued_or_running(campaign, admin_user, client, login):
    evaluation_services.campaign_cancel(campaign=campaign)  # queued: ends at once
    campaign.refresh_from_db()
    assert campaign.status == "failed" and campaign.generation.status == "cancelled"
    with pytest.raises(ValidationError):
        evaluation_services.campaign_cancel(campaign=campaign)

    evaluation_services.campaign_retry(campaign=campaign)
    campaign.refresh_from_db()
    running = lifecycle.claim(CampaignGeneration, campaign.generation.pk)
    login(admin_user)
    response = client.post(f"/evaluation/{campaign.pk}/cancel/")
    assert response.status_code == 302
    running.refresh_from_db()
    assert running.status == "running" and running.cancel_requested  # stops at its next chunk
    assert lifecycle.cancel_requested(running)

    from training.worker import campaigns

    with pytest.raises(campaigns._Stopped):  # before it loads any model
        campaigns._generate(campaign, running)


def test_a_queued_campaign_and_critic_prediction_say_what_they_wait_behind(
    campaign, project, admin_user, client, login
):
    ahead = GenerationJob.objects.create(project=project, progress_total=10)
    lifecycle.claim(GenerationJob, ahead.pk)
    where = standing(campaign.generation)
    assert where.lane == "generation"
    assert f"queued behind generation job #{ahead.pk} (running)" in where.text
    login(admin_user)
    fragment = client.get(f"/evaluation/{campaign.pk}/?part=progress", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert f"queued behind generation job #{ahead.pk}" in fragment.content.decode()
    api = client.get(f"/api/v1/evaluation-campaigns/{campaign.pk}/").json()
    assert api["worker_status"] == "queued" and api["standing"].startswith("queued behind generation job")

    version = CriticVersion.objects.create(project=project, name="c1", base_model="tiny", storage_key="k")
    job = services.critic_prediction_job_create(version=version, generation_ids=[3, 1])
    where = standing(job)
    assert where.lane == "generation" and where.position == 3  # behind the generation job and the campaign
    assert "and 1 more" in where.text


def test_critic_predictions_are_jobs_reaped_resumed_and_cancelled(project, make_generation, admin_user):
    version = CriticVersion.objects.create(project=project, name="c1", base_model="tiny", storage_key="k")
    fresh = make_generation(project, "an output nobody annotated")
    services.critic_version_activate(version=version)  # queues predictions for unannotated outputs
    job = CriticPredictionJob.objects.get()
    assert job.generation_ids == [fresh.pk] and job.status == "queued"
    assert Outbox.objects.get(task_name="training.critic_predict").args == [job.pk]

    first = lifecycle.claim(CriticPredictionJob, job.pk)
    _silence(CriticPredictionJob, job.pk)
    assert reaper.reap()["training.criticpredictionjob"] == {"resumed": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == "queued" and "skips the outputs the critic already predicted" in job.error
    second = lifecycle.claim(CriticPredictionJob, job.pk)
    assert not lifecycle.progress(first, 1) and lifecycle.progress(second, 1)

    assert services.critic_prediction_job_cancel(job=second)
    second.refresh_from_db()
    assert second.cancel_requested and lifecycle.cancel_requested(second)
    other = services.critic_prediction_job_create(version=version, generation_ids=[fresh.pk])
    assert services.critic_prediction_job_cancel(job=other)
    other.refresh_from_db()
    assert other.status == "cancelled"


def test_an_unknown_campaign_action_is_refused(campaign, admin_user, client, login):
    login(admin_user)
    assert client.post(f"/evaluation/{campaign.pk}/explode/").status_code == 403
    assert EvaluationCampaign.objects.get(pk=campaign.pk).status == "generating"


def test_a_critic_job_the_reaper_gave_up_on_records_no_critic(project):
    from text2grad.critic import CriticConfig
    from training.models import CriticTrainingJob
    from training.worker import critic as critic_worker

    def record(job, name: str) -> None:
        critic_worker._record_version(
            job, CriticConfig(), name=name, storage_key=f"models/critics/{name}", content_hash="0" * 64,
            metrics={"timings": {}}, result={"steps": 1, "losses": [0.5]},
        )  # fmt: skip

    lost = CriticTrainingJob.objects.create(project=project, auto_activate=True)
    assert lost.claim()
    _silence(CriticTrainingJob, lost.pk)
    assert reaper.reap()["training.critictrainingjob"] == {"resumed": 0, "failed": 1}
    with pytest.raises(critic_worker.JobLost):
        record(lost, "c-lost")
    assert not CriticVersion.objects.exists()  # neither recorded nor activated

    kept = CriticTrainingJob.objects.create(project=project, auto_activate=True)
    assert kept.claim()
    record(kept, "c-kept")
    kept.refresh_from_db()
    assert (
        kept.status == "succeeded" and kept.output_version.name == "c-kept" and kept.output_version.is_active
    )


def test_the_critic_page_shows_waiting_predictions_and_admins_cancel_them(
    project, make_generation, admin_user, researcher, client, login
):
    version = CriticVersion.objects.create(project=project, name="c1", base_model="tiny", storage_key="k")
    output = make_generation(project, "an output")
    job = services.critic_prediction_job_create(version=version, generation_ids=[output.pk])
    login(researcher)
    page = client.get(f"/projects/{project.pk}/critic/").content.decode()
    assert f'id="critic-prediction-{job.pk}"' in page and "queued: next to run" in page
    assert f"/critic-predictions/{job.pk}/cancel/" not in page  # researchers look, admins act
    assert client.post(f"/critic-predictions/{job.pk}/cancel/").status_code == 403
    login(admin_user)
    assert client.post(f"/critic-predictions/{job.pk}/cancel/").status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert (
        f'id="critic-prediction-{job.pk}"'
        not in client.get(f"/projects/{project.pk}/critic/").content.decode()
    )


def test_campaign_generation_jobs_are_read_in_the_django_admin(campaign, admin_user, client):
    client.force_login(admin_user)
    page = client.get("/admin/evaluation/campaigngeneration/")
    assert (
        page.status_code == 200
        and f"Generation {campaign.generation.pk} of campaign" in page.content.decode()
    )
    assert client.get("/admin/evaluation/evaluationcampaign/").status_code == 200


def test_a_prediction_message_from_before_the_upgrade_runs_as_a_job(project):
    from training.tasks import critic_predict

    version = CriticVersion.objects.create(project=project, name="c1", base_model="tiny", storage_key="k")
    assert critic_predict(version.pk, []) == 0  # the old arguments: a version's id and its outputs
    job = CriticPredictionJob.objects.get()
    assert job.critic_version == version and job.status == "succeeded" and job.attempts == 1


def test_one_wrapper_ends_every_kind_cancelled_failed_or_lost_and_calls_its_ended_hook_once(project):
    """``lifecycle.running`` is the one wrapper: ``Stopped`` ends the job cancelled with its reason, any
    other error fails it (and is raised again), and ``ended`` is called after either, not when the run
    was lost (the reaper's cleanup covers that) nor when it succeeded."""
    calls: list[tuple[int, str]] = []

    def ended(job) -> None:
        calls.append((job.pk, GenerationJob.objects.get(pk=job.pk).status))

    def claimed() -> GenerationJob:
        return lifecycle.claim(GenerationJob, GenerationJob.objects.create(project=project).pk)

    job = claimed()
    with lifecycle.running(job, "cancelled", ended=ended) as run:
        raise lifecycle.Stopped("Stopped between chunks.")
    job.refresh_from_db()
    assert (run.cancelled, run.lost, job.status, job.error) == (
        True,
        False,
        "cancelled",
        "Stopped between chunks.",
    )
    assert calls == [(job.pk, "cancelled")]

    job = claimed()
    with pytest.raises(ValueError), lifecycle.running(job, "failed", ended=ended):
        raise ValueError("bad row")
    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", "ValueError: bad row") and calls[-1] == (job.pk, "failed")

    job = claimed()
    _silence(GenerationJob, job.pk)
    reaper.reap()  # requeued: a stop or an error now is a lost run's, which writes nothing
    with lifecycle.running(job, "lost", ended=ended) as run:
        raise lifecycle.Stopped
    with pytest.raises(ValueError), lifecycle.running(job, "lost", ended=ended):
        raise ValueError("too late")
    assert run.lost and not run.cancelled and GenerationJob.objects.get(pk=job.pk).status == "queued"

    job = claimed()
    with lifecycle.running(job, "succeeded", ended=ended) as run:
        lifecycle.finish(job, "succeeded")
    assert not (run.lost or run.cancelled) and len(calls) == 2


def test_campaign_generation_and_critic_predictions_stop_through_the_one_wrapper(
    campaign, project, make_generation
):
    """A campaign's cancel ends its campaign through ``running``'s ``ended`` hook; a critic prediction run
    that sees a cancel between batches ends cancelled with its reason. Both stop before any model loads."""
    from training.worker import campaigns, critic

    job = campaign.generation
    CampaignGeneration.objects.filter(pk=job.pk).update(cancel_requested=True)
    campaigns.campaign_generate_run(job_id=job.pk)  # stops at its first check, before any model
    job.refresh_from_db()
    campaign.refresh_from_db()
    assert job.status == "cancelled" and "outputs written before are kept" in job.error
    assert campaign.status == "failed"  # the ended hook

    version = CriticVersion.objects.create(project=project, name="c1", base_model="tiny", storage_key="k")
    output = make_generation(project, "an output")
    prediction = services.critic_prediction_job_create(version=version, generation_ids=[output.pk])
    CriticPredictionJob.objects.filter(pk=prediction.pk).update(cancel_requested=True)
    assert critic.critic_prediction_job_run(job_id=prediction.pk) == 0
    prediction.refresh_from_db()
    assert prediction.status == "cancelled" and prediction.error.startswith("Cancelled; the predictions")


def test_no_job_kind_keeps_a_heartbeat_of_its_own_outside_the_one_wrapper():
    """Every run goes through ``lifecycle.running`` (heartbeat, cancel, failure, the ``ended`` hook): no
    app module starts the heartbeat itself around a body with its own try/except."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    own = [
        str(path.relative_to(root))
        for app in ("annotations", "evaluation", "training", "jobs", "audit", "artifacts")
        for path in (root / app).rglob("*.py")
        if path.name != "lifecycle.py" and "lifecycle.heartbeat(" in path.read_text(encoding="utf-8")
    ]
    assert own == []

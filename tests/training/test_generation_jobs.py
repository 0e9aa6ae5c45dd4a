"""Generation jobs and exports beyond the happy path: cancellation, and a worker that dies mid-job
(generation jobs are queued again and resume; exports are queued again and their partial files go)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from annotations.exports import jobs as export_jobs
from annotations.models import DatasetExport, Generation, Prompt
from jobs import reaper, registry
from training import selectors, services
from training.models import GenerationJob
from training.worker import generation as jobs

pytestmark = pytest.mark.django_db

HOUR_AGO = timedelta(hours=1)
GEN = "training.generationjob"
EXPORT = "annotations.datasetexport"


@pytest.fixture
def prompts(project):
    return [Prompt.objects.create(project=project, text=f"Summarize item {i}.") for i in range(4)]


def _orphan(project, prompts, *, done: int, **fields) -> GenerationJob:
    """A job whose worker died after committing the outputs of the first ``done`` prompts."""
    for prompt in prompts[:done]:
        Generation.objects.create(prompt=prompt, text="written before the worker died", source_model="test")
    return GenerationJob.objects.create(
        project=project, prompt_ids=[p.pk for p in prompts], status="running", progress_step=done,
        progress_total=len(prompts), heartbeat_at=timezone.now() - HOUR_AGO, **fields,
    )  # fmt: skip


@pytest.mark.heavy
def test_a_requeued_generation_job_resumes_after_its_committed_outputs(
    project, prompts, tiny_settings, django_capture_on_commit_callbacks
):
    tiny_settings.T2G_GENERATION_CHUNK = 2
    orphan = _orphan(project, prompts, done=2)
    fresh = GenerationJob.objects.create(project=project, status="running", heartbeat_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert reaper.reap()[GEN] == {"resumed": 1, "failed": 0}
    assert len(callbacks) == 1  # enqueued once, after commit
    orphan.refresh_from_db()
    assert (orphan.status, orphan.requeues) == ("queued", 1)
    assert "stopped reporting" in orphan.error and "queued again" in orphan.error
    assert GenerationJob.objects.get(pk=fresh.pk).status == "running"  # still reporting: left alone

    jobs.generation_job_run(job_id=orphan.pk)
    orphan.refresh_from_db()
    assert (orphan.status, orphan.progress_step, orphan.progress_total) == ("succeeded", 4, 4), orphan.error
    counts = [Generation.objects.filter(prompt=p).count() for p in prompts]
    assert counts == [1, 1, 1, 1]  # the first two were not sampled again
    # Its measured speed counts what this job sampled: the two outputs written before are not timed.
    tokens = sum(len(g.response_token_ids) for g in Generation.objects.filter(prompt__in=prompts[2:]))
    assert (orphan.outputs_timed, orphan.tokens_generated) == (2, tokens) and orphan.sampling_s > 0
    assert Generation.objects.filter(prompt__in=prompts[2:], source_model="test").count() == 0


def test_a_job_that_keeps_losing_its_worker_ends_failed(project, prompts):
    orphan = _orphan(project, prompts, done=1, requeues=registry.kind_of(GenerationJob).max_requeues)
    assert reaper.reap()[GEN] == {"resumed": 0, "failed": 1}
    orphan.refresh_from_db()
    assert orphan.status == "failed" and "stopped 4 times" in orphan.error
    assert Generation.objects.filter(prompt=prompts[0]).count() == 1  # what it wrote is kept


def test_a_run_that_lost_its_job_writes_nothing_and_leaves_the_status(project, prompts, tiny_settings):
    job = GenerationJob.objects.create(project=project, prompt_ids=[p.pk for p in prompts])
    assert job.claim()
    # The worker looked dead (heartbeat older than the threshold) and the job was queued again...
    assert reaper.reap(stale_after_s=0)[GEN]["resumed"] == 1
    # ...but the old run was only slow: it must neither write outputs nor mark the job finished.
    assert jobs._run_generation(job) is False
    assert not Generation.objects.filter(prompt__in=prompts).exists()
    assert GenerationJob.objects.get(pk=job.pk).status == "queued"


def test_recover_jobs_requeues_generation_and_exports(project, prompts, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    orphan = _orphan(project, prompts, done=0)
    GenerationJob.objects.filter(pk=orphan.pk).update(heartbeat_at=timezone.now())  # fresh, yet orphaned
    export = DatasetExport.objects.create(kind="spans", format="jsonl", status="running")
    call_command("recover_jobs")
    assert GenerationJob.objects.get(pk=orphan.pk).status == "queued"
    export.refresh_from_db()
    assert (export.status, export.requeues) == ("queued", 1) and "queued again" in export.error


def test_a_stale_export_is_queued_again_and_its_partial_file_goes(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    directory = export_jobs.export_dir()
    directory.mkdir(parents=True)
    stale = DatasetExport.objects.create(
        kind="spans", format="jsonl", status="running", heartbeat_at=timezone.now() - HOUR_AGO
    )
    live = DatasetExport.objects.create(
        kind="spans", format="jsonl", status="running", heartbeat_at=timezone.now()
    )
    stale_part = directory / f".export-{stale.pk}-0123abcd.part"
    live_part = directory / f".export-{live.pk}-4567ef01.part"
    stale_part.write_bytes(b'{"half": ')
    live_part.write_bytes(b'{"half": ')

    assert reaper.reap()[EXPORT] == {"resumed": 1, "failed": 0}
    stale.refresh_from_db()
    assert stale.status == "queued" and stale.requeues == 1
    assert DatasetExport.objects.get(pk=live.pk).status == "running"
    assert not stale_part.exists() and live_part.exists()
    assert reaper.reap()[EXPORT] == {"resumed": 0, "failed": 0}  # idempotent
    # Requeued too often: failed, with what happened and what to do.
    DatasetExport.objects.filter(pk=stale.pk).update(status="running", heartbeat_at=timezone.now() - HOUR_AGO)
    DatasetExport.objects.filter(pk=stale.pk).update(requeues=registry.kind_of(DatasetExport).max_requeues)
    assert reaper.reap()[EXPORT] == {"resumed": 0, "failed": 1}
    stale.refresh_from_db()
    assert stale.status == "failed" and "stopped" in stale.error and "start a new one" in stale.error


def test_a_running_export_reports_a_heartbeat(tmp_path, settings, critiqued):
    settings.VAR_DIR = tmp_path
    export = export_jobs.export_create(kind="spans", fmt="jsonl", query={}, enqueue=False)
    export_jobs.export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == "succeeded" and export.heartbeat_at is not None
    assert export.heartbeat_at >= export.created_at


def test_admin_cancels_a_running_job_from_its_row(
    login, admin_user, annotator, project, prompts, tiny_settings
):
    tiny_settings.T2G_GENERATION_BATCH = 2
    job = GenerationJob.objects.create(project=project, prompt_ids=[p.pk for p in prompts])
    assert job.claim()
    page = login(admin_user).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert reverse("generation_job_cancel", args=[job.pk]) in page  # the row offers Cancel while running

    assert login(annotator).post(reverse("generation_job_cancel", args=[job.pk])).status_code == 403
    assert GenerationJob.objects.get(pk=job.pk).status == "running"
    client = login(admin_user)
    row = client.post(reverse("generation_job_cancel", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert row.status_code == 200
    body = row.content.decode()
    assert "cancelled" in body and "hx-trigger" not in body  # final: no more polling, no Cancel button
    assert reverse("generation_job_cancel", args=[job.pk]) not in body

    # The worker notices before its next chunk: nothing written, and the status stays cancelled.
    assert jobs._run_generation(job) is False
    assert not Generation.objects.filter(prompt__in=prompts).exists()
    job.refresh_from_db()
    assert job.status == "cancelled" and job.finished_at is not None
    again = client.post(reverse("generation_job_cancel", args=[job.pk]), follow=True)
    assert "had already finished" in again.content.decode()


def test_a_cancelled_queued_job_is_never_run(project, prompts, tiny_settings):
    job = GenerationJob.objects.create(project=project, prompt_ids=[p.pk for p in prompts])
    assert services.generation_job_cancel(job=job)
    jobs.generation_job_run(job_id=job.pk)
    assert GenerationJob.objects.get(pk=job.pk).status == "cancelled"
    assert not Generation.objects.filter(prompt__in=prompts).exists()


def test_a_job_records_the_tokens_and_seconds_it_sampled(project, prompts, tiny_settings):
    tiny_settings.T2G_GENERATION_CHUNK = 2
    job = GenerationJob.objects.create(project=project, prompt_ids=[p.pk for p in prompts])
    jobs.generation_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.outputs_timed == 4 == job.progress_step, job.error
    tokens = sum(len(g.response_token_ids) for g in Generation.objects.filter(prompt__in=prompts))
    assert (
        job.tokens_generated == tokens > 0
        and 0 < job.sampling_s < (job.finished_at - job.started_at).total_seconds()
    )
    speed = selectors.generation_speed()
    assert speed.tokens_per_s == pytest.approx(tokens / job.sampling_s)
    assert speed.tokens_per_output == pytest.approx(tokens / 4) and speed.jobs == 1

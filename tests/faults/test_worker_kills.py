"""SIGKILL a worker in the middle of an export, a generation job and a training round (as the OOM killer
would). Another worker's reaper notices the silence (a short staleness here; 45 s by default) and resumes
the job or fails it with a reason; nothing is left running without an owner, no partial file stays, and
the active model version is untouched."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from annotations.exports import jobs as export_jobs
from annotations.models import Annotation, DatasetExport, Generation, Prompt
from jobs import lifecycle
from tests.conftest import wait_for
from training import services
from training.models import GenerationJob, ModelVersion, TrainingRound

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _kill_when(proc, predicate, timeout: float = 120) -> None:
    """Freeze the worker the moment ``predicate`` holds (so it cannot finish meanwhile), then SIGKILL it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited early:\n{Path(proc.log_path).read_text()[-3000:]}")
        if predicate():
            os.kill(proc.pid, signal.SIGSTOP)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return
        time.sleep(0.05)
    raise AssertionError(
        f"the job never reached the point to kill it at:\n{Path(proc.log_path).read_text()[-3000:]}"
    )


def _no_orphans() -> None:
    for model in (GenerationJob, TrainingRound, DatasetExport):
        stale = timezone.now() - timezone.timedelta(seconds=60)
        assert not model.objects.filter(status="running", owner="").exists(), model
        assert not model.objects.filter(status="running", heartbeat_at__lt=stale).exists(), model


def test_a_killed_export_is_written_again_and_leaves_no_partial_file(
    project, make_generation, annotator, fault_env, fault_worker
):
    var = Path(fault_env["T2G_VAR_DIR"])
    generations = [make_generation(project, f"Output {i} with some words.") for i in range(400)]
    Annotation.objects.bulk_create(
        [
            Annotation(generation=g, annotator=annotator, status="submitted", submitted_at=timezone.now(),
                       overall_critique="x " * 200)
            for g in generations
        ]
    )  # fmt: skip
    doomed = fault_worker("export-doomed", queues="interactive")
    export = export_jobs.export_create(kind="spans", fmt="csv", query={"project": project.pk})
    _kill_when(doomed, lambda: DatasetExport.objects.get(pk=export.pk).status != "queued")
    assert DatasetExport.objects.get(pk=export.pk).status == "running", "finished before the kill"
    killed_at = time.monotonic()
    fault_worker("export-rescuer", queues="interactive")
    wait_for(lambda: DatasetExport.objects.get(pk=export.pk).is_finished, timeout=120, message="the export")
    export.refresh_from_db()
    assert export.status == "succeeded", export.error
    assert export.requeues == 1 and export.attempts == 2  # reaped once, claimed twice
    assert time.monotonic() - killed_at < 120
    assert (var / export.file_path).is_file()
    assert not list((var / "exports").glob(".*.part"))
    _no_orphans()


def test_a_killed_generation_job_resumes_after_its_committed_outputs(project, fault_env, fault_worker):
    prompts = [
        Prompt.objects.create(project=project, text=f"Say something about item {i}.") for i in range(24)
    ]
    doomed = fault_worker("gen-doomed", queues="generation", T2G_GENERATION_CHUNK="2")
    job = services.generation_job_create(project=project, prompt_ids=[p.pk for p in prompts])
    _kill_when(doomed, lambda: GenerationJob.objects.get(pk=job.pk).progress_step >= 4)
    written = GenerationJob.objects.get(pk=job.pk).progress_step
    assert written < len(prompts), "the job finished before the kill; make it longer"
    fault_worker("gen-rescuer", queues="generation")
    wait_for(lambda: GenerationJob.objects.get(pk=job.pk).is_finished, timeout=180, message="the job")
    job.refresh_from_db()
    assert job.status == "succeeded" and job.requeues == 1, job.error
    assert [Generation.objects.filter(prompt=p).count() for p in prompts] == [1] * len(prompts)
    _no_orphans()


def test_a_killed_round_fails_with_a_reason_and_the_active_version_stays(critiqued, fault_env, fault_worker):
    active = services.model_version_bootstrap()
    doomed = fault_worker("round-doomed", queues="training")
    training_round = services.round_launch(
        config={"learning_rate": 5e-3, "steps": 200, "batch_size": 2, "ppo_epochs": 1}
    )
    _kill_when(
        doomed, lambda: TrainingRound.objects.get(pk=training_round.pk).progress_step >= 1, timeout=180
    )
    killed_at = time.monotonic()
    fault_worker("round-rescuer", queues="interactive")  # any worker's reaper will do
    wait_for(lambda: TrainingRound.objects.get(pk=training_round.pk).is_finished, timeout=120, message="reap")
    noticed_s = time.monotonic() - killed_at
    training_round.refresh_from_db()
    assert training_round.status == "failed"
    assert "stopped reporting" in training_round.error and "Resume" in training_round.error
    assert noticed_s < 12 + 2 * 5 + 30  # staleness + heartbeat slack + a reaper period, with room
    assert ModelVersion.objects.get(is_active=True) == active
    assert ModelVersion.objects.count() == 1
    _no_orphans()


def test_default_timings_notice_a_dead_worker_within_two_minutes():
    """The defaults: heartbeats every few seconds, staleness plus one reaper period well under 2 min."""
    assert settings.T2G_JOB_HEARTBEAT_S <= 10
    assert settings.T2G_JOB_STALE_AFTER_S >= 3 * settings.T2G_JOB_HEARTBEAT_S  # no false alarms
    assert settings.T2G_JOB_STALE_AFTER_S + settings.T2G_REAP_JOBS_EVERY_S <= 120
    assert lifecycle.stale_after_s() == settings.T2G_JOB_STALE_AFTER_S

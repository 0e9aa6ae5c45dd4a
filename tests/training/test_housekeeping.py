"""Periodic housekeeping: a real `celery beat` process schedules it, the session's real worker runs it."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from annotations import services as annotation_services
from annotations.models import Annotation, Assignment, DatasetExport, Generation, Prompt
from tests.conftest import REPO, wait_for
from training import services
from training.models import GenerationJob, TrainingRound


def test_the_beat_schedule_names_registered_tasks():
    from text2grad_web.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled == {
        "annotations.expire_leases",
        "annotations.expire_exports",
        "jobs.relay_outbox",
        "jobs.sweep",
        "training.collect_orphan_versions",
    }
    assert scheduled <= set(app.tasks)
    # One reaper (issue 29): campaigns are jobs of the framework; no second, campaign-only reaper.
    assert "training.reap_stale_jobs" not in app.tasks


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)  # the worker must see the rows
def test_beat_expires_lapsed_leases_and_fails_stale_rounds(
    celery_worker_process,
    worker_env,
    tmp_path,
    tiny_settings,
    critiqued,
    project,
    make_generation,
    annotator,
    annotator2,
):
    make_generation(project, "an output")  # `critiqued` holds the submitted annotations a round needs
    lapsed = annotation_services.assignment_next(project=project, annotator=annotator)
    live = annotation_services.assignment_next(project=project, annotator=annotator2)
    Assignment.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    stale = services.round_launch(config={"steps": 1}, enqueue=False)
    TrainingRound.objects.filter(pk=stale.pk).update(
        status="running", heartbeat_at=timezone.now() - timedelta(hours=1)
    )

    # A generation job whose worker died after committing the outputs of its first prompt.
    prompts = [Prompt.objects.create(project=project, text=f"Resume prompt {i}") for i in range(3)]
    Generation.objects.create(prompt=prompts[0], text="written before the worker died", source_model="test")
    orphan = GenerationJob.objects.create(
        project=project, prompt_ids=[p.pk for p in prompts], status="running", progress_step=1,
        progress_total=3, heartbeat_at=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    stale_export = DatasetExport.objects.create(
        kind="spans", format="jsonl", status="running", heartbeat_at=timezone.now() - timedelta(hours=1)
    )

    env = {**worker_env, "T2G_EXPIRE_LEASES_EVERY_S": "1", "T2G_REAP_JOBS_EVERY_S": "1"}
    log = tmp_path / "beat.log"
    with open(log, "w") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "text2grad_web", "beat", "-l", "info",
             "-s", str(tmp_path / "schedule")],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(
                lambda: (
                    Assignment.objects.get(pk=lapsed.pk).status == "expired"
                    and TrainingRound.objects.get(pk=stale.pk).status == "failed"
                    and DatasetExport.objects.get(pk=stale_export.pk).is_finished
                    and GenerationJob.objects.get(pk=orphan.pk).is_finished
                ),
                timeout=120,
                message="beat + worker housekeeping",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nbeat log:\n{log.read_text()[-2000:]}") from None
        finally:
            beat.terminate()
            beat.wait(timeout=20)
    assert Assignment.objects.get(pk=live.pk).status == "active"  # an unexpired lease is left alone
    assert not Annotation.objects.filter(generation_id=lapsed.generation_id, annotator=annotator).exists()
    assert "stopped reporting" in TrainingRound.objects.get(pk=stale.pk).error
    stale_export.refresh_from_db()  # queued again by the reaper, then written by the worker
    assert (stale_export.status, stale_export.requeues) == ("succeeded", 1), stale_export.error
    orphan.refresh_from_db()
    assert (orphan.status, orphan.requeues, orphan.progress_step) == ("succeeded", 1, 3), orphan.error
    # Resumed after the committed output: one output per prompt, none written twice.
    assert [Generation.objects.filter(prompt=p).count() for p in prompts] == [1, 1, 1]

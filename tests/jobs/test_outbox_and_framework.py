"""The outbox (work recorded with the change, published after commit or by the relay), the job framework's
fencing and cancel, the reward sweep, where a queued job stands, and /healthz."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from annotations.models import Annotation, DatasetExport
from jobs import dispatch, lifecycle, liveness, reaper
from jobs.models import Outbox, WorkerBeat
from jobs.standing import standing
from training import services
from training.models import GenerationJob

pytestmark = pytest.mark.django_db


def test_the_outbox_row_commits_with_the_change_or_not_at_all(project, django_capture_on_commit_callbacks):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.generation_job_create(project=project)
        raise RuntimeError("the change is rolled back")
    assert not GenerationJob.objects.exists() and not Outbox.objects.exists()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.generation_job_create(project=project)
    row = Outbox.objects.get()
    assert (row.task_name, row.args, row.sent_at) == ("training.generate", [job.pk], None)
    assert len(callbacks) == 1  # the publish attempt happens only after the commit


def test_the_relay_publishes_due_rows_and_records_broker_failures(project, settings):
    from celery import current_app

    due = dispatch.enqueue("jobs.sweep")
    later = dispatch.enqueue("jobs.sweep", countdown=600)
    Outbox.objects.filter(pk=due.pk).update(created_at=timezone.now() - timedelta(seconds=60))

    previous = current_app.conf.get("broker_write_url")
    current_app.conf.broker_write_url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        assert dispatch.relay() == 0
    finally:
        current_app.conf.broker_write_url = previous
    due.refresh_from_db()
    assert due.sent_at is None and due.attempts == 1 and "connect" in due.last_error.lower()
    assert due.available_at > timezone.now()  # tried again shortly, not at once
    Outbox.objects.filter(pk=due.pk).update(available_at=timezone.now())  # a few seconds later

    assert dispatch.relay() == 1  # the test broker (a real redis) takes it
    due.refresh_from_db()
    later.refresh_from_db()
    assert due.sent_at is not None and later.sent_at is None  # not due yet: retry backoff
    assert dispatch.relay() == 0  # sent rows are not sent again


def test_a_run_that_lost_its_job_cannot_write(project):
    job = GenerationJob.objects.create(project=project)
    claimed = lifecycle.claim(GenerationJob, job.pk)
    assert claimed.attempts == 1 and claimed.owner
    assert lifecycle.claim(GenerationJob, job.pk) is None  # claimed once
    GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert reaper.reap()["training.generationjob"] == {"resumed": 1, "failed": 0}
    assert lifecycle.cancel_requested(claimed)  # the old run sees it is not its job any more
    assert not lifecycle.progress(claimed, 3) and not lifecycle.finish(claimed, "succeeded")
    again = lifecycle.claim(GenerationJob, job.pk)
    assert again.attempts == 2 and lifecycle.progress(again, 3)


def test_cancel_ends_a_queued_job_and_asks_a_running_one(project):
    queued = DatasetExport.objects.create(kind="spans", format="jsonl")
    running = DatasetExport.objects.create(kind="spans", format="jsonl")
    run = lifecycle.claim(DatasetExport, running.pk)
    assert lifecycle.request_cancel(DatasetExport, queued.pk)
    assert lifecycle.request_cancel(DatasetExport, running.pk)
    assert DatasetExport.objects.get(pk=queued.pk).status == "cancelled"
    assert DatasetExport.objects.get(pk=running.pk).status == "running" and lifecycle.cancel_requested(run)
    assert lifecycle.cancelled(run)
    assert DatasetExport.objects.get(pk=running.pk).status == "cancelled"
    assert not lifecycle.request_cancel(DatasetExport, queued.pk)  # already finished


def test_the_reward_sweep_requeues_overdue_annotations_once(project, make_generation, annotator):
    generation = make_generation(project, "An output.")
    old = timezone.now() - timedelta(minutes=5)
    overdue = Annotation.objects.create(generation=generation, annotator=annotator, status="submitted",
                                        submitted_at=old)  # fmt: skip
    assert services.rewards_sweep_missing() == 1
    assert Outbox.objects.filter(task_name="training.compute_rewards", args=[overdue.pk]).count() == 1
    assert services.rewards_sweep_missing() == 0  # not again within a few minutes


def test_a_queued_job_says_what_it_waits_behind(project):
    running = GenerationJob.objects.create(project=project, progress_total=10)
    lifecycle.claim(GenerationJob, running.pk)
    GenerationJob.objects.filter(pk=running.pk).update(
        progress_step=5, started_at=timezone.now() - timedelta(seconds=50)
    )
    waiting = GenerationJob.objects.create(project=project, progress_total=4)
    where = standing(waiting)
    assert f"queued behind generation job #{running.pk} (running)" in where.text
    assert where.position == 2 and where.lane == "generation"
    assert 40 <= where.eta_s <= 60  # 5 of 10 done in 50 s: about 50 s left
    assert where.lane_down and "No worker serves the generation lane" in where.text
    WorkerBeat.objects.create(name="gen@test", lanes="default,generation", pid=1, started_at=timezone.now(),
                              seen_at=timezone.now())  # fmt: skip
    assert not standing(waiting).lane_down
    # An export is on the interactive lane: generation does not hold it up.
    export = DatasetExport.objects.create(kind="spans", format="jsonl")
    assert standing(export).text.startswith("queued: next to run")


def test_healthz_reports_lanes_and_the_admins_see_a_banner(client, login, admin_user, annotator):
    for lane in liveness.lanes_expected():  # housekeeping included
        WorkerBeat.objects.create(name=f"{lane}@test", lanes=lane, pid=1, started_at=timezone.now(),
                                  seen_at=timezone.now())  # fmt: skip
    body = client.get(reverse("healthz")).json()
    assert body["status"] == "ok" and body["broker"] == "ok" and body["lanes"]["interactive"] == "up"

    WorkerBeat.objects.filter(name="training@test").update(
        seen_at=timezone.now() - timedelta(seconds=liveness.ALIVE_WITHIN_S + 5)
    )
    body = client.get(reverse("healthz")).json()
    assert body["status"] == "degraded" and body["lanes"]["training"] == "down"
    from django.core.cache import cache

    cache.delete("t2g:lanes-down")
    page = login(admin_user).get(reverse("project_list")).content.decode()
    assert "no live worker serves the training lane" in page
    page = login(annotator).get(reverse("queue")).content.decode()
    assert "no live worker" not in page  # annotators are not told

"""A job's wait comes from work timed on this deployment: generation jobs' measured tokens per second and
tokens an output, finished rounds' seconds per update. Before anything of a kind ran here, the wait is the
kind's first guess (``typical_s``), and the words say so (issue 24)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import lifecycle
from jobs.standing import FIRST_GUESS, standing
from training.models import CriticTrainingJob, GenerationJob, TrainingRound

pytestmark = pytest.mark.django_db


def _running(model, **fields):
    job = model.objects.create(**fields)
    lifecycle.claim(model, job.pk)
    job.refresh_from_db()
    return job


def test_behind_a_generation_job_the_wait_is_a_first_guess_until_a_job_was_timed_here(project):
    _running(GenerationJob, project=project, progress_total=10)  # nothing written yet: no pace of its own
    waiting = GenerationJob.objects.create(project=project, progress_total=4)
    where = standing(waiting)
    assert where.eta_s == pytest.approx(10 * 6.0) and not where.measured  # the kind's typical 6 s an output
    assert where.text.endswith(f"starts in about 60 s{FIRST_GUESS}. No worker serves the generation lane "
                               "right now: it runs once one is back (admins are told)")  # fmt: skip

    # Two jobs timed 1200 tokens in 100 s over 30 outputs: 12 tokens/s, 40 tokens an output, 3.3 s each.
    for tokens, outputs, seconds in ((1000, 20, 80.0), (200, 10, 20.0)):
        GenerationJob.objects.create(project=project, status="succeeded", tokens_generated=tokens,
                                     outputs_timed=outputs, sampling_s=seconds, heartbeat_at=timezone.now())  # fmt: skip
    where = standing(waiting)
    assert where.eta_s == pytest.approx(10 * 40 / 12) and where.measured
    assert "starts in about 33 s" in where.text and "first guess" not in where.text


def test_a_running_job_without_progress_says_its_estimate_and_where_it_comes_from(project):
    running = _running(GenerationJob, project=project, progress_total=3)
    assert standing(running).text == f"running: 0 of 3, about 18 s left{FIRST_GUESS}"
    GenerationJob.objects.create(project=project, status="succeeded", tokens_generated=100, outputs_timed=10,
                                 sampling_s=50.0, heartbeat_at=timezone.now())  # fmt: skip
    assert standing(running).text == "running: 0 of 3, about 15 s left"  # 10 tokens at 2 tokens/s each
    # Once it wrote outputs, its own pace counts: 1 of 3 in 40 s, 80 s left.
    GenerationJob.objects.filter(pk=running.pk).update(progress_step=1,
                                                        started_at=timezone.now() - timedelta(seconds=40))  # fmt: skip
    running.refresh_from_db()
    where = standing(running)
    assert where.text == "running: 1 of 3, about 80 s left" and where.eta_s == pytest.approx(80, abs=2)


def test_behind_a_round_the_wait_comes_from_finished_rounds_seconds_per_update(project):
    _running(TrainingRound, progress_total=4)
    critic_job = CriticTrainingJob.objects.create(project=project)
    where = standing(critic_job)
    assert where.lane == "training" and "queued behind training round #" in where.text
    assert where.eta_s == pytest.approx(4 * 20.0) and where.text.endswith(FIRST_GUESS + ". No worker serves "
                                                                          "the training lane right now: it runs once one is back (admins are told)")  # fmt: skip
    # Two finished rounds: 4 updates in 100 s and 2 in 110 s, so 35 s an update; a failed round and one
    # that made no update do not count.
    now = timezone.now()
    for updates, seconds, status in ((4, 100, "succeeded"), (2, 110, "succeeded"), (1, 900, "failed"),
                                     (0, 900, "succeeded")):  # fmt: skip
        TrainingRound.objects.create(status=status, progress_step=updates, progress_total=4,
                                     started_at=now - timedelta(seconds=seconds), finished_at=now)  # fmt: skip
    where = standing(critic_job)
    assert where.eta_s == pytest.approx(4 * 35.0, rel=0.01) and where.measured
    assert "starts in about 2 min" in where.text and "first guess" not in where.text

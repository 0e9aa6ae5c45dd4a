"""The whole loop through a real Celery worker and broker on a tiny model.

generate → annotate (the annotator services) → submit → token rewards (worker) → training round (worker)
→ promote → the next generation job uses the new version. And: a worker killed mid-round leaves the
active version intact, and the round resumes from its checkpoint.
"""

import os
import signal

import pytest

from annotations import services as annotation_services
from annotations.models import Annotation, Generation, Prompt
from jobs import reaper
from tests.conftest import start_worker, stop_worker, wait_for
from training import services
from training.models import GenerationJob, ModelVersion, TokenReward, TrainingRound

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FAST = {"learning_rate": 5e-3, "steps": 2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1}


def _finished(model, pk):
    return lambda: model.objects.get(pk=pk).is_finished


def _generate(project, per_prompt=1, timeout=120):
    job = services.generation_job_create(project=project, per_prompt=per_prompt)
    wait_for(_finished(GenerationJob, job.pk), timeout=timeout, message="the generation job")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return job


def _annotate_all(project, user):
    """Annotate every output the queue hands out: a poor span on its first half, submitted."""
    submitted = []
    while (assignment := annotation_services.assignment_next(project=project, annotator=user)) is not None:
        annotation = Annotation.objects.get(generation=assignment.generation, annotator=user)
        text = assignment.generation.text
        cut = max(1, len(text) // 2)
        spans = (
            [{"start": 0, "end": cut, "text": text[:cut], "label": "poor", "critique": "wrong"}]
            if text
            else []
        )
        annotation_services.annotation_save_draft(annotation=annotation, spans=spans, user=user)
        annotation_services.annotation_submit(
            annotation=annotation, overall_critique="Not good.", rating=2, user=user
        )
        submitted.append(annotation.pk)
    return submitted


def test_full_loop_through_the_worker(celery_worker_process, project, annotator, admin_user):
    for text in ("Summarize: the sky is blue.", "Summarize: water is wet.", "Summarize: fire is hot."):
        Prompt(project=project, text=text).save()
    project.annotations_per_output = 1
    project.save()
    first = _generate(project)
    base = first.model_version

    submitted = _annotate_all(project, annotator)
    assert len(submitted) == 3
    # Submitting enqueued one reward task per annotation (signal → on_commit → broker → worker).
    wait_for(lambda: TokenReward.objects.filter(annotation_id__in=submitted).count() == 3, timeout=60,
             message="token rewards from the worker")  # fmt: skip
    for row in TokenReward.objects.all():
        assert len(row.rewards) == len(row.token_ids) and min(row.rewards) == -1.0

    training_round = services.round_launch(config=FAST, created_by=admin_user)
    wait_for(_finished(TrainingRound, training_round.pk), timeout=180, message="the training round")
    training_round.refresh_from_db()
    assert training_round.status == "succeeded", training_round.error
    version = training_round.output_version
    assert version.parent == base and ModelVersion.objects.get(is_active=True) == base

    services.model_version_activate(version=version)
    second = _generate(project)
    assert second.model_version == version
    new_outputs = Generation.objects.filter(prompt__project=project, model_version=version)
    assert new_outputs.count() == 3 and all(g.behaviour_logprobs for g in new_outputs)


def test_killed_worker_leaves_the_active_version_and_the_round_resumes(
    celery_worker_process, worker_env, tmp_path, critiqued
):
    from training.tasks import train_round

    active = services.model_version_bootstrap()
    training_round = services.round_launch(config={**FAST, "steps": 60}, enqueue=False)
    # A worker of its own, on a queue of its own, so the session's worker cannot take this round.
    worker = start_worker(worker_env, tmp_path / "doomed.log", "doomed", queues="kill-test")
    train_round.apply_async((training_round.pk,), queue="kill-test")
    try:
        wait_for(lambda: TrainingRound.objects.get(pk=training_round.pk).progress_step >= 2, timeout=120,
                 message="the round to make progress")  # fmt: skip
        os.kill(worker.pid, signal.SIGKILL)  # as the OOM killer would
        worker.wait(timeout=10)
    finally:
        stop_worker(worker)
    training_round.refresh_from_db()
    assert training_round.status == "running"
    assert reaper.reap(stale_after_s=0)["training.traininground"]["failed"] == 1
    training_round.refresh_from_db()
    assert training_round.status == "failed" and "stopped reporting" in training_round.error
    assert ModelVersion.objects.get(is_active=True) == active and ModelVersion.objects.count() == 1
    checkpoint_step = training_round.progress_step
    assert checkpoint_step >= 2

    TrainingRound.objects.filter(pk=training_round.pk).update(
        config={**training_round.config, "steps": checkpoint_step + 2}
    )
    services.round_resume(training_round=training_round)  # on the training queue: the session's worker
    wait_for(_finished(TrainingRound, training_round.pk), timeout=180, message="the resumed round")
    training_round.refresh_from_db()
    assert training_round.status == "succeeded", training_round.error
    assert training_round.attempts == 2
    assert training_round.metrics.filter(data__update=0).exists()  # the first attempt's metrics were kept
    assert not training_round.metrics.filter(
        data__update__lt=checkpoint_step, step__gte=checkpoint_step * 4
    ).exists()

"""Writes for the learned span critic: training jobs, activation and roll back, pre-annotation proposals,
on-policy rounds. Safe for the web process (no torch); the model work runs in ``training/worker/critic.py``.
"""

from __future__ import annotations

import json
import math

from django.db import transaction
from django.utils import timezone

from annotations.models import Annotation, Generation, Project, content_hash
from jobs import dispatch, lifecycle
from text2grad.config import TrainingConfig  # a plain dataclass: no torch

from ..models import (
    AlignmentRequest,
    CriticPrediction,
    CriticPredictionJob,
    CriticSettings,
    CriticTrainingJob,
    CriticVersion,
    TrainingRound,
)
from .rounds import round_snapshot, selection_clean
from .versions import model_version_bootstrap

MIN_ANNOTATIONS = 4  # fewer outputs than this cannot be split into training and held-out data
MAX_AUDIT_SHARE = 1.0
PREDICT_CHUNK = 500  # generation ids per prediction task


def critic_selection(*, project: Project, selection: dict | None = None) -> dict:
    """The critic's data filters in their stored form: the rounds' (``selection_clean``: review status,
    minimum agreement, annotators left out, dates), for this project. Raises ValueError."""
    return selection_clean({**(selection or {}), "project_id": project.pk})


def critic_snapshot(*, project: Project, selection: dict | None = None) -> list[int]:
    """What a critic job learns from (and is tested on), sorted annotation ids: the annotations a round
    with the same ``selection`` would take (the rounds' review and agreement filters, ``round_snapshot``),
    less those a reviewer rejected; and where an output has a gold annotation, the gold replaces its
    annotators' annotations (the human or gold spans, never gold as one more vote)."""
    selection = critic_selection(project=project, selection=selection)
    chosen = Annotation.objects.filter(pk__in=round_snapshot(selection=selection)).exclude(
        review__verdict="rejected"
    )
    if selection["review"] == "gold":
        return sorted(chosen.values_list("id", flat=True))
    # The gold of every output the other filters reach (agreement aside: gold is what settled a dispute).
    gold_selection = {k: v for k, v in selection.items() if k not in ("min_agreement", "undefined_agreement")}
    gold = round_snapshot(selection={**gold_selection, "review": "gold"})
    gold_outputs = Annotation.objects.filter(pk__in=gold).values("generation_id")
    annotators = chosen.exclude(generation_id__in=gold_outputs).values_list("id", flat=True)
    return sorted({*annotators, *gold})


def critic_config_checked(config: dict | None) -> dict:
    """``CriticConfig`` validation without importing torch: the dataclass lives beside the model code,
    so its checks are repeated here on the handful of keys the form sends."""
    config = dict(config or {})
    allowed = {
        "epochs",
        "learning_rate",
        "batch_size",
        "lora_r",
        "held_out_fraction",
        "seed",
        "class_weights",
        "lookahead",
    }
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"Unknown critic settings: {', '.join(sorted(unknown))}")
    bounds = {
        "epochs": (1, 100),
        "batch_size": (1, 512),
        "lora_r": (1, 256),
        "seed": (0, 2**31 - 1),
        "lookahead": (0, 16),
    }
    for key, (low, high) in bounds.items():
        value = config.get(key)
        if key in config and (not _is_int(value) or not low <= value <= high):
            raise ValueError(f"{key} must be an integer between {low} and {high}")
    if "learning_rate" in config and not (
        _is_number(config["learning_rate"]) and 0 < config["learning_rate"] <= 1
    ):
        raise ValueError("learning_rate must be a number in (0, 1]")
    if "held_out_fraction" in config and not (
        _is_number(config["held_out_fraction"]) and 0 <= config["held_out_fraction"] < 1
    ):
        raise ValueError("held_out_fraction must be a number in [0, 1)")
    weights = config.get("class_weights")
    if "class_weights" in config and not (
        isinstance(weights, list)
        and len(weights) == 3
        and all(_is_number(w) and 0 < w < 1e6 for w in weights)
    ):
        raise ValueError("class_weights needs three numbers > 0 (neutral, poor, good)")
    return config


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A JSON number (not a boolean, not a string), finite."""
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def critic_job_create(
    *,
    project: Project,
    config: dict | None = None,
    parent: CriticVersion | None = None,
    auto_activate: bool = False,
    created_by=None,
    selection: dict | None = None,
) -> CriticTrainingJob:
    """Freeze the project's annotations chosen by ``selection`` (``critic_snapshot``) and queue a critic
    training job on the training lane; the job records the selection with its snapshot."""
    config = critic_config_checked(config)
    selection = critic_selection(project=project, selection=selection)
    if parent is not None and parent.project_id != project.pk:
        raise ValueError("The parent critic belongs to another project")
    with transaction.atomic():
        snapshot = critic_snapshot(project=project, selection=selection)
        if len(snapshot) < MIN_ANNOTATIONS:
            raise ValueError(
                f"A critic needs at least {MIN_ANNOTATIONS} submitted annotations; this selection has "
                f"{len(snapshot)}."
            )
        job = CriticTrainingJob.objects.create(
            project=project,
            parent=parent,
            config=config,
            selection=selection,
            snapshot=snapshot,
            snapshot_hash=content_hash(
                ",".join(map(str, snapshot)),
                json.dumps(config, sort_keys=True),
                json.dumps(selection, sort_keys=True),
            ),
            auto_activate=auto_activate,
            created_by=created_by,
        )
        dispatch.enqueue("training.train_critic", job.pk)
    return job


def critic_job_cancel(*, job: CriticTrainingJob) -> bool:
    """A queued job stops at once; a running one before its next training step."""
    return lifecycle.request_cancel(CriticTrainingJob, job.pk, reason="Cancelled.")


def critic_job_resume(*, job: CriticTrainingJob) -> CriticTrainingJob:
    """Queue a failed or cancelled critic job again, on the snapshot it froze (the same data, config and
    parent, so the same hash); it trains from the start."""
    with transaction.atomic():
        if not lifecycle.requeue_ended(CriticTrainingJob, job.pk):
            raise ValueError("Only a failed or cancelled critic job can be resumed")
        dispatch.enqueue("training.train_critic", job.pk)
    job.refresh_from_db()
    return job


@transaction.atomic
def critic_version_activate(*, version: CriticVersion) -> CriticVersion:
    """Make ``version`` its project's active critic (promote and roll back are this pointer move), and
    queue predictions for the project's outputs that nobody has submitted yet (pre-annotation)."""
    CriticVersion.objects.select_for_update().filter(project_id=version.project_id, is_active=True).exclude(
        pk=version.pk
    ).update(is_active=False)
    CriticVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    pending = list(
        Generation.objects.filter(prompt__project_id=version.project_id)
        .exclude(annotations__status=Annotation.Status.SUBMITTED)
        .exclude(critic_predictions__critic_version=version)
        .order_by("id")
        .values_list("id", flat=True)
        .distinct()
    )
    for start in range(0, len(pending), PREDICT_CHUNK):
        critic_prediction_job_create(version=version, generation_ids=pending[start : start + PREDICT_CHUNK])
    return version


def critic_prediction_job_create(*, version: CriticVersion, generation_ids: list[int]) -> CriticPredictionJob:
    """Queue the critic's predictions for these outputs as a job (generation lane), in the caller's
    transaction: fenced, cancellable, reaped and visible in "queued behind" like every other job."""
    with transaction.atomic():
        job = CriticPredictionJob.objects.create(
            critic_version=version, generation_ids=sorted(generation_ids), progress_total=len(generation_ids)
        )
        dispatch.enqueue("training.critic_predict", job.pk)
    return job


def critic_prediction_job_cancel(*, job: CriticPredictionJob) -> bool:
    """A queued job ends at once; a running one after its current chunk (predictions written are kept)."""
    return lifecycle.request_cancel(CriticPredictionJob, job.pk, reason="Cancelled.")


@transaction.atomic
def critic_version_deactivate(*, project: Project) -> int:
    """No active critic for the project: no pre-annotation, no on-policy rounds."""
    return CriticVersion.objects.filter(project=project, is_active=True).update(is_active=False)


def critic_active(*, project_id: int) -> CriticVersion | None:
    return CriticVersion.objects.filter(project_id=project_id, is_active=True).first()


def critic_predictions_request(*, project_id: int, generation_ids: list[int]) -> bool:
    """Called by the generation worker as outputs are written: queue the active critic's predictions."""
    version = critic_active(project_id=project_id)
    if version is None or not generation_ids:
        return False
    critic_prediction_job_create(version=version, generation_ids=generation_ids)
    return True


def critic_suggestions_for(*, annotation: Annotation) -> AlignmentRequest | None:
    """The critic's predicted spans on this annotation's output, as Suggest-spans proposals (created once
    per annotation and critic version; ``method`` "critic"). None when no active critic predicted it."""
    generation = annotation.generation
    version = critic_active(project_id=generation.prompt.project_id)
    if version is None:
        return None
    prediction = CriticPrediction.objects.filter(generation=generation, critic_version=version).first()
    if prediction is None:
        return None
    with transaction.atomic():
        existing = (
            AlignmentRequest.objects.select_for_update()
            .filter(annotation=annotation, critic_version=version)
            .first()
        )
        if existing is not None:
            return existing
        drawn = set(annotation.spans.values_list("start", "end"))
        proposals = [
            {
                "start": span["start"],
                "end": span["end"],
                "text": generation.text[span["start"] : span["end"]],
                "polarity": span["polarity"],
                "score": round(float(span["score"]), 3),
                "method": "critic",
                "evidence": f"predicted by critic {version.name}",
                "state": "open",
            }
            for span in prediction.spans
            if (span["start"], span["end"]) not in drawn
            and 0 <= span["start"] < span["end"] <= len(generation.text)
        ]
        return AlignmentRequest.objects.create(
            annotation=annotation,
            critique="",
            critic_version=version,
            proposals=proposals,
            status=AlignmentRequest.Status.SUCCEEDED,
            finished_at=timezone.now(),
        )


@transaction.atomic
def critic_settings_update(*, project: Project, queue_order: str) -> CriticSettings:
    """Set how the project's annotation queue is ordered: arrival, or the active critic's uncertainty."""
    if queue_order not in CriticSettings.QueueOrder.values:
        raise ValueError(f"queue_order must be one of {', '.join(CriticSettings.QueueOrder.values)}")
    row, _ = CriticSettings.objects.select_for_update().get_or_create(project=project)
    row.queue_order = queue_order
    row.save(update_fields=["queue_order", "updated_at"])
    return row


# --- on-policy rounds --------------------------------------------------------------------------------
def on_policy_round_launch(
    *,
    project: Project,
    config: dict | None = None,
    audit_share: float = 0.25,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    auto_promote: bool = False,
    created_by=None,
    enqueue: bool = True,
) -> TrainingRound:
    """A round that samples fresh outputs of the active model on the project's prompts, scores them with
    the project's active critic and trains token-level PPO on them; ``audit_share`` of the samples go to
    the annotation queue as ordinary outputs, with the critic's spans as suggestions."""
    if not 0.0 <= audit_share <= MAX_AUDIT_SHARE:
        raise ValueError("audit_share must be between 0 and 1")
    if not 1 <= max_new_tokens <= 1024:
        raise ValueError("max_new_tokens must be between 1 and 1024")
    if not 0.05 <= temperature <= 2.0:
        raise ValueError("temperature must be between 0.05 and 2")
    checked = TrainingConfig.from_dict({**(config or {}), "mode": "token"})
    with transaction.atomic():
        critic = critic_active(project_id=project.pk)
        if critic is None:
            raise ValueError("This project has no active critic: train and activate one first.")
        if not project.prompts.exists():
            raise ValueError("This project has no prompts to sample from.")
        settings = {"audit_share": audit_share, "max_new_tokens": max_new_tokens, "temperature": temperature}
        training_round = TrainingRound.objects.create(
            project=project,
            mode=TrainingRound.Mode.ON_POLICY,
            config=checked.to_dict(),
            selection={"project_id": str(project.pk)},
            snapshot=[],
            snapshot_hash=content_hash(
                f"on-policy:{project.pk}:{critic.pk}", json.dumps(checked.to_dict(), sort_keys=True)
            ),
            base_version=model_version_bootstrap(),
            critic_version=critic,
            on_policy=settings,
            auto_promote=auto_promote,
            progress_total=checked.steps,
            created_by=created_by,
        )
        if enqueue:
            dispatch.enqueue("training.train_round", training_round.pk)
    return training_round


def on_policy_round_retry(*, training_round: TrainingRound, created_by=None) -> TrainingRound:
    """A fresh on-policy round with the same settings, scored by the project's critic active now."""
    if training_round.project is None:
        raise ValueError("The round's project no longer exists")
    options = training_round.on_policy or {}
    return on_policy_round_launch(
        project=training_round.project,
        config={k: v for k, v in training_round.config.items() if k != "mode"},
        audit_share=float(options.get("audit_share", 0.25)),
        max_new_tokens=int(options.get("max_new_tokens", 64)),
        temperature=float(options.get("temperature", 0.8)),
        auto_promote=training_round.auto_promote,
        created_by=created_by,
    )

"""Writes for model versions and generation jobs, safe to call from the web process (no torch here).

The work that needs the model runs in the worker: see ``training/jobs.py``.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from annotations.models import EVALUATION_PURPOSE, Generation, Project, Span, content_hash
from audit.services import audit_record
from jobs import dispatch, lifecycle, reaper

from .models import GenerationJob, ModelVersion, TrainingRound

BASE_VERSION_NAME = "v0-base"


def base_model_reference() -> str:
    return settings.T2G_BASE_MODEL or "SmolLM2-135M-Instruct (embedded)"


@transaction.atomic
def model_version_bootstrap() -> ModelVersion:
    """Make sure a version exists and one is active: the bare base model, on a fresh install."""
    active = ModelVersion.objects.select_for_update().filter(is_active=True).first()
    if active:
        return active
    version, _ = ModelVersion.objects.get_or_create(
        name=BASE_VERSION_NAME, defaults={"base_model": base_model_reference(), "notes": "The base model."}
    )
    if not ModelVersion.objects.filter(is_active=True).exists():
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
    return version


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one generation uses. Promote and roll back are both this pointer move."""
    previous = ModelVersion.objects.filter(is_active=True).values_list("name", flat=True).first()
    audit_record(action="version.activate", obj=version, details={"name": version.name, "previous": previous})
    ModelVersion.objects.select_for_update().filter(is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    return version


def generation_job_create(
    *,
    project: Project,
    per_prompt: int = 1,
    prompt_ids: list[int] | None = None,
    model_version: ModelVersion | None = None,
    sampling_params: dict | None = None,
    created_by=None,
) -> GenerationJob:
    if per_prompt < 1 or per_prompt > 16:
        raise ValueError("per_prompt must be between 1 and 16")
    with transaction.atomic():
        version = model_version or model_version_bootstrap()
        job = GenerationJob.objects.create(
            project=project,
            model_version=version,
            per_prompt=per_prompt,
            prompt_ids=sorted(prompt_ids or []),
            sampling_params=sampling_params or {},
            created_by=created_by,
        )
        dispatch.enqueue("training.generate", job.pk)
    return job


def generation_job_cancel(*, job: GenerationJob) -> bool:
    """Cancel a queued or running job; a running one stops before its next chunk of prompts, keeping the
    outputs it has written. False when the job had already finished."""
    return bool(
        GenerationJob.objects.filter(
            pk=job.pk, status__in=[GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING]
        ).update(
            status=GenerationJob.Status.CANCELLED, finished_at=timezone.now(), cancel_requested=True, owner=""
        )
    )


# --- training rounds -------------------------------------------------------------------------------


REVIEW_CHOICES = {
    "submitted": "Every submitted annotation",
    "accepted": "Annotations a reviewer accepted",
    "gold": "Gold annotations only (adjudicated and honeypot)",
}


def selection_clean(selection: dict | None) -> dict:
    """The snapshot filters, checked and in their stored form (JSON values). Raises ValueError.

    ``review`` chooses by review status (REVIEW_CHOICES); ``min_agreement`` keeps outputs whose agreement
    score (alpha over characters) is at least this, which leaves out outputs it cannot be measured on;
    ``exclude_annotators`` lists user ids whose annotations are left out (gold is never excluded by it).
    """
    cleaned = {k: v for k, v in (selection or {}).items() if v not in (None, "", [])}
    review = cleaned.get("review", "submitted")
    if review not in REVIEW_CHOICES:
        raise ValueError(f"review must be one of {', '.join(REVIEW_CHOICES)} (got {review!r})")
    cleaned["review"] = review
    if "min_agreement" in cleaned:
        try:
            value = float(cleaned["min_agreement"])
        except (TypeError, ValueError):
            raise ValueError("min_agreement must be a number from -1 to 1") from None
        if not -1.0 <= value <= 1.0:
            raise ValueError("min_agreement must be a number from -1 to 1")
        cleaned["min_agreement"] = value
    if "exclude_annotators" in cleaned:
        raw = cleaned["exclude_annotators"]
        items = raw.strip("[]").split(",") if isinstance(raw, str) else list(raw)
        try:
            cleaned["exclude_annotators"] = sorted(
                {int(str(item).strip()) for item in items if str(item).strip()}
            )
        except ValueError:
            raise ValueError("exclude_annotators must be a list of user ids") from None
    for key in ("project_id", "model_version_id"):
        if key in cleaned:
            cleaned[key] = int(cleaned[key])
    for key in ("since", "until"):
        if key in cleaned:
            cleaned[key] = str(cleaned[key])
    return cleaned


def round_snapshot(*, selection: dict) -> list[int]:
    """Submitted annotation ids chosen by project, submission date range, generating model version, review
    status, minimum agreement and annotators left out (``selection_clean`` explains the last three)."""
    from annotations.models import Annotation

    selection = selection_clean(selection)
    queryset = Annotation.objects.filter(status=Annotation.Status.SUBMITTED)
    if selection["review"] == "gold":
        queryset = queryset.filter(is_gold=True)
    else:
        queryset = queryset.filter(is_gold=False)
        if selection["review"] == "accepted":
            queryset = queryset.filter(review__verdict="accepted")
        if selection.get("exclude_annotators"):
            queryset = queryset.exclude(annotator_id__in=selection["exclude_annotators"])
    if "min_agreement" in selection:
        queryset = queryset.filter(generation__agreement__score__gte=selection["min_agreement"])
    if selection.get("project_id"):
        queryset = queryset.filter(generation__prompt__project_id=selection["project_id"])
    if selection.get("since"):
        queryset = queryset.filter(submitted_at__gte=selection["since"])
    if selection.get("until"):
        queryset = queryset.filter(submitted_at__lte=selection["until"])
    if selection.get("model_version_id"):
        queryset = queryset.filter(generation__model_version_id=selection["model_version_id"])
    return sorted(queryset.values_list("id", flat=True))


def round_launch(
    *,
    mode: str = "token",
    selection: dict | None = None,
    config: dict | None = None,
    auto_promote: bool = False,
    created_by=None,
    enqueue: bool = True,
) -> TrainingRound:
    """Freeze the snapshot and config, and queue the round on the training worker (unless ``enqueue``
    is false: the ``train_round`` command runs it in its own process)."""
    from text2grad.config import TrainingConfig  # pure dataclass; no torch

    selection = selection_clean(selection)  # raises ValueError if bad
    checked = TrainingConfig.from_dict({**(config or {}), "mode": mode})  # raises ValueError if bad
    with transaction.atomic():
        snapshot = round_snapshot(selection=selection)
        if not snapshot:
            raise ValueError("No submitted annotations match this selection; nothing to train on")
        project_id = selection.get("project_id")
        training_round = TrainingRound.objects.create(
            project_id=project_id,
            mode=mode,
            config=checked.to_dict(),
            selection=selection,  # the choice, recorded: filters, review status, agreement, exclusions
            snapshot=snapshot,
            snapshot_hash=content_hash(
                ",".join(map(str, snapshot)), json.dumps(checked.to_dict(), sort_keys=True)
            ),
            base_version=model_version_bootstrap(),
            auto_promote=auto_promote,
            progress_total=checked.steps,
            created_by=created_by,
        )
        audit_record(
            action="round.launch",
            actor=created_by,
            obj=training_round,
            details={"mode": mode, "selection": training_round.selection, "snapshot_size": len(snapshot)},
        )
        if enqueue:
            _enqueue_round(training_round)
    return training_round


def _enqueue_round(training_round: TrainingRound) -> None:
    dispatch.enqueue("training.train_round", training_round.pk)


def round_cancel(*, training_round: TrainingRound) -> TrainingRound:
    """Queued rounds stop at once; a running one stops before its next optimizer step."""
    with transaction.atomic():
        lifecycle.request_cancel(TrainingRound, training_round.pk)
        audit_record(action="round.cancel", obj=training_round)
    training_round.refresh_from_db()
    return training_round


def round_resume(*, training_round: TrainingRound) -> TrainingRound:
    """Queue a failed round again; it continues from its last checkpoint if it has one."""
    with transaction.atomic():
        updated = TrainingRound.objects.filter(
            pk=training_round.pk, status__in=[TrainingRound.Status.FAILED, TrainingRound.Status.CANCELLED]
        ).update(status=TrainingRound.Status.QUEUED, error="", cancel_requested=False, finished_at=None)
        if not updated:
            raise ValueError("Only a failed or cancelled round can be resumed")
        audit_record(action="round.resume", obj=training_round)
        training_round.refresh_from_db()
        _enqueue_round(training_round)
    return training_round


def round_retry(*, training_round: TrainingRound, created_by=None) -> TrainingRound:
    """A fresh round with the same snapshot selection and config (starting from the active version)."""
    return round_launch(
        mode=training_round.mode,
        selection=training_round.selection,
        config=training_round.config,
        auto_promote=training_round.auto_promote,
        created_by=created_by,
    )


def jobs_reap_stale(*, stale_after_s: float | None = None) -> dict:
    """Requeue or fail jobs of every kind whose worker stopped heartbeating (``jobs.reaper``)."""
    return reaper.reap(stale_after_s=stale_after_s)


# --- evaluation ------------------------------------------------------------------------------------
EVAL_PROMPTS = 8  # the first prompts of a project form its fixed evaluation set


def evaluation_generate(
    *, project: Project, model_version: ModelVersion, created_by=None
) -> GenerationJob | None:
    """Sample one output per evaluation prompt with a given version, for side-by-side comparison.

    Prompts that already have an output of this version (or a queued job for it) are left alone: outputs
    are not sampled twice. The new outputs are marked ``purpose: evaluation`` and never reach annotators'
    queues. Returns None when every evaluation prompt is covered already.
    """
    prompt_ids = list(project.prompts.order_by("id").values_list("id", flat=True)[:EVAL_PROMPTS])
    covered = set(
        Generation.objects.filter(prompt_id__in=prompt_ids, model_version=model_version).values_list(
            "prompt_id", flat=True
        )
    )
    pending = GenerationJob.objects.filter(
        project=project,
        model_version=model_version,
        status__in=[GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING],
        sampling_params__purpose=EVALUATION_PURPOSE,
    ).values_list("prompt_ids", flat=True)
    for ids in pending:
        covered.update(ids)
    missing = [pk for pk in prompt_ids if pk not in covered]
    if not missing:
        return None
    return generation_job_create(
        project=project,
        per_prompt=1,
        prompt_ids=missing,
        model_version=model_version,
        sampling_params={"purpose": EVALUATION_PURPOSE, "seed": 1234},
        created_by=created_by,
    )


# --- suggested spans ("Suggest spans" in the annotate page) -----------------------------------------
MAX_CRITIQUE_CHARS = 20_000
# A proposal's ``method`` → the origin of the span it becomes when accepted (anything else: aligned).
PROPOSAL_ORIGINS = {"llm": Span.Origin.LLM, "critic": Span.Origin.CRITIC}


def alignment_request_create(*, annotation, critique: str, use_llm: bool = False):
    """Queue an alignment of ``critique`` to the annotation's output; the worker fills the proposals."""
    from .models import AlignmentRequest

    critique = (critique or "").strip()
    if not critique:
        raise ValueError("Write a critique first: the suggestions come from what it says.")
    if len(critique) > MAX_CRITIQUE_CHARS:
        raise ValueError(f"The critique is too long to align (over {MAX_CRITIQUE_CHARS:,} characters).")
    with transaction.atomic():
        request = AlignmentRequest.objects.create(annotation=annotation, critique=critique, use_llm=use_llm)
        dispatch.enqueue("training.align_critique", request.pk)
    return request


def _critique_sentence(critique: str, evidence: str) -> str:
    """The sentence of the critique a proposal came from: the span's own critique once accepted."""
    sentences = [part.strip() for part in re.split(r"(?<=[.!?])\s+", critique) if part.strip()]
    chosen = next((sentence for sentence in sentences if evidence and evidence in sentence), None)
    return (chosen or evidence or critique)[:2000]


def _open_proposal(locked, index: int) -> dict:
    if not 0 <= index < len(locked.proposals):
        raise ValueError("No such suggestion.")
    proposal = locked.proposals[index]
    if proposal.get("state") != "open":
        raise ValueError(f"This suggestion was {proposal.get('state')} already.")
    return proposal


def alignment_proposal_decide(*, request, index: int, accept: bool, user, label: str | None = None):
    """Accept a proposal or reject it. Returns the span or None.

    The span's origin says where the proposal came from: ``llm`` (the LLM aligner), ``critic`` (the
    project's learned critic, pre-annotation) or ``aligned`` (the similarity aligner).

    ``label`` (accept only) stores the span under that project label instead of the first label of the
    proposal's polarity: the annotator agrees with the place but reads the critique differently. The
    proposal then records the label's polarity, so the list shows what was accepted.
    """
    from annotations.services import span_create

    from .models import AlignmentRequest

    with transaction.atomic():
        locked = AlignmentRequest.objects.select_for_update().get(pk=request.pk)
        proposal = _open_proposal(locked, index)
        span = None
        if accept:
            project = locked.annotation.generation.prompt.project
            if label:
                chosen = project.label(label)
                if chosen is None:
                    raise ValueError("The project has no such label.")
                if chosen.get("polarity") in (-1, 1) and chosen["polarity"] != proposal["polarity"]:
                    proposal["polarity"] = chosen["polarity"]
                    proposal["flipped"] = not proposal.get("flipped", False)
            else:
                label = next(
                    (
                        item["name"]
                        for item in project.label_set
                        if item.get("polarity") == proposal["polarity"]
                    ),
                    None,
                )
                if label is None:
                    raise ValueError("The project has no label with this polarity.")
            span = span_create(
                annotation=locked.annotation,
                start=proposal["start"],
                end=proposal["end"],
                text=proposal["text"],
                label=label,
                critique=_critique_sentence(locked.critique, proposal["evidence"]),
                origin=PROPOSAL_ORIGINS.get(proposal.get("method"), Span.Origin.ALIGNED),
                score=proposal["score"],
                user=user,
            )
        proposal["state"] = "accepted" if accept else "rejected"
        locked.save(update_fields=["proposals"])
    request.refresh_from_db()
    return span


def alignment_proposal_flip(*, request, index: int, user) -> dict:
    """Turn an open proposal's polarity around (poor ↔ good) before it is accepted; flipping twice restores it.

    The aligner reads praise as criticism now and then; the annotator fixes the label, not the place.
    Returns the proposal as stored.
    """
    from .models import AlignmentRequest

    with transaction.atomic():
        locked = AlignmentRequest.objects.select_for_update().select_related("annotation").get(pk=request.pk)
        if locked.annotation.annotator_id != getattr(user, "pk", None):
            raise PermissionDenied("Only the annotator who wrote this annotation can change it.")
        proposal = _open_proposal(locked, index)
        proposal["polarity"] = -proposal["polarity"]
        proposal["flipped"] = not proposal.get("flipped", False)
        locked.save(update_fields=["proposals"])
    request.refresh_from_db()
    return proposal


def jobs_recover_after_restart() -> dict:
    """Called by the embedded launcher before its workers start: nothing can be running yet, so every job
    left RUNNING is an orphan. Each kind does what the reaper does with a dead worker's job: generation
    jobs and exports are queued again (generation resumes after the outputs it had committed); rounds and
    suggestions end failed with a reason (a round is resumed from its checkpoint by an admin)."""
    return reaper.reap(stale_after_s=0)


# --- token rewards that never arrived (run by the reaper's sweep) ----------------------------------
REWARDS_OVERDUE_AFTER_S = 60
REWARDS_RETRY_EVERY_S = 5 * 60


def rewards_sweep_missing(*, overdue_after_s: int = REWARDS_OVERDUE_AFTER_S, limit: int = 100) -> int:
    """Queue the reward computation again for submitted annotations that still have no token rewards a
    minute after submission (a worker died holding the task, or the computation failed), at most once
    every few minutes each. The outbox already guarantees the first dispatch; this catches the rest."""
    from annotations.models import Annotation
    from jobs.models import Outbox

    now = timezone.now()
    overdue = list(
        Annotation.objects.filter(
            status=Annotation.Status.SUBMITTED,
            submitted_at__lt=now - timedelta(seconds=overdue_after_s),
            token_rewards__isnull=True,
        ).values_list("pk", flat=True)[:limit]
    )
    if not overdue:
        return 0
    recent = {
        tuple(args)
        for args in Outbox.objects.filter(
            task_name="training.compute_rewards",
            created_at__gte=now - timedelta(seconds=REWARDS_RETRY_EVERY_S),
        ).values_list("args", flat=True)
    }
    again = [pk for pk in overdue if (pk,) not in recent]
    with transaction.atomic():
        for pk in again:
            dispatch.enqueue("training.compute_rewards", pk)
    return len(again)

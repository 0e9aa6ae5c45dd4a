"""Training rounds: the snapshot filters, launch, cancel, resume and retry. The worker runs a round
(``training/worker/rounds.py``); this module only freezes its inputs and queues it."""

from __future__ import annotations

import json

from django.db import transaction
from django.db.models import Count, Q

from annotations.models import Annotation, Project, content_hash
from audit.services import audit_record
from evaluation import services as evaluation_services
from evaluation.models import EvaluationCampaign
from jobs import dispatch, lifecycle

from ..models import RoundCriticScore, TrainingRound
from ..selectors import critic_active_for, round_critic_score_latest, round_parent_campaign
from .events import round_cancelled_emit
from .versions import model_version_bootstrap

REVIEW_CHOICES = {
    "submitted": "Every submitted annotation",
    "accepted": "Annotations a reviewer accepted",
    "gold": "Gold annotations only (adjudicated and honeypot)",
}
UNDEFINED_AGREEMENT_CHOICES = ("exclude", "include")
# Who wrote the annotations a round or critic trains on: people, machine critics' drafts (issue 27) only
# once a reviewer accepted them, or every submitted draft as well. Always recorded with the selection.
ORIGIN_CHOICES = {
    "people": "People only",
    "machine-accepted": "People, and machine drafts a reviewer accepted",
    "all": "People and every machine draft",
}


def selection_clean(selection: dict | None) -> dict:
    """The snapshot filters, checked and in their stored form (JSON values). Raises ValueError.

    ``review`` chooses by review status (REVIEW_CHOICES); ``min_agreement`` keeps outputs whose agreement
    score (alpha over characters) is at least this, which leaves out outputs it cannot be measured on;
    with it, ``undefined_agreement`` ("exclude", the default, or "include", always recorded) says what
    becomes of outputs whose alpha is undefined (two or more annotators, no variation: say, nobody drew a
    span), which are neither perfect agreement nor none; ``exclude_annotators`` lists user ids whose annotations are left out (gold is never excluded by it);
    ``origin`` (ORIGIN_CHOICES, default "people", always recorded) says whether machine critics' drafts
    count: never, once a reviewer accepted them, or all of them.
    """
    cleaned = {k: v for k, v in (selection or {}).items() if v not in (None, "", [])}
    review = cleaned.get("review", "submitted")
    if review not in REVIEW_CHOICES:
        raise ValueError(f"review must be one of {', '.join(REVIEW_CHOICES)} (got {review!r})")
    cleaned["review"] = review
    origin = cleaned.get("origin", "people")
    if origin not in ORIGIN_CHOICES:
        raise ValueError(f"origin must be one of {', '.join(ORIGIN_CHOICES)} (got {origin!r})")
    cleaned["origin"] = origin
    if "min_agreement" in cleaned:
        try:
            value = float(cleaned["min_agreement"])
        except (TypeError, ValueError):
            raise ValueError("min_agreement must be a number from -1 to 1") from None
        if not -1.0 <= value <= 1.0:
            raise ValueError("min_agreement must be a number from -1 to 1")
        cleaned["min_agreement"] = value
        undefined = cleaned.get("undefined_agreement", "exclude")
        if undefined not in UNDEFINED_AGREEMENT_CHOICES:
            raise ValueError(f"undefined_agreement must be one of {', '.join(UNDEFINED_AGREEMENT_CHOICES)}")
        cleaned["undefined_agreement"] = undefined
    else:
        cleaned.pop("undefined_agreement", None)
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
    status, origin (people / machine drafts), minimum agreement (and what to do where it is undefined) and annotators left out
    (``selection_clean`` explains the last three); never those of a project's held-out prompts."""
    from annotations.models import Annotation, held_out_q

    selection = selection_clean(selection)
    # Never an annotation of a held-out prompt (evaluation campaigns judge versions on those).
    queryset = Annotation.objects.filter(status=Annotation.Status.SUBMITTED).exclude(
        held_out_q("generation__prompt__")
    )
    if selection["review"] == "gold":
        queryset = queryset.filter(is_gold=True)
    else:
        queryset = queryset.filter(is_gold=False)
        if selection["review"] == "accepted":
            queryset = queryset.filter(review__verdict="accepted")
        if selection.get("exclude_annotators"):
            queryset = queryset.exclude(annotator_id__in=selection["exclude_annotators"])
        machine = Q(origin=Annotation.Origin.MACHINE)
        if selection["origin"] == "people":
            queryset = queryset.exclude(machine)
        elif selection["origin"] == "machine-accepted":
            queryset = queryset.exclude(machine & ~Q(review__verdict="accepted"))
    if "min_agreement" in selection:
        kept = Q(generation__agreement__score__gte=selection["min_agreement"])
        if selection["undefined_agreement"] == "include":
            kept |= Q(generation__agreement__annotators__gte=2, generation__agreement__score__isnull=True)
        queryset = queryset.filter(kept)
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
    """Queued rounds stop at once (``round.cancelled`` is emitted with the change); a running one stops
    before its next optimizer step, and its worker emits it."""
    with transaction.atomic():
        # Locked, so the status read is the one request_cancel changes (a claim waits for us).
        before = TrainingRound.objects.select_for_update().filter(pk=training_round.pk).values("status")
        was_queued = [row["status"] for row in before] == [TrainingRound.Status.QUEUED]
        lifecycle.request_cancel(TrainingRound, training_round.pk)
        audit_record(action="round.cancel", obj=training_round)
        training_round.refresh_from_db()
        if was_queued:
            round_cancelled_emit(training_round=training_round)
    return training_round


def round_resume(*, training_round: TrainingRound) -> TrainingRound:
    """Queue a failed round again; it continues from its last checkpoint if it has one."""
    with transaction.atomic():
        if not lifecycle.requeue_ended(TrainingRound, training_round.pk):
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


# --- "did it help?": blind pairs against the parent, from the round page --------------------------
ROUND_EVALUATION_PROMPTS = 8  # a few blind pairs: enough to see a clear regression, cheap on a laptop


def round_evaluation_project(training_round: TrainingRound) -> Project | None:
    """Where to sample the pairs: the round's project, else the project most of its annotations are in."""
    if training_round.project_id:
        return training_round.project
    counts = (
        Annotation.objects.filter(pk__in=training_round.snapshot)
        .values("generation__prompt__project")
        .annotate(n=Count("pk"))
        .order_by("-n", "generation__prompt__project")
    )
    first = counts.first()
    return Project.objects.get(pk=first["generation__prompt__project"]) if first else None


def round_evaluation_create(*, training_round: TrainingRound, created_by) -> EvaluationCampaign:
    """One click on the round page: a blind pairwise campaign between the round's new version and its
    parent on a few of the project's held-out prompts (any prompts when none are held out), judged by the
    annotators. Asking again returns the campaign already comparing the two (unless it failed).

    Raises ValueError when the round has no new version with a parent to compare against; the campaign's
    own checks (PermissionDenied for non-admins, ValidationError) pass through.
    """
    version = training_round.output_version
    if training_round.status != TrainingRound.Status.SUCCEEDED or version is None:
        raise ValueError("Only a round that finished with a new version can be evaluated.")
    if version.parent is None:
        raise ValueError(f"{version.name} has no parent version to compare with.")
    parent = version.parent
    existing = round_parent_campaign(version)
    if existing is not None:
        return existing
    project = round_evaluation_project(training_round)
    if project is None:
        raise ValueError("The round's annotations belong to no project to take prompts from.")
    held_out = evaluation_services.held_out_prompts(project).count()
    source = "held_out" if held_out else "all"
    available = held_out or project.prompts.count()
    if not available:
        raise ValueError(f"{project.name} has no prompts to evaluate on.")
    return evaluation_services.campaign_create(
        name=f"Round #{training_round.pk}: {version.name} vs its parent {parent.name}",
        project=project,
        versions=[parent, version],
        prompt_count=min(ROUND_EVALUATION_PROMPTS, available),
        prompt_source=source,
        created_by=created_by,
    )


CRITIC_SCORE_TASK = "training.round_critic_score"


def round_critic_score_create(*, training_round: TrainingRound, created_by) -> RoundCriticScore:
    """The round page's other "did it help?": the project's active critic scores the round's new version
    and its parent on the same few held-out prompts (any prompts when none are held out), queued as a job
    on the generation lane. Asking again returns the score already queued, running or done with the same
    critic (a failed or cancelled one is asked again).

    Raises ValueError when the round has no new version with a parent, or its project has no active critic.
    """
    version = training_round.output_version
    if training_round.status != TrainingRound.Status.SUCCEEDED or version is None:
        raise ValueError("Only a round that finished with a new version can be evaluated.")
    if version.parent is None:
        raise ValueError(f"{version.name} has no parent version to compare with.")
    project = round_evaluation_project(training_round)
    critic = critic_active_for(project)
    if critic is None:
        raise ValueError("The project has no active critic: train one on its critic page first.")
    existing = round_critic_score_latest(training_round, critic)
    if existing is not None and existing.status not in (RoundCriticScore.Status.FAILED, "cancelled"):
        return existing
    prompts = evaluation_services.held_out_prompts(project)
    if not prompts.exists():
        prompts = project.prompts.all()
    prompt_ids = list(prompts.order_by("id").values_list("id", flat=True)[:ROUND_EVALUATION_PROMPTS])
    if not prompt_ids:
        raise ValueError(f"{project.name} has no prompts to evaluate on.")
    with transaction.atomic():
        job = RoundCriticScore.objects.create(
            training_round=training_round,
            critic_version=critic,
            prompt_ids=prompt_ids,
            progress_total=2 * len(prompt_ids),
            created_by=created_by,
        )
        dispatch.enqueue(CRITIC_SCORE_TASK, job.pk)
    return job


def round_critic_score_cancel(*, training_round: TrainingRound) -> int:
    """Cancel the round's unfinished critic scores: a queued one ends at once, a running one at its next
    check (before each version's answers, and about once a second while sampling). A score records its
    result only at the very end, so nothing of a cancelled one is kept. Returns how many were asked."""
    unfinished = training_round.critic_scores.exclude(status__in=RoundCriticScore.FINISHED)
    return sum(
        lifecycle.request_cancel(RoundCriticScore, pk, reason="Cancelled before it started.")
        for pk in unfinished.values_list("pk", flat=True)
    )

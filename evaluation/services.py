"""Writes for evaluation campaigns: create (admins), lease a pairwise task to a judge, submit, close.

Leasing follows the annotation queue's rules: one open lease per judge and campaign, a quota of
judgements per task (submitted plus unexpired leases), never the same judge twice on a task, rows locked
with ``SKIP LOCKED`` and slots counted again under the lock.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from itertools import combinations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotations import roles
from annotations.models import Project, held_out_q
from annotations.safejson import text_problem
from jobs import dispatch, lifecycle

from .models import CampaignGeneration, EvaluationCampaign, EvaluationOutput, PairwiseJudgement, PairwiseTask

MAX_VERSIONS = 8
MAX_PROMPTS = 1000
MAX_PER_PAIR = 50
MAX_REASON_CHARS = 2000
PROMPT_SOURCES = ("held_out", "all")
SAMPLING_KEYS = {"temperature": (0.01, 2.0), "top_p": (0.05, 1.0), "max_new_tokens": (1, 2048)}


def held_out_prompts(project: Project):
    """The project's held-out prompts (``annotations.models.held_out_q``: marked by an admin, or in the
    project's held-out fraction): training rounds never sample them nor train on their annotations."""
    return project.prompts.filter(held_out_q()).order_by("id")


def _checked_sampling(sampling_params: dict | None) -> dict:
    params = {
        "temperature": settings.T2G_TEMPERATURE,
        "top_p": settings.T2G_TOP_P,
        "max_new_tokens": settings.T2G_MAX_NEW_TOKENS,
    }
    for key, value in (sampling_params or {}).items():
        if key not in SAMPLING_KEYS:
            raise ValidationError(f"Unknown sampling setting {key!r}.")
        low, high = SAMPLING_KEYS[key]
        try:
            number = int(value) if key == "max_new_tokens" else float(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{key} must be a number.") from exc
        if not low <= number <= high:
            raise ValidationError(f"{key} must be between {low} and {high}.")
        params[key] = number
    return params


def campaign_create(
    *,
    name: str,
    project: Project,
    versions: list,
    prompt_count: int,
    judgements_per_pair: int = 1,
    prompt_source: str = "held_out",
    prompt_ids: list[int] | None = None,
    judges: list | None = None,
    sampling_params: dict | None = None,
    seed: int = 0,
    created_by=None,
) -> EvaluationCampaign:
    """Freeze versions, prompts and sampling settings, and queue the outputs on the generation lane."""
    if created_by is not None and not roles.is_admin(created_by):
        raise PermissionDenied("Only admins create evaluation campaigns.")
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("Give the campaign a name (at most 200 characters).")
    version_ids = sorted({v.pk for v in versions})
    if not 2 <= len(version_ids) <= MAX_VERSIONS:
        raise ValidationError(f"Choose between 2 and {MAX_VERSIONS} different model versions.")
    if not 1 <= judgements_per_pair <= MAX_PER_PAIR:
        raise ValidationError(f"Judgements per pair must be between 1 and {MAX_PER_PAIR}.")
    if not 1 <= prompt_count <= MAX_PROMPTS:
        raise ValidationError(f"The number of prompts must be between 1 and {MAX_PROMPTS}.")
    if not 0 <= seed < 2**31:
        raise ValidationError("The seed must be between 0 and 2^31 - 1.")
    if project.is_archived:
        raise ValidationError("This project is archived.")
    if prompt_ids:
        pool = project.prompts.filter(pk__in=prompt_ids).order_by("id")
        if pool.count() != len(set(prompt_ids)):
            raise ValidationError("Some prompt ids are not prompts of this project.")
    elif prompt_source == "held_out":
        pool = held_out_prompts(project)
    elif prompt_source == "all":
        pool = project.prompts.order_by("id")
    else:
        raise ValidationError(f"The prompt source is one of {', '.join(PROMPT_SOURCES)}.")
    chosen = list(pool.values_list("pk", flat=True)[:prompt_count])
    if prompt_source == "held_out" and not prompt_ids and not chosen:
        raise ValidationError(
            "This project holds no prompts out of training: set its held-out fraction or mark prompts held "
            "out (admin), or choose any prompts."
        )
    if len(chosen) < prompt_count:
        raise ValidationError(
            f"Only {len(chosen)} prompts match ({prompt_source.replace('_', '-')}); "
            f"ask for at most that many."
        )
    params = _checked_sampling(sampling_params)
    judge_list = list(judges or [])
    if any(not roles.is_annotator(judge) for judge in judge_list):
        raise ValidationError("Every judge must be an annotator.")
    with transaction.atomic():
        campaign = EvaluationCampaign.objects.create(
            name=name,
            project=project,
            judgements_per_pair=judgements_per_pair,
            sampling_params=params,
            seed=seed,
            created_by=created_by,
        )
        campaign.versions.set(version_ids)
        campaign.prompts.set(chosen)
        campaign.judges.set(judge_list)
        _generation_queue(campaign)
    return campaign


GENERATE_TASK = "training.evaluation_generate"


def _generation_queue(campaign: EvaluationCampaign) -> CampaignGeneration:
    """A new generation job for the campaign, dispatched with the caller's transaction (the outbox)."""
    job = CampaignGeneration.objects.create(
        campaign=campaign, progress_total=campaign.prompts.count() * campaign.versions.count()
    )
    dispatch.enqueue(GENERATE_TASK, job.pk)
    return job


def campaign_retry(*, campaign: EvaluationCampaign) -> EvaluationCampaign:
    """Queue a failed campaign's generation again (a new job); it resumes after the outputs already written."""
    with transaction.atomic():
        updated = EvaluationCampaign.objects.filter(
            pk=campaign.pk, status=EvaluationCampaign.Status.FAILED
        ).update(status=EvaluationCampaign.Status.GENERATING)
        if not updated:
            raise ValidationError("Only a failed campaign can be retried.")
        _generation_queue(campaign)
    return EvaluationCampaign.objects.get(pk=campaign.pk)


def campaign_cancel(*, campaign: EvaluationCampaign) -> EvaluationCampaign:
    """Stop writing the campaign's outputs: a queued job ends at once, a running one at its next chunk.
    The campaign ends failed (cancelled) with the outputs written so far; Retry resumes after them."""
    with transaction.atomic():
        job = campaign.generations.select_for_update().order_by("-id").first()
        if campaign.status != EvaluationCampaign.Status.GENERATING or job is None or job.is_finished:
            raise ValidationError("Only a campaign whose outputs are being written can be cancelled.")
        lifecycle.request_cancel(
            CampaignGeneration, job.pk, reason="Cancelled by an admin before it started."
        )
        job.refresh_from_db()
        if job.status == CampaignGeneration.Status.CANCELLED:
            campaign_generation_ended(job.pk)
    return EvaluationCampaign.objects.get(pk=campaign.pk)


def campaign_generation_ended(job_id: int) -> None:
    """A generation job ended without opening the campaign (failed, cancelled, or given up by the reaper:
    the job registry's cleanup calls this): the campaign, if this is still its latest job, ends failed."""
    job = CampaignGeneration.objects.filter(pk=job_id).first()
    if job is None or job.status not in (
        CampaignGeneration.Status.FAILED,
        CampaignGeneration.Status.CANCELLED,
    ):
        return
    latest = CampaignGeneration.objects.filter(campaign_id=job.campaign_id).order_by("-id").first()
    if latest and latest.pk == job.pk:
        EvaluationCampaign.objects.filter(
            pk=job.campaign_id, status=EvaluationCampaign.Status.GENERATING
        ).update(status=EvaluationCampaign.Status.FAILED)


def campaign_close(*, campaign: EvaluationCampaign) -> EvaluationCampaign:
    """Stop judging: open leases lapse, results stay."""
    with transaction.atomic():
        updated = EvaluationCampaign.objects.filter(
            pk=campaign.pk, status=EvaluationCampaign.Status.JUDGING
        ).update(status=EvaluationCampaign.Status.CLOSED, closed_at=timezone.now())
        if not updated:
            raise ValidationError("Only a campaign that is being judged can be closed.")
        PairwiseJudgement.objects.filter(
            task__campaign=campaign, status=PairwiseJudgement.Status.LEASED
        ).update(status=PairwiseJudgement.Status.EXPIRED)
    campaign.refresh_from_db()
    return campaign


def campaign_outputs_ready(*, campaign: EvaluationCampaign) -> int:
    """Called by the worker once every output is written: one task per prompt and pair of versions, in a
    seeded shuffle (judges see pairs mixed), and the campaign opens for judging. Returns the task count."""
    outputs = {
        (o.prompt_id, o.model_version_id): o for o in EvaluationOutput.objects.filter(campaign=campaign)
    }
    version_ids = sorted(campaign.versions.values_list("pk", flat=True))
    prompt_ids = sorted(campaign.prompts.values_list("pk", flat=True))
    keys = [(p, a, b) for p in prompt_ids for a, b in combinations(version_ids, 2)]
    missing = [(p, v) for p in prompt_ids for v in version_ids if (p, v) not in outputs]
    if missing:
        raise ValidationError(f"{len(missing)} outputs are missing; the campaign cannot open yet.")
    order = list(range(len(keys)))
    random.Random(campaign.seed).shuffle(order)
    with transaction.atomic():
        for position, (prompt_id, a, b) in zip(order, keys, strict=True):
            PairwiseTask.objects.get_or_create(
                first=outputs[(prompt_id, a)],
                second=outputs[(prompt_id, b)],
                defaults={"campaign": campaign, "prompt_id": prompt_id, "order_key": position},
            )
        EvaluationCampaign.objects.filter(pk=campaign.pk, status=EvaluationCampaign.Status.GENERATING).update(
            status=EvaluationCampaign.Status.JUDGING
        )
    campaign.refresh_from_db()
    return len(keys)


# --- judging -------------------------------------------------------------------------------------
def can_judge(campaign: EvaluationCampaign, user) -> bool:
    if not roles.is_annotator(user):
        return False
    judges = campaign.judges.all()
    return not judges.exists() or judges.filter(pk=user.pk).exists()


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.T2G_LEASE_SECONDS)


def _holding(now: datetime) -> Q:
    return Q(status=PairwiseJudgement.Status.LEASED, expires_at__gt=now)


def _slots_taken(task_id: int, now: datetime, *, except_judge_id: int | None = None) -> int:
    task = PairwiseTask.objects.get(pk=task_id)
    leases = PairwiseJudgement.objects.filter(_holding(now), task_id=task_id)
    if except_judge_id is not None:
        leases = leases.exclude(judge_id=except_judge_id)
    return task.submitted_count + leases.count()


def _first_on_left(campaign: EvaluationCampaign, task_id: int, judge_id: int) -> bool:
    """Sides are random per judge and task, and reproducible from the campaign's seed."""
    return random.Random(f"{campaign.seed}:{task_id}:{judge_id}").random() < 0.5


def judgement_next(
    *, campaign: EvaluationCampaign, judge, now: datetime | None = None
) -> PairwiseJudgement | None:
    """Lease ``judge`` the next pair to judge (their open lease first); None when nothing is left."""
    now = now or timezone.now()
    if campaign.status != EvaluationCampaign.Status.JUDGING:
        return None
    if not can_judge(campaign, judge):
        raise PermissionDenied("You are not a judge of this campaign.")
    quota = campaign.judgements_per_pair
    with transaction.atomic():
        user_model = get_user_model()
        list(user_model.objects.select_for_update().filter(pk=judge.pk).values_list("pk", flat=True))
        own = PairwiseJudgement.objects.filter(
            task__campaign=campaign, judge=judge, status=PairwiseJudgement.Status.LEASED
        ).order_by("leased_at", "pk")
        for lease in own:
            list(PairwiseTask.objects.select_for_update().filter(pk=lease.task_id).values_list("pk"))
            if lease.expires_at > now or _slots_taken(lease.task_id, now, except_judge_id=judge.pk) < quota:
                lease.expires_at = _lease_until(now)
                lease.save(update_fields=["expires_at"])
                return lease
            lease.status = PairwiseJudgement.Status.EXPIRED
            lease.save(update_fields=["status"])
        held = (
            PairwiseJudgement.objects.filter(_holding(now), task=OuterRef("pk"))
            .order_by()
            .values("task")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        )
        candidates = (
            PairwiseTask.objects.filter(campaign=campaign, submitted_count__lt=quota)
            .exclude(Exists(PairwiseJudgement.objects.filter(task=OuterRef("pk"), judge=judge)))
            .alias(held=Coalesce(Subquery(held), 0))
            .filter(held__lt=quota - F("submitted_count"))
            .order_by("submitted_count", "order_key", "id")
        )
        skip_locked = True
        for _ in range(8):
            locked = list(
                candidates.select_for_update(skip_locked=skip_locked).values_list("pk", flat=True)[:4]
            )
            if not locked:
                if not skip_locked:
                    return None
                # Every candidate is locked by another request for a moment: wait for those locks
                # rather than answer "nothing left" while slots may remain.
                skip_locked = False
                continue
            for task_id in locked:
                if _slots_taken(task_id, now) >= quota:
                    continue
                return PairwiseJudgement.objects.create(
                    task_id=task_id,
                    judge=judge,
                    first_on_left=_first_on_left(campaign, task_id, judge.pk),
                    leased_at=now,
                    expires_at=_lease_until(now),
                )
            candidates = candidates.exclude(pk__in=locked)
    return None


def judgement_submit(
    *, judgement: PairwiseJudgement, judge, verdict: str, reason: str = "", now: datetime | None = None
) -> PairwiseJudgement:
    """Record a verdict (``a``, ``b``, ``tie`` or ``both_bad``, in the sides the judge saw)."""
    now = now or timezone.now()
    if verdict not in PairwiseJudgement.Verdict.values:
        raise ValidationError("The verdict is one of: a, b, tie, both_bad.")
    reason = (reason or "").strip()
    problem = text_problem(reason)
    if problem:
        raise ValidationError(f"The reason {problem}.")
    if len(reason) > MAX_REASON_CHARS:
        raise ValidationError(
            f"The reason is {len(reason)} characters long; the limit is {MAX_REASON_CHARS}."
        )
    with transaction.atomic():
        locked = (
            PairwiseJudgement.objects.select_for_update()
            .select_related("task__campaign")
            .get(pk=judgement.pk)
        )
        if locked.judge_id != judge.pk:
            raise PermissionDenied("This pair is leased to someone else.")
        if locked.task.campaign.status != EvaluationCampaign.Status.JUDGING:
            raise ValidationError("This campaign is no longer being judged.")
        if locked.status != PairwiseJudgement.Status.LEASED:
            raise ValidationError(f"This judgement is {locked.status}; it cannot be submitted.")
        task = PairwiseTask.objects.select_for_update().get(pk=locked.task_id)
        quota = locked.task.campaign.judgements_per_pair
        if locked.expires_at <= now and _slots_taken(task.pk, now, except_judge_id=judge.pk) >= quota:
            locked.status = PairwiseJudgement.Status.EXPIRED
            locked.save(update_fields=["status"])
            raise ValidationError("Your lease expired and this pair has all its judgements.")
        locked.verdict = verdict
        locked.reason = reason
        locked.status = PairwiseJudgement.Status.SUBMITTED
        locked.submitted_at = now
        locked.save(update_fields=["verdict", "reason", "status", "submitted_at"])
        PairwiseTask.objects.filter(pk=task.pk).update(submitted_count=F("submitted_count") + 1)
    return locked

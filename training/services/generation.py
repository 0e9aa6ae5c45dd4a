"""Generation jobs: sample outputs from a model version for a project's prompts (the worker runs them:
``training/worker/generation.py``), and the outputs of the version compare page."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotations.models import EVALUATION_PURPOSE, Generation, Project
from jobs import dispatch, lifecycle

from ..models import GenerationJob, ModelVersion
from .versions import model_version_bootstrap


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


def generation_job_resume(*, job: GenerationJob) -> GenerationJob:
    """Queue a failed or cancelled job again; it continues after the prompts whose outputs it committed
    (the worker skips ``progress_step`` of them), so nothing is sampled twice."""
    with transaction.atomic():
        if not lifecycle.requeue_ended(GenerationJob, job.pk):
            raise ValueError("Only a failed or cancelled generation job can be resumed")
        dispatch.enqueue("training.generate", job.pk)
    job.refresh_from_db()
    return job


# --- the outputs of the version compare page -----------------------------------------------------
COMPARE_PROMPTS = 8  # the first prompts of a project form its fixed comparison set


def compare_outputs_generate(
    *, project: Project, model_version: ModelVersion, created_by=None
) -> GenerationJob | None:
    """Sample one output per comparison prompt with a given version, for side-by-side comparison.

    Prompts that already have an output of this version (or a queued job for it) are left alone: outputs
    are not sampled twice. The new outputs are marked ``purpose: evaluation`` and never reach annotators'
    queues. Returns None when every comparison prompt is covered already.
    """
    prompt_ids = list(project.prompts.order_by("id").values_list("id", flat=True)[:COMPARE_PROMPTS])
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

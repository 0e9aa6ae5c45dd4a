"""Writes for model versions and generation jobs, safe to call from the web process (no torch here).

The work that needs the model runs in the worker: see ``training/jobs.py``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.models import Project

from .models import GenerationJob, ModelVersion

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
        from .tasks import generate

        transaction.on_commit(lambda: generate.delay(job.pk))
    return job

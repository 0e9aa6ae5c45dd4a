"""Reads for model versions, jobs and rounds."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import GenerationJob, ModelVersion


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("parent", "created_by_round").order_by("-created_at", "-id")


def generation_jobs_for_project(project_id: int) -> QuerySet[GenerationJob]:
    return GenerationJob.objects.filter(project_id=project_id).select_related("model_version")

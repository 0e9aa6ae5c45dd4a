"""Reads for projects, prompts and generations."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from .models import Annotation, Generation, Project, Prompt


def project_list_with_counts() -> QuerySet[Project]:
    return Project.objects.filter(is_archived=False).annotate(
        prompt_count=Count("prompts", distinct=True),
        generation_count=Count("prompts__generations", distinct=True),
        submitted_count=Count(
            "prompts__generations__annotations",
            filter=Q(prompts__generations__annotations__status=Annotation.Status.SUBMITTED),
            distinct=True,
        ),
    )


def prompts_with_generations(project: Project) -> QuerySet[Prompt]:
    generations = Generation.objects.select_related("model_version").order_by("id")
    return (
        Prompt.objects.filter(project=project)
        .prefetch_related(Prefetch("generations", queryset=generations))
        .order_by("id")
    )

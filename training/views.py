"""HTML views for model work: generation jobs (training rounds come with the training UI)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations import roles
from annotations.models import Project

from . import services
from .models import GenerationJob


def _require_admin(request: HttpRequest) -> None:
    if not roles.is_admin(request.user):
        raise PermissionDenied("Only admins can do this.")


@require_POST
def generation_job_start(request: HttpRequest, project_pk: int) -> HttpResponse:
    _require_admin(request)
    project = get_object_or_404(Project, pk=project_pk)
    try:
        per_prompt = int(request.POST.get("per_prompt", "1"))
        services.generation_job_create(project=project, per_prompt=per_prompt, created_by=request.user)
    except ValueError as exc:
        messages.error(request, f"Could not start generation: {exc}")
    else:
        messages.success(request, "Generation queued: outputs appear here as the worker produces them.")
    return redirect("project_detail", pk=project.pk)


@require_GET
def generation_job_status(request: HttpRequest, pk: int) -> HttpResponse:
    if not request.user.is_authenticated:
        raise PermissionDenied
    job = get_object_or_404(GenerationJob, pk=pk)
    return render(request, "training/_generation_job.html", {"job": job})

"""HTML views for projects. Views are short: check access, call one selector or service, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from training import selectors as training_selectors

from . import selectors
from .models import Project


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("project_list")


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.project_list_with_counts()
    return render(request, "annotations/project_list.html", {"projects": projects})


@login_required
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=pk, is_archived=False)
    page = Paginator(selectors.prompts_with_generations(project), 20).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "jobs": training_selectors.generation_jobs_for_project(project.pk)[:5],
        "active_version": training_selectors.active_version(),
    }
    return render(request, "annotations/project_detail.html", context)

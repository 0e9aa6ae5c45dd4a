"""The project's machine critics page (admins): which registered critics it uses and with which settings,
runs of a critic over the project's outputs (progress, cancel), and where their drafts went (the review
queue, the agreement page)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import selectors
from ..forms import MachineCriticForm
from ..models import MachineCriticConfig, MachineCriticJob, Project
from ..services import machine as machine_services
from .access import admin_page

admins_only = admin_page("Only admins configure and run machine critics.")


def _page(
    request: HttpRequest, project: Project, form: MachineCriticForm, status: int = 200, run_error: str = ""
) -> HttpResponse:
    jobs = list(selectors.machine_critic_jobs(project))
    context = {
        "project": project,
        "run_error": run_error,
        "configs": selectors.machine_critics_of(project),
        "jobs": jobs,
        "polling": any(not job.is_finished for job in jobs),  # the runs' table refreshes itself meanwhile
        "form": form,
    }
    return render(request, "annotations/machine_critics.html", context, status=status)


@admins_only
@require_GET
def machine_critics(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=pk)
    return _page(request, project, MachineCriticForm())


@admins_only
@require_POST
def machine_critic_configure(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=pk)
    form = MachineCriticForm(request.POST)
    if not form.is_valid():
        return _page(request, project, form, status=400)
    try:
        machine_services.machine_critic_configure(
            project=project,
            name=form.cleaned_data["name"],
            critic_settings=form.cleaned_data["critic_settings"],
            enabled=form.cleaned_data["enabled"],
            user=request.user,
        )
    except ValidationError as exc:
        form.add_error(None, exc)
        return _page(request, project, form, status=400)
    messages.success(request, f"Saved the {form.cleaned_data['name']} critic.")
    return redirect("machine_critics", pk=project.pk)


@admins_only
@require_POST
def machine_critic_run(request: HttpRequest, pk: int) -> HttpResponse:
    config = get_object_or_404(MachineCriticConfig.objects.select_related("project"), pk=pk)
    try:
        job = machine_services.machine_critic_run_start(config=config, user=request.user)
    except ValidationError as exc:
        return _page(
            request, config.project, MachineCriticForm(), status=400, run_error=" ".join(exc.messages)
        )
    messages.success(request, f"Queued a {config.name} run over {job.progress_total} outputs.")
    return redirect("machine_critics", pk=config.project_id)


@admins_only
@require_POST
def machine_critic_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(MachineCriticJob, pk=pk)
    if machine_services.machine_critic_run_cancel(job=job, user=request.user):
        messages.success(request, "Cancel requested: the run stops before its next output.")
    else:
        messages.info(request, "That run had already finished.")
    return redirect("machine_critics", pk=job.project_id)

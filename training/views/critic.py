"""Pages of the learned span critic: a project's critic versions with held-out metrics against baselines,
a calibration plot, suggestion acceptance; training, activation and roll back; on-policy rounds; and the
critic's pre-annotation on the annotate page. Admins act; researchers look."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations.models import Annotation, Project

from .. import charts, selectors, services
from ..forms import CriticTrainForm, OnPolicyRoundForm
from ..models import AlignmentRequest, CriticPredictionJob, CriticSettings, CriticTrainingJob, CriticVersion
from .access import admins_only, require_viewer
from .feedback import annotation_for


def _page(request: HttpRequest, project: Project, *, train_form=None, round_form=None, status: int = 200):
    versions = list(selectors.critic_versions(project_id=project.pk))
    shown = next((v for v in versions if str(v.pk) == request.GET.get("version")), None)
    shown = shown or next((v for v in versions if v.is_active), None) or (versions[0] if versions else None)
    calibration = []
    if shown is not None:
        report = (shown.metrics.get("reports") or {}).get("critic") or {}
        for label in ("poor", "good"):
            bins = (report.get("calibration", {}).get(label) or {}).get("bins", [])
            calibration.append(charts.calibration_chart(bins, label=label))
    context = {
        "project": project,
        "versions": [(v, selectors.review_stats(v)) for v in versions],
        "shown": shown,
        "rows": selectors.metric_rows(shown) if shown else [],
        "calibration": calibration,
        "jobs": selectors.critic_jobs(project_id=project.pk),
        "prediction_jobs": selectors.critic_prediction_jobs_open(project_id=project.pk),
        "train_form": train_form or CriticTrainForm(),
        "round_form": round_form or OnPolicyRoundForm(),
        "snapshot_size": len(services.critic_snapshot(project=project)),
        "queue_order": getattr(project, "critic_settings", None)
        and project.critic_settings.queue_order
        or "arrival",
        "queue_orders": CriticSettings.QueueOrder.choices,
        "active_critic": next((v for v in versions if v.is_active), None),
    }
    return render(request, "training/critic.html", context, status=status)


@require_GET
@login_required
def critic_home(request: HttpRequest, project_pk: int) -> HttpResponse:
    require_viewer(request)
    return _page(request, get_object_or_404(Project, pk=project_pk))


@require_POST
@admins_only
def critic_train(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_pk)
    form = CriticTrainForm(request.POST)
    if form.is_valid():
        parent = (
            services.critic_active(project_id=project.pk)
            if form.cleaned_data["continue_from_active"]
            else None
        )
        try:
            job = services.critic_job_create(
                project=project, config=form.config(), parent=parent, selection=form.selection(),
                auto_activate=form.cleaned_data["auto_activate"], created_by=request.user,
            )  # fmt: skip
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"Critic job {job.pk} queued on the training lane ({len(job.snapshot)} annotations)."
            )
            return redirect("critic_home", project_pk=project.pk)
    return _page(request, project, train_form=form, status=400)


@require_GET
@login_required
def critic_job_status(request: HttpRequest, pk: int) -> HttpResponse:
    require_viewer(request)
    job = get_object_or_404(CriticTrainingJob.objects.select_related("output_version"), pk=pk)
    return render(request, "training/_critic_job.html", {"job": job})


@require_POST
@admins_only
def critic_job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(CriticTrainingJob, pk=pk)
    if services.critic_job_cancel(job=job):
        messages.info(request, f"Critic job {job.pk}: cancellation requested.")
    else:
        messages.error(request, f"Critic job {job.pk} had already finished.")
    return redirect("critic_home", project_pk=job.project_id)


@require_POST
@admins_only
def critic_prediction_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(CriticPredictionJob.objects.select_related("critic_version"), pk=pk)
    if services.critic_prediction_job_cancel(job=job):
        messages.info(request, f"Critic prediction {job.pk}: cancellation requested.")
    else:
        messages.error(request, f"Critic prediction {job.pk} had already finished.")
    return redirect("critic_home", project_pk=job.critic_version.project_id)


@require_POST
@admins_only
def critic_activate(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(CriticVersion, pk=pk)
    services.critic_version_activate(version=version)
    messages.success(
        request, f"{version.name} is now this project's critic; new outputs get its suggestions."
    )
    return redirect("critic_home", project_pk=version.project_id)


@require_POST
@admins_only
def critic_deactivate(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_pk)
    services.critic_version_deactivate(project=project)
    messages.info(request, "No critic is active for this project now.")
    return redirect("critic_home", project_pk=project.pk)


@require_POST
@admins_only
def critic_settings(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_pk)
    try:
        services.critic_settings_update(project=project, queue_order=request.POST.get("queue_order", ""))
    except ValueError as exc:
        messages.error(request, str(exc))
        return _page(request, project, status=400)
    messages.success(request, "Queue order saved.")
    return redirect("critic_home", project_pk=project.pk)


@require_POST
@admins_only
def on_policy_launch(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_pk)
    form = OnPolicyRoundForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            training_round = services.on_policy_round_launch(
                project=project, config=form.config(), audit_share=data["audit_share"],
                max_new_tokens=data["max_new_tokens"], temperature=data["temperature"],
                auto_promote=data["auto_promote"], created_by=request.user,
            )  # fmt: skip
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"On-policy round {training_round.pk} queued.")
            return redirect("round_detail", pk=training_round.pk)
    return _page(request, project, round_form=form, status=400)


def _pending_suggestions(annotation: Annotation) -> AlignmentRequest | None:
    """The annotation's last Suggest-spans request when it is still running or has an open proposal."""
    latest = (
        AlignmentRequest.objects.filter(annotation=annotation, critic_version__isnull=True)
        .order_by("-created_at", "-pk")
        .first()
    )
    if latest is None:
        return None
    if not latest.is_finished:
        return latest
    if any(proposal.get("state") == "open" for proposal in latest.proposals):
        return latest
    return None


@require_POST
@login_required
def annotation_critic_suggestions(request: HttpRequest, pk: int) -> HttpResponse:
    """The annotate page asks once on load: the suggestions still pending with the draft (the last Suggest
    spans, while it runs or has open proposals: a reload keeps them), else the active critic's spans."""
    annotation = annotation_for(request, pk)
    editable = annotation.annotator_id == request.user.pk and annotation.status == Annotation.Status.DRAFT
    # Only the annotator's own draft gets suggestions (and the row that records how they were treated).
    alignment = None
    if editable:
        alignment = _pending_suggestions(annotation) or services.critic_suggestions_for(annotation=annotation)
    if alignment is None or (alignment.is_finished and not alignment.proposals):
        # Nothing to suggest: htmx swaps nothing on 204, so a Suggest-spans answer that raced ahead stays.
        return HttpResponse(status=204)
    context = {"alignment": alignment, "error": "", "editable": editable}
    return render(request, "training/_suggestions.html", context)

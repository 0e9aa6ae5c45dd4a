"""HTML views for model work: training rounds, model versions, comparisons and generation jobs.

Admins launch, cancel and promote; researchers may look. Every write goes through ``training.services``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from annotations import roles
from annotations.models import Project
from annotations.safejson import positive_id
from evaluation import selectors as evaluation_selectors

from .. import charts, selectors, services
from ..forms import RoundLaunchForm
from ..models import GenerationJob, ModelVersion, TrainingRound
from .access import admins_only, require_viewer


@login_required
def training_home(request: HttpRequest) -> HttpResponse:
    require_viewer(request)
    form = RoundLaunchForm()
    versions = list(selectors.version_list())
    standings = evaluation_selectors.version_standings(versions)
    active = next((version for version in versions if version.is_active), None)
    for version in versions:
        version.standing = standings.get(version.pk)
        version.rollback = is_rollback(version, active)
    context = {
        "form": form,
        "rounds": selectors.rounds_recent(),
        "versions": versions,
        "projects": selectors.projects_open(),
    }
    return render(request, "training/home.html", context)


@require_POST
@admins_only
def round_launch(request: HttpRequest) -> HttpResponse:
    form = RoundLaunchForm(request.POST)
    if form.is_valid():
        try:
            training_round = services.round_launch(
                mode=form.cleaned_data["mode"],
                selection=form.selection(),
                config=form.config(),
                auto_promote=form.cleaned_data["auto_promote"],
                created_by=request.user,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"Round {training_round.pk} queued with {training_round.snapshot_size} annotations."
            )
            return redirect("round_detail", pk=training_round.pk)
    context = {"form": form, "rounds": selectors.rounds_recent(), "versions": selectors.version_list()}
    return render(request, "training/home.html", context, status=400)


@login_required
@vary_on_headers("HX-Request")
def round_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require_viewer(request)
    training_round = selectors.round_for_page(pk)
    if training_round is None:
        raise Http404("No such round.")
    metrics = selectors.round_metrics(training_round)
    context = {
        "round": training_round,
        "charts": charts.chart_specs(metrics),
        "metric_count": len(metrics),
        "warnings": charts.round_warnings(metrics),
        "config_rows": charts.config_rows(training_round.config),
        "round_charts_id": f"round-charts-{training_round.pk}",
        "evaluation": _parent_evaluation(training_round),
    }
    if training_round.mode == TrainingRound.Mode.ON_POLICY:
        context["samples"] = selectors.on_policy_samples(training_round)
    template = "training/_round_live.html" if request.htmx else "training/round_detail.html"
    return render(request, template, context)


def _parent_evaluation(training_round: TrainingRound) -> dict | None:
    """The round page's "did it help?": the blind campaign against the parent, and its verdict once judged."""
    version = training_round.output_version
    if training_round.status != TrainingRound.Status.SUCCEEDED or version is None or version.parent is None:
        return None
    campaign = selectors.round_parent_campaign(version)
    evidence = evaluation_selectors.promotion_evidence(version, version.parent) if campaign else None
    project = services.round_evaluation_project(training_round)
    critic = selectors.critic_active_for(project)
    score = selectors.round_critic_score_latest(training_round, critic) if critic else None
    return {
        "version": version,
        "parent": version.parent,
        "campaign": campaign,
        "verdict": evidence["reason"] if evidence and evidence["campaign"] else "",
        "prompts": services.ROUND_EVALUATION_PROMPTS,
        "critic": critic,
        "critic_score": score,
        "critic_verdict": critic_verdict(score.result) if score and score.result else "",
        "project": project,
    }


def critic_verdict(result: dict) -> str:
    """One sentence from a finished critic score (``training.worker.round_scores``)."""
    version, parent = result["version"], result["parent"]
    said = (
        f"By {result['critic']}, {version}'s answers score {result['candidate_mean']:+.3f} (mean token reward) "
        f"against {result['baseline_mean']:+.3f} for its parent {parent} on {result['n']} held-out prompts: "
        f"better on {result['wins']}, worse on {result['losses']}, tied on {result['ties']} "
        f"(sign test p = {result['p_value']:.2f})."
    )
    if result["p_value"] < 0.05:
        winner = version if result["wins"] > result["losses"] else parent
        return f"{said} The critic clearly prefers {winner}."
    return f"{said} No clear difference by the critic's measure."


@require_POST
@admins_only
def round_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    training_round = get_object_or_404(TrainingRound, pk=pk)
    try:
        if action == "cancel":
            services.round_cancel(training_round=training_round)
            messages.info(request, "Cancellation requested: the round stops before its next step.")
        elif action == "resume":
            services.round_resume(training_round=training_round)
            messages.success(request, "Round queued again; it continues from its last checkpoint.")
        elif action == "retry" and training_round.mode == TrainingRound.Mode.ON_POLICY:
            training_round = services.on_policy_round_retry(
                training_round=training_round, created_by=request.user
            )
            messages.success(
                request, f"New on-policy round {training_round.pk} queued with the same settings."
            )
        elif action == "retry":
            training_round = services.round_retry(training_round=training_round, created_by=request.user)
            messages.success(
                request, f"New round {training_round.pk} queued with the same selection and config."
            )
        elif action == "evaluate":
            campaign = services.round_evaluation_create(
                training_round=training_round, created_by=request.user
            )
            messages.success(
                request,
                f"Evaluation “{campaign.name}”: its outputs are generated, then annotators judge the pairs.",
            )
            return redirect("campaign_detail", pk=campaign.pk)
        elif action == "critic_score":
            job = services.round_critic_score_create(training_round=training_round, created_by=request.user)
            messages.success(request, f"{job.critic_version.name} scores both versions' answers; see below.")
        elif action == "critic_score_cancel":
            if services.round_critic_score_cancel(training_round=training_round):
                messages.info(request, "Cancel requested: the critic's score stops and keeps nothing.")
            else:
                messages.info(request, "The critic's score had already finished.")
        else:
            raise PermissionDenied("Unknown action")
    except ValueError as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("round_detail", pk=training_round.pk)


@require_POST
@admins_only
def version_activate(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    active = selectors.active_version()
    rollback = is_rollback(version, active)
    if request.POST.get("confirm") != "yes" and not rollback:
        # Promotion is a claim that the version is better: without evidence, ask, and say why. A rollback
        # (to an ancestor of the active version, the base included) is an escape hatch, asked once by the page.
        evidence = evaluation_selectors.promotion_evidence(version, active)
        if not evidence["significant"]:
            context = {"version": version, "active": active, "evidence": evidence}
            return render(request, "training/confirm_activate.html", context, status=409)
    services.model_version_activate(version=version)
    if rollback:
        messages.success(request, f"Rolled back to {version.name}: new generations use it.")
    else:
        messages.success(request, f"{version.name} is now the active model: new generations use it.")
    return redirect("training_home")


def is_rollback(version: ModelVersion, active: ModelVersion | None) -> bool:
    """Whether activating ``version`` goes back to an ancestor of the active version."""
    return services.version_is_rollback(version, active)


@login_required
def version_compare(request: HttpRequest) -> HttpResponse:
    """Outputs of two versions on the same evaluation prompts, side by side."""
    require_viewer(request)
    versions = selectors.version_list()
    projects = selectors.projects_open()
    a_id, b_id, project_id = (positive_id(request.GET.get(key)) for key in ("a", "b", "project"))
    a = versions.filter(pk=a_id).first() if a_id else None
    b = versions.filter(pk=b_id).first() if b_id else None
    project = projects.filter(pk=project_id).first() if project_id else None
    rows = selectors.compare_rows(project, a, b, services.COMPARE_PROMPTS) if a and b and project else []
    context = {"versions": versions, "projects": projects, "a": a, "b": b, "project": project, "rows": rows}
    return render(request, "training/compare.html", context)


@require_POST
@admins_only
def version_compare_generate(request: HttpRequest) -> HttpResponse:
    project_id = positive_id(request.POST.get("project"))
    if project_id is None:
        return HttpResponse("project must be a positive integer id.", status=400, content_type="text/plain")
    project = get_object_or_404(Project, pk=project_id)
    chosen = selectors.versions_by_ids(request.POST.getlist("version"))
    jobs = [
        services.compare_outputs_generate(project=project, model_version=v, created_by=request.user)
        for v in chosen
    ]
    queued = [version.name for version, job in zip(chosen, jobs, strict=True) if job is not None]
    covered = [version.name for version, job in zip(chosen, jobs, strict=True) if job is None]
    if queued:
        messages.success(request, f"Queued evaluation outputs for {', '.join(queued)}; refresh in a minute.")
    if covered:
        messages.info(
            request,
            f"{', '.join(covered)} already has outputs for every evaluation prompt: none sampled again.",
        )
    query = {"project": project.pk, **dict(zip("ab", request.POST.getlist("version"), strict=False))}
    return redirect(f"{reverse('version_compare')}?{urlencode(query)}")


@require_POST
@admins_only
def generation_job_start(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_pk)
    try:
        per_prompt = int(request.POST.get("per_prompt", "1"))
        services.generation_job_create(project=project, per_prompt=per_prompt, created_by=request.user)
    except ValueError as exc:
        messages.error(request, f"Could not start generation: {exc}")
    else:
        messages.success(request, "Generation queued: outputs appear here as the worker produces them.")
    return redirect("project_detail", pk=project.pk)


@require_POST
@admins_only
def generation_job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(GenerationJob, pk=pk)
    cancelled = services.generation_job_cancel(job=job)
    if request.htmx:  # the job's row, now showing its final status
        job.refresh_from_db()
        return render(request, "training/_generation_job.html", {"job": job})
    if cancelled:
        messages.info(request, f"Generation job {job.pk} cancelled; the outputs it wrote are kept.")
    else:
        messages.error(request, f"Generation job {job.pk} had already finished.")
    return redirect("project_detail", pk=job.project_id)


@require_GET
@login_required
def generation_job_status(request: HttpRequest, pk: int) -> HttpResponse:
    # Whoever sees the project page sees its jobs (the row polls this): any role, no-role accounts not.
    roles.require_role(request.user)
    job = get_object_or_404(GenerationJob, pk=pk)
    return render(request, "training/_generation_job.html", {"job": job})

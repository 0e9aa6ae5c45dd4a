"""Evaluation pages: campaigns (admins create), blind judging (annotators), results (researchers)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from annotations import privacy, roles
from annotations.models import Prompt
from annotations.views.access import admin_page

from . import chart, selectors, services
from .forms import CampaignForm
from .models import EvaluationCampaign, PairwiseJudgement


def _require_researcher(request: HttpRequest) -> None:
    if not roles.is_researcher(request.user):
        raise PermissionDenied("Evaluation results are visible to researchers and admins.")


def _campaign_for_judge(request: HttpRequest, pk: int) -> EvaluationCampaign:
    campaign = get_object_or_404(EvaluationCampaign, pk=pk)
    if not services.can_judge(campaign, request.user):
        raise PermissionDenied("You are not a judge of this campaign.")
    return campaign


@login_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = selectors.campaigns_visible(request.user)
    judging = [c for c in campaigns if c.status == c.Status.JUDGING and services.can_judge(c, request.user)]
    if not roles.is_researcher(request.user) and not judging and not roles.is_annotator(request.user):
        raise PermissionDenied
    context = {"campaigns": campaigns if roles.is_researcher(request.user) else [], "judging": judging}
    if roles.is_admin(request.user):
        context["form"] = CampaignForm()
    return render(request, "evaluation/campaign_list.html", context)


@require_POST
@admin_page("Only admins create evaluation campaigns.")
def campaign_create(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST)
    if form.is_valid():
        try:
            campaign = services.campaign_create(
                name=form.cleaned_data["name"],
                project=form.cleaned_data["project"],
                versions=list(form.cleaned_data["versions"]),
                prompt_count=form.cleaned_data["prompt_count"],
                judgements_per_pair=form.cleaned_data["judgements_per_pair"],
                prompt_source=form.cleaned_data["prompt_source"],
                judges=list(form.cleaned_data["judges"]),
                sampling_params=form.sampling_params(),
                seed=form.cleaned_data["seed"],
                created_by=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, "Campaign created: the worker is writing every version's outputs.")
            return redirect("campaign_detail", pk=campaign.pk)
    context = {"campaigns": selectors.campaigns_visible(request.user), "judging": [], "form": form}
    return render(request, "evaluation/campaign_list.html", context, status=400)


@login_required
@vary_on_headers("HX-Request")
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_researcher(request)
    campaign = get_object_or_404(EvaluationCampaign.objects.select_related("project"), pk=pk)
    if request.htmx and request.GET.get("part") == "progress":
        return render(request, "evaluation/_progress.html", {"campaign": campaign})
    results = selectors.campaign_results(campaign)
    context = {
        "campaign": campaign,
        "results": results,
        "charts": [
            c for c in (chart.standings_chart(results.standings), chart.win_rate_chart(results.pairs)) if c
        ],
        "metrics": selectors.version_metrics(campaign),
        "prompt_rows": selectors.prompt_rows(campaign),
        "held_out_ids": selectors.held_out_prompt_ids(campaign),
    }
    return render(request, "evaluation/campaign_detail.html", context)


@login_required
def campaign_prompt(request: HttpRequest, pk: int, prompt_pk: int) -> HttpResponse:
    _require_researcher(request)
    campaign = get_object_or_404(EvaluationCampaign, pk=pk)
    prompt = get_object_or_404(Prompt, pk=prompt_pk, pk__in=campaign.prompts.values("pk"))
    context = {"campaign": campaign, "prompt": prompt, **selectors.prompt_detail(campaign, prompt)}
    for judgement in context["judgements"]:  # judges are annotators: researchers see pseudonyms
        judgement.judge_name = privacy.annotator_name(
            request.user, judgement.judge_id, judgement.judge.get_username()
        )
    return render(request, "evaluation/campaign_prompt.html", context)


@require_POST
@admin_page("Only admins close, cancel or retry campaigns.")
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    campaign = get_object_or_404(EvaluationCampaign, pk=pk)
    actions = {"close": (services.campaign_close, "Campaign closed."),
               "retry": (services.campaign_retry, "Generation queued again; it resumes after the written outputs."),
               "cancel": (services.campaign_cancel, "Cancel requested; the outputs written so far are kept.")}  # fmt: skip
    if action not in actions:
        raise PermissionDenied("Unknown action")
    service, done = actions[action]
    try:
        service(campaign=campaign)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done)
    return redirect("campaign_detail", pk=pk)


@login_required
def campaign_preferences(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """Decisive judgements as JSON lines: ``datasets.load_dataset("json", data_files=...)`` for TRL DPO."""
    _require_researcher(request)
    campaign = get_object_or_404(EvaluationCampaign, pk=pk)
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in selectors.preference_rows(campaign))
    response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-preferences.jsonl"'
    return response


# --- judging -------------------------------------------------------------------------------------
def _judge_context(campaign: EvaluationCampaign, judgement: PairwiseJudgement | None, user) -> dict:
    return {
        "campaign": campaign,
        "judgement": judgement,
        "progress": selectors.judge_progress(campaign, user),
        "verdicts": PairwiseJudgement.Verdict.choices,
    }


@login_required
@vary_on_headers("HX-Request")
def judge(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign_for_judge(request, pk)
    judgement = services.judgement_next(campaign=campaign, judge=request.user)
    template = "evaluation/_judge_task.html" if request.htmx else "evaluation/judge.html"
    return render(request, template, _judge_context(campaign, judgement, request.user))


@require_POST
@login_required
def judgement_submit(request: HttpRequest, pk: int) -> HttpResponse:
    judgement = get_object_or_404(
        PairwiseJudgement.objects.select_related("task__campaign"), pk=pk, judge=request.user
    )
    campaign = judgement.task.campaign
    try:
        services.judgement_submit(
            judgement=judgement,
            judge=request.user,
            verdict=request.POST.get("verdict", ""),
            reason=request.POST.get("reason", ""),
        )
    except ValidationError as exc:
        if request.htmx:
            context = {**_judge_context(campaign, judgement, request.user), "error": " ".join(exc.messages)}
            return render(request, "evaluation/_judge_task.html", context, status=400)
        messages.error(request, " ".join(exc.messages))
        return redirect("campaign_judge", pk=campaign.pk)
    if request.htmx:
        following = services.judgement_next(campaign=campaign, judge=request.user)
        return render(
            request, "evaluation/_judge_task.html", _judge_context(campaign, following, request.user)
        )
    return redirect("campaign_judge", pk=campaign.pk)

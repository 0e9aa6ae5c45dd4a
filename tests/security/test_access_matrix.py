"""Every HTML route and every API operation × every role (annotator, researcher, reviewer, admin, an
account with no role, anonymous), one table. A cell is the answer that role must get:

* ``ok``: let in (any status below 500 that is not a refusal: 2xx, 3xx other than to the login page, or a
  400/409/422 about the request itself);
* ``403`` / ``404``: refused with exactly that status (404 where the object must not be known to exist);
* ``L``: anonymous, sent to the login page (HTML) or answered 401/403 (API);
* ``R``: a redirect to the login page that is the point of the route (logging out).

An entry may carry a form body, so that a refusal cannot hide behind a form error.

Both tables must name every route and operation there is, so a new one cannot slip in untested.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

pytestmark = pytest.mark.django_db
ROLES = ("annotator", "researcher", "reviewer", "admin_user", "nobody", None)
REFUSALS = {401, 403, 404}

# name: (method, path, "annotator researcher reviewer admin nobody anonymous")
HTML = {
    "home": ("get", "/", "ok ok ok ok 403 L"),
    "healthz": ("get", "/healthz", "ok ok ok ok ok ok"),
    "csp_report": ("post", "/csp-report/", "ok ok ok ok ok ok"),  # browsers' CSP reports: logged only
    "login": ("get", "/accounts/login/", "ok ok ok ok ok ok"),
    "logout": ("post", "/accounts/logout/", "R R R R R R"),
    "project_list": ("get", "/projects/", "ok ok ok ok 403 L"),
    "project_detail": ("get", "/projects/{project}/", "ok ok ok ok 403 L"),
    "assignment_next": ("post", "/projects/{project}/next/", "ok 403 403 ok 403 L"),
    "project_progress": ("get", "/projects/{project}/progress/", "403 ok 403 ok 403 L"),
    "queue": ("get", "/queue/", "ok ok ok ok 403 L"),
    "annotate": ("get", "/annotations/{own}/", "ok ok 404 ok 404 L"),
    "annotation_save": ("post", "/annotations/{own}/save/", "ok 403 404 403 404 L"),
    "annotation_submit": ("post", "/annotations/{own}/submit/", "ok 403 404 403 404 L"),
    "annotation_skip": ("post", "/annotations/{own}/skip/", "ok 403 404 403 404 L"),
    "span_create": (
        "post",
        "/annotations/{own}/spans/",
        "ok 403 404 403 404 L",
        {"start": 0, "end": 3, "label": "good"},
    ),
    "span_update": ("post", "/spans/{span}/", "ok 403 404 403 404 L"),
    "span_delete": ("post", "/spans/{span}/delete/", "ok 403 404 403 404 L"),
    "annotation_suggest": ("post", "/annotations/{own}/suggest/", "ok 403 404 403 404 L"),
    "annotation_heatmap": ("get", "/annotations/{own}/heatmap/", "ok ok 404 ok 404 L"),
    "alignment_status": ("get", "/suggestions/{alignment}/", "ok ok 404 ok 404 L"),
    "alignment_decide": ("post", "/suggestions/{alignment}/0/reject/", "ok 403 404 403 404 L"),
    "data_home": ("get", "/data/", "ok ok ok ok ok ok"),  # a bare redirect to the export list
    "data_export_list": ("get", "/data/exports/", "403 ok 403 ok 403 L"),
    "data_export_detail": ("get", "/data/exports/{export}/", "403 ok 403 ok 403 L"),
    "data_export_download": ("get", "/data/exports/{export}/download/", "403 ok 403 ok 403 L"),
    "data_export_again": ("post", "/data/exports/{export}/again/", "403 ok 403 ok 403 L"),
    "data_import": ("get", "/data/import/", "403 403 403 ok 403 L"),
    "data_import_detail": ("get", "/data/import/{import}/", "403 403 403 ok 403 L"),
    "data_import_cancel": ("post", "/data/import/{import}/cancel/", "403 403 403 ok 403 L"),
    "training_home": ("get", "/training/", "403 ok 403 ok 403 L"),
    "round_launch": ("post", "/training/rounds/", "403 403 403 ok 403 L"),
    "round_detail": ("get", "/training/rounds/{round}/", "403 ok 403 ok 403 L"),
    "round_action": ("post", "/training/rounds/{round}/cancel/", "403 403 403 ok 403 L"),
    "version_activate": ("post", "/training/versions/{version}/activate/", "403 403 403 ok 403 L"),
    "version_compare": ("get", "/training/compare/", "403 ok 403 ok 403 L"),
    # a version's page and downloads: researchers and admins (issue 26)
    "version_detail": ("get", "/training/versions/{version}/", "403 ok 403 ok 403 L"),
    "version_download": ("post", "/training/versions/{version}/download/merged/", "403 ok 403 ok 403 L"),
    "download_status": ("get", "/training/downloads/{download}/", "403 ok 403 ok 403 L"),
    "download_file": ("get", "/training/downloads/{download}/file/", "403 ok 403 ok 403 L"),
    # keys of the OpenAI-compatible endpoint: researchers and admins, each their own (the key is the researcher's)
    "api_key_list": ("get", "/training/api-keys/", "403 ok 403 ok 403 L"),
    "api_key_revoke": ("post", "/training/api-keys/{api_key}/revoke/", "403 ok 403 404 403 L"),
    "playground": ("get", "/training/playground/", "403 ok 403 ok 403 L"),
    "playground_send": ("post", "/training/playground/send/", "403 ok 403 ok 403 L"),
    "version_compare_generate": (
        "post",
        "/training/compare/generate/",
        "403 403 403 ok 403 L",
        {"project": "{project}"},
    ),
    "generation_job_start": ("post", "/projects/{project}/generate/", "403 403 403 ok 403 L"),
    "generation_job_status": ("get", "/generation-jobs/{job}/", "ok ok ok ok 403 L"),
    "generation_job_cancel": ("post", "/generation-jobs/{job}/cancel/", "403 403 403 ok 403 L"),
    "api-schema": ("get", "/api/v1/schema/", "ok ok ok ok ok ok"),  # the published API description
    "api-docs": ("get", "/api/v1/docs/", "ok ok ok ok ok ok"),
    "api-root": ("get", "/api/v1/", "ok ok ok ok 403 L"),
    "audit_event_list": ("get", "/audit/", "403 403 403 ok 403 L"),
    "admin:index": ("get", "/admin/", "L L L ok L L"),  # Django's admin: staff only, else its login page
    "session_token": ("get", "/session/token/", "ok ok ok ok ok L"),  # the caller's own CSRF token
    # review: reviewers and admins review; agreement is read by researchers, reviewers and admins (as in
    # the API); each their own verdicts
    "review_queue": ("get", "/projects/{project}/review/", "403 403 ok ok 403 L"),
    "review_next": ("get", "/projects/{project}/review/next/", "403 403 ok ok 403 L"),
    "project_agreement": ("get", "/projects/{project}/agreement/", "403 ok ok ok 403 L"),
    "review_output": ("get", "/review/outputs/{generation}/", "403 403 ok ok 403 L"),
    "review_gold": (
        "post",
        "/review/outputs/{generation}/gold/",
        "403 403 ok ok 403 L",
        {"spans": "[]", "overall_critique": "Checked against the prompt."},
    ),
    "review_verdict": (
        "post",
        "/review/annotations/{own}/",
        "403 403 ok ok 403 L",
        {"verdict": "accepted", "comment": "fine"},
    ),
    "my_reviews": ("get", "/my/reviews/", "ok ok ok ok 403 L"),
    # evaluation: admins create and close, annotators judge blind, researchers read results
    "campaign_list": ("get", "/evaluation/", "ok ok 403 ok 403 L"),
    "campaign_create": ("post", "/evaluation/new/", "403 403 403 ok 403 L"),
    "campaign_detail": ("get", "/evaluation/{campaign}/", "403 ok 403 ok 403 L"),
    "campaign_prompt": (
        "get",
        "/evaluation/{campaign}/prompts/{campaign_prompt}/",
        "403 ok 403 ok 403 L",
    ),
    "campaign_preferences": ("get", "/evaluation/{campaign}/preferences.jsonl", "403 ok 403 ok 403 L"),
    "campaign_judge": ("get", "/evaluation/{campaign}/judge/", "ok 403 403 ok 403 L"),
    "judgement_submit": (  # the annotator's own lease; anyone else's is a 404
        "post",
        "/evaluation/judgements/{judgement}/",
        "ok 404 404 404 404 L",
        {"verdict": "a"},
    ),
    "campaign_action": ("post", "/evaluation/{campaign}/close/", "403 403 403 ok 403 L"),
    # the span critic: researchers look, admins act; suggestions follow the annotation's access rule
    "critic_home": ("get", "/projects/{project}/critic/", "403 ok 403 ok 403 L"),
    "critic_train": ("post", "/projects/{project}/critic/train/", "403 403 403 ok 403 L"),
    "critic_deactivate": ("post", "/projects/{project}/critic/deactivate/", "403 403 403 ok 403 L"),
    "critic_settings": (
        "post",
        "/projects/{project}/critic/settings/",
        "403 403 403 ok 403 L",
        {"queue_order": "uncertainty"},
    ),
    "on_policy_launch": ("post", "/projects/{project}/on-policy/", "403 403 403 ok 403 L"),
    "critic_activate": ("post", "/critics/{critic}/activate/", "403 403 403 ok 403 L"),
    "critic_job_status": ("get", "/critic-jobs/{critic_job}/", "403 ok 403 ok 403 L"),
    "critic_job_cancel": ("post", "/critic-jobs/{critic_job}/cancel/", "403 403 403 ok 403 L"),
    # machine critics (issue 27): admins configure, run and cancel; the drafts are reviewed as above
    "machine_critics": ("get", "/projects/{project}/machine-critics/", "403 403 403 ok 403 L"),
    "machine_critic_configure": (
        "post",
        "/projects/{project}/machine-critics/configure/",
        "403 403 403 ok 403 L",
        {"name": "unit-tests", "critic_settings": "{{}}", "enabled": "on"},
    ),
    "machine_critic_run": ("post", "/machine-critics/{machine_config}/run/", "403 403 403 ok 403 L"),
    "machine_critic_cancel": ("post", "/machine-critics/runs/{machine_job}/cancel/", "403 403 403 ok 403 L"),
    "critic_prediction_cancel": (
        "post",
        "/critic-predictions/{critic_prediction}/cancel/",
        "403 403 403 ok 403 L",
    ),
    "annotation_critic_suggestions": (  # readers get 204: only the author's own draft is suggested to
        "post",
        "/annotations/{own}/critic-suggestions/",
        "ok ok 404 ok 404 L",
    ),
    # integrations: admins alone manage ingest keys and webhooks
    "project_integrations": ("get", "/projects/{project}/integrations/", "403 403 403 ok 403 L"),
    "ingest_key_revoke": ("post", "/ingest-keys/{ingest_key}/revoke/", "403 403 403 ok 403 L"),
    "webhook_list": ("get", "/webhooks/", "403 403 403 ok 403 L"),
    "webhook_detail": ("get", "/webhooks/{webhook}/", "403 403 403 ok 403 L"),
    "webhook_action": ("post", "/webhooks/{webhook}/pause/", "403 403 403 ok 403 L"),
    "webhook_redeliver": ("post", "/webhook-deliveries/{delivery}/redeliver/", "403 403 403 ok 403 L"),
}

# (METHOD, schema path): "annotator researcher reviewer admin nobody anonymous"
API = {
    ("GET", "/api/v1/annotations/"): "ok ok ok ok 403 L",
    ("GET", "/api/v1/annotations/{id}/"): "ok ok 404 ok 403 L",
    ("PATCH", "/api/v1/annotations/{id}/"): "ok 403 403 403 403 L",
    ("POST", "/api/v1/annotations/{id}/submit/"): "ok 403 403 403 403 L",
    ("POST", "/api/v1/auth/token/"): "ok ok ok ok ok ok",
    ("GET", "/api/v1/exports/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/exports/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/exports/{id}/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/exports/{id}/download/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/generations/"): "ok ok ok ok 403 L",
    ("GET", "/api/v1/imports/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/imports/{id}/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/imports/{id}/cancel/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/generations/{id}/"): "ok ok ok ok 403 L",
    ("GET", "/api/v1/me/"): "ok ok ok ok ok L",
    ("GET", "/api/v1/model-versions/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/model-versions/{id}/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/model-versions/{id}/activate/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/model-versions/{id}/downloads/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/model-versions/{id}/card/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/model-downloads/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/model-downloads/{id}/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/model-downloads/{id}/file/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/projects/"): "ok ok ok ok 403 L",
    ("POST", "/api/v1/projects/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/projects/{id}/"): "ok ok ok ok 403 L",
    ("PUT", "/api/v1/projects/{id}/"): "403 403 403 ok 403 L",
    ("PATCH", "/api/v1/projects/{id}/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/projects/{id}/import/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/projects/{id}/next/"): "ok 403 403 ok 403 L",
    ("GET", "/api/v1/prompts/"): "ok ok ok ok 403 L",
    ("POST", "/api/v1/prompts/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/prompts/{id}/"): "ok ok ok ok 403 L",
    ("GET", "/api/v1/token-rewards/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/token-rewards/{id}/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/training-rounds/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/training-rounds/{id}/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/training-rounds/{id}/metrics/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/training-rounds/{id}/snapshot/"): "403 ok 403 ok 403 L",
    # automation: researchers read, admins launch, cancel and resume
    ("POST", "/api/v1/training-rounds/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/training-rounds/{id}/cancel/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/training-rounds/{id}/resume/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/generation-jobs/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/generation-jobs/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/generation-jobs/{id}/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/generation-jobs/{id}/cancel/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/generation-jobs/{id}/resume/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/critic-jobs/{id}/resume/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/evaluation-campaigns/{id}/cancel/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/evaluation-campaigns/{id}/resume/"): "403 403 403 ok 403 L",
    # outputs from production: only a project ingest key opens it, never a user's token
    ("POST", "/api/v1/projects/{id}/outputs/"): "401 401 401 401 401 L",
    # webhooks by API: admins only
    ("GET", "/api/v1/webhooks/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/webhooks/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/webhooks/{id}/"): "403 403 403 ok 403 L",
    ("PATCH", "/api/v1/webhooks/{id}/"): "403 403 403 ok 403 L",
    ("DELETE", "/api/v1/webhooks/{id}/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/webhooks/{id}/deliveries/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/webhooks/{id}/ping/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/webhook-deliveries/{id}/redeliver/"): "403 403 403 ok 403 L",
    # the span critic: researchers read versions and jobs, admins activate, roll back, launch and cancel
    ("GET", "/api/v1/critic-versions/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/critic-versions/{id}/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/critic-versions/{id}/activate/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/critic-versions/{id}/deactivate/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/critic-versions/{id}/snapshot/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/critic-jobs/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/critic-jobs/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/critic-jobs/{id}/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/critic-jobs/{id}/cancel/"): "403 403 403 ok 403 L",
    # machine critics by API: admins only (configs, runs: launch, follow, cancel)
    ("GET", "/api/v1/machine-critics/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/machine-critics/{id}/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/machine-critic-jobs/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/machine-critic-jobs/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/machine-critic-jobs/{id}/"): "403 403 403 ok 403 L",
    ("POST", "/api/v1/machine-critic-jobs/{id}/cancel/"): "403 403 403 ok 403 L",
    # review and agreement: annotators read the verdicts on their own work only, never agreement or gold
    ("GET", "/api/v1/reviews/"): "ok ok ok ok 403 L",
    ("GET", "/api/v1/reviews/{id}/"): "ok ok ok ok 403 L",
    ("POST", "/api/v1/reviews/"): "403 403 ok ok 403 L",
    ("GET", "/api/v1/agreement/"): "403 ok ok ok 403 L",
    ("GET", "/api/v1/agreement/{generation}/"): "403 ok ok ok 403 L",
    ("GET", "/api/v1/projects/{id}/agreement/"): "403 ok ok ok 403 L",
    ("GET", "/api/v1/generations/{id}/gold/"): "403 ok ok ok 403 L",
    ("PUT", "/api/v1/generations/{id}/gold/"): "403 403 ok ok 403 L",
    ("DELETE", "/api/v1/generations/{id}/gold/"): "403 403 403 ok 403 L",  # admins only remove gold
    # evaluation campaigns: researchers read, admins create
    ("GET", "/api/v1/evaluation-campaigns/"): "403 ok 403 ok 403 L",
    ("POST", "/api/v1/evaluation-campaigns/"): "403 403 403 ok 403 L",
    ("GET", "/api/v1/evaluation-campaigns/{id}/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/evaluation-campaigns/{id}/results/"): "403 ok 403 ok 403 L",
    ("GET", "/api/v1/evaluation-campaigns/{id}/preferences/"): "403 ok 403 ok 403 L",
}
API_IDS = {  # which object each {id} (or {generation}) is
    "agreement": "agreed",
    "critic-jobs": "critic_job",
    "critic-versions": "critic",
    "annotations": "own",
    "evaluation-campaigns": "campaign",
    "exports": "export",
    "generation-jobs": "job",
    "generations": "generation",
    "imports": "import",
    "machine-critics": "machine_config",
    "machine-critic-jobs": "machine_job",
    "model-downloads": "download",
    "model-versions": "version",
    "projects": "project",
    "prompts": "prompt",
    "reviews": "review",
    "token-rewards": "reward",
    "training-rounds": "round",
    "webhooks": "webhook",
    "webhook-deliveries": "delivery",
}


@pytest.fixture
def world(feedback, annotator, researcher, reviewer, admin_user):
    """One of everything: the annotator's own annotation (with a span and a lease), a finished export by
    the researcher, a training round, a generation job and a suggestion; a reviewer's verdict on the
    annotator's work, a gold annotation and an output's agreement; an evaluation campaign being judged
    (the annotator judged one pair and holds the other); a critic version and a critic job; an audit event."""
    from annotations import services
    from annotations.exports import jobs as export_jobs
    from annotations.models import Assignment
    from annotations.services.agreement import agreement_refresh
    from audit.services import audit_record
    from evaluation import services as evaluation_services
    from evaluation.models import EvaluationOutput
    from training.models import (
        AlignmentRequest,
        CriticPredictionJob,
        CriticTrainingJob,
        CriticVersion,
        GenerationJob,
        ModelDownload,
        TrainingRound,
    )

    own = feedback.annotations["a1"]
    Assignment.objects.create(
        generation=own.generation,
        annotator=annotator,
        status=Assignment.Status.COMPLETED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    export = export_jobs.export_create(kind="spans", fmt="jsonl", created_by=researcher, enqueue=False)
    export_jobs.export_run(export_id=export.pk)
    from annotations.models import PromptImport

    prompt_import = PromptImport.objects.create(
        project=feedback.project, format="jsonl", created_by=admin_user
    )
    training_round = TrainingRound.objects.create(project=feedback.project, base_version=feedback.v0)
    job = GenerationJob.objects.create(project=feedback.project, model_version=feedback.v0)
    alignment = AlignmentRequest.objects.create(annotation=own, critique="names the cat")

    review = services.review_set(annotation=own, reviewer=reviewer, verdict="accepted", comment="good")
    services.gold_save(
        generation=own.generation,
        reviewer=reviewer,
        spans=[{"start": 4, "end": 7, "text": "cat", "label": "good", "critique": "names the cat"}],
        overall_critique="Faithful.",
    )
    agreed = feedback.annotations["a2"].generation_id  # two submitted annotations: measured
    agreement_refresh(generation_ids=[agreed])

    campaign = evaluation_services.campaign_create(
        name="Matrix check",
        project=feedback.project,
        versions=[feedback.v0, feedback.v1],
        prompt_count=2,
        prompt_source="all",
        created_by=admin_user,
    )
    for prompt in campaign.prompts.all():
        for version in (feedback.v0, feedback.v1):
            EvaluationOutput.objects.create(
                campaign=campaign, prompt=prompt, model_version=version, text=f"{version.name} answer"
            )
    evaluation_services.campaign_outputs_ready(campaign=campaign)
    judged = evaluation_services.judgement_next(campaign=campaign, judge=annotator)
    evaluation_services.judgement_submit(judgement=judged, judge=annotator, verdict="a", reason="shorter")
    judgement = evaluation_services.judgement_next(campaign=campaign, judge=annotator)
    assert judgement is not None

    critic = CriticVersion.objects.create(
        project=feedback.project, name="critic-1", base_model="tiny", adapter_path="critic-1"
    )
    critic_job = CriticTrainingJob.objects.create(project=feedback.project, created_by=admin_user)
    from annotations.models import MachineCriticConfig, MachineCriticJob

    machine_config = MachineCriticConfig.objects.create(project=feedback.project, name="unit-tests")
    machine_job = MachineCriticJob.objects.create(
        project=feedback.project, config=machine_config, critic={"name": "unit-tests"}
    )
    critic_prediction = CriticPredictionJob.objects.create(
        critic_version=critic, generation_ids=[own.generation_id]
    )
    audit_record(action="matrix.check", actor=admin_user, obj=feedback.project)
    download = ModelDownload.objects.create(version=feedback.v1, kind="merged", card_hash="0" * 64)
    from training.services.api_keys import api_key_create

    api_key, _ = api_key_create(user=researcher, name="matrix", projects=[feedback.project])
    from annotations import webhooks
    from annotations.services import ingest

    ingest_key, _ = ingest.ingest_key_create(project=feedback.project, name="matrix")
    webhook = webhooks.webhook_create(url="http://127.0.0.1:9/hook", events=["export.ready"])
    webhooks.webhook_event_emit(event="export.ready", data={"export": {"id": export.pk}})
    return {
        "ingest_key": ingest_key.pk,
        "webhook": webhook.pk,
        "delivery": webhook.deliveries.get().pk,
        "project": feedback.project.pk,
        "own": own.pk,
        "span": own.spans.first().pk,
        "export": export.pk,
        "import": prompt_import.pk,
        "round": training_round.pk,
        "version": feedback.v1.pk,
        "job": job.pk,
        "alignment": alignment.pk,
        "generation": own.generation_id,
        "prompt": own.generation.prompt_id,
        "reward": feedback.rewards[0].pk,
        "review": review.pk,
        "agreed": agreed,
        "campaign": campaign.pk,
        "campaign_prompt": judged.task.prompt_id,
        "judgement": judgement.pk,
        "critic": critic.pk,
        "critic_job": critic_job.pk,
        "machine_config": machine_config.pk,
        "machine_job": machine_job.pk,
        "critic_prediction": critic_prediction.pk,
        "download": download.pk,
        "api_key": api_key.pk,
    }


def _check(response, expected: str, *, api: bool) -> str | None:
    """None if the answer is the expected one, else what went wrong."""
    code = response.status_code
    location = response.get("Location", "")
    to_login = code == 302 and "login" in location
    if code >= 500:
        return f"server error {code}"
    if expected == "ok":
        if code in REFUSALS or to_login:
            return f"refused with {code} {location}"
        return None
    if expected == "R":
        return None if to_login else f"{code} {location} (not sent to the login page)"
    if expected == "L":
        return (
            None if (to_login or (api and code in (401, 403))) else f"{code} {location} (not sent to log in)"
        )
    return None if code == int(expected) else f"{code} instead of {expected}"


def _named_routes() -> set[str]:
    names = set()

    def walk(patterns, namespace=""):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, f"{entry.namespace}:" if entry.namespace else namespace)
            elif isinstance(entry, URLPattern) and entry.name:
                names.add(namespace + entry.name)

    walk(get_resolver().url_patterns)
    return names


def test_the_tables_cover_every_route_and_operation():
    from drf_spectacular.generators import SchemaGenerator

    routed = {name for name in _named_routes() if not name.startswith("admin:")}
    routed = {name for name in routed if not name.startswith("api-") or name in HTML}
    assert routed - set(HTML) == set(), "routes missing from the HTML table"
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert operations == set(API)


@pytest.mark.parametrize("name", sorted(HTML))
def test_html_route_by_role(name, request, client, world):
    method, template, cells, *body = HTML[name]
    path = template.format(**world)
    data = {key: str(value).format(**world) for key, value in (body[0] if body else {}).items()}
    wrong = {}
    for role, expected in zip(ROLES, cells.split(), strict=True):
        client.logout()
        if role is not None:
            client.force_login(request.getfixturevalue(role))
        response = getattr(client, method)(path, data)
        problem = _check(response, expected, api=name.startswith("api-"))
        if problem:
            wrong[role or "anonymous"] = problem
    assert wrong == {}, f"{method.upper()} {path}"


@pytest.mark.parametrize("operation", sorted(API), ids=lambda op: f"{op[0]} {op[1]}")
def test_api_operation_by_role(operation, request, api, world):
    method, template = operation
    resource = template.split("/")[3]
    path = re.sub(r"\{\w+\}", str(world[API_IDS.get(resource, "project")]), template)
    wrong = {}
    for role, expected in zip(ROLES, API[operation].split(), strict=True):
        client = api(request.getfixturevalue(role) if role else None)
        response = (
            getattr(client, method.lower())(path, {}, format="json") if method != "GET" else client.get(path)
        )
        problem = _check(response, expected, api=True)
        if problem:
            wrong[role or "anonymous"] = problem
    assert wrong == {}, f"{method} {path}"


def test_campaign_prompt_names_judges_by_pseudonym(client, world, annotator, researcher, admin_user):
    """Judges are annotators: a researcher sees the export pseudonym, an admin the username."""
    from annotations.exports import pseudonym

    path = "/evaluation/{campaign}/prompts/{campaign_prompt}/".format(**world)
    client.force_login(researcher)
    page = client.get(path).content.decode()
    assert pseudonym(annotator.pk) in page and annotator.username not in page
    client.force_login(admin_user)
    assert annotator.username in client.get(path).content.decode()


# Admin-only pages gated elsewhere, and why: the audit log lets in whoever holds ``audit.view_auditevent``
# (a permission, not the admin role), and ``audit`` sits below ``annotations``.
OTHER_GATES = {"audit_event_list"}


def test_every_admins_only_page_goes_through_the_one_gate():
    """One gate (``annotations.views.access.admin_page``) for every page the table says only admins open:
    anonymous visitors go to log in, every other role gets 403 (the table above checks the answers)."""
    from django.urls import resolve

    admins_only = {
        name: path for name, (_, path, cells, *_) in HTML.items() if cells == "403 403 403 ok 403 L"
    }
    assert len(admins_only) >= 29
    ungated = sorted(
        name
        for name, path in admins_only.items()
        if name not in OTHER_GATES
        and not getattr(resolve(re.sub(r"\{\w+\}", "1", path)).func, "admin_page", None)
    )
    assert ungated == []

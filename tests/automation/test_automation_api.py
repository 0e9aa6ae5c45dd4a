"""The REST API launches, cancels and resumes training rounds, generation jobs, critic jobs and evaluation
campaigns through the pages' services, with the pages' permissions (admins change, researchers read)."""

from __future__ import annotations

import pytest

from jobs.models import Outbox

pytestmark = pytest.mark.django_db


def _queued(task_name: str, pk: int) -> int:
    return Outbox.objects.filter(task_name=task_name, args=[pk]).count()


def test_admin_launches_cancels_and_resumes_a_round(api, feedback, admin_user, researcher, annotator):
    from training.models import TrainingRound

    body = {"mode": "token", "selection": {"project_id": feedback.project.pk}, "config": {"steps": 2}}
    assert api(researcher).post("/api/v1/training-rounds/", body, format="json").status_code == 403
    assert api(annotator).post("/api/v1/training-rounds/", body, format="json").status_code == 403
    client = api(admin_user)
    created = client.post("/api/v1/training-rounds/", body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    row = TrainingRound.objects.get(pk=data["id"])
    assert (data["status"], data["mode"], row.created_by_id) == ("queued", "token", admin_user.pk)
    assert data["snapshot_size"] == len(row.snapshot) > 0 and row.config["steps"] == 2
    assert _queued("training.train_round", row.pk) == 1

    assert api(researcher).post(f"/api/v1/training-rounds/{row.pk}/cancel/").status_code == 403
    cancelled = client.post(f"/api/v1/training-rounds/{row.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/training-rounds/{row.pk}/cancel/")
    assert again.status_code == 409 and "already finished" in again.json()["detail"]

    resumed = client.post(f"/api/v1/training-rounds/{row.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert _queued("training.train_round", row.pk) == 2
    not_again = client.post(f"/api/v1/training-rounds/{row.pk}/resume/")
    assert not_again.status_code == 409 and "failed or cancelled" in not_again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "sideways"}, "mode"),
        ({"selection": {"review": "maybe"}}, "selection"),
        ({"selection": {"exclude_annotators": 5}}, "selection"),
        ({"selection": {"project_id": [1]}}, "selection"),
        ({"selection": {"since": {}}}, "selection"),
        ({"selection": {"colour": "red"}}, "selection"),
        ({"selection": "all"}, "selection"),
        ({"config": {"steps": "many"}}, "detail"),
        ({"config": {"steps": -3}}, "detail"),
        ({"selection": {"project_id": 10**9}}, "detail"),  # matches nothing: nothing to train on
        ({"mode": "on_policy"}, "project"),
    ],
)
def test_bad_round_launches_are_400_naming_the_field(api, feedback, admin_user, body, field):
    from training.models import TrainingRound

    response = api(admin_user).post("/api/v1/training-rounds/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not TrainingRound.objects.exists()


def test_admin_launches_cancels_and_resumes_a_generation_job(api, feedback, admin_user, researcher):
    from training.models import GenerationJob

    prompt_ids = list(feedback.project.prompts.values_list("pk", flat=True))
    body = {
        "project": feedback.project.pk,
        "per_prompt": 2,
        "prompt_ids": prompt_ids,
        "model_version": feedback.v1.pk,
        "sampling_params": {"temperature": 0.7, "seed": 5},
    }
    assert api(researcher).post("/api/v1/generation-jobs/", body, format="json").status_code == 403
    client = api(admin_user)
    created = client.post("/api/v1/generation-jobs/", body, format="json")
    assert created.status_code == 201, created.content
    job = GenerationJob.objects.get(pk=created.json()["id"])
    assert (job.per_prompt, job.model_version_id, job.prompt_ids) == (2, feedback.v1.pk, sorted(prompt_ids))
    assert job.sampling_params == {"temperature": 0.7, "seed": 5}
    assert _queued("training.generate", job.pk) == 1
    listed = api(researcher).get("/api/v1/generation-jobs/", {"project": feedback.project.pk}).json()
    assert [row["id"] for row in listed["results"]] == [job.pk]

    assert client.post(f"/api/v1/generation-jobs/{job.pk}/resume/").status_code == 409  # still queued
    cancelled = client.post(f"/api/v1/generation-jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/generation-jobs/{job.pk}/cancel/").status_code == 409
    resumed = client.post(f"/api/v1/generation-jobs/{job.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    job.refresh_from_db()
    assert job.cancel_requested is False and _queued("training.generate", job.pk) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"per_prompt": 17}, "per_prompt"),
        ({"sampling_params": {"temperature": "hot"}}, "sampling_params"),
        ({"sampling_params": {"top_k": 3}}, "sampling_params"),
        ({"sampling_params": {"max_new_tokens": 100000}}, "sampling_params"),
        ({"prompt_ids": "other"}, "prompt_ids"),
        ({"model_version": 10**9}, "model_version"),
    ],
)
def test_bad_generation_jobs_are_400(api, feedback, admin_user, change, field):
    from training.models import GenerationJob

    body = {"project": feedback.project.pk, **change}
    if change.get("prompt_ids") == "other":  # a prompt of another project
        body["prompt_ids"] = list(feedback.other_project.prompts.values_list("pk", flat=True))
    response = api(admin_user).post("/api/v1/generation-jobs/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not GenerationJob.objects.exists()


def test_admin_resumes_a_failed_critic_job_on_its_snapshot(api, feedback, admin_user, researcher):
    from training.models import CriticTrainingJob

    job = CriticTrainingJob.objects.create(
        project=feedback.project, snapshot=[1, 2], snapshot_hash="h", status="failed", error="boom"
    )
    assert api(researcher).post(f"/api/v1/critic-jobs/{job.pk}/resume/").status_code == 403
    resumed = api(admin_user).post(f"/api/v1/critic-jobs/{job.pk}/resume/")
    assert resumed.status_code == 200, resumed.content
    assert (resumed.json()["status"], resumed.json()["error"], resumed.json()["snapshot_hash"]) == (
        "queued",
        "",
        "h",
    )
    assert _queued("training.train_critic", job.pk) == 1
    assert api(admin_user).post(f"/api/v1/critic-jobs/{job.pk}/resume/").status_code == 409


def test_admin_resumes_a_failed_campaign_and_cancels_judging(api, feedback, admin_user, researcher):
    from evaluation.models import EvaluationCampaign

    campaign = EvaluationCampaign.objects.create(name="c", project=feedback.project, status="failed")
    assert api(researcher).post(f"/api/v1/evaluation-campaigns/{campaign.pk}/resume/").status_code == 403
    client = api(admin_user)
    assert client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/cancel/").status_code == 409
    resumed = client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "generating"
    assert _queued("training.evaluation_generate", campaign.generations.latest("created_at").pk) == 1
    EvaluationCampaign.objects.filter(pk=campaign.pk).update(status="judging")
    closed = client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/cancel/")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/resume/").status_code == 409


def test_admin_cancels_a_campaign_while_its_outputs_are_written(api, feedback, admin_user, researcher):
    from evaluation.models import CampaignGeneration, EvaluationCampaign

    campaign = EvaluationCampaign.objects.create(name="c", project=feedback.project, status="failed")
    client = api(admin_user)
    assert client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/resume/").json()["status"] == "generating"
    queued = campaign.generations.latest("created_at")
    assert api(researcher).post(f"/api/v1/evaluation-campaigns/{campaign.pk}/cancel/").status_code == 403
    cancelled = client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/cancel/")
    assert (
        cancelled.status_code == 200 and cancelled.json()["status"] == "failed"
    )  # a queued job ends at once
    queued.refresh_from_db()
    assert queued.status == CampaignGeneration.Status.CANCELLED
    assert client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/cancel/").status_code == 409

    client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/resume/")
    running = campaign.generations.latest("created_at")
    CampaignGeneration.objects.filter(pk=running.pk).update(status=CampaignGeneration.Status.RUNNING)
    asked = client.post(f"/api/v1/evaluation-campaigns/{campaign.pk}/cancel/")
    assert asked.status_code == 200 and asked.json()["status"] == "generating"  # stops at its next chunk
    running.refresh_from_db()
    assert running.cancel_requested is True and running.status == CampaignGeneration.Status.RUNNING


def test_admin_runs_follows_and_cancels_machine_critics(api, feedback, admin_user, researcher, annotator):
    from annotations.models import Generation, MachineCriticJob
    from annotations.services import machine as machine_services

    config = machine_services.machine_critic_configure(project=feedback.project, name="reference")
    other = machine_services.machine_critic_configure(project=feedback.other_project, name="unit-tests")
    for user in (researcher, annotator):  # refused before any lookup: ids tell them nothing
        assert api(user).get("/api/v1/machine-critics/").status_code == 403
        assert api(user).post("/api/v1/machine-critic-jobs/", {"config": config.pk}).status_code == 403
    client = api(admin_user)
    listed = client.get(f"/api/v1/machine-critics/?project={feedback.project.pk}").json()["results"]
    assert [(c["id"], c["name"], c["enabled"]) for c in listed] == [(config.pk, "reference", True)]

    created = client.post("/api/v1/machine-critic-jobs/", {"config": config.pk}, format="json")
    assert created.status_code == 201, created.content
    job = created.json()
    outputs = machine_services.machine_critic_outputs(feedback.project)
    assert (job["status"], job["project"], job["outputs"], job["critic"]["name"]) == (
        "queued", feedback.project.pk, len(outputs), "reference",
    )  # fmt: skip
    assert _queued("annotations.machine_critic_run", job["id"]) == 1
    assert MachineCriticJob.objects.get(pk=job["id"]).created_by == admin_user
    for user in (researcher, annotator):
        assert api(user).get(f"/api/v1/machine-critic-jobs/{job['id']}/").status_code == 403
        assert api(user).post(f"/api/v1/machine-critic-jobs/{job['id']}/cancel/").status_code == 403
    status = client.get(f"/api/v1/machine-critic-jobs/{job['id']}/")
    assert status.status_code == 200 and status.json()["progress_total"] == len(outputs)

    # Another project's output and an id that does not exist are refused alike (nothing leaks).
    foreign = Generation.objects.filter(prompt__project=feedback.other_project).first().pk
    answers = [
        client.post(
            "/api/v1/machine-critic-jobs/", {"config": config.pk, "generation_ids": [pk]}, format="json"
        )
        for pk in (foreign, 10**9)
    ]
    assert [a.status_code for a in answers] == [400, 400] and answers[0].json() == answers[1].json()
    only = client.post(
        "/api/v1/machine-critic-jobs/", {"config": config.pk, "generation_ids": outputs[:1]}, format="json"
    )
    assert only.status_code == 201 and only.json()["outputs"] == 1
    assert client.post("/api/v1/machine-critic-jobs/", {"config": 10**9}, format="json").json()["config"]
    machine_services.machine_critic_configure(
        project=feedback.other_project, name="unit-tests", enabled=False
    )
    disabled = client.post("/api/v1/machine-critic-jobs/", {"config": other.pk}, format="json")
    assert disabled.status_code == 400 and "disabled" in disabled.json()["detail"][0]

    cancelled = client.post(f"/api/v1/machine-critic-jobs/{job['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/machine-critic-jobs/{job['id']}/cancel/")
    assert again.status_code == 409 and "already finished" in again.json()["detail"]
    assert client.get("/api/v1/machine-critic-jobs/999999/").status_code == 404
    mine = client.get(f"/api/v1/machine-critic-jobs/?project={feedback.project.pk}&status=cancelled").json()
    assert [row["id"] for row in mine["results"]] == [job["id"]]

"""The critic REST API: critic versions (metrics, lineage, snapshot; activate, roll back, deactivate) and
critic training jobs (launch, cancel), with the model-version API's rules: researchers read, admins write.
Bad input (another project's critic, bad ids, bad settings, format suffixes) is a 4xx, never a 500."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotations.models import Annotation, Generation, Prompt, Span
from training.models import CriticTrainingJob, CriticVersion

pytestmark = pytest.mark.django_db

METRICS = {"reports": {"critic": {"labels": {"poor": {"f1": 0.9, "auroc": 0.99}}}}, "train_outputs": 4}


@pytest.fixture
def critics(feedback, annotator2):
    """Five submitted annotations in the main project; two critics there (the second a child of the
    first), one active critic in the other project."""
    for n in range(5):
        prompt = Prompt.objects.create(project=feedback.project, text=f"Summarize item {n}.")
        generation = Generation.objects.create(prompt=prompt, text=f"Item {n} happened in 19{n}9.")
        annotation = Annotation.objects.create(
            generation=generation, annotator=annotator2, status="submitted", submitted_at=timezone.now()
        )
        Span.objects.create(annotation=annotation, start=20, end=24, text=generation.text[20:24], label="poor",
                            polarity=-1)  # fmt: skip
    first = CriticVersion.objects.create(
        project=feedback.project, name="critic-a", base_model="tiny", adapter_path="critics/a",
        snapshot=[3, 1, 2], snapshot_hash="h-a", metrics=METRICS, config={"epochs": 3},
    )  # fmt: skip
    second = CriticVersion.objects.create(
        project=feedback.project, name="critic-b", base_model="tiny", adapter_path="critics/b",
        parent=first, snapshot=[1, 2, 3, 4], snapshot_hash="h-b", metrics=METRICS,
    )  # fmt: skip
    other = CriticVersion.objects.create(
        project=feedback.other_project, name="critic-o", base_model="tiny", adapter_path="critics/o",
        is_active=True, activated_at=timezone.now(),
    )  # fmt: skip
    return first, second, other


def test_researchers_read_critic_versions_with_metrics_and_lineage(api, feedback, researcher, critics):
    first, second, other = critics
    client = api(researcher)
    listed = client.get("/api/v1/critic-versions/", {"project": feedback.project.pk})
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [second.pk, first.pk]
    detail = client.get(f"/api/v1/critic-versions/{second.pk}/").json()
    assert (detail["parent"], detail["project"], detail["snapshot_size"]) == (
        first.pk,
        feedback.project.pk,
        4,
    )
    assert detail["metrics"]["reports"]["critic"]["labels"]["poor"]["f1"] == 0.9
    assert detail["suggestions"]["proposals"] == 0 and detail["suggestions"]["acceptance_rate"] is None
    snapshot = client.get(f"/api/v1/critic-versions/{first.pk}/snapshot/").json()
    assert snapshot == {"id": first.pk, "snapshot_hash": "h-a", "snapshot": [3, 1, 2]}
    children = client.get("/api/v1/critic-versions/", {"parent": first.pk}).json()["results"]
    assert [row["id"] for row in children] == [second.pk]
    active = client.get("/api/v1/critic-versions/", {"is_active": "true"}).json()["results"]
    assert [row["id"] for row in active] == [other.pk]
    # Researchers change nothing.
    for path in (
        f"/api/v1/critic-versions/{first.pk}/activate/",
        f"/api/v1/critic-versions/{other.pk}/deactivate/",
    ):
        assert client.post(path, {}, format="json").status_code == 403
    assert (
        CriticVersion.objects.get(pk=other.pk).is_active
        and not CriticVersion.objects.get(pk=first.pk).is_active
    )


def test_admin_activates_rolls_back_and_deactivates_per_project(api, feedback, admin_user, critics):
    first, second, other = critics
    client = api(admin_user)
    response = client.post(f"/api/v1/critic-versions/{second.pk}/activate/", {}, format="json")
    assert response.status_code == 200 and response.json()["is_active"] is True
    rolled_back = client.post(f"/api/v1/critic-versions/{first.pk}/activate/", {}, format="json").json()
    assert rolled_back["is_active"] is True and rolled_back["activated_at"]
    active = set(CriticVersion.objects.filter(is_active=True).values_list("pk", flat=True))
    assert active == {first.pk, other.pk}  # one per project: the other project's critic is untouched
    assert (
        client.post(f"/api/v1/critic-versions/{second.pk}/deactivate/", {}, format="json").status_code == 409
    )
    response = client.post(f"/api/v1/critic-versions/{first.pk}/deactivate/", {}, format="json")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert set(CriticVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == {other.pk}


def test_admin_launches_and_cancels_a_critic_job(api, feedback, admin_user, researcher, critics):
    first, second, _ = critics
    client = api(admin_user)
    body = {
        "project": feedback.project.pk,
        "config": {"epochs": 2, "learning_rate": 0.01},
        "parent": second.pk,
    }
    assert api(researcher).post("/api/v1/critic-jobs/", body, format="json").status_code == 403
    response = client.post("/api/v1/critic-jobs/", body, format="json")
    assert response.status_code == 201, response.content
    job = response.json()
    submitted = Annotation.objects.filter(generation__prompt__project=feedback.project, status="submitted")
    assert (job["status"], job["parent"], job["config"]) == (
        "queued",
        second.pk,
        {"epochs": 2, "learning_rate": 0.01},
    )
    assert job["snapshot_size"] == submitted.count() and job["created_by"] == admin_user.pk
    assert [row["id"] for row in api(researcher).get("/api/v1/critic-jobs/").json()["results"]] == [job["id"]]
    assert (
        api(researcher).get(f"/api/v1/critic-jobs/{job['id']}/").json()["snapshot_hash"]
        == job["snapshot_hash"]
    )
    assert (
        api(researcher).post(f"/api/v1/critic-jobs/{job['id']}/cancel/", {}, format="json").status_code == 403
    )

    cancelled = client.post(f"/api/v1/critic-jobs/{job['id']}/cancel/", {}, format="json")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/critic-jobs/{job['id']}/cancel/", {}, format="json")
    assert again.status_code == 409 and "already finished" in again.json()["detail"]
    listed = client.get(
        "/api/v1/critic-jobs/", {"project": feedback.project.pk, "status": "cancelled"}
    ).json()
    assert [row["id"] for row in listed["results"]] == [job["id"]]

    # Continue from the project's active critic.
    client.post(f"/api/v1/critic-versions/{first.pk}/activate/", {}, format="json")
    response = client.post("/api/v1/critic-jobs/", {"project": feedback.project.pk, "continue_from_active": True},
                           format="json")  # fmt: skip
    assert response.status_code == 201 and response.json()["parent"] == first.pk


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "project"),
        ({"project": "abc"}, "project"),
        ({"project": 987654}, "project"),
        ({"project": 99999999999999999999}, "project"),
        ({"project": "{project}", "parent": 987654}, "parent"),
        ({"project": "{project}", "parent": "x"}, "parent"),
        ({"project": "{project}", "config": "epochs=3"}, "config"),
        ({"project": "{project}", "config": {"epochs": "3"}}, "detail"),
        ({"project": "{project}", "config": {"epochs": True}}, "detail"),
        ({"project": "{project}", "config": {"epochs": 0}}, "detail"),
        ({"project": "{project}", "config": {"learning_rate": [1]}}, "detail"),
        ({"project": "{project}", "config": {"learning_rate": "fast"}}, "detail"),
        ({"project": "{project}", "config": {"held_out_fraction": 1.5}}, "detail"),
        ({"project": "{project}", "config": {"class_weights": 5}}, "detail"),
        ({"project": "{project}", "config": {"class_weights": [1, "a", 1]}}, "detail"),
        ({"project": "{project}", "config": {"class_weights": [1, 0, 1]}}, "detail"),
        ({"project": "{project}", "config": {"lookahed": 2}}, "detail"),
        ({"project": "{project}", "auto_activate": "perhaps"}, "auto_activate"),
        ({"project": "{project}", "continue_from_active": True}, "continue_from_active"),
        ({"project": "{project}", "parent": "{first}", "continue_from_active": True}, "non_field_errors"),
        ({"project": "{project}", "parent": "{other}"}, "detail"),  # another project's critic
        ({"project": "{other_project}"}, "detail"),  # too few annotations there
    ],
)
def test_bad_critic_job_requests_are_400(api, feedback, admin_user, critics, body, field):
    first, _, other = critics
    ids = {"project": feedback.project.pk, "other_project": feedback.other_project.pk, "first": first.pk,
           "other": other.pk}  # fmt: skip
    filled = {
        k: int(v.format(**ids)) if isinstance(v, str) and v.startswith("{") else v for k, v in body.items()
    }
    response = api(admin_user).post("/api/v1/critic-jobs/", filled, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not CriticTrainingJob.objects.exists()


def test_bad_ids_and_format_suffixes_are_404_never_500(api, admin_user, researcher, critics):
    first, _, _ = critics
    job = CriticTrainingJob.objects.create(project=first.project)
    admin = api(admin_user)
    for path in (
        "/api/v1/critic-versions/abc/",
        "/api/v1/critic-versions/0/",
        "/api/v1/critic-versions/99999999999999999999/",
        f"/api/v1/critic-versions/{first.pk}.json",
        f"/api/v1/critic-versions/{first.pk}/snapshot.json",
        f"/api/v1/critic-versions/{first.pk}/snapshot/.json",
        "/api/v1/critic-jobs/-1/",
        f"/api/v1/critic-jobs/{job.pk}.json",
    ):
        assert admin.get(path).status_code == 404, path
    for path in (
        f"/api/v1/critic-versions/{first.pk}/activate.json",
        f"/api/v1/critic-versions/{first.pk}/deactivate.json",
        f"/api/v1/critic-jobs/{job.pk}/cancel.json",
        "/api/v1/critic-jobs/99999999999999999999/cancel/",
        "/api/v1/critic-versions/987654/activate/",
    ):
        assert admin.post(path, {}, format="json").status_code == 404, path
    assert admin.get(f"/api/v1/critic-versions/{first.pk}/", {"format": "json"}).status_code == 200
    for query in (
        {"project": "abc"},
        {"project": "99999999999999999999"},
        {"parent": "-3"},
    ):
        assert api(researcher).get("/api/v1/critic-versions/", query).status_code == 400, query
    assert api(researcher).get("/api/v1/critic-jobs/", {"status": "exploded"}).status_code == 400
    assert not CriticVersion.objects.filter(is_active=True, project=first.project).exists()
    job.refresh_from_db()
    assert job.status == CriticTrainingJob.Status.QUEUED


def test_django_admin_lists_critics_and_jobs_activates_and_cancels(client, admin_user, critics):
    first, second, other = critics
    job = CriticTrainingJob.objects.create(project=first.project, snapshot=[1, 2, 3, 4])
    client.force_login(admin_user)
    page = client.get("/admin/training/criticversion/").content.decode()
    assert all(name in page for name in ("critic-a", "critic-b", "critic-o")) and "0.900" in page
    assert client.get(f"/admin/training/criticversion/{second.pk}/change/").status_code == 200
    assert client.get("/admin/training/criticversion/add/").status_code == 403
    assert client.get("/admin/training/critictrainingjob/add/").status_code == 403
    changelist = "/admin/training/criticversion/"
    # Two critics of one project at once: refused, nothing changes.
    client.post(changelist, {"action": "activate_selected", "_selected_action": [first.pk, second.pk]})
    assert not CriticVersion.objects.filter(project=first.project, is_active=True).exists()
    client.post(changelist, {"action": "activate_selected", "_selected_action": [second.pk]})
    assert set(CriticVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == {
        second.pk,
        other.pk,
    }
    client.post(changelist, {"action": "deactivate_selected", "_selected_action": [second.pk]})
    assert set(CriticVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == {other.pk}

    assert (
        "critic" in client.get(f"/admin/training/critictrainingjob/{job.pk}/change/").content.decode().lower()
    )
    client.post(
        "/admin/training/critictrainingjob/", {"action": "cancel_selected", "_selected_action": [job.pk]}
    )
    job.refresh_from_db()
    assert job.status == CriticTrainingJob.Status.CANCELLED and job.cancel_requested

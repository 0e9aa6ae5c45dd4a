"""Every permission boundary of the REST API, by role, with real tokens against real PostgreSQL."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotations.models import DatasetExport, Project, Prompt
from training.models import ModelVersion

pytestmark = pytest.mark.django_db
API = "/api/v1"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- who may come in ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["projects/", "prompts/", "generations/", "annotations/", "token-rewards/", "exports/", "model-versions/",
     "training-rounds/", "me/"],
)  # fmt: skip
def test_anonymous_requests_are_refused(api, feedback, path):
    response = api().get(f"{API}/{path}")
    assert response.status_code in (401, 403)
    assert "credentials were not provided" in response.json()["detail"]


def test_a_bad_token_is_refused(api, feedback):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get(f"{API}/projects/")
    assert response.status_code in (401, 403) and "Invalid token" in response.json()["detail"]


def test_an_account_without_a_role_sees_nothing(api, feedback):
    nobody = get_user_model().objects.create_user(username="nobody", password="x")
    for path in ("projects/", "generations/", "annotations/", "exports/"):
        assert api(nobody).get(f"{API}/{path}").status_code == 403


def test_token_obtained_with_a_password_works_and_session_auth_works_too(api, client, annotator, feedback):
    from tests.conftest import PASSWORD

    assert api().post(f"{API}/auth/token/", {"username": "ann1", "password": "wrong"}).status_code == 400
    response = api().post(f"{API}/auth/token/", {"username": "ann1", "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["token"]
    client_with_token = api()
    client_with_token.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = client_with_token.get(f"{API}/me/").json()
    assert me == {"id": annotator.pk, "username": "ann1", "roles": ["annotator"]}
    client.force_login(annotator)
    assert client.get(f"{API}/me/").json()["username"] == "ann1"


def test_session_writes_need_the_csrf_token(admin_user, feedback):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    response = browser.post(f"{API}/projects/", {"name": "Via session"}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not Project.objects.filter(name="Via session").exists()


# --- annotators: their own annotations only ------------------------------------------------------
def test_annotator_lists_only_their_own_annotations(api, feedback, annotator, annotator2):
    mine = ids(api(annotator).get(f"{API}/annotations/"))
    assert mine == sorted(a.pk for a in feedback.annotations.values() if a.annotator_id == annotator.pk)
    theirs = ids(api(annotator2).get(f"{API}/annotations/"))
    assert theirs == sorted(a.pk for a in feedback.annotations.values() if a.annotator_id == annotator2.pk)
    assert not set(mine) & set(theirs)
    # Filtering by someone else cannot widen the view.
    assert ids(api(annotator).get(f"{API}/annotations/", {"annotator": annotator2.pk})) == []


def test_annotator_asking_for_anothers_annotation_gets_404(api, feedback, annotator):
    other = feedback.annotations["a3"]  # annotator2's
    response = api(annotator).get(f"{API}/annotations/{other.pk}/")
    assert response.status_code == 404
    missing = api(annotator).get(f"{API}/annotations/999999/")
    assert missing.status_code == 404 and response.json() == missing.json()  # indistinguishable
    own = api(annotator).get(f"{API}/annotations/{feedback.annotations['a1'].pk}/")
    assert own.status_code == 200
    assert [s["text"] for s in own.json()["spans"]] == ["cat", "and slept"]


@pytest.mark.parametrize("path", ["token-rewards/", "exports/", "model-versions/", "training-rounds/"])
def test_annotators_cannot_read_research_data(api, feedback, annotator, path):
    assert api(annotator).get(f"{API}/{path}").status_code == 403


def test_annotators_read_projects_prompts_and_outputs_but_cannot_write(api, feedback, annotator):
    client = api(annotator)
    assert len(ids(client.get(f"{API}/projects/"))) == 2
    assert len(ids(client.get(f"{API}/generations/"))) == 6
    assert client.post(f"{API}/projects/", {"name": "Mine"}, format="json").status_code == 403
    assert (
        client.post(f"{API}/exports/", {"kind": "spans", "format": "jsonl"}, format="json").status_code == 403
    )
    response = client.post(f"{API}/prompts/", {"project": feedback.project.pk, "text": "new"}, format="json")
    assert response.status_code == 403
    assert not Project.objects.filter(name="Mine").exists() and not DatasetExport.objects.exists()


def test_annotators_edit_and_submit_their_own_drafts(api, feedback, annotator2):
    draft = feedback.annotations["draft"]  # annotator2's, on "The cat sat and slept."
    client = api(annotator2)
    body = {
        "overall_critique": "  Mostly right.  ",
        "rating": 4,
        "spans": [{"start": 4, "end": 7, "label": "good", "text": "cat", "critique": "the subject"}],
    }
    response = client.patch(f"{API}/annotations/{draft.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["overall_critique"] == "  Mostly right.  "  # whitespace is the annotator's
    assert [(s["start"], s["end"], s["text"], s["polarity"]) for s in response.json()["spans"]] == [
        (4, 7, "cat", 1)
    ]
    drifted = {"spans": [{"start": 4, "end": 7, "label": "good", "text": "dog"}]}
    response = client.patch(f"{API}/annotations/{draft.pk}/", drifted, format="json")
    assert response.status_code == 400 and "no longer matches" in response.json()["detail"][0]
    assert draft.spans.get().text == "cat"  # the refused save changed nothing
    response = client.post(f"{API}/annotations/{draft.pk}/submit/", {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "submitted"
    draft.refresh_from_db()
    assert draft.status == "submitted" and draft.submitted_at is not None and draft.rating == 4
    again = client.patch(f"{API}/annotations/{draft.pk}/", {"rating": 1}, format="json")
    assert again.status_code == 400 and "submitted" in again.json()["detail"][0]


def test_nobody_edits_someone_elses_annotation(api, feedback, annotator, researcher, admin_user):
    draft = feedback.annotations["draft"]  # annotator2's
    assert (
        api(annotator).patch(f"{API}/annotations/{draft.pk}/", {"rating": 1}, format="json").status_code
        == 404
    )
    assert api(annotator).post(f"{API}/annotations/{draft.pk}/submit/").status_code == 404
    assert (
        api(researcher).patch(f"{API}/annotations/{draft.pk}/", {"rating": 1}, format="json").status_code
        == 403
    )
    assert api(researcher).post(f"{API}/annotations/{draft.pk}/submit/").status_code == 403
    assert (
        api(admin_user).patch(f"{API}/annotations/{draft.pk}/", {"rating": 1}, format="json").status_code
        == 403
    )
    assert api(annotator).put(f"{API}/annotations/{draft.pk}/", {}, format="json").status_code in (
        403,
        404,
        405,
    )
    draft.refresh_from_db()
    assert draft.rating is None and draft.status == "draft"


def test_annotators_take_the_next_output_from_the_api(api, feedback, annotator, researcher):
    client = api(annotator)
    Project.objects.filter(pk=feedback.other_project.pk).update(is_archived=True)
    assert client.post(f"{API}/projects/{feedback.other_project.pk}/next/").status_code == 204
    response = client.post(f"{API}/projects/{feedback.project.pk}/next/")
    assert response.status_code == 200
    annotation = response.json()["annotation"]
    assert annotation["status"] == "draft" and annotation["annotator"] == annotator.pk
    assert annotation["generation"] not in {
        a.generation_id for a in feedback.annotations.values() if a.annotator_id == annotator.pk
    }
    assert api(researcher).post(f"{API}/projects/{feedback.project.pk}/next/").status_code == 403


# --- researchers: read everything, write nothing (but exports) ------------------------------------
def test_researcher_reads_every_annotation_and_token_reward(api, feedback, researcher):
    client = api(researcher)
    assert ids(client.get(f"{API}/annotations/")) == sorted(a.pk for a in feedback.annotations.values())
    assert len(ids(client.get(f"{API}/token-rewards/"))) == 5
    detail = client.get(f"{API}/annotations/{feedback.annotations['a3'].pk}/")
    assert detail.status_code == 200 and detail.json()["annotator_username"] != "ann2"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "projects/", {"name": "Researcher's"}),
        ("patch", "projects/{project}/", {"description": "changed"}),
        ("put", "projects/{project}/", {"name": "Renamed", "kind": "general"}),
        ("post", "prompts/", {"project": "{project}", "text": "A new prompt"}),
        ("post", "model-versions/{v1}/activate/", None),
    ],
)
def test_researcher_cannot_write(api, feedback, researcher, method, path, body):
    values = {"project": feedback.project.pk, "v1": feedback.v1.pk}
    path = path.format(**values)
    body = {
        k: (values[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v)
        for k, v in (body or {}).items()
    }
    response = getattr(api(researcher), method)(f"{API}/{path}", body, format="json")
    assert response.status_code == 403
    feedback.project.refresh_from_db()
    assert feedback.project.name == "Demo project" and feedback.project.description == ""
    assert not Prompt.objects.filter(text="A new prompt").exists()
    assert ModelVersion.objects.get(is_active=True) == feedback.v0


def test_researcher_cannot_import_prompts(api, feedback, researcher):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "sneaky"}\n')
    response = api(researcher).post(f"{API}/projects/{feedback.project.pk}/import/", {"file": upload})
    assert response.status_code == 403
    assert not Prompt.objects.filter(text="sneaky").exists()


def test_researcher_exports_with_pseudonyms_only(api, feedback, researcher):
    client = api(researcher)
    body = {"kind": "spans", "format": "jsonl", "query": {"identify_annotators": True}}
    response = client.post(f"{API}/exports/", body, format="json")
    assert response.status_code == 403 and "pseudonyms" in response.json()["detail"]
    response = client.post(f"{API}/exports/", {"kind": "spans", "format": "jsonl"}, format="json")
    assert response.status_code == 202
    assert response.json()["query"]["identify_annotators"] is False


# --- admins write ---------------------------------------------------------------------------------
def test_admin_creates_and_changes_projects_and_prompts(api, feedback, admin_user):
    client = api(admin_user)
    response = client.post(
        f"{API}/projects/",
        {"name": "New project", "kind": "qa", "label_set": [{"name": "ok", "polarity": 1}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    project = Project.objects.get(name="New project")
    assert project.created_by == admin_user and project.label_set == [{"name": "ok", "polarity": 1}]
    response = client.patch(f"{API}/projects/{project.pk}/", {"is_archived": True}, format="json")
    assert response.status_code == 200 and Project.objects.get(pk=project.pk).is_archived
    bad = client.post(
        f"{API}/projects/",
        {"name": "Dup labels", "label_set": [{"name": "x", "polarity": 1}, {"name": "x", "polarity": -1}]},
        format="json",
    )
    assert bad.status_code == 400 and "label_set" in bad.json()
    response = client.post(
        f"{API}/prompts/", {"project": feedback.project.pk, "text": "Brand new"}, format="json"
    )
    assert response.status_code == 201
    assert Prompt.objects.get(text="Brand new").content_hash == response.json()["content_hash"]
    again = client.post(
        f"{API}/prompts/", {"project": feedback.project.pk, "text": "Brand new"}, format="json"
    )
    assert again.status_code == 400 and "already has this prompt" in again.json()["text"]


def test_admin_promotes_and_rolls_back_a_model_version(api, feedback, admin_user):
    client = api(admin_user)
    # No evaluation campaign shows v1 better than the active version: the API asks for confirmation.
    asked = client.post(f"{API}/model-versions/{feedback.v1.pk}/activate/")
    assert asked.status_code == 409 and "No judged evaluation campaign" in asked.json()["detail"]
    assert ModelVersion.objects.get(is_active=True) != feedback.v1
    response = client.post(
        f"{API}/model-versions/{feedback.v1.pk}/activate/", {"confirm": True}, format="json"
    )
    assert response.status_code == 200 and response.json()["is_active"] is True
    assert ModelVersion.objects.get(is_active=True) == feedback.v1
    client.post(f"{API}/model-versions/{feedback.v0.pk}/activate/", {"confirm": True}, format="json")
    assert list(ModelVersion.objects.filter(is_active=True)) == [feedback.v0]


def test_admin_may_export_usernames(api, feedback, admin_user):
    body = {"kind": "spans", "format": "csv", "query": {"identify_annotators": True}}
    response = api(admin_user).post(f"{API}/exports/", body, format="json")
    assert response.status_code == 202 and response.json()["query"]["identify_annotators"] is True

"""Filtering, cursor pagination, throttling, validation, exports and imports through the REST API."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.exports import jobs as export_jobs
from annotations.models import DatasetExport, Generation, Prompt

pytestmark = pytest.mark.django_db
API = "/api/v1"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- filtering ------------------------------------------------------------------------------------
def test_annotation_filters(api, feedback, researcher, annotator2):
    client = api(researcher)
    a = feedback.annotations

    def names(**params):
        by_pk = {row.pk: name for name, row in a.items()}
        return [by_pk[pk] for pk in ids(client.get(f"{API}/annotations/", params))]

    assert names(project=feedback.other_project.pk) == ["a6"]
    assert names(model_version=feedback.v1.pk) == ["a2", "a4", "a7"]
    assert names(annotator=annotator2.pk) == ["a3", "a4", "a6", "draft", "a7"]
    assert names(status="draft") == ["draft"]
    assert names(submitted_after="2026-03-04T00:00:00Z", submitted_before="2026-03-06T00:00:00Z") == [
        "a3",
        "a4",
    ]
    assert names(project=feedback.project.pk, annotator=annotator2.pk, status="submitted") == [
        "a3",
        "a4",
        "a7",
    ]
    assert names(generation=feedback.generations[0].pk) == ["a1", "draft"]


def test_other_filters(api, feedback, researcher):
    client = api(researcher)
    g = feedback.generations
    assert ids(client.get(f"{API}/generations/", {"project": feedback.other_project.pk})) == [g[5].pk]
    assert ids(client.get(f"{API}/generations/", {"model_version": feedback.v1.pk})) == [g[1].pk, g[3].pk]
    assert ids(client.get(f"{API}/generations/", {"source_model": "gpt-x"})) == [g[2].pk]
    assert len(ids(client.get(f"{API}/prompts/", {"project": feedback.project.pk}))) == 2
    assert ids(client.get(f"{API}/prompts/", {"external_id": "s-1"})) == [g[0].prompt_id]
    from .conftest import OLD_FINGERPRINT

    old = ids(client.get(f"{API}/token-rewards/", {"tokenizer_fingerprint": OLD_FINGERPRINT}))
    assert old == [feedback.rewards[0].pk]
    assert ids(client.get(f"{API}/model-versions/", {"is_active": "true"})) == [feedback.v0.pk]
    assert ids(client.get(f"{API}/projects/", {"kind": "code"})) == [feedback.other_project.pk]


@pytest.mark.parametrize(
    "params",
    [
        {"project": "abc"},
        {"project": "0"},
        {"project": str(2**70)},
        {"status": "deleted"},
        {"submitted_after": "not a date"},
        {"annotator": "1.5"},
        {"cursor": "garbage"},
        {"page_size": "0"},
    ],
)
def test_bad_filters_are_client_errors(api, feedback, researcher, params):
    response = api(researcher).get(f"{API}/annotations/", params)
    if "cursor" in params:
        assert response.status_code == 404 and "Invalid cursor" in response.json()["detail"]
    elif "page_size" in params:
        assert response.status_code == 200  # DRF falls back to the default page size
    else:
        assert response.status_code == 400
        assert set(response.json()) == set(params)


def test_huge_ids_in_the_path_are_404_not_500(api, feedback, researcher):
    assert api(researcher).get(f"{API}/annotations/{10**30}/").status_code == 404
    assert api(researcher).get(f"{API}/annotations/-1/").status_code == 404


# --- pagination -----------------------------------------------------------------------------------
def test_cursor_pagination_walks_every_row_once(api, feedback, researcher):
    client = api(researcher)
    seen, url, pages = [], f"{API}/annotations/?page_size=3", 0
    while url:
        page = client.get(url).json()
        assert len(page["results"]) <= 3
        seen += [row["id"] for row in page["results"]]
        url, pages = page["next"], pages + 1
        assert "cursor=" in (url or "cursor=")
    assert seen == sorted(a.pk for a in feedback.annotations.values())
    assert pages == 3
    first = client.get(f"{API}/annotations/?page_size=3").json()
    assert first["previous"] is None and set(first) == {"next", "previous", "results"}
    capped = client.get(f"{API}/annotations/", {"page_size": 10_000})
    assert capped.status_code == 200  # capped at max_page_size rather than refused


# --- throttling -----------------------------------------------------------------------------------
def test_export_creation_is_throttled(api, feedback, researcher, settings):
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], exports="2/hour")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    client = api(researcher)
    body = {"kind": "spans", "format": "jsonl"}
    codes = [client.post(f"{API}/exports/", body, format="json").status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert DatasetExport.objects.count() == 2
    assert client.get(f"{API}/exports/").status_code == 200  # reading is not the throttled action


def test_token_endpoint_is_throttled(api, feedback, settings):
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], login="3/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    codes = [
        api().post(f"{API}/auth/token/", {"username": "ann1", "password": "guess"}).status_code
        for _ in range(4)
    ]
    assert codes == [400, 400, 400, 429]


# --- exports --------------------------------------------------------------------------------------
def test_export_lifecycle_through_the_api(api, feedback, researcher, django_capture_on_commit_callbacks):
    client = api(researcher)
    body = {"kind": "kto", "format": "parquet", "query": {"project": feedback.project.pk}}
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"{API}/exports/", body, format="json")
    assert response.status_code == 202, response.content
    assert len(callbacks) == 1  # the worker is asked only once the row is committed
    created = response.json()
    assert created["status"] == "queued" and created["download_url"] is None and created["percent"] is None
    assert created["query"]["project"] == feedback.project.pk
    early = client.get(f"{API}/exports/{created['id']}/download/")
    assert early.status_code == 409 and "queued" in early.json()["detail"]
    export_jobs.export_run(export_id=created["id"])  # what the worker does
    detail = client.get(f"{API}/exports/{created['id']}/").json()
    assert detail["status"] == "succeeded" and detail["percent"] == 100 and detail["row_count"] == 4
    assert detail["created_by"] == "res1" and detail["download_url"].endswith(
        f"/exports/{created['id']}/download/"
    )
    download = client.get(detail["download_url"], HTTP_ACCEPT="application/vnd.apache.parquet")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == detail["content_hash"] == download["X-Content-SHA256"]
    assert download["Content-Type"] == "application/vnd.apache.parquet"
    assert (
        f'filename="text2grad-kto-{created["id"]}-{detail["content_hash"][:12]}.parquet"'
        in download["Content-Disposition"]
    )
    assert ids(client.get(f"{API}/exports/", {"kind": "kto", "status": "succeeded"})) == [created["id"]]


def test_export_requests_are_validated(api, feedback, researcher):
    client = api(researcher)
    response = client.post(f"{API}/exports/", {"kind": "all", "format": "xlsx"}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"kind", "format"}
    response = client.post(
        f"{API}/exports/",
        {"kind": "dpo", "format": "csv", "query": {"status": "draft", "colour": "red", "dpo_min_margin": 0}},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["query"]) == {"status", "colour"}
    response = client.post(
        f"{API}/exports/", {"kind": "dpo", "format": "csv", "query": {"dpo_min_margin": 0}}, format="json"
    )
    assert response.status_code == 400 and "above 0" in response.json()["query"]["dpo_min_margin"]
    assert not DatasetExport.objects.exists()


def test_a_file_outside_the_exports_folder_is_never_served(api, feedback, researcher, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    export = DatasetExport.objects.create(
        kind="spans",
        format="jsonl",
        status="succeeded",
        file_path=str(secret),
        content_hash="0" * 64,
        created_by=researcher,
    )
    response = api(researcher).get(f"{API}/exports/{export.pk}/download/")
    assert response.status_code == 409
    export.file_path = "exports/../../secret.txt"
    export.save()
    assert api(researcher).get(f"{API}/exports/{export.pk}/download/").status_code == 409


# --- imports --------------------------------------------------------------------------------------
def upload(name: str, text: str | bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text)


def test_import_jsonl_with_outputs_and_duplicates(api, feedback, admin_user):
    lines = [
        {"prompt": "Summarize: the cat sat on the mat, then slept."},  # already in the project
        {"prompt": "Summarize: rain.", "id": "r-1", "metadata": {"source": "test"}},
        {"prompt": "Summarize: rain.", "output": "It rains.", "source_model": "gpt-x"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    response = api(admin_user).post(
        f"{API}/projects/{feedback.project.pk}/import/", {"file": upload("p.jsonl", text)}
    )
    assert response.status_code == 201, response.content
    assert response.json() == {
        "created_prompts": 1,
        "created_outputs": 1,
        "duplicate_lines": [1],
        "errors": [],
        "committed": True,
    }
    prompt = Prompt.objects.get(project=feedback.project, text="Summarize: rain.")
    assert prompt.external_id == "r-1" and prompt.metadata == {"source": "test"}
    assert Generation.objects.get(prompt=prompt).source_model == "gpt-x"


def test_import_with_bad_lines_reports_them_and_imports_nothing(api, feedback, admin_user):
    before = Prompt.objects.count()
    text = 'prompt,id\n"fine, one",a\n,b\n"also fine",c\n'
    client = api(admin_user)
    url = f"{API}/projects/{feedback.project.pk}/import/"
    response = client.post(url, {"file": upload("p.csv", text)})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"line": 3, "message": "missing 'prompt' (a non-empty string)"}]
    assert response.json()["committed"] is False and Prompt.objects.count() == before
    response = client.post(url, {"file": upload("p.csv", text), "allow_partial": "true"})
    assert response.status_code == 201 and response.json()["created_prompts"] == 2
    assert Prompt.objects.count() == before + 2


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("p.txt", "hello", "unknown format"),
        ("p.jsonl", b'{"prompt": "caf\xe9"}', "not UTF-8"),
        ("p.csv", "title\nno prompt column\n", "'prompt'"),
    ],
)
def test_unreadable_import_files_are_400(api, feedback, admin_user, name, data, message):
    response = api(admin_user).post(
        f"{API}/projects/{feedback.project.pk}/import/", {"file": upload(name, data)}
    )
    assert response.status_code == 400 and message in response.json()["file"][0]


def test_oversized_imports_are_413(api, feedback, admin_user, settings):
    settings.T2G_IMPORT_MAX_BYTES = 100
    text = json.dumps({"prompt": "x" * 200})
    response = api(admin_user).post(
        f"{API}/projects/{feedback.project.pk}/import/", {"file": upload("p.jsonl", text)}
    )
    assert response.status_code == 413 and "limit is 100 bytes" in response.json()["detail"]
    assert not Prompt.objects.filter(text="x" * 200).exists()


def test_json_with_nul_characters_is_refused_not_a_server_error(api, feedback, admin_user):
    response = api(admin_user).post(
        f"{API}/prompts/",
        {"project": feedback.project.pk, "text": "fine", "metadata": {"k": "bad\u0000value"}},
        format="json",
    )
    assert response.status_code == 400 and "NUL" in json.dumps(response.json())
    response = api(admin_user).post(
        f"{API}/prompts/", {"project": feedback.project.pk, "text": "bad\u0000"}, format="json"
    )
    assert response.status_code == 400


# --- schema and docs ------------------------------------------------------------------------------
def test_schema_lists_every_resource(client):
    response = client.get(f"{API}/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for resource in ("projects", "prompts", "generations", "annotations", "token-rewards", "exports",
                     "model-versions", "training-rounds"):  # fmt: skip
        assert f"/api/v1/{resource}/" in paths and f"/api/v1/{resource}/{{id}}/" in paths


def test_docs_page_loads_nothing_from_a_cdn(client):
    response = client.get(f"{API}/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "/static/vendor/swagger-ui/swagger-ui.css" in html
    assert "cdn." not in html and "https://" not in html
    bundle = client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200


@pytest.mark.parametrize(
    "moment",
    [
        "0501-08-23T17:25:29-22:38",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "2026-13-01T00:00:00",
    ],
)
def test_odd_date_times_are_client_errors_not_server_errors(api, feedback, researcher, moment):
    """Found by schemathesis: PostgreSQL refuses UTC offsets beyond ±15:59 that Python accepts."""
    client = api(researcher)
    response = client.get(f"{API}/annotations/", {"created_before": moment})
    if moment.startswith("0501"):  # a valid instant, in UTC: it filters
        assert response.status_code == 200 and response.json()["results"] == []
    else:
        assert response.status_code == 400 and "created_before" in response.json()
    export = client.post(
        f"{API}/exports/",
        {"kind": "spans", "format": "jsonl", "query": {"submitted_after": moment}},
        format="json",
    )
    assert export.status_code in (202, 400)
    if export.status_code == 202:
        assert export.json()["query"]["submitted_after"] == "0501-08-24T16:03:29+00:00"

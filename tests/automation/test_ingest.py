"""Outputs from production: project ingest keys (hashed, revocable, created on a page by admins) and
``POST /api/v1/projects/{id}/outputs/`` with idempotency keys, limits and clear 4xx answers; the records
become outputs an annotator is then given in the queue."""

from __future__ import annotations

import hashlib

import pytest

from annotations.models import Generation, IngestedOutput, IngestKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingest_key(project, admin_user):
    from annotations.services import ingest

    key, raw = ingest.ingest_key_create(project=project, name="support bot", created_by=admin_user)
    return key, raw


def _post(api, project, body, raw=None, **headers):
    client = api()
    if raw is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {raw}")
    return client.post(f"/api/v1/projects/{project.pk}/outputs/", body, format="json", **headers)


RECORD = {
    "prompt": "Summarize: the cat sat on the mat.",
    "output": "A cat sat on a mat.",
    "source_model": "gpt-4o-mini",
    "metadata": {"request_id": "chatcmpl-1", "latency_ms": 420},
    "idempotency_key": "chatcmpl-1",
}


def test_keys_are_hashed_at_rest_and_shown_once(ingest_key):
    key, raw = ingest_key
    assert raw.startswith("t2gi_") and len(raw) > 40
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    stored = IngestKey.objects.filter(pk=key.pk).values_list("name", "prefix", "key_hash").get()
    assert raw not in "".join(stored) and key.prefix == raw[:12]


def test_a_record_becomes_an_output_the_annotator_is_given(api, project, ingest_key, annotator):
    key, raw = ingest_key
    response = _post(api, project, RECORD, raw)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["created"], body["duplicates"]) == (1, 0)
    generation = Generation.objects.get(pk=body["results"][0]["generation"])
    assert (generation.text, generation.source_model, generation.prompt.text) == (
        RECORD["output"], "gpt-4o-mini", RECORD["prompt"],
    )  # fmt: skip
    assert generation.prompt.project_id == project.pk
    assert IngestedOutput.objects.get(generation=generation).metadata == RECORD["metadata"]
    key.refresh_from_db()
    assert key.last_used_at is not None

    leased = api(annotator).post(f"/api/v1/projects/{project.pk}/next/")
    assert leased.status_code in (200, 201), leased.content
    assert leased.json()["annotation"]["generation"] == generation.pk


def test_the_same_idempotency_key_answers_the_same_and_writes_nothing_more(api, project, ingest_key):
    _, raw = ingest_key
    first = _post(api, project, RECORD, raw).json()
    again = _post(api, project, RECORD, raw)
    assert again.status_code == 200
    assert again.json()["results"][0]["generation"] == first["results"][0]["generation"]
    assert again.json()["results"][0]["created"] is False and again.json()["duplicates"] == 1
    assert Generation.objects.count() == 1 and IngestedOutput.objects.count() == 1

    changed = _post(api, project, {**RECORD, "output": "Something else."}, raw)
    assert changed.status_code == 409 and "0" in changed.json()["records"]
    assert Generation.objects.count() == 1


def test_many_records_share_a_prompt_and_dedupe_by_content_without_keys(api, project, ingest_key):
    _, raw = ingest_key
    records = [
        {"prompt": "Explain TCP.", "output": "A reliable stream."},
        {"prompt": "Explain TCP.", "output": "Packets with acks."},
        {"prompt": "Explain TCP.", "output": "A reliable stream."},  # the same content twice: one output
    ]
    response = _post(api, project, {"records": records}, raw)
    assert response.status_code == 201
    results = response.json()["results"]
    assert [row["created"] for row in results] == [True, True, False]
    assert results[0]["generation"] == results[2]["generation"] != results[1]["generation"]
    assert len({row["prompt"] for row in results}) == 1
    assert project.prompts.count() == 1 and Generation.objects.count() == 2


def test_the_idempotency_key_header_names_a_single_record(api, project, ingest_key):
    _, raw = ingest_key
    record = {k: v for k, v in RECORD.items() if k != "idempotency_key"}
    first = _post(api, project, record, raw, HTTP_IDEMPOTENCY_KEY="req-7").json()
    assert first["results"][0]["idempotency_key"] == "req-7"
    assert _post(api, project, record, raw, HTTP_IDEMPOTENCY_KEY="req-7").status_code == 200
    assert IngestedOutput.objects.get().idempotency_key == "req-7"


def test_missing_wrong_revoked_and_other_projects_keys_are_401(
    api, project, code_project, ingest_key, admin_user
):
    from annotations.services import ingest

    key, raw = ingest_key
    assert _post(api, project, RECORD).status_code == 401
    assert _post(api, project, RECORD, "t2gi_" + "x" * 40).status_code == 401
    assert _post(api, project, RECORD, "Token abc", HTTP_AUTHORIZATION="Token abc").status_code == 401
    assert _post(api, code_project, RECORD, raw).status_code == 401
    assert _post(api, project, RECORD, None, HTTP_X_INGEST_KEY=raw).status_code == 201
    ingest.ingest_key_revoke(key=key, revoked_by=admin_user)
    refused = _post(api, project, {**RECORD, "idempotency_key": "new"}, raw)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert Generation.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"prompt": "p"}, "output"),
        ({"prompt": "", "output": "o"}, "prompt"),
        ({"prompt": "p", "output": 5}, "output"),
        ({"prompt": "p", "output": "o", "metadata": [1]}, "metadata"),
        ({"prompt": "p", "output": "o", "metadata": {"x": "y" * 20_000}}, "metadata"),
        ({"prompt": "p", "output": "o", "colour": "red"}, "record"),
        ({"prompt": "p", "output": "o", "idempotency_key": "k" * 201}, "idempotency_key"),
        ({"prompt": "p", "output": "o\x00"}, "output"),
    ],
)
def test_bad_records_are_400_by_index_and_nothing_is_written(api, project, ingest_key, body, where):
    _, raw = ingest_key
    response = _post(api, project, {"records": [RECORD, body]}, raw)
    assert response.status_code == 400, response.content
    assert where in response.json()["records"]["1"]
    assert not Generation.objects.exists()


def test_limits_on_records_and_bytes(api, project, ingest_key, settings):
    _, raw = ingest_key
    settings.T2G_INGEST_MAX_RECORDS = 3
    too_many = _post(api, project, {"records": [RECORD] * 4}, raw)
    assert too_many.status_code == 400 and "At most 3" in too_many.json()["records"][0]
    assert _post(api, project, {"records": []}, raw).status_code == 400
    assert _post(api, project, "just text", raw).status_code == 400
    settings.T2G_INGEST_MAX_BYTES = 200
    big = _post(api, project, {**RECORD, "output": "x" * 500}, raw)
    assert big.status_code == 413
    settings.T2G_INGEST_MAX_BYTES = 10_000
    not_json = api().post(f"/api/v1/projects/{project.pk}/outputs/", "prompt=p", content_type="text/plain",
                          HTTP_AUTHORIZATION=f"Bearer {raw}")  # fmt: skip
    assert not_json.status_code == 415
    assert not Generation.objects.exists()


def test_admins_create_and_revoke_keys_on_the_project_page(client, project, admin_user, researcher):
    client.force_login(researcher)
    assert client.get(f"/projects/{project.pk}/integrations/").status_code == 403
    client.force_login(admin_user)
    page = client.get(f"/projects/{project.pk}/integrations/")
    assert page.status_code == 200 and b"No keys yet" in page.content
    created = client.post(f"/projects/{project.pk}/integrations/", {"name": "shop assistant"})
    assert created.status_code == 200
    key = IngestKey.objects.get(project=project)
    shown = created.content.decode()
    start = shown.index("t2gi_")
    raw = shown[start : start + 45]
    assert hashlib.sha256(raw.encode()).hexdigest() == key.key_hash
    assert raw not in client.get(f"/projects/{project.pk}/integrations/").content.decode()  # shown once
    assert client.post(f"/projects/{project.pk}/integrations/", {"name": ""}).status_code == 400
    client.post(f"/ingest-keys/{key.pk}/revoke/")
    key.refresh_from_db()
    assert key.revoked_at is not None
    client.force_login(researcher)
    assert client.post(f"/ingest-keys/{key.pk}/revoke/").status_code == 403


def _records(count: int, tag: str, prompts: int = 5) -> list[dict]:
    return [
        {"prompt": f"Prompt {n % prompts}.", "output": f"Answer {tag}-{n}.", "idempotency_key": f"{tag}-{n}",
         "metadata": {"n": n}}
        for n in range(count)
    ]  # fmt: skip


def test_a_batch_costs_the_same_queries_as_one_record(api, project, ingest_key):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotations.models import content_hash

    _, raw = ingest_key
    counts = []
    for tag, count in (("one", 1), ("many", 60)):
        with CaptureQueriesContext(connection) as queries:
            response = _post(api, project, {"records": _records(count, tag)}, raw)
        assert response.status_code == 201, response.content
        counts.append(len(queries))
    assert counts[1] == counts[0], counts  # written with one insert per table, not per record
    generations = Generation.objects.filter(ingested__idempotency_key__startswith="many-").select_related(
        "prompt"
    )
    assert generations.count() == 60 and project.prompts.count() == 5
    for generation in generations:  # what the models' save() would have computed
        assert generation.content_hash == content_hash(generation.prompt.text, generation.text)
        assert generation.prompt.content_hash == content_hash(generation.prompt.text)
        assert generation.ingested.metadata["n"] == int(generation.ingested.idempotency_key.split("-")[1])
        assert generation.source_model == "" and generation.sampling_params == {"source": "ingest"}


def test_a_batch_of_known_new_and_repeated_records_answers_each_in_order(api, project, ingest_key):
    _, raw = ingest_key
    known = _records(3, "k")
    first = _post(api, project, {"records": known}, raw).json()["results"]
    fresh = _records(2, "f")
    body = {"records": [fresh[0], known[1], fresh[1], fresh[0], known[2]]}
    response = _post(api, project, body, raw)
    assert response.status_code == 201
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["created"] for r in results] == [True, False, True, False, False]
    assert (
        results[1]["generation"] == first[1]["generation"]
        and results[4]["generation"] == first[2]["generation"]
    )
    assert results[0]["generation"] == results[3]["generation"]
    assert response.json()["duplicates"] == 3 and Generation.objects.count() == 5

    clash = {
        "records": [
            _records(1, "x")[0],
            {**_records(1, "x")[0], "output": "Other."},
            {**known[0], "output": "No."},
        ]
    }
    refused = _post(api, project, clash, raw)
    assert refused.status_code == 409
    problems = refused.json()["records"]
    assert "in this request" in str(problems["1"]) and "in this project" in str(problems["2"])
    assert "0" not in problems and Generation.objects.count() == 5  # the whole request rolled back


@pytest.mark.django_db(transaction=True)
def test_a_batch_racing_another_request_for_a_key_finds_its_output(project):
    """Request A has written key "r-0" and not committed; request B sends "r-0" and "r-1": B's batch insert
    waits on A's row, fails when A commits, and B writes record by record, answering A's output for r-0."""
    import threading

    from django.db import connection, transaction

    from annotations.services import ingest

    records = [ingest.ingest_record_clean(raw)[0] for raw in _records(2, "r")]
    written, release, answers = threading.Event(), threading.Event(), {}

    def request_a():
        try:
            with transaction.atomic():
                answers["a"] = ingest.outputs_ingest(project=project, records=records[:1])
                written.set()
                release.wait(30)
        finally:
            connection.close()

    def request_b():
        try:
            answers["b"] = ingest.outputs_ingest(project=project, records=records)
        finally:
            connection.close()

    a = threading.Thread(target=request_a)
    a.start()
    assert written.wait(30)
    b = threading.Thread(target=request_b)
    b.start()
    b.join(1.0)
    assert b.is_alive()  # waiting on A's uncommitted key
    release.set()
    a.join(30)
    b.join(30)
    assert [r["created"] for r in answers["b"]] == [False, True]
    assert answers["b"][0]["generation"] == answers["a"][0]["generation"]
    assert IngestedOutput.objects.filter(project=project).count() == 2 == Generation.objects.count()

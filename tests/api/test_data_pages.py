"""The /data/ pages: export form, htmx progress fragment, download; prompt import with line errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.exports import jobs as export_jobs
from annotations.models import DatasetExport, Prompt

pytestmark = pytest.mark.django_db


def test_export_pages_are_for_researchers_and_admins(client, feedback, annotator, researcher):
    client.force_login(annotator)
    assert client.get("/data/exports/").status_code == 403
    assert client.post("/data/exports/", {"kind": "spans", "format": "jsonl"}).status_code == 403
    client.force_login(researcher)
    page = client.get("/data/exports/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="kind"' in html and "Demo project" in html
    assert "identify_annotators" not in html  # researchers get pseudonyms only


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/data/exports/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_export_from_the_ui_with_a_live_progress_bar(
    client, feedback, researcher, django_capture_on_commit_callbacks
):
    client.force_login(researcher)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/data/exports/",
            {"kind": "spans", "format": "csv", "project": str(feedback.project.pk), "status": "submitted"},
        )
    assert response.status_code == 302 and len(callbacks) == 1
    export = DatasetExport.objects.get()
    assert response["Location"] == f"/data/exports/{export.pk}/"
    assert export.query["project"] == feedback.project.pk and export.created_by == researcher

    # While queued, the htmx fragment polls itself; the full page carries the same fragment.
    fragment = client.get(f"/data/exports/{export.pk}/", HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert "<html" not in body and 'hx-trigger="every 1s"' in body and "queued" in body
    assert "HX-Request" in fragment["Vary"]
    full = client.get(f"/data/exports/{export.pk}/").content.decode()
    assert "<html" in full and 'id="export-status"' in full

    DatasetExport.objects.filter(pk=export.pk).update(status="running", row_count=3, total_rows=6)
    body = client.get(f"/data/exports/{export.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert '<progress max="6" value="3">' in body and "every 1s" in body

    DatasetExport.objects.filter(pk=export.pk).update(status="queued", row_count=0, total_rows=0)
    export_jobs.export_run(export_id=export.pk)
    export.refresh_from_db()
    body = client.get(f"/data/exports/{export.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "every 1s" not in body  # finished: polling stops
    assert f'href="/data/exports/{export.pk}/download/"' in body and export.content_hash in body

    download = client.get(f"/data/exports/{export.pk}/download/")
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == export.content_hash
    assert data.startswith(b"annotation_id,generation_id,")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert export.row_count == 6 and len(rows) == 1 + 6
    assert [int(row[0]) for row in rows[1:]] == sorted(
        a.pk for name, a in feedback.annotations.items() if name not in ("draft", "a6")
    )


def test_export_form_errors_are_shown(client, feedback, researcher):
    client.force_login(researcher)
    response = client.post(
        "/data/exports/", {"kind": "kto", "format": "jsonl", "status": "draft", "submitted_after": "soon"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "kto exports use submitted annotations only" in html
    assert "must be an ISO 8601 date" in html
    assert not DatasetExport.objects.exists()


def test_researchers_cannot_ask_for_usernames_from_the_ui(client, feedback, researcher):
    client.force_login(researcher)
    response = client.post(
        "/data/exports/", {"kind": "spans", "format": "jsonl", "identify_annotators": "on"}
    )
    assert response.status_code == 403
    assert not DatasetExport.objects.exists()


def test_run_again_and_failed_exports(client, feedback, researcher):
    client.force_login(researcher)
    export = export_jobs.export_create(
        kind="dpo", fmt="jsonl", query={"project": feedback.project.pk}, created_by=researcher, enqueue=False
    )
    DatasetExport.objects.filter(pk=export.pk).update(status="failed", error="Worker lost <script>")
    page = client.get(f"/data/exports/{export.pk}/").content.decode()
    assert "Worker lost &lt;script&gt;" in page  # untrusted text is escaped
    assert client.get(f"/data/exports/{export.pk}/download/").status_code == 404
    response = client.post(f"/data/exports/{export.pk}/again/")
    again = DatasetExport.objects.exclude(pk=export.pk).get()
    assert response.status_code == 302 and again.query == export.query and again.status == "queued"


def test_import_page_reports_bad_lines_and_imports_nothing(client, feedback, admin_user, researcher):
    client.force_login(researcher)
    assert client.get("/data/import/").status_code == 403
    client.force_login(admin_user)
    assert client.get("/data/import/").status_code == 200
    lines = [json.dumps({"prompt": "UI prompt one"}), "{broken", json.dumps({"prompt": "UI prompt two"})]
    upload = SimpleUploadedFile("prompts.jsonl", "\n".join(lines).encode())
    response = client.post("/data/import/", {"project": feedback.project.pk, "file": upload})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was imported" in html and "<td>2</td>" in html and "not valid JSON" in html
    assert not Prompt.objects.filter(text__startswith="UI prompt").exists()
    upload = SimpleUploadedFile("prompts.jsonl", "\n".join(lines).encode())
    response = client.post(
        "/data/import/", {"project": feedback.project.pk, "file": upload, "allow_partial": "on"}
    )
    assert response.status_code == 200 and "Imported 2 prompts" in response.content.decode()
    assert Prompt.objects.filter(text__startswith="UI prompt").count() == 2


def test_import_page_size_limit_and_missing_fields(client, feedback, admin_user, settings):
    client.force_login(admin_user)
    assert client.post("/data/import/", {"project": "x"}).status_code == 400
    settings.T2G_IMPORT_MAX_BYTES = 10
    upload = SimpleUploadedFile("p.csv", b"prompt\nmuch more than ten bytes\n")
    response = client.post("/data/import/", {"project": feedback.project.pk, "file": upload})
    assert response.status_code == 400 and "the limit is 10 bytes" in response.content.decode()


def test_export_page_shows_the_query_with_readable_labels_and_an_empty_reason(login, researcher, project):
    from django.urls import reverse

    export = export_jobs.export_create(
        kind="dpo", fmt="jsonl", query={"project": project.pk}, created_by=researcher, enqueue=False
    )
    export_jobs.export_run(export_id=export.pk)
    page = login(researcher).get(reverse("data_export_detail", args=[export.pk])).content.decode()
    assert "Annotation status" in page and "DPO: minimum rating margin" in page
    assert f"{project.name} (#{project.pk})" in page
    assert "<th>dpo_min_margin</th>" not in page
    assert "Nothing to export: no submitted annotation matches" in page

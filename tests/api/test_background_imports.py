"""Prompt imports as background jobs (issue 12): a large upload is checked quickly in the request, stored
in the artifact store and imported by a job on the interactive lane (claim, heartbeat, progress by
chunk, cancel, reaping); the page and the API show where it stands. Small files still import at once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotations import services
from annotations.imports import jobs as import_jobs
from annotations.models import Generation, Prompt, PromptImport
from artifacts import default_store
from jobs import lifecycle, reaper
from tests.conftest import wait_for

API = "/api/v1"
pytestmark = pytest.mark.django_db


def jsonl(texts: list[str]) -> bytes:
    return ("\n".join(json.dumps({"prompt": text}) for text in texts) + "\n").encode()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def _queue(project, admin_user, data: bytes, *, fmt="jsonl", allow_partial=False) -> PromptImport:
    import io

    return import_jobs.prompt_import_create(
        project=project,
        upload=io.BytesIO(data),
        size=len(data),
        fmt=fmt,
        file_name=f"prompts.{fmt}",
        allow_partial=allow_partial,
        user=admin_user,
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_large_import_is_a_job_the_worker_runs_in_chunks(
    celery_worker_process, api, admin_user, project, settings
):
    settings.T2G_IMPORT_SYNC_MAX_BYTES = 1024  # this file is larger: it goes to the interactive lane
    texts = [f"Summarize background item {i}." for i in range(1200)]  # three chunks of 500 in the worker
    client = api(admin_user)
    response = client.post(
        f"{API}/projects/{project.pk}/import/", {"file": upload("big.jsonl", jsonl(texts))}
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["standing"].startswith("queued")
    assert response["Location"] == f"/api/v1/imports/{body['id']}/"
    job = PromptImport.objects.get(pk=body["id"])
    uploaded = job.upload_key
    assert uploaded.startswith("imports/") and default_store().is_file(uploaded)
    assert not Prompt.objects.filter(project=project).exists()  # nothing written in the request
    wait_for(
        lambda: PromptImport.objects.get(pk=job.pk).is_finished,
        timeout=60,
        message=f"the import to finish (worker log: {celery_worker_process.log_path})",
    )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert (job.progress_step, job.progress_total, job.attempts) == (1200, 1200, 1)
    assert job.report["created_prompts"] == 1200 and job.report["committed"] is True
    assert Prompt.objects.filter(project=project).count() == 1200
    # The uploaded file is deleted once the job is done: just after its finish commits, so wait a moment.
    wait_for(
        lambda: PromptImport.objects.get(pk=job.pk).upload_key == "",
        timeout=15,
        message="the finished import's upload to be deleted",
    )
    assert not default_store().is_file(uploaded)
    polled = client.get(f"{API}/imports/{job.pk}/").json()
    assert polled["status"] == "succeeded" and polled["percent"] == 100
    assert polled["report"]["created_prompts"] == 1200


def test_small_files_still_import_at_once_and_background_can_be_asked(api, admin_user, project, settings):
    client = api(admin_user)
    url = f"{API}/projects/{project.pk}/import/"
    response = client.post(url, {"file": upload("p.jsonl", jsonl(["Right now."]))})
    assert response.status_code == 201 and response.json()["created_prompts"] == 1
    response = client.post(url, {"file": upload("p.jsonl", jsonl(["Later."])), "background": "true"})
    assert response.status_code == 202
    job = PromptImport.objects.get(pk=response.json()["id"])
    assert not Prompt.objects.filter(text="Later.").exists()
    import_jobs.prompt_import_run(import_id=job.pk)  # what the worker's task calls
    job.refresh_from_db()
    assert job.status == "succeeded" and Prompt.objects.filter(text="Later.").count() == 1


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("p.txt", b"hello", "unknown format"),
        ("p.jsonl", b'{"prompt": "caf\xe9"}', "not UTF-8"),
        ("p.csv", b"title\nno prompt column\n", "'prompt'"),
        ("p.jsonl", b"   \n", "empty"),
    ],
)
def test_an_unreadable_background_upload_is_refused_in_the_request(
    api, admin_user, project, name, data, message
):
    response = api(admin_user).post(
        f"{API}/projects/{project.pk}/import/", {"file": upload(name, data), "background": "true"}
    )
    assert response.status_code == 400 and message in response.json()["file"][0]
    assert not PromptImport.objects.exists()
    assert default_store().list(import_jobs.IMPORTS_PREFIX) == []  # nothing stored for a job that never was


def test_a_malformed_file_fails_with_every_bad_line_and_writes_nothing(admin_user, project):
    lines = [
        json.dumps({"prompt": "Good one."}),
        "{broken",
        json.dumps({"text": ""}),
        json.dumps({"prompt": "Two."}),
    ]
    data = ("\n".join(lines) + "\n").encode()
    job = _queue(project, admin_user, data)
    import_jobs.prompt_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "2 bad lines; nothing was imported. Fix them, or allow a partial import."
    assert [e["line"] for e in job.report["errors"]] == [2, 3]
    assert "not valid JSON" in job.report["errors"][0]["message"]
    assert not Prompt.objects.filter(project=project).exists()
    assert job.upload_key == "" or not default_store().is_file(job.upload_key)

    partial = _queue(project, admin_user, data, allow_partial=True)
    import_jobs.prompt_import_run(import_id=partial.pk)
    partial.refresh_from_db()
    assert partial.status == "succeeded" and partial.report["created_prompts"] == 2
    assert partial.report["error_count"] == 2
    assert set(Prompt.objects.filter(project=project).values_list("text", flat=True)) == {"Good one.", "Two."}


def test_the_job_page_polls_then_shows_the_report(client, admin_user, project):
    client.force_login(admin_user)
    response = client.post(
        "/data/import/",
        {
            "project": project.pk,
            "file": upload("p.jsonl", jsonl(["Page one.", "Page two."])),
            "background": "on",
        },
    )
    job = PromptImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/data/import/{job.pk}/"
    fragment = client.get(f"/data/import/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in fragment and "queued: next to run" in fragment
    import_jobs.prompt_import_run(import_id=job.pk)
    fragment = client.get(f"/data/import/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in fragment  # finished: no more polling
    assert "Imported 2 prompts" in fragment and "2 / 2 rows" in fragment
    page = client.get("/data/import/").content.decode()
    assert f"/data/import/{job.pk}/" in page  # listed among the recent imports
    assert page.count("Recent background imports") == 1  # once, in the page's content
    assert "<title>Import prompts · Text2Grad Studio</title>" in page


def test_only_admins_see_or_cancel_an_import(
    client, api, admin_user, researcher, annotator, reviewer, project
):
    job = _queue(project, admin_user, jsonl(["Private."]))
    for user in (researcher, annotator, reviewer):
        client.force_login(user)
        assert client.get(f"/data/import/{job.pk}/").status_code == 403
        assert client.post(f"/data/import/{job.pk}/cancel/").status_code == 403
        assert api(user).get(f"{API}/imports/{job.pk}/").status_code == 403
        assert api(user).get(f"{API}/imports/").status_code == 403
        assert api(user).post(f"{API}/imports/{job.pk}/cancel/").status_code == 403
    assert PromptImport.objects.get(pk=job.pk).status == "queued"
    other_admin = admin_user.__class__.objects.create_user(username="boss2", password="x")
    from annotations import roles

    roles.assign_role(other_admin, "admin")
    listed = api(other_admin).get(f"{API}/imports/").json()["results"]
    assert [row["id"] for row in listed] == [job.pk]


def test_cancel_a_queued_import_and_it_never_runs(client, admin_user, project):
    job = _queue(project, admin_user, jsonl(["Never."]))
    client.force_login(admin_user)
    fragment = client.post(f"/data/import/{job.pk}/cancel/", HTTP_HX_REQUEST="true").content.decode()
    assert "cancelled" in fragment and "hx-trigger" not in fragment
    assert import_jobs.prompt_import_run(import_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == "cancelled" and job.error == "Cancelled before it started; nothing was imported."
    assert not Prompt.objects.filter(text="Never.").exists()
    assert import_jobs.import_uploads_sweep() == 1 and not default_store().list(import_jobs.IMPORTS_PREFIX)


def test_cancel_a_running_import_stops_it_between_chunks(api, admin_user, project, settings, monkeypatch):
    settings.T2G_IMPORT_CHUNK_ROWS = 3
    job = _queue(project, admin_user, jsonl([f"Chunked {i}." for i in range(10)]))
    real_write = services.PromptWriter.write

    def write_then_cancel(self, rows, report):
        real_write(self, rows, report)
        # An admin presses Cancel while the first chunk is being written (through the API).
        assert api(admin_user).post(f"{API}/imports/{job.pk}/cancel/").status_code in (202, 409)

    monkeypatch.setattr(services.PromptWriter, "write", write_then_cancel)
    import_jobs.prompt_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "cancelled" and job.progress_step == 3
    assert job.error.startswith("Cancelled by a user after 3 of 10 rows; the rows imported before are kept")
    assert Prompt.objects.filter(project=project).count() == 3 and job.report["created_prompts"] == 3
    response = api(admin_user).post(f"{API}/imports/{job.pk}/cancel/")
    assert response.status_code == 409  # already finished


def test_an_import_whose_worker_died_resumes_after_its_committed_chunks(admin_user, project, settings):
    settings.T2G_IMPORT_CHUNK_ROWS = 2
    texts = [f"Resumed {i}." for i in range(5)]
    job = _queue(project, admin_user, jsonl(texts))
    # The first run claimed it and committed one chunk (rows, progress and report together), then died.
    claimed = lifecycle.claim(PromptImport, job.pk)
    report = services.ImportReport()
    with_rows = services.PromptWriter(project)
    with_rows.write(import_jobs.parse_prompts(jsonl(texts[:2]), "jsonl", max_bytes=10**6).rows, report)
    lifecycle.progress(claimed, 2, 5, report=report.as_dict())
    PromptImport.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert reaper.reap(stale_after_s=60)["annotations.promptimport"]["resumed"] == 1
    job.refresh_from_db()
    assert job.status == "queued" and "queued again" in job.error
    import_jobs.prompt_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2
    assert job.report["created_prompts"] == 5 and job.report["duplicate_lines"] == []
    assert sorted(Prompt.objects.filter(project=project).values_list("text", flat=True)) == sorted(texts)


def test_an_output_column_is_imported_by_the_job_as_by_the_request(admin_user, project):
    data = (
        json.dumps({"prompt": "With output.", "output": "Done.", "source_model": "gpt-x"}) + "\n"
    ).encode()
    job = _queue(project, admin_user, data)
    import_jobs.prompt_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.report["created_outputs"] == 1
    assert Generation.objects.get(prompt__text="With output.").source_model == "gpt-x"


def test_a_quoted_csv_header_passes_the_quick_checks(api, admin_user, project):
    data = b'\xef\xbb\xbf"id","prompt"\n1,"Hello, world"\n'  # a BOM and quoted columns, as spreadsheets write
    response = api(admin_user).post(
        f"{API}/projects/{project.pk}/import/", {"file": upload("p.csv", data), "background": "true"}
    )
    assert response.status_code == 202, response.content
    import_jobs.prompt_import_run(import_id=response.json()["id"])
    assert Prompt.objects.get(project=project).text == "Hello, world"

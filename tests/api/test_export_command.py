"""`manage.py export_feedback`, and one export through a real Celery worker and broker."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotations.models import DatasetExport
from tests.conftest import wait_for

from .helpers import sha256_file


@pytest.mark.django_db
def test_export_to_a_file_records_the_snapshot(feedback, tmp_path, capsys):
    out = tmp_path / "kto.jsonl"
    call_command("export_feedback", "--kind", "kto", "--output", str(out), "--project", "Demo project")
    export = DatasetExport.objects.get()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == export.row_count == 4  # g1a, g1b, g1c, g1d (g2a's 3 is neutral)
    assert export.content_hash == sha256_file(out) and export.file_path == str(out)
    assert export.query["project"] == feedback.project.pk and export.created_by is None
    stdout = capsys.readouterr().out
    assert f"Export {export.pk}: 4 kto row(s)" in stdout and export.content_hash in stdout
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.django_db
def test_export_to_standard_output(feedback, monkeypatch):
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer, encoding="utf-8"))
    call_command(
        "export_feedback", "--kind", "spans", "--output", "-", "--annotator", "ann2", "--status", "any"
    )
    sys.stdout.flush()
    data = buffer.getvalue()
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert [row["annotation_id"] for row in rows] == [
        feedback.annotations[name].pk for name in ("a3", "a4", "a6", "draft", "a7")
    ]
    assert DatasetExport.objects.get().content_hash == hashlib.sha256(data).hexdigest()


@pytest.mark.django_db
def test_export_to_the_exports_folder_is_downloadable(feedback, settings, capsys):
    call_command("export_feedback", "--kind", "token-rewards", "--format", "parquet", "--identify-annotators")
    export = DatasetExport.objects.get()
    path = Path(settings.VAR_DIR) / export.file_path
    assert export.file_path == f"exports/export-{export.pk}-token-rewards.parquet"
    assert export.content_hash == sha256_file(path) and export.row_count == 4
    assert export.query["identify_annotators"] is True
    assert str(path) in capsys.readouterr().out


@pytest.mark.django_db
def test_background_export_is_queued(feedback, capsys):
    call_command("export_feedback", "--kind", "dpo", "--format", "csv", "--background")
    export = DatasetExport.objects.get()
    assert export.status == "queued"
    assert f"Queued export {export.pk}" in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "spans", "--project", "No such project"], "No project 'No such project'"),
        (["--kind", "spans", "--annotator", "ghost"], "No user 'ghost'"),
        (["--kind", "spans", "--since", "last week"], "submitted_after: must be an ISO 8601"),
        (["--kind", "kto", "--status", "draft"], "kto exports use submitted annotations only"),
        (["--kind", "spans", "--output", "/no/such/dir/x.jsonl"], "no such directory"),
        (["--kind", "spans", "--background", "--output", "x.jsonl"], "leave out --output"),
    ],
)
def test_command_errors_are_clear(feedback, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("export_feedback", *args)
    assert not DatasetExport.objects.exclude(status="failed").exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_export_through_a_real_worker(celery_worker_process, api, researcher, project, make_generation):
    """POST → committed row → broker → worker claims it, writes and renames → download matches the hash."""
    from django.conf import settings

    from annotations.models import Annotation

    generation = make_generation(project, "An output worth a critique.")
    writer = researcher.__class__.objects.create_user(username="worker-ann", password="x")
    Annotation.objects.create(
        generation=generation, annotator=writer, status="submitted", rating=4, overall_critique="ok"
    )
    client = api(researcher)
    response = client.post("/api/v1/exports/", {"kind": "spans", "format": "jsonl"}, format="json")
    assert response.status_code == 202
    export_id = response.json()["id"]
    wait_for(
        lambda: DatasetExport.objects.get(pk=export_id).status in ("succeeded", "failed"),
        timeout=60,
        message=f"the export to finish (worker log: {celery_worker_process.log_path})",
    )
    export = DatasetExport.objects.get(pk=export_id)
    path = Path(settings.VAR_DIR) / export.file_path
    try:
        assert export.status == "succeeded", export.error
        assert export.row_count == 1 and export.total_rows == 1
        download = client.get(f"/api/v1/exports/{export_id}/download/")
        assert download.status_code == 200
        data = b"".join(download.streaming_content)
        assert hashlib.sha256(data).hexdigest() == export.content_hash
        assert json.loads(data)["overall_critique"] == "ok"
    finally:
        path.unlink(missing_ok=True)

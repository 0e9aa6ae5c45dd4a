"""Exports written to S3 (moto_server) and downloaded through the web: streamed, or by a signed URL."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import pytest
from django.urls import reverse

from annotations.exports import jobs as export_jobs
from annotations.models import DatasetExport
from artifacts import default_store

pytestmark = [pytest.mark.django_db, pytest.mark.heavy]  # a moto_server process


@pytest.fixture
def s3_export(s3_settings, critiqued, tmp_path, researcher):
    s3_settings.VAR_DIR = tmp_path / "var"  # this process's own disk: nothing of the export may land there
    # Exports are visible to their creator and admins: the researcher downloading it below creates it.
    export = export_jobs.export_create(kind="spans", fmt="jsonl", created_by=researcher, enqueue=False)
    export = export_jobs.export_run(export_id=export.pk)
    assert export.status == DatasetExport.Status.SUCCEEDED, export.error
    return export


def test_export_is_written_to_the_store_not_the_disk(s3_export, tmp_path):
    assert s3_export.file_path == f"exports/export-{s3_export.pk}-spans.jsonl"
    body = default_store().get_bytes(s3_export.file_path)
    assert hashlib.sha256(body).hexdigest() == s3_export.content_hash
    assert body.count(b"\n") == s3_export.row_count == 4
    assert not [p for p in Path(tmp_path).rglob("*") if "export" in p.name]


@pytest.mark.parametrize("url_name", ["data_export_download", "api-export-download"])
def test_download_streams_from_the_store(s3_export, researcher, client, url_name):
    client.force_login(researcher)
    response = client.get(reverse(url_name, kwargs={"pk": s3_export.pk}))
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == s3_export.content_hash == response["X-Content-SHA256"]
    assert f"text2grad-spans-{s3_export.pk}" in response["Content-Disposition"]


def test_download_redirects_to_a_signed_url_when_configured(s3_export, researcher, client, settings):
    settings.T2G_STORAGE_SIGNED_DOWNLOADS = True
    client.force_login(researcher)
    response = client.get(reverse("data_export_download", kwargs={"pk": s3_export.pk}))
    assert response.status_code == 302
    assert response["Location"].startswith(settings.T2G_STORAGE_OPTIONS["endpoint_url"])
    with urllib.request.urlopen(response["Location"], timeout=10) as signed:
        assert hashlib.sha256(signed.read()).hexdigest() == s3_export.content_hash
        assert f"text2grad-spans-{s3_export.pk}" in signed.headers["Content-Disposition"]


def test_a_deleted_object_is_a_404_not_a_crash(s3_export, researcher, client):
    default_store().delete(s3_export.file_path)
    client.force_login(researcher)
    assert client.get(reverse("data_export_download", kwargs={"pk": s3_export.pk})).status_code == 404
    api_response = client.get(reverse("api-export-download", kwargs={"pk": s3_export.pk}))
    assert api_response.status_code == 409


def test_stale_export_is_reaped_with_the_store(s3_settings, critiqued):
    from django.utils import timezone

    export = export_jobs.export_create(kind="spans", fmt="csv", enqueue=False)
    DatasetExport.objects.filter(pk=export.pk).update(
        status="running", heartbeat_at=timezone.now() - timezone.timedelta(hours=1)
    )
    partial = f"{export_jobs.EXPORTS_PREFIX}/{export_jobs._partial_name(export.pk, 'abc')}"
    default_store().put_bytes(partial, b"half an export")
    from jobs import reaper

    assert reaper.reap(stale_after_s=60)["annotations.datasetexport"] == {"resumed": 1, "failed": 0}
    assert DatasetExport.objects.get(pk=export.pk).status == DatasetExport.Status.QUEUED
    assert not default_store().exists(partial)

"""Export limits: per-user concurrent and hourly limits, a free-space check before writing, and a
retention period after which the housekeeping schedule deletes the files."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotations.exports import jobs as export_jobs
from annotations.models import DatasetExport

pytestmark = pytest.mark.django_db
API = "/api/v1"
BODY = {"kind": "spans", "format": "jsonl"}


def test_concurrent_exports_per_user_are_limited(api, feedback, researcher, admin_user, settings):
    settings.T2G_EXPORT_MAX_ACTIVE_PER_USER = 2
    client = api(researcher)
    assert [client.post(f"{API}/exports/", BODY, format="json").status_code for _ in range(2)] == [202, 202]
    third = client.post(f"{API}/exports/", BODY, format="json")
    assert third.status_code == 429 and "2 exports queued or running" in third.json()["detail"]
    assert DatasetExport.objects.filter(created_by=researcher).count() == 2
    assert api(admin_user).post(f"{API}/exports/", BODY, format="json").status_code == 202  # per user
    first = DatasetExport.objects.filter(created_by=researcher).earliest("id")
    export_jobs.export_run(export_id=first.pk)  # one finishes: room for another
    assert client.post(f"{API}/exports/", BODY, format="json").status_code == 202


def test_exports_per_hour_are_limited(api, client, feedback, researcher, settings):
    settings.T2G_EXPORT_MAX_PER_HOUR_PER_USER = 3
    rest = api(researcher)
    for _ in range(3):
        export_id = rest.post(f"{API}/exports/", BODY, format="json").json()["id"]
        export_jobs.export_run(export_id=export_id)
    refused = rest.post(f"{API}/exports/", BODY, format="json")
    assert refused.status_code == 429 and "in the last hour" in refused.json()["detail"]
    client.force_login(researcher)
    page = client.post("/data/exports/", BODY)
    assert page.status_code == 429 and "in the last hour" in page.content.decode()
    assert DatasetExport.objects.count() == 3
    DatasetExport.objects.filter(pk=export_id).update(created_at=timezone.now() - timedelta(hours=2))
    assert rest.post(f"{API}/exports/", BODY, format="json").status_code == 202


def test_no_export_starts_or_writes_without_free_space(api, feedback, researcher, settings):
    queued = export_jobs.export_create(kind="spans", fmt="jsonl", created_by=researcher, enqueue=False)
    settings.T2G_EXPORT_MIN_FREE_BYTES = 2**62  # more than any disk has
    response = api(researcher).post(f"{API}/exports/", BODY, format="json")
    assert response.status_code == 507 and "Not enough free disk space" in response.json()["detail"]
    assert DatasetExport.objects.count() == 1
    with pytest.raises(export_jobs.ExportRefused):
        export_jobs.export_run(export_id=queued.pk)
    queued.refresh_from_db()
    assert queued.status == "failed" and "Not enough free disk space" in queued.error
    assert list(export_jobs.export_dir().iterdir()) == []


def test_old_export_files_are_deleted_by_the_housekeeping_schedule(api, feedback, researcher, settings):
    from annotations.tasks import expire_exports
    from artifacts import default_store

    assert any(
        entry["task"] == "annotations.expire_exports" for entry in settings.CELERY_BEAT_SCHEDULE.values()
    )
    settings.T2G_EXPORT_RETENTION_DAYS = 14
    old, recent = (
        export_jobs.export_create(kind="spans", fmt="csv", created_by=researcher, enqueue=False) for _ in "ab"
    )
    for export in (old, recent):
        export_jobs.export_run(export_id=export.pk)
    old_key = export_jobs.export_key(DatasetExport.objects.get(pk=old.pk))
    assert old_key is not None
    DatasetExport.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=15))
    assert expire_exports() == 1
    old.refresh_from_db()
    assert (
        old.expired_at is not None
        and not default_store().exists(old_key)
        and "deleted after 14 days" in old.error
    )
    assert api(researcher).get(f"{API}/exports/{old.pk}/download/").status_code == 409
    assert api(researcher).get(f"{API}/exports/{recent.pk}/download/").status_code == 200
    assert expire_exports() == 0  # idempotent
    settings.T2G_EXPORT_RETENTION_DAYS = 0
    DatasetExport.objects.filter(pk=recent.pk).update(finished_at=timezone.now() - timedelta(days=999))
    assert expire_exports() == 0  # 0 keeps files forever


def test_the_space_check_measures_the_store_not_var(api, feedback, researcher, settings, tmp_path):
    """With the store on another disk (``T2G_STORAGE_URL=file://…``; here /dev/shm, a tmpfs smaller than
    the disk T2G_VAR_DIR is on), the check measures the disk the export is written to."""
    import shutil
    from pathlib import Path

    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm on this machine")
    store_root = shm / f"t2g-store-{tmp_path.name}"
    settings.T2G_STORAGE_URL = f"file://{store_root}"
    try:
        store_free = shutil.disk_usage(shm).free
        var_free = shutil.disk_usage(settings.VAR_DIR).free
        if abs(var_free - store_free) < 2 * 1024**3:
            pytest.skip("/dev/shm and T2G_VAR_DIR have about the same free space here")
        settings.T2G_EXPORT_MIN_FREE_BYTES = (store_free + var_free) // 2  # one has enough, the other not
        refused = store_free < var_free
        if refused:
            with pytest.raises(export_jobs.ExportRefused) as caught:
                export_jobs.export_space_check()
            assert caught.value.status == 507
        else:
            export_jobs.export_space_check()
        assert export_jobs.export_dir() == store_root / "exports"
    finally:
        shutil.rmtree(store_root, ignore_errors=True)

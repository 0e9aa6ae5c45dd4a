"""Dataset exports, shared by the UI, the API, the worker and the commands (prompt imports: ``imports``).

An export is a DatasetExport row: its resolved query, row count and the sha256 of the bytes written make it
a dataset snapshot a paper or a training round can cite. Background exports are claimed by the worker with a
conditional update (QUEUED → RUNNING) and written to the artifact store under ``exports/`` (a local temporary
file renamed into place, or an S3 multipart upload completed only on success), so a half-written file is
never offered for download. ``file_path`` holds the store key: any web process can stream it.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from artifacts import StorageError, default_store
from audit.services import audit_record
from jobs import dispatch, lifecycle

from .. import exports, roles
from ..models import DatasetExport
from ..webhooks import webhook_event_emit

logger = logging.getLogger(__name__)

EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}


EXPORTS_PREFIX = "exports"  # the store key prefix of exports (a folder of VAR_DIR with the local store)


class EmptyExportError(Exception):
    """The query matched no rows: no file is offered (an empty JSONL file cannot even be loaded by
    ``datasets.load_dataset``); the message says why, in terms of the query."""


def empty_reason(kind: str, query: exports.ExportQuery) -> str:
    """Why a query gave no rows, with the counts a researcher needs to widen it."""
    matched = exports.annotations_for(query)
    submitted = matched.count()
    if submitted == 0:
        return "Nothing to export: no submitted annotation matches these filters. Widen the project, dates or status."
    if kind == "token-rewards":
        return (
            f"Nothing to export: {submitted} annotations match, but none has token rewards"
            f"{' for this tokenizer' if query.tokenizer_fingerprint else ''} yet (they are computed by the worker "
            "after submission)."
        )
    rated = matched.filter(rating__isnull=False)
    if kind == "kto":
        return (
            f"Nothing to export: {rated.count()} of {submitted} matching annotations carry a rating, and no output's "
            f"mean rating is at least {query.kto_desirable_min} or at most {query.kto_undesirable_max}."
        )
    if kind == "dpo":
        outputs = rated.values("generation_id").distinct().count()
        return (
            f"Nothing to export: a DPO pair needs two rated outputs of the same prompt whose mean ratings differ by "
            f"at least {query.dpo_min_margin}. {submitted} annotations match, {rated.count()} rated, over {outputs} "
            "outputs: no prompt has two such outputs. Generate more outputs per prompt, or lower the margin."
        )
    return "Nothing to export: no rows match this query."


def _finish_empty(export: DatasetExport, reason: str) -> DatasetExport:
    """Fail an export that matched no rows, with the reason; fenced like every end of a job (a run that
    lost the export to the reaper writes nothing)."""
    lifecycle.finish(export, DatasetExport.Status.FAILED, error=reason, row_count=0)
    export.refresh_from_db()
    return export


def export_dir() -> Path:
    """The exports' folder on this host's disk, when the artifact store is a local folder (which need not
    be under T2G_VAR_DIR: ``T2G_STORAGE_URL=file:///…``); an S3 store has none (then the old place)."""
    return default_store().local_path(EXPORTS_PREFIX) or Path(settings.VAR_DIR) / EXPORTS_PREFIX


def exports_visible_to(user) -> QuerySet[DatasetExport]:
    """Admins see every export; anyone else only the exports they created."""
    if roles.is_admin(user):
        return DatasetExport.objects.all()
    if not user.is_authenticated:
        return DatasetExport.objects.none()
    return DatasetExport.objects.filter(created_by=user)


def export_validate(*, kind: str, fmt: str, query: dict | None, user=None) -> exports.ExportQuery:
    """Check kind, format and query, and who may ask for them. Raises ExportQueryError or PermissionDenied.

    ``user`` None means the command line, run by whoever operates the install.
    """
    errors = {}
    if kind not in exports.KINDS:
        errors["kind"] = f"must be one of {', '.join(exports.KINDS)}"
    if fmt not in exports.FORMATS:
        errors["format"] = f"must be one of {', '.join(exports.FORMATS)}"
    if errors:
        raise exports.ExportQueryError(errors)
    if user is not None and not roles.can_read_all_feedback(user):
        raise PermissionDenied("Only researchers and admins can export feedback.")
    parsed = exports.ExportQuery.from_dict(query, kind=kind)
    if parsed.identify_annotators and user is not None and not roles.is_admin(user):
        raise PermissionDenied("Only admins can export annotators' usernames; researchers get pseudonyms.")
    return exports.resolve(kind, parsed)


class ExportRefused(Exception):
    """An export that may not start now: a per-user limit (``status`` 429) or no disk space (507)."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


ACTIVE = (DatasetExport.Status.QUEUED, DatasetExport.Status.RUNNING)


def export_space_check() -> None:
    """ExportRefused (507) if the disk the artifact store writes exports to has less than
    T2G_EXPORT_MIN_FREE_BYTES free: the store's folder, wherever it is, not ``var/exports``.

    Object storage has no disk to fill here; only a local store is checked."""
    directory = default_store().local_path(EXPORTS_PREFIX)
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < settings.T2G_EXPORT_MIN_FREE_BYTES:
        raise ExportRefused(
            f"Not enough free disk space for exports ({free / 1024**2:,.0f} MiB free; "
            f"{settings.T2G_EXPORT_MIN_FREE_BYTES / 1024**2:,.0f} MiB required). Ask an admin.",
            status=507,
        )


def _export_limits_check(user) -> None:
    """ExportRefused (429) past the user's concurrent or hourly limit. Run under the user's row lock, so
    two requests at once cannot both pass."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    mine = DatasetExport.objects.filter(created_by=user)
    active = mine.filter(status__in=ACTIVE).count()
    if active >= settings.T2G_EXPORT_MAX_ACTIVE_PER_USER:
        raise ExportRefused(
            f"You have {active} exports queued or running (the limit is "
            f"{settings.T2G_EXPORT_MAX_ACTIVE_PER_USER}); wait for one to finish.",
            status=429,
        )
    recent = mine.filter(created_at__gte=timezone.now() - timedelta(hours=1)).count()
    if recent >= settings.T2G_EXPORT_MAX_PER_HOUR_PER_USER:
        raise ExportRefused(
            f"You started {recent} exports in the last hour (the limit is "
            f"{settings.T2G_EXPORT_MAX_PER_HOUR_PER_USER}); try again later.",
            status=429,
        )


def export_create(
    *, kind: str, fmt: str, query: dict | None = None, created_by=None, enqueue: bool = True
) -> DatasetExport:
    """Record an export and queue it for the worker (after the transaction commits).

    ``enqueue=False`` leaves it queued for the caller to run in-process (the command line). Raises
    ExportRefused past the creator's limits or when the disk is nearly full.
    """
    resolved = export_validate(kind=kind, fmt=fmt, query=query, user=created_by)
    export_space_check()
    with transaction.atomic():
        if created_by is not None:
            _export_limits_check(created_by)
        export = DatasetExport.objects.create(
            kind=kind, format=fmt, query=resolved.as_dict(), created_by=created_by
        )
        audit_record(
            action="export.create",
            actor=created_by,
            obj=export,
            details={"kind": kind, "format": fmt, "query": export.query},
        )
        if enqueue:
            dispatch.enqueue("annotations.export_run", export.pk)
    return export


def export_again(*, export: DatasetExport, created_by=None) -> DatasetExport:
    """A new export with the same kind, format and (resolved) query: the same rows if nothing changed."""
    return export_create(kind=export.kind, fmt=export.format, query=export.query, created_by=created_by)


def export_run(*, export_id: int) -> DatasetExport | None:
    """Worker side: claim a queued export and write its file. Returns None if it was not queued.

    The claim, heartbeat and fenced finish are the job framework's (``jobs.lifecycle``): a worker that
    dies mid-export is noticed by the reaper, which deletes the partial file and queues the export again.
    """
    export = lifecycle.claim(DatasetExport, export_id)
    if export is None:
        logger.info("Export %s is not queued any more; nothing to do", export_id)
        return None
    key = f"{EXPORTS_PREFIX}/export-{export.pk}-{export.kind}.{EXTENSIONS[export.format]}"
    partial_key = f"{EXPORTS_PREFIX}/{_partial_name(export.pk, uuid.uuid4().hex)}"
    with lifecycle.running(export, f"Export {export_id}") as run:
        export_space_check()
        query = exports.ExportQuery.from_dict(export.query, kind=export.kind)
        total = exports.estimate_total(export.kind, query)
        lifecycle.progress(export, 0, total, total_rows=total)
        with default_store().writer(key, partial_key=partial_key) as raw:
            sink = exports.HashingSink(raw)
            count = exports.write_export(
                export.kind, export.format, query, sink, progress=_progress_reporter(export, total)
            )
            if not lifecycle.still_ours(export):
                raise ExportLost  # raised inside the writer: nothing is published at the key
        if count == 0:
            default_store().delete(key)
            return _finish_empty(export, empty_reason(export.kind, query))
    if run.lost:
        return None
    return _finish_succeeded(export, count, sink.hexdigest, key)


class ExportLost(lifecycle.Lost):
    """The export was reaped (this run looked dead) or cancelled while it was being written."""


def _partial_name(pk: int, token: str) -> str:
    """The hidden file an export is written to before its rename (``token="*"``: a glob for all of them)."""
    return f".export-{pk}-{token}.part"


def export_partials_delete(pk: int) -> None:
    """Delete an export's partial files (the reaper calls it once the export's worker is gone). S3 never
    lists an unfinished upload; a local store has partial files."""
    store = default_store()
    pattern = f"{EXPORTS_PREFIX}/{_partial_name(pk, '*')}"
    for key in store.list(EXPORTS_PREFIX):
        if fnmatch.fnmatch(key, pattern):
            store.delete(key)


def exports_expire(*, retention_days: int | None = None, now=None) -> int:
    """Delete the files of exports finished more than ``retention_days`` ago (T2G_EXPORT_RETENTION_DAYS;
    0 keeps them forever) and mark them expired; the row, its query and hash stay, so "Export again"
    rebuilds the same rows. Returns how many expired."""
    days = settings.T2G_EXPORT_RETENTION_DAYS if retention_days is None else retention_days
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = DatasetExport.objects.filter(
        status=DatasetExport.Status.SUCCEEDED, finished_at__lt=cutoff, expired_at__isnull=True
    )
    count = 0
    for export in old.iterator():
        key = export_key(export)
        if key is not None:
            default_store().delete(key)
        DatasetExport.objects.filter(pk=export.pk).update(
            file_path="",
            expired_at=timezone.now(),
            error=f"The file was deleted after {days} days; export again.",
        )
        count += 1
    return count


def _finish_failed(export: DatasetExport, exc: BaseException) -> None:
    """The synchronous path (the command line): the row was never claimed by a worker."""
    DatasetExport.objects.filter(pk=export.pk).update(
        status=DatasetExport.Status.FAILED,
        error=f"{type(exc).__name__}: {exc}"[:10_000],
        finished_at=timezone.now(),
    )


def _finish_succeeded(export: DatasetExport, count: int, content_hash: str, file_path: str) -> DatasetExport:
    """Record the dataset snapshot: row count, sha256 of the bytes written, and where they are."""
    rows = DatasetExport.objects.filter(pk=export.pk)
    if export.attempts:  # a worker's run: only while it still owns the job
        rows = lifecycle.owned(export)
    with transaction.atomic():
        won = rows.update(
            status=DatasetExport.Status.SUCCEEDED,
            progress_step=count,
            progress_total=count,
            owner="",
            row_count=count,
            total_rows=count,
            content_hash=content_hash,
            file_path=file_path,
            finished_at=timezone.now(),
        )
        export.refresh_from_db()
        if won:
            webhook_event_emit(event="export.ready", data={"export": {
                "id": export.pk, "kind": export.kind, "format": export.format, "row_count": count,
                "content_hash": content_hash, "created_by": export.created_by_id,
                "download_path": f"/api/v1/exports/{export.pk}/download/"}})  # fmt: skip
    return export


def _progress_reporter(export: DatasetExport, total: int) -> Callable[[int], None]:
    def report(rows_written: int) -> None:
        # An upper-bound total (kto) may be passed; keep the bar under 100% until the end.
        written = lifecycle.progress(
            export,
            rows_written,
            max(total, rows_written),
            row_count=rows_written,
            total_rows=max(total, rows_written),
        )
        if not written:  # reaped or cancelled: stop writing rows nobody will keep
            raise ExportLost

    return report


def export_write(
    *,
    kind: str,
    fmt: str,
    query: dict | None,
    sink: IO[bytes],
    file_path: str = "",
    created_by=None,
) -> DatasetExport:
    """Write an export synchronously to an open binary stream (the command line), recording the snapshot."""
    resolved = export_validate(kind=kind, fmt=fmt, query=query, user=created_by)
    export = DatasetExport.objects.create(
        kind=kind,
        format=fmt,
        query=resolved.as_dict(),
        status=DatasetExport.Status.RUNNING,
        created_by=created_by,
    )
    hashing = exports.HashingSink(sink)
    try:
        count = exports.write_export(kind, fmt, resolved, hashing)
        hashing.flush()
    except BaseException as exc:
        _finish_failed(export, exc)
        raise
    if count == 0:
        reason = empty_reason(kind, resolved)
        _finish_empty(export, reason)
        raise EmptyExportError(reason)
    return _finish_succeeded(export, count, hashing.hexdigest, file_path)


def export_key(export: DatasetExport) -> str | None:
    """The export's store key if it is a finished export under ``exports/`` whose file still exists."""
    if export.status != DatasetExport.Status.SUCCEEDED or not export.file_path:
        return None
    key = export.file_path
    if not key.startswith(f"{EXPORTS_PREFIX}/"):
        return None  # written by the command line to a file of its own choosing
    try:
        return key if default_store().is_file(key) else None
    except StorageError:  # not a well-formed key (``..`` and such)
        return None


def export_open(export: DatasetExport) -> IO[bytes] | None:
    """A stream of the export's bytes, read in blocks from the store (never the whole file at once)."""
    key = export_key(export)
    return default_store().open(key) if key else None


def export_signed_url(export: DatasetExport) -> str | None:
    """A short-lived URL of the object store, when downloads are configured to go there directly."""
    store = default_store()
    if not settings.T2G_STORAGE_SIGNED_DOWNLOADS or store.is_local:
        return None
    key = export_key(export)
    if key is None:
        return None
    return store.signed_url(
        key,
        expires_s=settings.T2G_STORAGE_SIGNED_URL_EXPIRY_S,
        filename=export_download_name(export),
        content_type=exports.CONTENT_TYPES[export.format],
    )


def export_downloaded(*, export: DatasetExport, user) -> None:
    """Record that ``user`` fetched the export's file (its hash says exactly which bytes)."""
    audit_record(
        action="export.download",
        actor=user,
        obj=export,
        details={
            "content_hash": export.content_hash,
            "identify_annotators": export.query.get("identify_annotators"),
        },
    )


def export_download_name(export: DatasetExport) -> str:
    return f"text2grad-{export.kind}-{export.pk}-{export.content_hash[:12]}.{EXTENSIONS[export.format]}"

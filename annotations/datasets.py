"""Writes for dataset exports and prompt imports, shared by the UI, the API and the commands.

An export is a DatasetExport row: its resolved query, row count and the sha256 of the bytes written make it
a dataset snapshot a paper or a training round can cite. Background exports are claimed by the worker with a
conditional update (QUEUED → RUNNING), written to a temporary file under ``VAR_DIR/exports`` and renamed into
place, so a half-written file is never offered for download.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from jobs import dispatch, lifecycle

from . import exports, roles
from .importers import ImportFileError, parse_prompts
from .models import DatasetExport, Project
from .services import ImportReport, prompts_import

logger = logging.getLogger(__name__)

EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}


def export_dir() -> Path:
    return Path(settings.VAR_DIR) / "exports"


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


def export_create(
    *, kind: str, fmt: str, query: dict | None = None, created_by=None, enqueue: bool = True
) -> DatasetExport:
    """Record an export and queue it for the worker (after the transaction commits).

    ``enqueue=False`` leaves it queued for the caller to run in-process (the command line).
    """
    resolved = export_validate(kind=kind, fmt=fmt, query=query, user=created_by)
    with transaction.atomic():
        export = DatasetExport.objects.create(
            kind=kind, format=fmt, query=resolved.as_dict(), created_by=created_by
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
    directory = export_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"export-{export.pk}-{export.kind}.{EXTENSIONS[export.format]}"
    partial = directory / _partial_name(export.pk, uuid.uuid4().hex)
    try:
        with lifecycle.heartbeat(export):
            query = exports.ExportQuery.from_dict(export.query, kind=export.kind)
            total = exports.estimate_total(export.kind, query)
            lifecycle.progress(export, 0, total, total_rows=total)
            with open(partial, "wb") as raw:
                sink = exports.HashingSink(raw)
                count = exports.write_export(
                    export.kind, export.format, query, sink, progress=_progress_reporter(export, total)
                )
                raw.flush()
                os.fsync(raw.fileno())
            if not lifecycle.still_ours(export):
                raise ExportLost
            os.replace(partial, final)
    except ExportLost:
        partial.unlink(missing_ok=True)
        logger.warning("Export %s was taken over while this run wrote it; stopping", export_id)
        return None
    except Exception as exc:
        partial.unlink(missing_ok=True)
        logger.exception("Export %s failed", export_id)
        lifecycle.fail(export, f"{type(exc).__name__}: {exc}")
        raise
    return _finish_succeeded(export, count, sink.hexdigest, str(final.relative_to(settings.VAR_DIR)))


class ExportLost(Exception):
    """The export was reaped (this run looked dead) or cancelled while it was being written."""


def _partial_name(pk: int, token: str) -> str:
    """The hidden file an export is written to before its rename (``token="*"``: a glob for all of them)."""
    return f".export-{pk}-{token}.part"


def export_partials_delete(pk: int) -> None:
    """Delete an export's partial files (the reaper calls it once the export's worker is gone)."""
    for partial in export_dir().glob(_partial_name(pk, "*")):
        partial.unlink(missing_ok=True)


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
    rows.update(
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
    return _finish_succeeded(export, count, hashing.hexdigest, file_path)


def export_file(export: DatasetExport) -> Path | None:
    """The export's file if it is a finished export under ``VAR_DIR/exports`` that still exists."""
    if export.status != DatasetExport.Status.SUCCEEDED or not export.file_path:
        return None
    root = export_dir().resolve()
    path = (Path(settings.VAR_DIR) / export.file_path).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


def export_download_name(export: DatasetExport) -> str:
    return f"text2grad-{export.kind}-{export.pk}-{export.content_hash[:12]}.{EXTENSIONS[export.format]}"


# --- imports --------------------------------------------------------------------------------------
def prompts_upload(
    *, project: Project, data: bytes, fmt: str, allow_partial: bool = False, user=None
) -> ImportReport:
    """Parse an uploaded file and import it (all or nothing unless ``allow_partial``). Admins only.

    Raises ImportFileError for whole-file problems (too large, not UTF-8, unknown format).
    """
    if user is not None and not roles.is_admin(user):
        raise PermissionDenied("Only admins can import prompts.")
    if project.is_archived:
        raise ImportFileError(f"Project {project.name!r} is archived")
    parsed = parse_prompts(data, fmt, max_bytes=settings.T2G_IMPORT_MAX_BYTES)
    return prompts_import(project=project, parsed=parsed, allow_partial=allow_partial)

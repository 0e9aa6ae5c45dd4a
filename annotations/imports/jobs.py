"""Prompt imports, shared by the UI, the API and the worker.

A small file is parsed and written inside the request (``prompts_upload``, all or nothing unless a partial
import is allowed). A large one, or one sent with ``background``, is checked quickly (``import_sniff``),
stored in the artifact store under ``imports/`` and queued as a PromptImport job of the one job framework
(claim, heartbeat, progress, cancel, reaping); the worker (``prompt_import_run``) parses it with the same
parser and writes it chunk by chunk, so a run queued again after its worker died resumes after the chunks
it committed.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import uuid
from typing import IO

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from artifacts import StorageError, default_store
from audit.services import audit_record
from jobs import dispatch, lifecycle

from .. import roles
from ..models import Project, PromptImport
from ..services import ImportReport, PromptWriter, prompts_import
from .parsing import ImportFileError, parse_prompts

logger = logging.getLogger(__name__)

IMPORTS_PREFIX = "imports"  # the store key prefix of uploaded prompt files waiting for their job
MAX_REPORTED_ERRORS = 1000  # a background import keeps the first this many bad lines (and their count)
SNIFF_BYTES = 64 * 1024


def _import_allowed(*, project: Project, user) -> None:
    if user is not None and not roles.is_admin(user):
        raise PermissionDenied("Only admins can import prompts.")
    if project.is_archived:
        raise ImportFileError(f"Project {project.name!r} is archived")


def prompts_upload(
    *, project: Project, data: bytes, fmt: str, allow_partial: bool = False, user=None
) -> ImportReport:
    """Parse an uploaded file and import it in this request (all or nothing unless ``allow_partial``).
    Admins only. For files up to T2G_IMPORT_SYNC_MAX_BYTES; larger ones go to ``prompt_import_create``.

    Raises ImportFileError for whole-file problems (too large, not UTF-8, unknown format).
    """
    _import_allowed(project=project, user=user)
    parsed = parse_prompts(data, fmt, max_bytes=settings.T2G_IMPORT_MAX_BYTES)
    report = prompts_import(project=project, parsed=parsed, allow_partial=allow_partial)
    _import_audit(project=project, user=user, fmt=fmt, size=len(data), report=report)
    return report


def _import_audit(*, project: Project, user, fmt: str, size: int, report: ImportReport, job=None) -> None:
    details = {
        "format": fmt,
        "bytes": size,
        "created_prompts": report.created_prompts,
        "created_outputs": report.created_outputs,
        "errors": len(report.errors),
    }
    if job is not None:
        details["import_job"] = job.pk
    audit_record(
        action="prompts.import" if report.committed else "prompts.import.refused",
        actor=user,
        obj=project,
        details=details,
    )


def import_runs_in_background(size: int, *, asked: bool = False) -> bool:
    """Whether an upload of ``size`` bytes becomes a job (larger than T2G_IMPORT_SYNC_MAX_BYTES, or asked)."""
    return asked or size > settings.T2G_IMPORT_SYNC_MAX_BYTES


def import_sniff(head: bytes, fmt: str) -> None:
    """The checks a request can make at once on a file's first bytes, before it is stored for the job:
    the format, UTF-8 text, a CSV header with a prompt column. Raises ImportFileError; every line is
    checked by the job with the same parser as a small import (``parsing.parse_prompts``)."""
    if fmt not in PromptImport.Format.values:
        raise ImportFileError(f"Unknown format {fmt!r}; use jsonl or csv")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3 or exc.reason != "unexpected end of data":  # not a cut character
            raise ImportFileError(f"The file is not UTF-8 text (byte {exc.start} is invalid)") from exc
        text = head[: exc.start].decode("utf-8-sig")
    if not text.strip():
        raise ImportFileError("The file is empty")
    if fmt == "csv":
        header = next(csv.reader(io.StringIO(text.splitlines()[0])), [])
        columns = {column.strip() for column in header}
        if not {"prompt", "text"} & columns:
            raise ImportFileError("The CSV header must have a 'prompt' (or 'text') column")


def imports_visible_to(user) -> QuerySet[PromptImport]:
    """Import jobs are admins' (only they may import): everyone else sees none of them."""
    if roles.is_admin(user):
        return PromptImport.objects.all()
    return PromptImport.objects.none()


def prompt_import_create(
    *,
    project: Project,
    upload: IO[bytes],
    size: int,
    fmt: str,
    file_name: str = "",
    allow_partial: bool = False,
    user=None,
) -> PromptImport:
    """Store the upload in the artifact store and queue a background import on the interactive lane.

    Only the quick checks run here (who, the project, the size, the format, the first bytes); the job
    parses every line and writes in chunks (``prompt_import_run``). Raises ImportFileError or
    PermissionDenied.
    """
    _import_allowed(project=project, user=user)
    limit = settings.T2G_IMPORT_MAX_BYTES
    if size > limit:
        raise ImportFileError(f"The file is {size:,} bytes; the limit is {limit:,} bytes")
    head = upload.read(SNIFF_BYTES)
    import_sniff(head, fmt)
    key = f"{IMPORTS_PREFIX}/import-{uuid.uuid4().hex}.{fmt}"
    written = 0
    with default_store().writer(key) as sink:  # stored where any worker reads it, never a local path
        block = head
        while block:
            written += len(block)
            if written > limit:
                raise ImportFileError(f"The file is over the limit of {limit:,} bytes")
            sink.write(block)
            block = upload.read(1024 * 1024)
    try:
        with transaction.atomic():
            job = PromptImport.objects.create(
                project=project,
                format=fmt,
                allow_partial=allow_partial,
                file_name=file_name[:300],
                size_bytes=written,
                upload_key=key,
                created_by=user,
            )
            audit_record(
                action="prompts.import.queued",
                actor=user,
                obj=project,
                details={"format": fmt, "bytes": written, "import_job": job.pk},
            )
            dispatch.enqueue("annotations.import_run", job.pk)
    except BaseException:
        default_store().delete(key)
        raise
    return job


def prompt_import_cancel(*, job: PromptImport, user=None) -> bool:
    """A queued import ends at once; a running one stops before its next chunk (the rows it committed
    stay: importing the file again skips them as duplicates). False if it had already finished."""
    if user is not None and not roles.is_admin(user):
        raise PermissionDenied("Only admins can cancel imports.")
    asked = lifecycle.request_cancel(
        PromptImport, job.pk, "Cancelled before it started; nothing was imported."
    )
    if asked:
        audit_record(
            action="prompts.import.cancel", actor=user, obj=job.project, details={"import_job": job.pk}
        )
    return asked


def _report_dict(report: ImportReport) -> dict:
    data = report.as_dict()
    data["error_count"] = len(report.errors)
    data["errors"] = data["errors"][:MAX_REPORTED_ERRORS]
    return data


def _report_from(data: dict) -> ImportReport:
    return ImportReport(
        created_prompts=int(data.get("created_prompts", 0)),
        created_outputs=int(data.get("created_outputs", 0)),
        duplicates=list(data.get("duplicate_lines", [])),
    )


class ImportLost(lifecycle.Lost):
    """The import was reaped (this run looked dead) while it wrote a chunk."""


def prompt_import_run(*, import_id: int) -> PromptImport | None:
    """Worker side: claim a queued import, parse its file, write it chunk by chunk. None if not queued.

    A file with bad lines writes nothing (the job fails, its report listing every bad line) unless it
    allows a partial import. Each chunk commits its rows with the job's progress and running report, so a
    run queued again after its worker died resumes after them; cancel is honoured between chunks.
    """
    job = lifecycle.claim(PromptImport, import_id)
    if job is None:
        logger.info("Import %s is not queued any more; nothing to do", import_id)
        return None
    with lifecycle.running(job, f"Import {import_id}") as run:
        _import_job_rows(job)
    if run.lost:
        return None
    job.refresh_from_db()
    if job.is_finished:
        import_upload_delete(job)
    return job


def _import_job_rows(job: PromptImport) -> None:
    try:
        data = default_store().get_bytes(job.upload_key)
        parsed = parse_prompts(data, job.format, max_bytes=settings.T2G_IMPORT_MAX_BYTES)
    except (ImportFileError, StorageError, FileNotFoundError) as exc:
        lifecycle.fail(job, f"{exc}. Nothing was imported.")
        return
    total = len(parsed.rows)
    report = _report_from(job.report) if job.progress_step else ImportReport()
    report.errors = list(parsed.errors)
    if parsed.errors and not job.allow_partial:
        count = len(parsed.errors)
        lifecycle.finish(
            job,
            PromptImport.Status.FAILED,
            error=f"{count} bad line{'s' if count != 1 else ''}; nothing was imported. "
            "Fix them, or allow a partial import.",
            report=_report_dict(report),
        )
        _import_audit(
            project=job.project, user=job.created_by, fmt=job.format, size=len(data), report=report, job=job
        )
        return
    done = min(job.progress_step, total)
    lifecycle.progress(job, done, total, report=_report_dict(report))
    writer = PromptWriter(job.project)
    chunk = max(1, settings.T2G_IMPORT_CHUNK_ROWS)
    retried_at = -1
    while done < total:
        if lifecycle.cancel_requested(job):
            lifecycle.cancelled(
                job,
                f"Cancelled by a user after {done:,} of {total:,} rows; the rows imported before are kept "
                "(importing the file again skips them as duplicates).",
            )
            return
        rows = parsed.rows[done : done + chunk]
        before = copy.deepcopy(report)
        try:
            with transaction.atomic():
                if not lifecycle.owned(job).select_for_update().exists():
                    raise ImportLost
                writer.write(rows, report)
                if not lifecycle.progress(job, done + len(rows), total, report=_report_dict(report)):
                    raise ImportLost
        except IntegrityError:
            if retried_at == done:
                raise
            # Another import into this project wrote one of these prompts first: read it and retry once.
            retried_at = done
            report = before
            writer.reload()
            continue
        done += len(rows)
    report.committed = True
    lifecycle.finish(
        job,
        PromptImport.Status.SUCCEEDED,
        progress_step=total,
        progress_total=total,
        report=_report_dict(report),
    )
    _import_audit(
        project=job.project, user=job.created_by, fmt=job.format, size=len(data), report=report, job=job
    )


def import_upload_delete(job: PromptImport) -> None:
    """Delete a finished import's uploaded file (the report and the rows stay)."""
    if job.upload_key:
        default_store().delete(job.upload_key)
        PromptImport.objects.filter(pk=job.pk).update(upload_key="")


def import_uploads_sweep() -> int:
    """Periodic (a registered sweep): delete the uploads of imports that finished without their worker
    doing it (cancelled while queued, failed by the reaper). Returns how many."""
    finished = PromptImport.objects.exclude(upload_key="").filter(status__in=PromptImport.FINISHED)
    count = 0
    for job in finished[:200]:
        import_upload_delete(job)
        count += 1
    return count

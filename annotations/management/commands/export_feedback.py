"""Export feedback as a dataset snapshot: spans, token rewards, or TRL-ready KTO/DPO rows."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations import exports
from annotations.exports import jobs as export_jobs
from annotations.models import Project
from annotations.selectors import model_version_model
from artifacts import default_store


class Command(BaseCommand):
    help = (
        "Export feedback (spans, token-rewards, kto or dpo) as JSONL, CSV or Parquet, recording the query, "
        "row count and content hash. Without --output the file goes under var/exports/ and can be "
        "downloaded from the UI and the API as well."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=exports.KINDS)
        parser.add_argument("--format", default="jsonl", choices=exports.FORMATS)
        parser.add_argument("--output", "-o", help="A file path, or - for standard output")
        parser.add_argument("--project", help="Project name or id")
        parser.add_argument("--model-version", help="Model version name or id that generated the outputs")
        parser.add_argument("--annotator", help="Only this annotator's feedback (username)")
        parser.add_argument("--status", choices=exports.STATUSES, default="submitted")
        parser.add_argument("--since", help="Submitted at or after (ISO date or date-time)")
        parser.add_argument("--until", help="Submitted before (ISO date or date-time)")
        parser.add_argument("--tokenizer-fingerprint", default="", help="token-rewards: default the latest")
        parser.add_argument(
            "--identify-annotators", action="store_true", help="Usernames instead of pseudonyms"
        )
        parser.add_argument(
            "--review", choices=exports.REVIEWS, default="any", help="By the reviewer's verdict"
        )
        parser.add_argument("--gold-only", action="store_true", help="Only the outputs' gold annotations")
        parser.add_argument("--kto-desirable-min", type=float)
        parser.add_argument("--kto-undesirable-max", type=float)
        parser.add_argument("--dpo-min-margin", type=float)
        parser.add_argument(
            "--background", action="store_true", help="Queue it for the worker and print its id"
        )

    def handle(self, *args, **options):
        query = {
            "project": _lookup(Project, "name", options["project"]),
            "model_version": _lookup(model_version_model(), "name", options["model_version"]),
            "annotator": _lookup(get_user_model(), "username", options["annotator"], by_id=False),
            "status": options["status"],
            "submitted_after": options["since"],
            "submitted_before": options["until"],
            "tokenizer_fingerprint": options["tokenizer_fingerprint"],
            "identify_annotators": options["identify_annotators"],
            "review": options["review"],
            "gold_only": options["gold_only"],
            "kto_desirable_min": options["kto_desirable_min"],
            "kto_undesirable_max": options["kto_undesirable_max"],
            "dpo_min_margin": options["dpo_min_margin"],
        }
        kind, fmt, output = options["kind"], options["format"], options["output"]
        try:
            if options["background"]:
                if output:
                    raise CommandError(
                        "--background writes to the artifact store (exports/); leave out --output"
                    )
                export = export_jobs.export_create(kind=kind, fmt=fmt, query=query)
                self.stdout.write(
                    f"Queued export {export.pk}; the worker writes it to the artifact store under exports/."
                )
                return
            if output == "-":
                export = export_jobs.export_write(kind=kind, fmt=fmt, query=query, sink=sys.stdout.buffer)
                sys.stdout.flush()
                self.stderr.write(_summary(export, "standard output"))
                return
            if output:
                export = _write_file(kind, fmt, query, Path(output))
            else:
                export = export_jobs.export_create(kind=kind, fmt=fmt, query=query, enqueue=False)
                export = export_jobs.export_run(export_id=export.pk)
                if export.status == export.Status.FAILED:
                    raise CommandError(export.error)
        except (exports.ExportQueryError, export_jobs.EmptyExportError) as exc:
            raise CommandError(str(exc)) from exc
        where = export.file_path if output else default_store().describe(export.file_path)
        self.stdout.write(_summary(export, where))


def _lookup(model, field: str, value: str | None, *, by_id: bool = True) -> int | None:
    if not value:
        return None
    row = model.objects.filter(**{field: value}).first()
    if row is None and by_id and value.isdigit():
        row = model.objects.filter(pk=int(value)).first()
    if row is None:
        raise CommandError(f"No {model._meta.verbose_name} {value!r}")
    return row.pk


def _write_file(kind: str, fmt: str, query: dict, path: Path):
    """Write beside the target and rename, so the target is never half written."""
    path = path.resolve()
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such directory")
    partial = path.with_name(f".{path.name}.part")
    try:
        with open(partial, "wb") as raw:
            export = export_jobs.export_write(kind=kind, fmt=fmt, query=query, sink=raw, file_path=str(path))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return export


def _summary(export, where: str) -> str:
    return (
        f"Export {export.pk}: {export.row_count} {export.kind} row(s) as {export.format} to {where}\n"
        f"sha256 {export.content_hash}"
    )

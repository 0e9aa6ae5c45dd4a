"""Researcher pages under /data/: dataset exports (with a live progress bar) and prompt imports."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from .. import exports, privacy, roles, selectors
from ..exports import jobs as export_jobs
from ..imports import jobs as import_jobs
from ..imports.parsing import ImportFileError, detect_format
from ..models import DatasetExport, Project, PromptImport
from ..safejson import positive_id
from .access import admin_page

QUERY_FIELDS = (
    "project",
    "model_version",
    "annotator",
    "status",
    "submitted_after",
    "submitted_before",
    "tokenizer_fingerprint",
    "review",
    "origin",
    "kto_desirable_min",
    "kto_undesirable_max",
    "dpo_min_margin",
)


def _require_researcher(request: HttpRequest) -> None:
    if not roles.can_read_all_feedback(request.user):
        raise PermissionDenied("Only researchers and admins can export feedback.")


def _get_export_for_user(request: HttpRequest, pk: int) -> DatasetExport:
    _require_researcher(request)
    return get_object_or_404(export_jobs.exports_visible_to(request.user).select_related("created_by"), pk=pk)


def _form_choices(viewer) -> dict:
    annotators = (
        get_user_model()
        .objects.filter(groups__name=roles.ANNOTATOR)
        .order_by("username")
        .values_list("pk", "username")
    )
    return {
        "kinds": exports.KINDS,
        "formats": exports.FORMATS,
        "statuses": exports.STATUSES,
        "reviews": exports.REVIEWS,
        "origins": exports.ORIGINS,
        "projects": Project.objects.order_by("name").values_list("pk", "name"),
        "versions": selectors.model_versions_with_outputs(),
        "annotators": sorted(
            ((pk, privacy.annotator_name(viewer, pk, name)) for pk, name in annotators),
            key=lambda choice: choice[1],
        ),
    }


def _query_from_post(post) -> dict:
    query = {key: post.get(key, "").strip() for key in QUERY_FIELDS if post.get(key, "").strip()}
    query["identify_annotators"] = post.get("identify_annotators") == "on"
    query["gold_only"] = post.get("gold_only") == "on"
    return query


@login_required
@require_http_methods(["GET", "POST"])
def export_list(request: HttpRequest) -> HttpResponse:
    _require_researcher(request)
    errors, posted, refused = {}, {}, 0
    if request.method == "POST":
        posted = request.POST
        try:
            export = export_jobs.export_create(
                kind=posted.get("kind", ""),
                fmt=posted.get("format", ""),
                query=_query_from_post(posted),
                created_by=request.user,
            )
        except exports.ExportQueryError as exc:
            errors = exc.errors
        except export_jobs.ExportRefused as exc:
            errors, refused = {"export": str(exc)}, exc.status
        else:
            messages.success(request, f"Export {export.pk} queued: the worker writes it in the background.")
            return redirect("data_export_detail", pk=export.pk)
    visible = export_jobs.exports_visible_to(request.user).select_related("created_by")
    page = Paginator(visible, 25).get_page(request.GET.get("page"))
    context = {"page": page, "errors": errors, "posted": posted, **_form_choices(request.user)}
    return render(request, "data/export_list.html", context, status=refused or (400 if errors else 200))


@login_required
@vary_on_headers("HX-Request")
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    export = _get_export_for_user(request, pk)
    template = "data/_export_status.html" if request.htmx else "data/export_detail.html"
    return render(request, template, {"export": export, "query_rows": _query_rows(export)})


# The export query as people read it; the stored keys stay as they are (scripts and citations use them).
QUERY_LABELS = {
    "project": "Project",
    "model_version": "Model version",
    "annotator": "Annotator",
    "status": "Annotation status",
    "submitted_after": "Submitted from",
    "submitted_before": "Submitted before",
    "tokenizer_fingerprint": "Tokenizer",
    "identify_annotators": "Usernames instead of pseudonyms",
    "origin": "Written by (people / machine critics)",
    "kto_desirable_min": "KTO: desirable at mean rating ≥",
    "kto_undesirable_max": "KTO: undesirable at mean rating ≤",
    "dpo_min_margin": "DPO: minimum rating margin",
}


def _query_rows(export) -> list[tuple[str, str, object]]:
    """(label, stored key, value); a project id is shown with its name."""
    rows = []
    for key, value in (export.query or {}).items():
        shown = value
        if key == "project" and value:
            name = Project.objects.filter(pk=value).values_list("name", flat=True).first()
            shown = f"{name or '(deleted)'} (#{value})"
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        rows.append((QUERY_LABELS.get(key, key.replace("_", " ").capitalize()), key, shown))
    return rows


@login_required
def export_download(request: HttpRequest, pk: int) -> HttpResponse:
    export = _get_export_for_user(request, pk)
    signed_url = export_jobs.export_signed_url(export)
    if signed_url:
        return redirect(signed_url)
    stream = export_jobs.export_open(export)
    if stream is None:
        raise Http404("This export has no file to download.")
    response = FileResponse(
        stream,  # streamed from the artifact store in blocks; FileResponse closes it
        as_attachment=True,
        filename=export_jobs.export_download_name(export),
        content_type=exports.CONTENT_TYPES[export.format],
    )
    response["X-Content-SHA256"] = export.content_hash
    export_jobs.export_downloaded(export=export, user=request.user)
    return response


@login_required
@require_POST
def export_again(request: HttpRequest, pk: int) -> HttpResponse:
    export = _get_export_for_user(request, pk)
    try:
        again = export_jobs.export_again(export=export, created_by=request.user)
    except (exports.ExportQueryError, export_jobs.ExportRefused) as exc:
        messages.error(request, f"Could not run it again: {exc}")
        return redirect("data_export_detail", pk=export.pk)
    messages.success(request, f"Export {again.pk} queued with the same query.")
    return redirect("data_export_detail", pk=again.pk)


# The import pages: admins only (anonymous visitors are sent to log in, other accounts get 403).
importers_only = admin_page("Only admins can import prompts.")


def _get_import_for_user(request: HttpRequest, pk: int) -> PromptImport:
    return get_object_or_404(
        import_jobs.imports_visible_to(request.user).select_related("project", "created_by"), pk=pk
    )


@importers_only
@require_http_methods(["GET", "POST"])
def prompt_import(request: HttpRequest) -> HttpResponse:
    """Small files import in the request and the page shows the report; large ones (or any with
    "background") are stored and imported by a job, and the browser goes to the job's page."""
    projects = Project.objects.filter(is_archived=False).order_by("name")
    recent = import_jobs.imports_visible_to(request.user).select_related("project")[:10]
    context = {
        "projects": projects,
        "report": None,
        "error": "",
        "posted": request.POST,
        "recent": recent,
        "sync_max": settings.T2G_IMPORT_SYNC_MAX_BYTES,
    }
    if request.method == "POST":
        project_id = positive_id(request.POST.get("project"))
        project = projects.filter(pk=project_id).first() if project_id else None
        upload = request.FILES.get("file")
        limit = settings.T2G_IMPORT_MAX_BYTES
        if project is None or upload is None:
            context["error"] = "Choose a project and a file."
        elif upload.size > limit:
            context["error"] = f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes."
        else:
            try:
                fmt = request.POST.get("format") or detect_format(upload.name or "")
                allow_partial = request.POST.get("allow_partial") == "on"
                if import_jobs.import_runs_in_background(
                    upload.size, asked=request.POST.get("background") == "on"
                ):
                    job = import_jobs.prompt_import_create(
                        project=project,
                        upload=upload,
                        size=upload.size,
                        fmt=fmt,
                        file_name=upload.name or "",
                        allow_partial=allow_partial,
                        user=request.user,
                    )
                    messages.success(
                        request, f"Import {job.pk} queued: the worker imports it in the background."
                    )
                    return redirect("data_import_detail", pk=job.pk)
                context["report"] = import_jobs.prompts_upload(
                    project=project,
                    data=upload.read(limit + 1),
                    fmt=fmt,
                    allow_partial=allow_partial,
                    user=request.user,
                )
            except ImportFileError as exc:
                context["error"] = str(exc)
            context["project"] = project
        bad = context["error"] or (context["report"] and not context["report"].committed)
        return render(request, "data/import.html", context, status=400 if bad else 200)
    return render(request, "data/import.html", context)


@importers_only
@vary_on_headers("HX-Request")
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _get_import_for_user(request, pk)
    template = "data/_import_status.html" if request.htmx else "data/import_detail.html"
    return render(request, template, {"job": job})


@importers_only
@require_POST
def import_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _get_import_for_user(request, pk)
    if not import_jobs.prompt_import_cancel(job=job, user=request.user):
        messages.info(request, f"Import {job.pk} had already finished.")
    if request.htmx:
        job.refresh_from_db()
        return render(request, "data/_import_status.html", {"job": job})
    return redirect("data_import_detail", pk=job.pk)

"""HTML for a model version: its page (facts, model card, downloads) and the download builds.

Researchers and admins; every write goes through ``training.services.downloads``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from ..models import ModelDownload, ModelVersion
from ..services import downloads


def _require_downloader(request: HttpRequest) -> None:
    if not downloads.can_download(request.user):
        raise PermissionDenied("Model versions and their downloads are for researchers and admins.")


@require_GET
@login_required
def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_downloader(request)
    version = get_object_or_404(ModelVersion.objects.select_related("parent", "created_by_round"), pk=pk)
    context = {
        "version": version,
        "card": downloads.version_card_text(version),
        "kinds": downloads.download_kinds(version),
        "builds": version.downloads.select_related("version")[:10],
    }
    return render(request, "training/version_detail.html", context)


@require_POST
@login_required
def version_download(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """Ask for a download: straight to the file when it is built, else back to the page, which polls."""
    _require_downloader(request)
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        download = downloads.download_request(version=version, kind=kind, user=request.user)
    except downloads.DownloadUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("version_detail", pk=version.pk)
    if download.status == ModelDownload.Status.SUCCEEDED:
        return redirect("download_file", pk=download.pk)
    messages.info(request, f"The {download.get_kind_display()} is being prepared; its link appears below.")
    return redirect("version_detail", pk=version.pk)


@require_GET
@login_required
@vary_on_headers("HX-Request")
def download_status(request: HttpRequest, pk: int) -> HttpResponse:
    _require_downloader(request)
    download = get_object_or_404(ModelDownload.objects.select_related("version"), pk=pk)
    return render(request, "training/_download.html", {"download": download})


@require_GET
@login_required
def download_file(request: HttpRequest, pk: int) -> HttpResponse:
    _require_downloader(request)
    download = get_object_or_404(ModelDownload.objects.select_related("version"), pk=pk)
    try:
        chunks, length, filename = downloads.download_stream(download=download, user=request.user)
    except downloads.DownloadUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("version_detail", pk=download.version_id)
    response = StreamingHttpResponse(chunks, content_type="application/x-tar")
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response

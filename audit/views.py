"""The audit log page (admins): filters, paging and a CSV download of what the filters select."""

from __future__ import annotations

import csv
from datetime import datetime, time

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from .models import AuditEvent

CSV_COLUMNS = [
    "id",
    "at",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "ip",
    "details",
]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=64)
    actor = forms.CharField(required=False, max_length=150, label="Actor (username)")
    object_type = forms.CharField(required=False, max_length=64)
    object_id = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False, help_text="YYYY-MM-DD, inclusive")
    until = forms.DateField(required=False, help_text="YYYY-MM-DD, inclusive")

    def filter(self, queryset):
        data = self.cleaned_data
        if data.get("action"):
            queryset = queryset.filter(action__startswith=data["action"])
        if data.get("actor"):
            queryset = queryset.filter(actor_username=data["actor"])
        if data.get("object_type"):
            queryset = queryset.filter(object_type=data["object_type"])
        if data.get("object_id"):
            queryset = queryset.filter(object_id=data["object_id"])
        zone = timezone.get_current_timezone()
        if data.get("since"):
            queryset = queryset.filter(at__gte=datetime.combine(data["since"], time.min, zone))
        if data.get("until"):
            queryset = queryset.filter(at__lte=datetime.combine(data["until"], time.max, zone))
        return queryset


def _require_auditor(request: HttpRequest) -> None:
    user = request.user
    if not (user.is_staff or user.is_superuser or user.has_perm("audit.view_auditevent")):
        raise PermissionDenied("Only admins can read the audit log.")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(queryset) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    rows = (
        writer.writerow([_cell(getattr(event, column)) for column in CSV_COLUMNS])
        for event in queryset.iterator(chunk_size=2000)
    )
    response = StreamingHttpResponse(
        (line for chunk in ([writer.writerow(CSV_COLUMNS)], rows) for line in chunk),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    _require_auditor(request)
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "audit/event_list.html", {"form": form, "page": None}, status=400)
    events = form.filter(AuditEvent.objects.all())
    if request.GET.get("download") == "csv":
        return _csv(events)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/event_list.html", {"form": form, "page": page, "query": query.urlencode()})

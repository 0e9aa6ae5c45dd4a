"""HTML views: projects, the annotator's queue and the annotation workspace (htmx).

Views are short: check access, call one service or selector, render. Every write goes through
``annotations.services``, which validates offsets, labels and ownership whatever the client. Access:
an annotator reads and changes only their own annotations (anyone else's id is a 404); researchers and
admins read every annotation and change none (403).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from jobs import health

from . import roles, selectors, services
from .forms import OverallForm, SkipForm, SpanEditForm, SpanForm
from .models import Annotation, Assignment, Project, Span

# The workspace's keyboard shortcuts; the help overlay is rendered from this list.
SHORTCUTS = [
    ("1 … 9", "Label the selected text with that label (opens the span popover, critique focused)"),
    ("Ctrl + Enter", "In the span popover: save the span. Elsewhere: submit and go to the next output"),
    ("Ctrl + S", "Save now: the span being edited, otherwise the draft"),
    ("N", "Next output (once this one is submitted)"),
    ("S", "Skip this output (asks for a reason)"),
    ("U  or  Ctrl + Z", "Undo the last span change (create, edit or delete)"),
    ("Esc", "Close the popover, dialog or help; clear the selection"),
    ("?", "Show or hide this help"),
]
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
_POLARITY_COLORS = {1: "#2e7d32", -1: "#c62828", 0: "#5b6b8c"}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker and worker lanes (``jobs.health``): 200 when ok or degraded, 503 when down."""
    report = health.report()
    return JsonResponse(report, status=503 if report["status"] == "down" else 200)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if roles.is_annotator(request.user) and not roles.is_researcher(request.user):
        return redirect("queue")
    return redirect("project_list")


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.project_list_with_counts()
    return render(request, "annotations/project_list.html", {"projects": projects})


@login_required
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=pk, is_archived=False)
    page = Paginator(selectors.prompts_with_generations(project), 20).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "progress": selectors.project_progress(project),
    }
    return render(request, "annotations/project_detail.html", context)


# --- helpers --------------------------------------------------------------------------------------
def _refusal(request: HttpRequest) -> Exception:
    """What a user who is not the author gets for an annotation they may not use: researchers and admins
    403 (they may read it), anyone else 404 (for them another person's annotation does not exist)."""
    if roles.can_read_all_feedback(request.user):
        return PermissionDenied("Researchers and admins can read annotations but not change them.")
    return Http404("No such annotation.")


def _check_access(request: HttpRequest, annotation: Annotation, *, write: bool) -> None:
    """Authors read and change their own annotations; researchers and admins read all and change none."""
    if annotation.annotator_id == request.user.pk:
        return
    if roles.can_read_all_feedback(request.user) and not write:
        return
    raise _refusal(request)


def _get_annotation_for_user(request: HttpRequest, pk: int, *, write: bool = False) -> Annotation:
    """The annotation if this user may see it (and change it, with ``write``); otherwise 404 or 403.

    For a write only the row itself is loaded: the service locks it and reads what it needs.
    """
    try:
        if write:
            annotation = Annotation.objects.only("pk", "annotator_id", "generation_id", "status").get(pk=pk)
        else:
            annotation = selectors.annotation_for_page(pk)
    except Annotation.DoesNotExist:
        raise Http404("No such annotation.") from None
    _check_access(request, annotation, write=write)
    return annotation


def _get_span_for_user(request: HttpRequest, pk: int) -> Span:
    """A span of an annotation this user may change; otherwise 404 or 403."""
    span = get_object_or_404(Span.objects.select_related("annotation"), pk=pk)
    _check_access(request, span.annotation, write=True)
    return span


def _require_annotator(request: HttpRequest) -> None:
    if not roles.is_annotator(request.user):
        raise PermissionDenied("Only annotators take outputs from the queue.")


def _refused(request: HttpRequest, exc: ValidationError, back: str) -> HttpResponse:
    """A refused write: htmx gets 422 with the reasons as plain text; a plain form gets them as messages."""
    reasons = exc.messages
    if request.htmx:
        return HttpResponse("\n".join(reasons), status=422, content_type="text/plain; charset=utf-8")
    for reason in reasons:
        messages.error(request, reason)
    return redirect(back)


def _partial(template: str, context: dict) -> HttpResponse:
    """An htmx fragment that needs nothing from the request (so no context processors run)."""
    return HttpResponse(render_to_string(template, context))


def _go(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _safe_color(label: dict | None, polarity: int) -> str:
    color = (label or {}).get("color")
    if isinstance(color, str) and _HEX_COLOR.fullmatch(color):
        return color
    return _POLARITY_COLORS.get(polarity, _POLARITY_COLORS[0])


def _labels(project: Project) -> list[dict]:
    return [
        {
            "name": label["name"],
            "polarity": label.get("polarity", 0),
            "color": _safe_color(label, label.get("polarity", 0)),
            "key": str(number) if number <= 9 else "",
        }
        for number, label in enumerate(project.label_set, 1)
    ]


def _panel_context(annotation: Annotation, editable: bool) -> dict:
    labels = services.project_labels(annotation.generation.prompt.project)
    spans = list(annotation.spans.all())
    for span in spans:
        span.color = _safe_color(labels.get(span.label), span.polarity)
    spans_data = [
        {
            "id": span.pk,
            "start": span.start,
            "end": span.end,
            "text": span.text,
            "label": span.label,
            "polarity": span.polarity,
            "weight": span.weight,
            "critique": span.critique,
            "origin": span.origin,
            "color": span.color,
        }
        for span in spans
    ]
    return {"annotation": annotation, "spans": spans, "spans_data": spans_data, "editable": editable}


def _next_or_queue(request: HttpRequest, project: Project, done: str) -> HttpResponse:
    assignment = services.assignment_next(project=project, annotator=request.user)
    if assignment is None:
        messages.success(request, f"{done}Nothing is left to annotate in {project.name} for now.")
        return _go(request, reverse("queue"))
    annotation = Annotation.objects.only("pk").get(
        generation_id=assignment.generation_id, annotator=request.user
    )
    if done:
        messages.success(request, done.strip())
    return _go(request, reverse("annotate", args=[annotation.pk]))


# --- the queue ------------------------------------------------------------------------------------
@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    rows = selectors.queue_for_annotator(request.user)
    return render(
        request, "annotations/queue.html", {"rows": rows, "can_annotate": roles.is_annotator(request.user)}
    )


@login_required
@require_POST
def assignment_next(request: HttpRequest, pk: int) -> HttpResponse:
    _require_annotator(request)
    project = get_object_or_404(Project, pk=pk, is_archived=False)
    return _next_or_queue(request, project, "")


@login_required
@require_GET
def project_progress(request: HttpRequest, pk: int) -> HttpResponse:
    if not roles.can_read_all_feedback(request.user):
        raise PermissionDenied("Only researchers and admins see who did what.")
    project = get_object_or_404(Project, pk=pk)
    context = {
        "project": project,
        "progress": selectors.project_progress(project),
        "people": selectors.annotator_counts(project),
        "recent": selectors.recent_annotations(project),
    }
    return render(request, "annotations/project_progress.html", context)


# --- the annotation workspace ---------------------------------------------------------------------
@login_required
@require_GET
@vary_on_headers("HX-Request")
def annotate(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = _get_annotation_for_user(request, pk)
    is_owner = annotation.annotator_id == request.user.pk
    editable = is_owner and annotation.status == Annotation.Status.DRAFT
    context = _panel_context(annotation, editable)
    if request.htmx:
        return render(request, "annotations/_span_panel.html", context)
    project = annotation.generation.prompt.project
    lease = (
        Assignment.objects.filter(
            generation_id=annotation.generation_id, annotator_id=annotation.annotator_id
        )
        .only("status", "expires_at")
        .first()
    )
    context |= {
        "generation": annotation.generation,
        "prompt": annotation.generation.prompt,
        "project": project,
        "labels": _labels(project),
        "is_owner": is_owner,
        "lease": lease,
        "lease_lapsed": editable
        and (lease is None or lease.status != Assignment.Status.ACTIVE or lease.expires_at <= timezone.now()),
        "mine_submitted": selectors.annotator_submitted_count(annotation.annotator, project),
        "shortcuts": SHORTCUTS,
        "ratings": [(1, "bad"), (2, "weak"), (3, "fair"), (4, "good"), (5, "excellent")],
    }
    return render(request, "annotations/annotate.html", context)


@contextlib.contextmanager
def _service_access(request: HttpRequest) -> Iterator[None]:
    """Answer a service's refusals as ``_check_access`` would, for writes whose service loads and locks the
    row itself: a missing annotation is 404, another person's gets ``_refusal``."""
    try:
        yield
    except Annotation.DoesNotExist:
        raise Http404("No such annotation.") from None
    except PermissionDenied:
        raise _refusal(request) from None


@login_required
@require_POST
def annotation_save(request: HttpRequest, pk: int) -> HttpResponse:
    # Autosave is the hottest write: the service's locked read checks the author, so the row is not read
    # twice (measured in benchmarks/bench_annotate.py).
    back = reverse("annotate", args=[pk])
    form = OverallForm(request.POST)
    if not form.is_valid():
        return _refused(request, ValidationError([e for errs in form.errors.values() for e in errs]), back)
    try:
        with _service_access(request):
            annotation = services.annotation_save_draft(
                annotation=Annotation(pk=pk), user=request.user, **form.service_kwargs(request.POST)
            )
    except ValidationError as exc:
        return _refused(request, exc, back)
    if request.htmx:
        return _partial("annotations/_save_status.html", {"annotation": annotation, "saved": True})
    messages.success(request, "Draft saved.")
    return redirect(back)


@login_required
@require_POST
def span_create(request: HttpRequest, pk: int) -> HttpResponse:
    # Hot like the autosave (every highlight): the service's locked read checks the author.
    back = reverse("annotate", args=[pk])
    form = SpanForm(request.POST)
    if not form.is_valid():
        return _refused(request, _form_error(form), back)
    try:
        with _service_access(request):
            services.span_create(annotation=Annotation(pk=pk), user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        return _refused(request, exc, back)
    return _span_panel(request, pk, back)


@login_required
@require_POST
def span_update(request: HttpRequest, pk: int) -> HttpResponse:
    span = _get_span_for_user(request, pk)
    back = reverse("annotate", args=[span.annotation_id])
    form = SpanEditForm(request.POST)
    if not form.is_valid():
        return _refused(request, _form_error(form), back)
    try:
        services.span_update(span=span, user=request.user, **form.changes(request.POST))
    except ValidationError as exc:
        return _refused(request, exc, back)
    return _span_panel(request, span.annotation_id, back)


@login_required
@require_POST
def span_delete(request: HttpRequest, pk: int) -> HttpResponse:
    span = _get_span_for_user(request, pk)
    back = reverse("annotate", args=[span.annotation_id])
    try:
        services.span_delete(span=span, user=request.user)
    except ValidationError as exc:
        return _refused(request, exc, back)
    return _span_panel(request, span.annotation_id, back)


def _form_error(form) -> ValidationError:
    return ValidationError([f"{name}: {error}" for name, errors in form.errors.items() for error in errors])


def _span_panel(request: HttpRequest, annotation_pk: int, back: str) -> HttpResponse:
    if not request.htmx:
        messages.success(request, "Spans saved.")
        return redirect(back)
    annotation = selectors.annotation_for_page(annotation_pk)
    return _partial(
        "annotations/_span_panel.html", _panel_context(annotation, editable=True) | {"saved": True}
    )


@login_required
@require_POST
def annotation_submit(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = _get_annotation_for_user(request, pk, write=True)
    form = OverallForm(request.POST)
    form.is_valid()
    fields = form.service_kwargs(request.POST)
    fields.pop("spans", None)
    try:
        services.annotation_submit(annotation=annotation, user=request.user, **fields)
    except ValidationError as exc:
        # Keep what was typed even though the submission was refused.
        with contextlib.suppress(ValidationError):
            services.annotation_save_draft(annotation=annotation, user=request.user, **fields)
        return _refused(request, exc, reverse("annotate", args=[pk]))
    project = annotation.generation.prompt.project
    return _next_or_queue(request, project, f"Submitted output #{annotation.generation_id}. ")


@login_required
@require_POST
def annotation_skip(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = _get_annotation_for_user(request, pk, write=True)
    assignment = get_object_or_404(
        Assignment, generation_id=annotation.generation_id, annotator_id=annotation.annotator_id
    )
    form = SkipForm(request.POST)
    back = reverse("annotate", args=[pk])
    if not form.is_valid():
        return _refused(request, ValidationError("Say why you are skipping this output."), back)
    try:
        services.assignment_skip(assignment=assignment, reason=form.cleaned_data["reason"], user=request.user)
    except ValidationError as exc:
        return _refused(request, exc, back)
    project = annotation.generation.prompt.project
    return _next_or_queue(request, project, f"Skipped output #{annotation.generation_id}. ")

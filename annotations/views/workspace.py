"""HTML views: projects, the annotator's queue and the annotation workspace (htmx).

Views are short: check access, call one service or selector, render. Every write goes through
``annotations.services``, which validates offsets, labels and ownership whatever the client. Access:
an annotator reads and changes only their own annotations (anyone else's id is a 404); researchers and
admins read every annotation and change none (403).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from jobs import health

from .. import access, privacy, roles, selectors, services
from ..forms import OverallForm, SkipForm, SpanEditForm, SpanForm
from ..highlight import code_tokens
from ..models import Annotation, Assignment, Project, held_out_q
from ..panels import SHORTCUTS, labels_for, panel_context, project_sections, queue_notes


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker and worker lanes (``jobs.health``): 200 when ok or degraded, 503 when down."""
    report = health.report()
    return JsonResponse(report, status=503 if report["status"] == "down" else 200)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    roles.require_role(request.user)
    if roles.is_annotator(request.user) and not roles.is_researcher(request.user):
        return redirect("queue")
    return redirect("project_list")


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    roles.require_role(request.user)
    projects = selectors.project_list_with_counts()
    return render(request, "annotations/project_list.html", {"projects": projects})


@login_required
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    roles.require_role(request.user)
    project = get_object_or_404(Project, pk=pk, is_archived=False)
    prompts = selectors.prompts_with_generations(project, viewer=request.user)
    page = Paginator(prompts, 20).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for prompt in page.object_list:  # researchers see pseudonyms (annotations.privacy), never usernames
        for generation in prompt.generations.all():
            for annotation in generation.visible_annotations:
                annotation.annotator_name = privacy.annotator_name(
                    request.user, annotation.annotator_id, annotation.annotator.get_username()
                )
    held_out = project.prompts.filter(held_out_q())
    context = {
        "project": project,
        "page": page,
        "held_out_count": held_out.count(),
        "prompt_count": project.prompts.count(),
        "held_out_ids": set(held_out.filter(pk__in=[p.pk for p in page]).values_list("pk", flat=True)),
        "progress": selectors.project_progress(project),
        "sections": project_sections(request, project),  # other apps' parts of the page (panels.py)
    }
    return render(request, "annotations/project_detail.html", context)


@login_required
@require_GET
@never_cache
def session_token(request: HttpRequest) -> JsonResponse:
    """The CSRF token of the current session: the workspace asks for it after logging in again in place
    (logging in rotates the token, and the page's copy is then stale)."""
    return JsonResponse({"csrf_token": get_token(request), "username": request.user.get_username()})


def _login_then_annotate(view: Callable) -> Callable:
    """``login_required`` for the workspace's POSTs. A script (htmx, fetch) whose session ended gets 401, so
    the page can ask to log in again in place; a plain form is sent to log in and then back to the
    annotation page (not to this POST-only URL, which a browser would follow with a GET: 405)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, pk: int) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, pk)
        if request.htmx:
            return HttpResponse(
                "Your session has ended: log in again.", status=401, content_type="text/plain; charset=utf-8"
            )
        return redirect_to_login(reverse("annotate", args=[pk]))

    return wrapper


def _conflict(request: HttpRequest, conflict: services.DraftConflict, back: str) -> HttpResponse:
    """Another tab saved different overall fields: scripts get 409 and what is stored, to show both texts."""
    current = conflict.current
    if request.htmx:
        data = {
            "version": current.version,
            "overall_critique": current.overall_critique,
            "rating": current.rating,
        }
        return JsonResponse(data, status=409)
    messages.error(
        request,
        "Another tab or window saved a different overall critique while you typed; nothing was changed. "
        "Both texts are shown on the page: choose which to keep.",
    )
    return redirect(back)


# --- helpers --------------------------------------------------------------------------------------
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
    roles.require_role(request.user)
    rows = selectors.queue_for_annotator(request.user)
    for row in rows:
        if not row.available and not row.open_draft:
            row.notes = queue_notes(row.project)
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
    people = selectors.annotator_counts(project)
    for person in people:
        person["name"] = privacy.annotator_name(request.user, person["annotator_id"], person["username"])
    recent = list(selectors.recent_annotations(project))
    for annotation in recent:
        annotation.annotator_name = privacy.annotator_name(
            request.user, annotation.annotator_id, annotation.annotator.get_username()
        )
    context = {
        "project": project,
        "progress": selectors.project_progress(project),
        "people": people,
        "recent": recent,
    }
    return render(request, "annotations/project_progress.html", context)


# --- the annotation workspace ---------------------------------------------------------------------
@login_required
@require_GET
@vary_on_headers("HX-Request")
@never_cache  # Back after submitting must fetch the read-only page, not show the cached editable draft
def annotate(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = access.annotation_for_user(request.user, pk)
    is_owner = annotation.annotator_id == request.user.pk
    editable = is_owner and annotation.status == Annotation.Status.DRAFT
    context = panel_context(annotation, editable)
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
        # Suggest spans offers the LLM pass where the project (or the site) names an endpoint.
        "llm_pass": project.llm_aligner_enabled or bool(settings.T2G_LLM_ALIGNER_URL),
        "labels": labels_for(project),
        "is_owner": is_owner,
        "annotator_name": privacy.annotator_name(
            request.user, annotation.annotator_id, annotation.annotator.get_username()
        ),
        "lease": lease,
        "lease_lapsed": editable
        and (lease is None or lease.status != Assignment.Status.ACTIVE or lease.expires_at <= timezone.now()),
        "mine_submitted": selectors.annotator_submitted_count(annotation.annotator, project),
        "shortcuts": SHORTCUTS,
        "max_critique": services.MAX_OVERALL_CRITIQUE_CHARS,
        "code_tokens": code_tokens(annotation.generation.text) if project.is_code else None,
        "ratings": [(1, "bad"), (2, "weak"), (3, "fair"), (4, "good"), (5, "excellent")],
    }
    return render(request, "annotations/annotate.html", context)


@contextlib.contextmanager
def _service_access(request: HttpRequest) -> Iterator[None]:
    """Answer a service's refusals as ``access.check`` would, for writes whose service loads and locks the
    row itself: a missing annotation is 404, another person's gets ``access.refusal``."""
    try:
        yield
    except Annotation.DoesNotExist:
        raise Http404("No such annotation.") from None
    except PermissionDenied:
        raise access.refusal(request.user) from None


@_login_then_annotate
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
    except services.DraftConflict as conflict:
        return _conflict(request, conflict, back)
    except ValidationError as exc:
        return _refused(request, exc, back)
    if request.htmx:
        return _partial("annotations/_save_status.html", {"annotation": annotation, "saved": True})
    messages.success(request, "Draft saved.")
    return redirect(back)


@_login_then_annotate
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
    span = access.span_for_user(request.user, pk)
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
    span = access.span_for_user(request.user, pk)
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
        "annotations/_span_panel.html", panel_context(annotation, editable=True) | {"saved": True}
    )


@_login_then_annotate
@require_POST
def annotation_submit(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = access.annotation_for_user(request.user, pk, write=True)
    form = OverallForm(request.POST)
    form.is_valid()
    fields = form.service_kwargs(request.POST)
    fields.pop("spans", None)
    try:
        services.annotation_submit(annotation=annotation, user=request.user, **fields)
    except services.DraftConflict as conflict:
        return _conflict(request, conflict, reverse("annotate", args=[pk]))
    except ValidationError as exc:
        # Keep what was typed even though the submission was refused.
        with contextlib.suppress(ValidationError, services.DraftConflict):
            services.annotation_save_draft(annotation=annotation, user=request.user, **fields)
        return _refused(request, exc, reverse("annotate", args=[pk]))
    project = annotation.generation.prompt.project
    return _next_or_queue(request, project, f"Submitted output #{annotation.generation_id}. ")


@_login_then_annotate
@require_POST
def annotation_skip(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = access.annotation_for_user(request.user, pk, write=True)
    assignment = get_object_or_404(
        Assignment, generation_id=annotation.generation_id, annotator_id=annotation.annotator_id
    )
    form = SkipForm(request.POST)
    back = reverse("annotate", args=[pk])
    if not form.is_valid():
        return _refused(request, ValidationError(form.errors["reason"]), back)
    try:
        services.assignment_skip(assignment=assignment, reason=form.cleaned_data["reason"], user=request.user)
    except ValidationError as exc:
        return _refused(request, exc, back)
    project = annotation.generation.prompt.project
    return _next_or_queue(request, project, f"Skipped output #{annotation.generation_id}. ")

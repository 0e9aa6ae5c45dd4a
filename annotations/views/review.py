"""Review pages: the review queue, one output with every annotation overlaid (verdicts and gold), the
project's agreement page, and an annotator's own verdicts.

Reviewers and admins review; admins alone see the agreement page and set honeypot gold. Annotators see the
verdicts on their own work and nothing else: not who reviewed, not which outputs are gold. Annotators are
shown under pseudonyms (A1, A2 ... on a page; ``annotator-…`` across pages), never by username.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from .. import roles, selectors, services
from ..forms import GoldForm, ReviewForm
from ..models import Annotation, Generation, Project
from ..panels import labels_for, safe_color

REVIEW_SHORTCUTS = [
    ("J / K", "Next / previous annotation"),
    ("A", "Accept the focused annotation (with the comment typed in its box)"),
    ("R", "Reject the focused annotation"),
    ("C", "Write a comment on the focused annotation"),
    ("T", "Take the focused annotation's spans into the gold"),
    ("1 … 9", "Add the selected text to the gold with that label"),
    ("Ctrl + S", "Save the gold annotation"),
    ("Shift + 1 … 9", "Show or hide that annotator's spans"),
    ("N", "Next output in the review queue"),
    ("?", "Show or hide this help"),
]


def _require_reviewer(request: HttpRequest) -> None:
    if not roles.is_reviewer(request.user):
        raise PermissionDenied("Only reviewers and admins review annotations.")


def _require_quality_reader(request: HttpRequest) -> None:
    if not roles.reads_quality(request.user):
        raise PermissionDenied("Only researchers, reviewers and admins see agreement.")


def _segments(text: str, spans: list, labels: dict) -> list[dict]:
    """The text cut where spans start or end; each piece with the polarity class of the spans over it
    (for the side-by-side view, rendered server-side and escaped by the template)."""
    cuts = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    pieces = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        over = [s for s in spans if s.start < end and start < s.end]
        polarities = {s.polarity for s in over}
        kind = "poor" if -1 in polarities else "good" if 1 in polarities else "neutral" if over else ""
        pieces.append(
            {
                "text": text[start:end],
                "kind": kind,
                "title": "; ".join(f"{s.label}: {s.critique}" for s in over),
            }
        )
    return pieces


def _span_data(span, labels: dict) -> dict:
    return {
        "start": span.start,
        "end": span.end,
        "text": span.text,
        "label": span.label,
        "polarity": span.polarity,
        "weight": span.weight,
        "critique": span.critique,
        "color": safe_color(labels.get(span.label), span.polarity),
    }


@login_required
@require_GET
def review_queue(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reviewer(request)
    project = get_object_or_404(Project, pk=pk)
    queue = selectors.review_queue(project)[:100]
    context = {"project": project, "queue": queue, "counts": selectors.review_counts(project)}
    return render(request, "review/queue.html", context)


@login_required
@require_GET
def review_next(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reviewer(request)
    project = get_object_or_404(Project, pk=pk)
    generation = selectors.review_queue(project).first()
    if generation is None:
        messages.success(request, f"Nothing is waiting for review in {project.name}.")
        return redirect("review_queue", pk=project.pk)
    return redirect("review_output", pk=generation.pk)


@login_required
@require_GET
def review_output(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reviewer(request)
    generation = get_object_or_404(Generation.objects.select_related("prompt__project", "agreement"), pk=pk)
    project = generation.prompt.project
    work, gold = selectors.output_for_review(generation)
    labels = services.project_labels(project)
    gold_spans = list(gold.spans.all()) if gold else []
    data = {
        "text": generation.text,
        "labels": labels_for(project),
        "annotators": [
            {
                "annotation": item.annotation.pk,
                "alias": item.alias,
                "spans": [_span_data(span, labels) for span in item.spans],
            }
            for item in work
        ],
        "gold": [_span_data(span, labels) for span in gold_spans],
    }
    side_by_side = request.GET.get("view") == "side"
    context = {
        "generation": generation,
        "project": project,
        "prompt": generation.prompt,
        "agreement": getattr(generation, "agreement", None),
        "work": work,
        "gold": gold,
        "gold_spans": gold_spans,
        "review_data": data,
        "side_by_side": side_by_side,
        "shortcuts": REVIEW_SHORTCUTS,
        "is_admin": roles.is_admin(request.user),
        "gold_form": GoldForm(
            initial={
                "spans": json.dumps(data["gold"]),
                "overall_critique": gold.overall_critique if gold else "",
                "rating": gold.rating if gold else None,
            }
        ),
        "ratings": [(1, "bad"), (2, "weak"), (3, "fair"), (4, "good"), (5, "excellent")],
    }
    if side_by_side:
        context["columns"] = [
            {"title": f"{item.alias} · {item.name}", "pieces": _segments(generation.text, item.spans, labels)}
            for item in work
        ] + ([{"title": "Gold", "pieces": _segments(generation.text, gold_spans, labels)}] if gold else [])
    return render(request, "review/output.html", context)


@login_required
@require_POST
def review_verdict(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reviewer(request)
    annotation = get_object_or_404(Annotation, pk=pk, status=Annotation.Status.SUBMITTED, is_gold=False)
    back = reverse("review_output", args=[annotation.generation_id])
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return _refused(
            request, ValidationError([e for errors in form.errors.values() for e in errors]), back
        )
    try:
        if form.cleaned_data["verdict"] == "clear":
            services.review_clear(annotation=annotation, reviewer=request.user)
        else:
            services.review_set(
                annotation=annotation,
                reviewer=request.user,
                verdict=form.cleaned_data["verdict"],
                comment=form.cleaned_data["comment"],
            )
    except ValidationError as exc:
        return _refused(request, exc, back)
    if request.htmx:
        return HttpResponse(form.cleaned_data["verdict"], content_type="text/plain; charset=utf-8")
    messages.success(request, f"Annotation #{annotation.pk}: {form.cleaned_data['verdict']}.")
    return redirect(back + f"#annotation-{annotation.pk}")


@login_required
@require_POST
def review_gold(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the gold annotation: the spans as JSON (the page's editor), or a submitted annotation's spans
    copied whole (``copy_from``, the no-JS button)."""
    _require_reviewer(request)
    generation = get_object_or_404(Generation, pk=pk)
    back = reverse("review_output", args=[pk])
    form = GoldForm(request.POST)
    if not form.is_valid():
        return _refused(
            request, ValidationError([e for errors in form.errors.values() for e in errors]), back
        )
    spans = form.cleaned_data["spans"]
    source = form.cleaned_data.get("copy_from")
    if source:
        annotation = get_object_or_404(
            Annotation, pk=source, generation=generation, status=Annotation.Status.SUBMITTED, is_gold=False
        )
        spans = services.gold_spans_from(annotation)
    try:
        services.gold_save(
            generation=generation,
            reviewer=request.user,
            spans=spans,
            overall_critique=form.cleaned_data["overall_critique"],
            rating=form.cleaned_data["rating"],
        )
    except ValidationError as exc:
        return _refused(request, exc, back)
    messages.success(request, f"Gold annotation of output #{generation.pk} saved.")
    return redirect(back)


def _refused(request: HttpRequest, exc: ValidationError, back: str) -> HttpResponse:
    if request.htmx or request.headers.get("Accept", "").startswith("text/plain"):
        return HttpResponse("\n".join(exc.messages), status=422, content_type="text/plain; charset=utf-8")
    for reason in exc.messages:
        messages.error(request, reason)
    return redirect(back)


@login_required
@require_GET
def my_reviews(request: HttpRequest) -> HttpResponse:
    roles.require_role(request.user)  # as the API's /reviews/ (HasRole): a no-role account sees nothing
    reviews = selectors.reviews_of(request.user)[:200]
    return render(request, "review/mine.html", {"reviews": reviews})


@login_required
@require_GET
def project_agreement(request: HttpRequest, pk: int) -> HttpResponse:
    _require_quality_reader(request)
    project = get_object_or_404(Project, pk=pk)
    context = {
        "project": project,
        "report": selectors.project_agreement(project),
        "lowest": selectors.lowest_agreement(project),
    }
    return render(request, "review/agreement.html", context)

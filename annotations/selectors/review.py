"""Reads for review and agreement: the review queue, one output's annotations side by side, and a project's
agreement report (overall, over time, per annotator, per pair, per label, the weakest outputs).

Annotators appear under pseudonyms (``exports.pseudonym``), never usernames: this is what reviewers and
researchers see.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import TruncWeek

from text2grad.agreement import CATEGORIES, alpha_from_coincidence, binary_coincidence

from ..exports import pseudonym
from ..models import Annotation, Generation, OutputAgreement, Project, Review
from .machine import machine_agreement


def _finite(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _alpha(matrices: list, level: str = "nominal") -> float | None:
    if not matrices:
        return None
    total = np.sum([np.asarray(m, dtype=float) for m in matrices if m], axis=0)
    if np.ndim(total) != 2:
        return None
    return _finite(alpha_from_coincidence(total, level))


# --- the review queue ------------------------------------------------------------------------------
def review_queue(project: Project) -> QuerySet[Generation]:
    """Outputs whose annotations are all in and not all reviewed, or that carry a machine critic's draft
    not yet reviewed, lowest agreement first; then outputs
    whose agreement cannot be measured (one annotation each); last those whose alpha is undefined (two or
    more annotators gave every unit the same value, nothing to reconcile). With the project's
    ``review_scope`` "below", only outputs under its threshold and those that cannot be measured (an
    undefined alpha is not under any threshold: it is left out)."""
    pending = Annotation.objects.filter(
        generation=OuterRef("pk"),
        status=Annotation.Status.SUBMITTED,
        is_gold=False,
        review__isnull=True,
    )
    # A machine critic's draft waits for review whether or not people have annotated the output yet.
    machine_pending = pending.filter(origin=Annotation.Origin.MACHINE)
    queryset = Generation.objects.filter(prompt__project=project).filter(
        (Q(annotation_count__gte=project.annotations_per_output) & Exists(pending)) | Exists(machine_pending)
    )
    undefined = Q(agreement__annotators__gte=2, agreement__score__isnull=True)
    unmeasured = Q(agreement__isnull=True) | Q(agreement__annotators__lt=2)
    if project.review_scope == "below":
        queryset = queryset.filter(Q(agreement__score__lt=project.review_threshold) | unmeasured)
    return queryset.select_related("agreement", "prompt").order_by(
        F("agreement__score").asc(nulls_last=True),
        Case(When(undefined, then=Value(1)), default=Value(0), output_field=IntegerField()),
        "id",
    )


def review_counts(project: Project) -> dict[str, int]:
    reviews = Review.objects.filter(annotation__generation__prompt__project=project)
    return {
        "waiting": review_queue(project).count(),
        "accepted": reviews.filter(verdict=Review.Verdict.ACCEPTED).count(),
        "rejected": reviews.filter(verdict=Review.Verdict.REJECTED).count(),
        "gold": Annotation.objects.filter(generation__prompt__project=project, is_gold=True).count(),
    }


# --- one output, every annotation ------------------------------------------------------------------
@dataclass
class AnnotatorWork:
    annotation: Annotation
    alias: str  # "A1", "A2", ... in annotator order on this output
    name: str  # the pseudonym (a machine critic's draft: "machine · <critic> v<version>")
    spans: list = field(default_factory=list)
    review: Review | None = None
    gold_f1: float | None = None


def output_for_review(generation: Generation) -> tuple[list[AnnotatorWork], Annotation | None]:
    """The submitted annotations of an output (annotator order) with their spans and verdicts, and its gold."""
    annotations = list(
        Annotation.objects.filter(generation=generation, status=Annotation.Status.SUBMITTED)
        .select_related("review")
        .prefetch_related("spans")
        .order_by("annotator_id")
    )
    gold = next((a for a in annotations if a.is_gold), None)
    agreement = OutputAgreement.objects.filter(generation=generation).first()
    gold_f1 = {entry["annotator"]: entry["f1"] for entry in (agreement.gold if agreement else [])}
    work = []
    for number, annotation in enumerate((a for a in annotations if not a.is_gold), 1):
        review = getattr(annotation, "review", None)  # a missing one-to-one raises an AttributeError
        work.append(
            AnnotatorWork(
                annotation=annotation,
                alias=f"A{number}",
                name=_author(annotation),
                spans=list(annotation.spans.all()),
                review=review,
                gold_f1=gold_f1.get(annotation.annotator_id),
            )
        )
    return work, gold


def _author(annotation: Annotation) -> str:
    """How a review page names who wrote an annotation: a person's pseudonym, or the machine critic."""
    if annotation.origin == Annotation.Origin.MACHINE:
        critic = annotation.critic or {}
        return f"machine · {critic.get('name', '?')} v{critic.get('version', '?')}"
    return pseudonym(annotation.annotator_id)


# --- a project's agreement -------------------------------------------------------------------------
@dataclass
class AgreementReport:
    outputs: int = 0
    measured: int = 0
    undefined: int = 0  # measured outputs whose alpha is undefined (no variation)
    alpha: float | None = None
    token_alpha_mean: float | None = None
    span_f1_mean: float | None = None
    rating_alpha: float | None = None
    per_label: list[dict] = field(default_factory=list)
    over_time: list[dict] = field(default_factory=list)
    per_annotator: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)
    machine: list = field(default_factory=list)  # MachineAgreement per critic (machine drafts vs people)


def project_agreement(project: Project) -> AgreementReport:
    """Everything the agreement page and ``/api/v1/projects/{id}/agreement/`` show, from the stored
    per-output rows: alphas are those of summed coincidence matrices (exact, not means of alphas)."""
    rows = list(
        OutputAgreement.objects.filter(generation__prompt__project=project).values(
            "generation_id",
            "annotators",
            "score",
            "token_alpha",
            "span_f1",
            "coincidence",
            "rating_coincidence",
            "pairs",
            "gold",
            "completed_at",
        )
    )
    report = AgreementReport(outputs=len(rows))
    measured = [row for row in rows if row["annotators"] >= 2]
    report.measured = len(measured)
    report.undefined = sum(1 for row in measured if row["score"] is None)
    report.alpha = _alpha([row["coincidence"] for row in measured])
    report.rating_alpha = _alpha([row["rating_coincidence"] for row in measured], "ordinal")
    tokens = [row["token_alpha"] for row in measured if row["token_alpha"] is not None]
    report.token_alpha_mean = _finite(np.mean(tokens)) if tokens else None
    f1s = [row["span_f1"] for row in measured if row["span_f1"] is not None]
    report.span_f1_mean = _finite(np.mean(f1s)) if f1s else None
    if measured:
        total = np.sum([np.asarray(row["coincidence"], dtype=float) for row in measured], axis=0)
        for value, name in enumerate(CATEGORIES):
            report.per_label.append(
                {
                    "label": name,
                    "alpha": _finite(alpha_from_coincidence(binary_coincidence(total, value))),
                    "share": _finite(total[value].sum() / total.sum()) if total.sum() else None,
                }
            )
    report.over_time = _over_time(project)
    report.per_annotator, report.pairs = _people(rows)
    report.machine = machine_agreement(project)
    return report


def _over_time(project: Project) -> list[dict]:
    weekly = defaultdict(list)
    for week, matrix, f1 in (
        OutputAgreement.objects.filter(generation__prompt__project=project, annotators__gte=2)
        .annotate(week=TruncWeek("completed_at"))
        .values_list("week", "coincidence", "span_f1")
        .order_by("week")
    ):
        weekly[week].append((matrix, f1))
    return [
        {
            "week": week.date().isoformat() if week else None,
            "outputs": len(items),
            "alpha": _alpha([m for m, _ in items]),
            "span_f1": _finite(np.mean([f for _, f in items if f is not None]))
            if any(f is not None for _, f in items)
            else None,
        }
        for week, items in weekly.items()
    ]


def _people(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per annotator: alpha and F1 with the others (their pairs pooled) and with gold; per pair the same."""
    with_others: dict[int, list] = defaultdict(list)
    with_gold: dict[int, list] = defaultdict(list)
    pair_items: dict[tuple[int, int], list] = defaultdict(list)
    for row in rows:
        for pair in row["pairs"]:
            key = (min(pair["a"], pair["b"]), max(pair["a"], pair["b"]))
            pair_items[key].append(pair)
            with_others[pair["a"]].append(pair)
            with_others[pair["b"]].append(pair)
        for entry in row["gold"]:
            with_gold[entry["annotator"]].append(entry)
    people = set(with_others) | set(with_gold)
    verdicts = defaultdict(lambda: {"accepted": 0, "rejected": 0})
    for annotator_id, verdict, n in (
        Review.objects.filter(
            annotation__annotator_id__in=people, annotation__generation__agreement__isnull=False
        )
        .values_list("annotation__annotator_id", "verdict")
        .annotate(n=Count("id"))
    ):
        verdicts[annotator_id][verdict] = n

    def summary(items: list[dict]) -> dict:
        f1s = [item["f1"] for item in items if item.get("f1") is not None]
        return {
            "n": len(items),
            "alpha": _alpha([item["o"] for item in items]),
            "span_f1": _finite(np.mean(f1s)) if f1s else None,
        }

    per_annotator = []
    for annotator_id in people:
        others, gold = summary(with_others[annotator_id]), summary(with_gold[annotator_id])
        per_annotator.append(
            {
                "annotator": pseudonym(annotator_id),
                "pairs": others["n"],
                "alpha_with_others": others["alpha"],
                "f1_with_others": others["span_f1"],
                "gold_outputs": gold["n"],
                "alpha_with_gold": gold["alpha"],
                "f1_with_gold": gold["span_f1"],
                **verdicts[annotator_id],
            }
        )
    per_annotator.sort(key=lambda row: (row["alpha_with_others"] is None, row["alpha_with_others"] or 0))
    pairs = [
        {"a": pseudonym(a), "b": pseudonym(b), **summary(items)}
        for (a, b), items in sorted(pair_items.items())
    ]
    return per_annotator, pairs


def lowest_agreement(project: Project, limit: int = 50) -> QuerySet[OutputAgreement]:
    """The outputs whose annotators agree least (measured ones only), weakest first."""
    return (
        OutputAgreement.objects.filter(generation__prompt__project=project, score__isnull=False)
        .select_related("generation")
        .order_by("score", "generation_id")[:limit]
    )


def reviews_of(annotator) -> QuerySet[Review]:
    """The verdicts on an annotator's own work, newest first (what they see; not who reviewed)."""
    return (
        Review.objects.filter(annotation__annotator=annotator, annotation__is_gold=False)
        .select_related("annotation__generation__prompt__project")
        .order_by("-updated_at", "-id")
    )

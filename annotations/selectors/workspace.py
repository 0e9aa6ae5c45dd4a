"""Reads for projects, prompts, generations and the annotation workspace (queue, progress, counts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from .. import roles
from ..models import (
    EVALUATION_PURPOSE,
    Annotation,
    Assignment,
    Generation,
    Project,
    Prompt,
    Span,
)


def project_list_with_counts() -> QuerySet[Project]:
    return Project.objects.filter(is_archived=False).annotate(
        prompt_count=Count("prompts", distinct=True),
        generation_count=Count("prompts__generations", distinct=True),
        submitted_count=Count(
            "prompts__generations__annotations",
            filter=Q(prompts__generations__annotations__status=Annotation.Status.SUBMITTED),
            distinct=True,
        ),
    )


def prompts_with_generations(project: Project, viewer=None) -> QuerySet[Prompt]:
    """A project's prompts with their outputs and, per output, the annotations ``viewer`` may open (all of
    them for researchers and admins, their own for an annotator)."""
    annotations = Annotation.objects.select_related("annotator").order_by("id")
    if viewer is not None and not roles.can_read_all_feedback(viewer):
        annotations = annotations.filter(annotator_id=viewer.pk)
    generations = (
        Generation.objects.select_related("model_version")
        .prefetch_related(Prefetch("annotations", queryset=annotations, to_attr="visible_annotations"))
        .order_by("id")
    )
    return (
        Prompt.objects.filter(project=project)
        .prefetch_related(Prefetch("generations", queryset=generations))
        .order_by("id")
    )


# --- the annotation workspace: queue, progress, who did what ----------------------------------------
@dataclass
class QueueRow:
    """One project as an annotator's queue shows it."""

    project: Project
    outputs: int = 0
    filled: int = 0  # submitted annotations, counting at most the quota per output
    mine_submitted: int = 0
    available: int = 0  # outputs this annotator could be handed now
    open_draft: Annotation | None = None
    open_draft_lease_active: bool = False
    notes: list[str] = field(default_factory=list)  # nothing waiting: what is coming (annotations.panels)

    @property
    def slots(self) -> int:
        return self.outputs * self.project.annotations_per_output

    @property
    def percent(self) -> int:
        return int(100 * self.filled / self.slots) if self.slots else 0


def for_annotation(generations: QuerySet[Generation]) -> QuerySet[Generation]:
    """Outputs that go to annotators: not those sampled only to compare model versions side by side."""
    # Not a plain exclude(): SQL's NOT (NULL = 'evaluation') is NULL, which would drop every output that
    # has no "purpose" key at all.
    return generations.filter(
        Q(sampling_params__purpose__isnull=True) | ~Q(sampling_params__purpose=EVALUATION_PURPOSE)
    )


def _project_fill(project_ids: list[int]) -> dict[int, dict]:
    rows = (
        for_annotation(Generation.objects.filter(prompt__project_id__in=project_ids))
        .values("prompt__project_id")
        .annotate(
            outputs=Count("id"),
            filled=Sum(
                Least("annotation_count", F("prompt__project__annotations_per_output")),
                output_field=IntegerField(),
            ),
        )
    )
    return {row["prompt__project_id"]: row for row in rows}


def project_progress(project: Project) -> QueueRow:
    """Outputs and filled slots of one project (the progress bar)."""
    fill = _project_fill([project.pk]).get(project.pk, {})
    return QueueRow(project=project, outputs=fill.get("outputs", 0), filled=fill.get("filled") or 0)


AVAILABLE_CAP = 100  # the queue says "100+" rather than counting every waiting output


def _available_for(project: Project, annotator, now: datetime) -> int:
    """Outputs this annotator could be handed now, counted up to ``AVAILABLE_CAP + 1`` (it stops early)."""
    return len(next_candidates(project, annotator, now).values_list("pk", flat=True)[: AVAILABLE_CAP + 1])


def queue_for_annotator(annotator, *, now: datetime | None = None) -> list[QueueRow]:
    """Every open project with its progress, this annotator's count, what is left for them and their draft."""
    now = now or timezone.now()
    projects = list(Project.objects.filter(is_archived=False).order_by("name"))
    ids = [project.pk for project in projects]
    fill = _project_fill(ids)
    mine = dict(
        Annotation.objects.filter(
            annotator=annotator,
            status=Annotation.Status.SUBMITTED,
            is_gold=False,
            generation__prompt__project_id__in=ids,
        )
        .values_list("generation__prompt__project_id")
        .annotate(n=Count("id"))
        .values_list("generation__prompt__project_id", "n")
    )
    available = {project.pk: _available_for(project, annotator, now) for project in projects}
    drafts: dict[int, Annotation] = {}
    for draft in (
        Annotation.objects.filter(annotator=annotator, status=Annotation.Status.DRAFT)
        .select_related("generation__prompt")
        .order_by("created_at")
    ):
        drafts.setdefault(draft.generation.prompt.project_id, draft)
    active_leases = set(
        Assignment.objects.filter(
            annotator=annotator, status=Assignment.Status.ACTIVE, expires_at__gt=now
        ).values_list("generation_id", flat=True)
    )
    rows = []
    for project in projects:
        draft = drafts.get(project.pk)
        rows.append(
            QueueRow(
                project=project,
                outputs=fill.get(project.pk, {}).get("outputs", 0),
                filled=fill.get(project.pk, {}).get("filled") or 0,
                mine_submitted=mine.get(project.pk, 0),
                available=available.get(project.pk, 0),
                open_draft=draft,
                open_draft_lease_active=bool(draft and draft.generation_id in active_leases),
            )
        )
    return rows


def annotation_for_page(pk: int) -> Annotation:
    """One annotation with everything its page shows; raises ``Annotation.DoesNotExist``."""
    return (
        Annotation.objects.select_related(
            "generation__prompt__project", "generation__model_version", "annotator"
        )
        .prefetch_related("spans")
        .get(pk=pk)
    )


def span_with_annotation(pk: int) -> Span | None:
    return Span.objects.select_related("annotation").filter(pk=pk).first()


def annotator_submitted_count(annotator, project: Project) -> int:
    return Annotation.objects.filter(
        annotator=annotator,
        status=Annotation.Status.SUBMITTED,
        is_gold=False,
        generation__prompt__project=project,
    ).count()


def annotator_counts(project: Project) -> list[dict]:
    """Who did what in a project: per annotator submitted, drafts, skipped, spans, time, last submission."""
    annotations = (
        Annotation.objects.filter(generation__prompt__project=project, is_gold=False)
        .values("annotator_id", "annotator__username")
        .annotate(
            submitted=Count("id", filter=Q(status=Annotation.Status.SUBMITTED), distinct=True),
            drafts=Count("id", filter=Q(status=Annotation.Status.DRAFT), distinct=True),
            spans=Count("spans", filter=Q(status=Annotation.Status.SUBMITTED)),
            last_submitted=Max("submitted_at"),
        )
    )
    skipped = dict(
        Assignment.objects.filter(generation__prompt__project=project, status=Assignment.Status.SKIPPED)
        .values("annotator_id")
        .annotate(n=Count("id"))
        .values_list("annotator_id", "n")
    )
    rows = {
        row["annotator_id"]: {
            "annotator_id": row["annotator_id"],
            "username": row["annotator__username"],
            "submitted": row["submitted"],
            "drafts": row["drafts"],
            "skipped": skipped.get(row["annotator_id"], 0),
            "spans": row["spans"],
            "seconds": 0,  # summed below, without the span join that would multiply it
            "last_submitted": row["last_submitted"],
        }
        for row in annotations
    }
    seconds = (
        Annotation.objects.filter(
            generation__prompt__project=project, status=Annotation.Status.SUBMITTED, is_gold=False
        )
        .values("annotator_id")
        .annotate(total=Sum("time_spent_seconds"))
        .values_list("annotator_id", "total")
    )
    for annotator_id, total in seconds:
        rows[annotator_id]["seconds"] = total or 0
    if skipped:
        names = dict(
            Assignment.objects.filter(annotator_id__in=set(skipped) - set(rows))
            .values_list("annotator_id", "annotator__username")
            .distinct()
        )
        for annotator_id, name in names.items():
            rows[annotator_id] = {
                "annotator_id": annotator_id,
                "username": name,
                "submitted": 0,
                "drafts": 0,
                "skipped": skipped[annotator_id],
                "spans": 0,
                "seconds": 0,
                "last_submitted": None,
            }
    return sorted(rows.values(), key=lambda row: (-row["submitted"], row["username"]))


def recent_annotations(project: Project, limit: int = 50) -> QuerySet[Annotation]:
    """The latest submitted annotations of a project, newest first, with their span counts."""
    return (
        Annotation.objects.filter(
            generation__prompt__project=project, status=Annotation.Status.SUBMITTED, is_gold=False
        )
        .select_related("annotator", "generation")
        .annotate(span_count=Count("spans"))
        .order_by("-submitted_at", "-id")[:limit]
    )


def holding_slot(now: datetime, prefix: str = "") -> Q:
    """Assignments that occupy one of an output's slots: submitted ones and unexpired leases."""
    return Q(**{f"{prefix}status": Assignment.Status.COMPLETED}) | Q(
        **{f"{prefix}status": Assignment.Status.ACTIVE, f"{prefix}expires_at__gt": now}
    )


def next_candidates(project: Project, annotator, now: datetime):
    """Outputs of ``project`` that ``annotator`` could be leased now, lowest id first."""
    quota = project.annotations_per_output
    taken = Coalesce(
        Subquery(
            Assignment.objects.filter(holding_slot(now), generation=OuterRef("pk"))
            .order_by()
            .values("generation")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        ),
        0,
    )
    return (
        for_annotation(Generation.objects.filter(prompt__project=project, annotation_count__lt=quota))
        .exclude(Exists(Assignment.objects.filter(generation=OuterRef("pk"), annotator=annotator)))
        .exclude(Exists(Annotation.objects.filter(generation=OuterRef("pk"), annotator=annotator)))
        .alias(taken=taken)
        .filter(taken__lt=quota)
        .order_by(*queue_order(project))
    )


def model_versions_with_outputs() -> list[tuple[int, str]]:
    """(id, name) of the model versions that generated outputs, newest first: the exports' version filter."""
    rows = (
        Generation.objects.filter(model_version__isnull=False)
        .values_list("model_version_id", "model_version__name")
        .distinct()
        .order_by("-model_version_id")
    )
    return list(rows)


def model_version_model():
    """The model-version model, reached through ``Generation.model_version``: this app imports no training."""
    return Generation._meta.get_field("model_version").related_model


def queue_order(project: Project) -> list:
    """Arrival order (lowest id first), unless the project's critic settings ask for active learning: then
    the outputs the active critic is least sure about come first (never-predicted ones last, by arrival).

    Both the setting and the predictions are training's rows, reached through their relations
    (``project.critic_settings``, ``generation.critic_predictions``): this app imports no training.
    """
    settings_row = getattr(project, "critic_settings", None)  # a missing one-to-one raises AttributeError
    if settings_row is None or settings_row.queue_order != "uncertainty":
        return ["id"]
    prediction = Generation._meta.get_field("critic_predictions").related_model
    uncertainty = Subquery(
        prediction.objects.filter(generation=OuterRef("pk"), critic_version__is_active=True)
        .order_by("-critic_version_id")
        .values("uncertainty")[:1]
    )
    return [Coalesce(uncertainty, Value(-1.0)).desc(), "id"]

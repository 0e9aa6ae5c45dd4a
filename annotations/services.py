"""Writes for projects, prompts, assignments, annotations and spans.

Each service runs in one transaction and takes keyword arguments. Every write path (the HTML views, the
REST API, commands) goes through these functions, so the checks here (offsets, labels, weights, ownership,
quotas) hold whatever the client.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .importers import ParseResult
from .models import Annotation, Assignment, Generation, Project, Prompt, Span, content_hash
from .signals import annotation_submitted

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    created_prompts: int = 0
    created_outputs: int = 0
    duplicates: list[int] = field(default_factory=list)  # line numbers skipped as duplicates
    errors: list[tuple[int, str]] = field(default_factory=list)
    committed: bool = False

    def as_dict(self) -> dict:
        return {
            "created_prompts": self.created_prompts,
            "created_outputs": self.created_outputs,
            "duplicate_lines": self.duplicates,
            "errors": [{"line": line, "message": message} for line, message in self.errors],
            "committed": self.committed,
        }


def project_create(*, name: str, kind: str = Project.Kind.GENERAL, created_by=None, **fields) -> Project:
    project = Project(name=name, kind=kind, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    return project


def prompts_import(*, project: Project, parsed: ParseResult, allow_partial: bool = False) -> ImportReport:
    """Write parsed rows. With errors and no ``allow_partial``, nothing is written.

    Duplicates (the same prompt text already in the project or earlier in the file) are skipped, not
    errors; an output is attached to the existing prompt when its prompt is a duplicate.
    """
    report = ImportReport(errors=list(parsed.errors))
    if report.errors and not allow_partial:
        return report
    with transaction.atomic():
        existing = {
            h: pk for h, pk in Prompt.objects.filter(project=project).values_list("content_hash", "pk")
        }
        existing_outputs = set(
            Generation.objects.filter(prompt__project=project).values_list("content_hash", flat=True)
        )
        for row in parsed.rows:
            key = content_hash(row.text)
            prompt_id = existing.get(key)
            new_prompt = prompt_id is None
            if new_prompt:
                prompt = Prompt(
                    project=project,
                    text=row.text,
                    external_id=row.external_id,
                    reference=row.reference,
                    metadata=row.metadata,
                )
                prompt.save()
                existing[key] = prompt_id = prompt.pk
                report.created_prompts += 1
            if row.output:
                output_key = content_hash(row.text, row.output)
                if output_key in existing_outputs:
                    report.duplicates.append(row.line)
                    continue
                generation = Generation(prompt_id=prompt_id, text=row.output, source_model=row.source_model)
                generation.prompt = Prompt.objects.get(pk=prompt_id) if not new_prompt else prompt
                generation.save()
                existing_outputs.add(output_key)
                report.created_outputs += 1
            elif not new_prompt:
                report.duplicates.append(row.line)
        report.committed = True
    return report


# =====================================================================================================
# The annotation workspace: offsets, span validation, the queue, drafts, spans and submission.
# =====================================================================================================

MAX_SPANS_PER_ANNOTATION = 200
MAX_CRITIQUE_CHARS = 10_000
MAX_OVERALL_CRITIQUE_CHARS = 20_000
MAX_SKIP_REASON_CHARS = 1_000
MAX_TIME_SPENT_SECONDS = 7 * 24 * 3600
SPAN_WEIGHT_MAX = 10.0
_NEXT_ATTEMPTS = 6  # rounds of candidate locking before "nothing left"
_NEXT_BATCH = 4

# "Leave this field as it is" for the partial-update services (None is a real value for ``rating``).
UNSET: Any = object()


def utf16_to_codepoints(text: str, offset: int) -> int:
    """The code-point index of a UTF-16 offset into ``text``: browsers count UTF-16 code units.

    >>> utf16_to_codepoints("a😀b", 3)
    2

    Raises ``ValueError`` for an offset that is negative, past the end, or inside a surrogate pair.
    """
    if offset < 0:
        raise ValueError(f"offset {offset} is negative")
    units = index = 0
    for char in text:
        if units >= offset:
            break
        units += 2 if ord(char) > 0xFFFF else 1
        index += 1
    if units != offset:
        where = "past the end of the text" if units < offset else "inside a surrogate pair"
        raise ValueError(f"UTF-16 offset {offset} lies {where}")
    return index


def codepoints_to_utf16(text: str, index: int) -> int:
    """The UTF-16 offset of code-point ``index`` in ``text``.

    >>> codepoints_to_utf16("a😀b", 2)
    3
    """
    if not 0 <= index <= len(text):
        raise ValueError(f"index {index} lies outside the text ({len(text)} characters)")
    return len(text[:index].encode("utf-16-le")) // 2


def project_labels(project: Project) -> dict[str, dict]:
    """The project's labels by name, in their configured order."""
    return {label["name"]: label for label in project.label_set}


def _quote(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(shown)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    return None


def _clean_span(text: str, data: Mapping[str, Any], labels: Mapping[str, dict]) -> dict:
    """Check one span against the text and labels; return the fields to store.

    Raises ``ValidationError`` listing every problem, each as a lower-case clause ("end 12 lies past ...").
    """
    errors: list[str] = []
    start, end = _as_int(data.get("start")), _as_int(data.get("end"))
    if start is None:
        errors.append(f"start must be a whole number (got {data.get('start')!r})")
    if end is None:
        errors.append(f"end must be a whole number (got {data.get('end')!r})")
    if start is not None and end is not None:
        if start < 0:
            errors.append(f"start {start} is negative")
        if start >= end:
            errors.append(f"start {start} must be before end {end}")
        if end > len(text):
            errors.append(f"end {end} lies past the end of the text ({len(text)} characters)")
    actual = ""
    if not errors:
        actual = text[start:end]
        given = data.get("text")
        if given is not None and given != actual:
            errors.append(
                f"the selected text {_quote(str(given))} no longer matches the output at [{start}, {end}),"
                f" which reads {_quote(actual)}; reload the page and select it again"
            )
    label = data.get("label")
    if not isinstance(label, str) or label not in labels:
        errors.append(f"label {label!r} is not in this project's label set ({', '.join(labels)})")
    raw_weight = data.get("weight")
    weight = 1.0
    if raw_weight not in (None, ""):
        try:
            weight = float(raw_weight)
        except (TypeError, ValueError):
            weight = math.nan
        if isinstance(raw_weight, bool) or not math.isfinite(weight) or not 0 < weight <= SPAN_WEIGHT_MAX:
            errors.append(f"weight must be a number greater than 0 and at most 10 (got {raw_weight!r})")
    critique = data.get("critique") or ""
    if not isinstance(critique, str):
        errors.append("critique must be text")
    elif len(critique) > MAX_CRITIQUE_CHARS:
        errors.append(f"critique is {len(critique)} characters long; the limit is {MAX_CRITIQUE_CHARS}")
    origin = data.get("origin") or Span.Origin.MANUAL
    if origin not in Span.Origin.values:
        errors.append(f"origin {origin!r} is not one of {', '.join(Span.Origin.values)}")
    score = data.get("score")
    if score is not None:
        try:
            score = float(score)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            errors.append("score must be a finite number")
    if errors:
        raise ValidationError(errors)
    return {
        "start": start,
        "end": end,
        "text": actual,
        "label": label,
        "polarity": int(labels[label].get("polarity", 0)),
        "weight": weight,
        "critique": critique,
        "origin": origin,
        "score": score,
    }


def _sentence(clause: str) -> str:
    return clause[:1].upper() + clause[1:] + ("" if clause.endswith(".") else ".")


def validate_spans(text: str, spans: Iterable[Mapping[str, Any]], project: Project) -> list[dict]:
    """Check spans (code-point offsets into ``text``) against the text and the project's label set.

    Each span is a mapping with ``start``, ``end``, ``label`` and optionally ``text`` (the client's copy of
    the selected text, which must equal ``text[start:end]``), ``weight`` (0 < w ≤ 10, default 1),
    ``critique``, ``origin`` and ``score``. Returns the spans ready to store (with ``polarity`` from the
    label and the server's own text copy). Raises one ``ValidationError`` carrying a message per problem,
    numbered from 1 ("Span 2: end 120 lies past the end of the text (100 characters).").

    >>> project = Project(label_set=[{"name": "poor", "polarity": -1}])
    >>> validate_spans("héllo wörld", [{"start": 6, "end": 11, "label": "poor"}], project)[0]["text"]
    'wörld'
    """
    labels = project_labels(project)
    spans = list(spans)
    if len(spans) > MAX_SPANS_PER_ANNOTATION:
        raise ValidationError(
            f"At most {MAX_SPANS_PER_ANNOTATION} spans per annotation ({len(spans)} given)."
        )
    cleaned: list[dict] = []
    errors: list[str] = []
    seen: dict[tuple, int] = {}
    for number, data in enumerate(spans, 1):
        if not isinstance(data, Mapping):
            errors.append(f"Span {number}: expected an object with start, end and label.")
            continue
        try:
            span = _clean_span(text, data, labels)
        except ValidationError as exc:
            errors.extend(f"Span {number}: {message}." for message in exc.messages)
            continue
        key = (span["start"], span["end"], span["label"])
        if key in seen:
            errors.append(f"Span {number}: duplicates span {seen[key]} (same range and label).")
            continue
        seen[key] = number
        cleaned.append(span)
    if errors:
        raise ValidationError(errors)
    return cleaned


# --- assignments: the queue's leases ---------------------------------------------------------------
def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.T2G_LEASE_SECONDS)


def holding_slot(now: datetime, prefix: str = "") -> Q:
    """Assignments that occupy one of an output's slots: submitted ones and unexpired leases."""
    return Q(**{f"{prefix}status": Assignment.Status.COMPLETED}) | Q(
        **{f"{prefix}status": Assignment.Status.ACTIVE, f"{prefix}expires_at__gt": now}
    )


def _slots_taken(generation_id: int, now: datetime, *, except_annotator_id: int | None = None) -> int:
    held = Assignment.objects.filter(holding_slot(now), generation_id=generation_id)
    if except_annotator_id is not None:
        held = held.exclude(annotator_id=except_annotator_id)
    return held.count()


def _lock_generation(generation_id: int) -> None:
    list(Generation.objects.select_for_update().filter(pk=generation_id).values_list("pk", flat=True))


def _annotation_is_empty(annotation: Annotation) -> bool:
    return not annotation.overall_critique and annotation.rating is None and not annotation.spans.exists()


def _drop_empty_draft(assignment: Assignment) -> None:
    draft = Annotation.objects.filter(
        generation_id=assignment.generation_id,
        annotator_id=assignment.annotator_id,
        status=Annotation.Status.DRAFT,
    ).first()
    if draft is not None and _annotation_is_empty(draft):
        draft.delete()


def _assignment_reclaim(assignment: Assignment, now: datetime) -> bool:
    """Renew an annotator's own lease; an expired one only if its output still has a free slot."""
    if assignment.status == Assignment.Status.ACTIVE and assignment.expires_at > now:
        assignment.expires_at = _lease_until(now)
        assignment.save(update_fields=["expires_at"])
        return True
    _lock_generation(assignment.generation_id)
    quota = assignment.generation.prompt.project.annotations_per_output
    if _slots_taken(assignment.generation_id, now, except_annotator_id=assignment.annotator_id) < quota:
        assignment.status = Assignment.Status.ACTIVE
        assignment.expires_at = _lease_until(now)
        assignment.save(update_fields=["status", "expires_at"])
        return True
    if assignment.status != Assignment.Status.EXPIRED:
        assignment.status = Assignment.Status.EXPIRED
        assignment.save(update_fields=["status"])
    _drop_empty_draft(assignment)
    return False


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
        Generation.objects.filter(prompt__project=project, annotation_count__lt=quota)
        .exclude(Exists(Assignment.objects.filter(generation=OuterRef("pk"), annotator=annotator)))
        .exclude(Exists(Annotation.objects.filter(generation=OuterRef("pk"), annotator=annotator)))
        .alias(taken=taken)
        .filter(taken__lt=quota)
        .order_by("id")
    )


def assignment_next(*, project: Project, annotator, now: datetime | None = None) -> Assignment | None:
    """Lease ``annotator`` the next output of ``project`` that still needs annotations; None when none does.

    One lease per annotator and project: an open draft is handed back first (its lease renewed, or, when it
    expired, taken back if its output still has a free slot). Otherwise the lowest-id output is leased that
    has fewer than ``annotations_per_output`` submitted annotations plus unexpired leases, and that this
    annotator has never been assigned (a skip or an expiry still counts: never the same annotator twice).
    The lease and an empty draft annotation are created together.

    Concurrency: the annotator's user row is locked first, so two tabs of one person are served one after
    the other. Candidate outputs are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (concurrent callers
    take different rows instead of waiting) and their slots are counted again under the lock, in a fresh
    statement that sees every lease committed meanwhile, so no output is leased beyond its quota. When
    every candidate is locked by someone else, the next round waits for those locks rather than answering
    "nothing left" while slots remain. SQLite has no row locks: its IMMEDIATE transactions let one writer
    in at a time, which gives the same result.
    """
    now = now or timezone.now()
    if project.is_archived:
        return None
    user_model = get_user_model()
    with transaction.atomic():
        list(user_model.objects.select_for_update().filter(pk=annotator.pk).values_list("pk", flat=True))
        own = (
            Assignment.objects.filter(annotator=annotator, generation__prompt__project=project)
            .filter(
                Q(status=Assignment.Status.ACTIVE)
                | Q(
                    Exists(
                        Annotation.objects.filter(
                            generation=OuterRef("generation"),
                            annotator=annotator,
                            status=Annotation.Status.DRAFT,
                        )
                    ),
                    status=Assignment.Status.EXPIRED,
                )
            )
            .select_related("generation__prompt__project")
            .order_by("leased_at", "pk")
        )
        for assignment in own:
            if _assignment_reclaim(assignment, now):
                Annotation.objects.get_or_create(generation_id=assignment.generation_id, annotator=annotator)
                return assignment

        quota = project.annotations_per_output
        candidates = next_candidates(project, annotator, now)
        skip_locked = True
        for _ in range(_NEXT_ATTEMPTS):
            locked_ids = list(
                candidates.select_for_update(skip_locked=skip_locked, of=("self",)).values_list(
                    "pk", flat=True
                )[:_NEXT_BATCH]
            )
            if not locked_ids:
                if not skip_locked:
                    return None
                # Every candidate is held by another request for a moment: wait for those instead of
                # answering "nothing left" while slots may remain.
                skip_locked = False
                continue
            for generation_id in locked_ids:
                # Counted again under the row lock: the candidate query's snapshot may predate a lease
                # that another request committed while this one waited.
                if _slots_taken(generation_id, now) >= quota:
                    continue
                assignment = Assignment.objects.create(
                    generation_id=generation_id,
                    annotator=annotator,
                    leased_at=now,
                    expires_at=_lease_until(now),
                )
                Annotation.objects.get_or_create(generation_id=generation_id, annotator=annotator)
                return assignment
            candidates = candidates.exclude(pk__in=locked_ids)
    return None


def assignments_expire(*, now: datetime | None = None) -> int:
    """Mark every lapsed lease expired and drop its draft if nothing was written in it (for a periodic job).

    Expiry itself needs no write: a lease past ``expires_at`` no longer holds a slot. This only tidies up.
    """
    now = now or timezone.now()
    with transaction.atomic():
        lapsed = list(
            Assignment.objects.select_for_update(skip_locked=True).filter(
                status=Assignment.Status.ACTIVE, expires_at__lte=now
            )
        )
        for assignment in lapsed:
            assignment.status = Assignment.Status.EXPIRED
            assignment.save(update_fields=["status"])
            _drop_empty_draft(assignment)
    return len(lapsed)


def assignment_skip(*, assignment: Assignment, reason: str, user=None) -> Assignment:
    """Give an output back with a reason. Its draft is discarded; the annotator is never offered it again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why you are skipping this output.")
    if len(reason) > MAX_SKIP_REASON_CHARS:
        raise ValidationError(
            f"The reason is {len(reason)} characters long; the limit is {MAX_SKIP_REASON_CHARS}."
        )
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if user is not None and locked.annotator_id != user.pk:
            raise PermissionDenied("Only the annotator holding this output can skip it.")
        if locked.status not in (Assignment.Status.ACTIVE, Assignment.Status.EXPIRED):
            raise ValidationError(f"This output is already {locked.status}; it cannot be skipped.")
        Annotation.objects.filter(
            generation_id=locked.generation_id,
            annotator_id=locked.annotator_id,
            status=Annotation.Status.DRAFT,
        ).delete()
        locked.status = Assignment.Status.SKIPPED
        locked.skip_reason = reason
        locked.save(update_fields=["status", "skip_reason"])
    return locked


# --- annotations and spans ----------------------------------------------------------------------------
def _annotation_for_write(annotation: Annotation, user) -> Annotation:
    """Lock the annotation row (only it: a join would lock the project row for every writer)."""
    locked = (
        Annotation.objects.select_for_update(of=("self",))
        .select_related("generation__prompt__project")
        .get(pk=annotation.pk)
    )
    if user is not None and locked.annotator_id != user.pk:
        raise PermissionDenied("Only the annotator who wrote this annotation can change it.")
    if locked.status != Annotation.Status.DRAFT:
        raise ValidationError("This annotation has been submitted; it can no longer be changed.")
    return locked


def _clean_overall(*, overall_critique: Any, rating: Any, time_spent: Any) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    errors: list[str] = []
    if overall_critique is not UNSET:
        critique = overall_critique or ""
        if not isinstance(critique, str):
            errors.append("The overall critique must be text.")
        elif len(critique) > MAX_OVERALL_CRITIQUE_CHARS:
            errors.append(
                f"The overall critique is {len(critique)} characters long; the limit is {MAX_OVERALL_CRITIQUE_CHARS}."
            )
        else:
            updates["overall_critique"] = critique
    if rating is not UNSET:
        if rating in (None, ""):
            updates["rating"] = None
        else:
            value = _as_int(rating)
            if value is None or not 1 <= value <= 5:
                errors.append(f"The rating must be a whole number from 1 to 5 (got {rating!r}).")
            else:
                updates["rating"] = value
    if time_spent is not UNSET and time_spent not in (None, ""):
        value = _as_int(time_spent)
        if value is None or value < 0:
            errors.append(f"The time spent must be a whole number of seconds (got {time_spent!r}).")
        else:
            updates["time_spent_seconds"] = min(value, MAX_TIME_SPENT_SECONDS)
    if errors:
        raise ValidationError(errors)
    return updates


def _apply_overall(annotation: Annotation, updates: dict[str, Any]) -> list[str]:
    if "time_spent_seconds" in updates:
        # The client reports its running total; a stale tab must not lower what a newer one stored.
        updates["time_spent_seconds"] = max(annotation.time_spent_seconds, updates["time_spent_seconds"])
    for name, value in updates.items():
        setattr(annotation, name, value)
    return [*updates, "updated_at"]


def _lease_renew(annotation: Annotation, now: datetime) -> None:
    Assignment.objects.filter(
        generation_id=annotation.generation_id,
        annotator_id=annotation.annotator_id,
        status=Assignment.Status.ACTIVE,
        expires_at__gt=now,
    ).update(expires_at=_lease_until(now))


def annotation_save_draft(
    *,
    annotation: Annotation,
    overall_critique: Any = UNSET,
    rating: Any = UNSET,
    spans: Any = UNSET,
    time_spent: Any = UNSET,
    user=None,
    now: datetime | None = None,
) -> Annotation:
    """Save a draft: any of the overall critique, the rating (1-5 or None), the time spent so far in
    seconds (the client's running total; the stored value never goes down) and ``spans`` (the complete
    list, replacing the stored one; ``[]`` clears them). Arguments left out (or ``spans=None``) stay as
    they are. Everything is validated before anything is written, so a refused save loses nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _annotation_for_write(annotation, user)
        updates = _clean_overall(overall_critique=overall_critique, rating=rating, time_spent=time_spent)
        cleaned = None
        if spans is not UNSET and spans is not None:
            cleaned = validate_spans(locked.generation.text, spans, locked.generation.prompt.project)
        locked.save(update_fields=_apply_overall(locked, updates))
        if cleaned is not None:
            locked.spans.all().delete()
            Span.objects.bulk_create([Span(annotation=locked, **span) for span in cleaned])
        _lease_renew(locked, now)
    return locked


def span_create(
    *,
    annotation: Annotation,
    start: int,
    end: int,
    label: str,
    text: str | None = None,
    weight: float | None = None,
    critique: str = "",
    origin: str = Span.Origin.MANUAL,
    score: float | None = None,
    user=None,
) -> Span:
    """Add one span (code-point offsets) to a draft. ``text``, when given, must equal the output's
    ``text[start:end]``: it is how a client's stale or mis-converted offsets are caught."""
    data = {"start": start, "end": end, "label": label, "text": text, "weight": weight}
    data |= {"critique": critique, "origin": origin, "score": score}
    with transaction.atomic():
        locked = _annotation_for_write(annotation, user)
        generation = locked.generation
        try:
            cleaned = _clean_span(generation.text, data, project_labels(generation.prompt.project))
        except ValidationError as exc:
            raise ValidationError([_sentence(message) for message in exc.messages]) from None
        existing = locked.spans.all()
        if existing.count() >= MAX_SPANS_PER_ANNOTATION:
            raise ValidationError(f"At most {MAX_SPANS_PER_ANNOTATION} spans per annotation.")
        if existing.filter(start=cleaned["start"], end=cleaned["end"], label=cleaned["label"]).exists():
            raise ValidationError("A span with this range and label exists already.")
        span = Span.objects.create(annotation=locked, **cleaned)
        locked.save(update_fields=["updated_at"])
        _lease_renew(locked, timezone.now())
    return span


SPAN_EDITABLE_FIELDS = ("start", "end", "text", "label", "weight", "critique")


def span_update(*, span: Span, user=None, **changes: Any) -> Span:
    """Change a span's label, weight, critique or range; a new range is checked against ``text`` when given
    (its copy is then taken from the output), an unchanged one against the stored copy."""
    unknown = set(changes) - set(SPAN_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"These span fields cannot be changed: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        locked = _annotation_for_write(span.annotation, user)
        current = Span.objects.select_for_update().get(pk=span.pk, annotation=locked)
        data = {name: getattr(current, name) for name in ("start", "end", "label", "weight", "critique")}
        data |= {"origin": current.origin, "score": current.score, "text": None}
        data |= changes
        if "text" not in changes and ("start" not in changes and "end" not in changes):
            data["text"] = current.text  # unchanged range: the stored copy must still match
        generation = locked.generation
        try:
            cleaned = _clean_span(generation.text, data, project_labels(generation.prompt.project))
        except ValidationError as exc:
            raise ValidationError([_sentence(message) for message in exc.messages]) from None
        clash = locked.spans.exclude(pk=current.pk).filter(
            start=cleaned["start"], end=cleaned["end"], label=cleaned["label"]
        )
        if clash.exists():
            raise ValidationError("A span with this range and label exists already.")
        for name, value in cleaned.items():
            setattr(current, name, value)
        current.save()
        locked.save(update_fields=["updated_at"])
        _lease_renew(locked, timezone.now())
    return current


def span_delete(*, span: Span, user=None) -> dict:
    """Delete a span from a draft; returns its fields, so a client can undo by creating it again."""
    with transaction.atomic():
        locked = _annotation_for_write(span.annotation, user)
        current = Span.objects.select_for_update().get(pk=span.pk, annotation=locked)
        snapshot = {name: getattr(current, name) for name in (*SPAN_EDITABLE_FIELDS, "origin", "score")}
        current.delete()
        locked.save(update_fields=["updated_at"])
        _lease_renew(locked, timezone.now())
    return snapshot


def annotation_submit(
    *,
    annotation: Annotation,
    overall_critique: Any = UNSET,
    rating: Any = UNSET,
    time_spent: Any = UNSET,
    user=None,
    now: datetime | None = None,
) -> Annotation:
    """Submit a draft (saving the given overall fields first, in the same transaction).

    Needs at least one span or an overall critique; every stored span's text copy is checked against the
    output again. The output's slot is checked under its row lock: an unexpired lease holds it; after
    expiry the slot must still be free. On success the lease completes, ``Generation.annotation_count``
    goes up by one, and ``signals.annotation_submitted`` is sent once the transaction has committed.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _annotation_for_write(annotation, user)
        updates = _clean_overall(overall_critique=overall_critique, rating=rating, time_spent=time_spent)
        update_fields = _apply_overall(locked, updates)
        generation = locked.generation
        project = generation.prompt.project
        spans = list(locked.spans.all())
        drifted = [span for span in spans if generation.text[span.start : span.end] != span.text]
        if drifted:
            raise ValidationError(
                [
                    f"Span [{span.start}, {span.end}) {_quote(span.text)} no longer matches the output; "
                    "delete it and select the text again."
                    for span in drifted
                ]
            )
        if not spans and not locked.overall_critique.strip():
            raise ValidationError("Add at least one span or an overall critique before submitting.")

        _lock_generation(generation.pk)
        assignment = (
            Assignment.objects.select_for_update()
            .filter(generation_id=generation.pk, annotator_id=locked.annotator_id)
            .first()
        )
        holds = (
            assignment is not None
            and assignment.status == Assignment.Status.ACTIVE
            and assignment.expires_at > now
        )
        if not holds:
            taken = _slots_taken(generation.pk, now, except_annotator_id=locked.annotator_id)
            if taken >= project.annotations_per_output:
                raise ValidationError(
                    "Your lease on this output expired and it has since received all "
                    f"{project.annotations_per_output} of its annotations. Your draft is kept, but it cannot "
                    "be submitted; skip it to move on."
                )
        if assignment is None:
            Assignment.objects.create(
                generation_id=generation.pk,
                annotator_id=locked.annotator_id,
                status=Assignment.Status.COMPLETED,
                leased_at=now,
                expires_at=now,
            )
        else:
            assignment.status = Assignment.Status.COMPLETED
            assignment.save(update_fields=["status"])
        locked.status = Annotation.Status.SUBMITTED
        locked.submitted_at = now
        locked.save(update_fields=[*update_fields, "status", "submitted_at"])
        Generation.objects.filter(pk=generation.pk).update(annotation_count=F("annotation_count") + 1)
        annotation_id = locked.pk
        transaction.on_commit(lambda: _send_submitted(annotation_id))
    return locked


def _send_submitted(annotation_id: int) -> None:
    for receiver, response in annotation_submitted.send_robust(
        sender=Annotation, annotation_id=annotation_id
    ):
        if isinstance(response, Exception):
            logger.error(
                "annotation_submitted receiver %r failed for annotation %s",
                receiver,
                annotation_id,
                exc_info=response,
            )

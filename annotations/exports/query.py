"""What an export selects: the kind and the filters (project, model version, annotator, status, dates),
validated, with "latest" pinned (``resolve``) so a stored query reproduces its rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime, time
from typing import Any

from django.db.models import QuerySet

from ..models import Annotation

KINDS = ("spans", "token-rewards", "kto", "dpo")
FORMATS = ("jsonl", "csv", "parquet")
STATUSES = ("submitted", "draft", "any")
REVIEWS = ("any", "accepted", "rejected", "pending")  # pending: submitted, not yet reviewed (gold never is)
ORIGINS = ("any", "people", "machine")  # who wrote the annotation: a person or a machine critic (issue 27)
MAX_ID = 2**63 - 1  # a bigint primary key
DEFAULT_CHUNK = 2000  # rows per database fetch and per write


class ExportQueryError(ValueError):
    """An export query that cannot run; ``errors`` maps each bad field to a message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))


@dataclass(frozen=True)
class ExportQuery:
    """What to export. Stored (resolved) on the DatasetExport row so the snapshot can be cited."""

    project: int | None = None
    model_version: int | None = None
    annotator: int | None = None
    status: str = "submitted"  # drafts are never training data unless asked for
    submitted_after: str | None = None  # ISO datetime, inclusive
    submitted_before: str | None = None  # ISO datetime, exclusive
    tokenizer_fingerprint: str = ""  # token-rewards: empty means the most recently computed one
    identify_annotators: bool = False  # usernames instead of pseudonyms (admins only)
    review: str = "any"  # by the reviewer's verdict (REVIEWS)
    gold_only: bool = False  # only the outputs' gold annotations (adjudicated or honeypot)
    origin: str = "any"  # by who wrote the annotation (ORIGINS); rows carry it either way
    kto_desirable_min: float = 4.0  # mean rating at or above: label True
    kto_undesirable_max: float = 2.0  # mean rating at or below: label False; between: left out
    dpo_min_margin: float = 1.0  # chosen's mean rating exceeds rejected's by at least this

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, kind: str) -> ExportQuery:
        """Validate a query from JSON, a form or the command line. Raises ExportQueryError."""
        data = dict(data or {})
        errors: dict[str, str] = {}
        known = {f.name for f in fields(cls)}
        for key in sorted(set(data) - known):
            errors[key] = "unknown field"
        values: dict[str, Any] = {}
        _read_ids(data, values, errors)
        _read_filters(data, values, errors, kind=kind)
        _read_thresholds(data, values, errors)
        if not errors:
            query = cls(**values)
            errors.update(_cross_errors(query))
        if errors:
            raise ExportQueryError(errors)
        return query

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_bool(raw: Any) -> bool | None:
    if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        return raw.lower() in ("1", "true", "yes", "on")
    return raw if isinstance(raw, bool) else None


def _parse_moment(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime.combine(raw, time.min)
    elif isinstance(raw, str) and len(raw) <= 40:
        text = raw.strip().replace("Z", "+00:00")
        moment = (
            datetime.combine(date.fromisoformat(text), time.min)
            if len(text) == 10
            else datetime.fromisoformat(text)
        )
    else:
        raise ValueError(raw)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    # In UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts (OverflowError near year 1).
    return moment.astimezone(UTC)


def token_reward_model():
    """Training's ``TokenReward``, found by its ``token_rewards`` relation to Annotation: the token-rewards
    export reads its rows, and annotations imports nothing of training (docs/architecture.md lists it)."""
    return Annotation._meta.get_field("token_rewards").related_model


def resolve(kind: str, query: ExportQuery) -> ExportQuery:
    """Pin what "latest" means now (the tokenizer fingerprint), so the stored query reproduces the rows."""
    if kind == "token-rewards" and not query.tokenizer_fingerprint:
        latest = (
            token_reward_model()
            .objects.filter(**annotation_filters(query, prefix="annotation__"))
            .order_by("-computed_at", "-id")
            .values_list("tokenizer_fingerprint", flat=True)
            .first()
        )
        if latest:
            return replace(query, tokenizer_fingerprint=latest)
    return query


def annotation_filters(query: ExportQuery, *, prefix: str = "") -> dict[str, Any]:
    """ORM lookups that select the query's annotations, from a model related to Annotation by ``prefix``."""
    lookups: dict[str, Any] = {}
    if query.status != "any":
        lookups[f"{prefix}status"] = query.status
    if query.project:
        lookups[f"{prefix}generation__prompt__project_id"] = query.project
    if query.model_version:
        lookups[f"{prefix}generation__model_version_id"] = query.model_version
    if query.annotator:
        lookups[f"{prefix}annotator_id"] = query.annotator
    if query.submitted_after:
        lookups[f"{prefix}submitted_at__gte"] = datetime.fromisoformat(query.submitted_after)
    if query.submitted_before:
        lookups[f"{prefix}submitted_at__lt"] = datetime.fromisoformat(query.submitted_before)
    if query.gold_only:
        lookups[f"{prefix}is_gold"] = True
    if query.origin != "any":
        lookups[f"{prefix}origin"] = query.origin
    if query.review in ("accepted", "rejected"):
        lookups[f"{prefix}review__verdict"] = query.review
    elif query.review == "pending":
        lookups[f"{prefix}review__isnull"] = True
        lookups[f"{prefix}is_gold"] = False
    return lookups


def annotations_for(query: ExportQuery) -> QuerySet[Annotation]:
    return Annotation.objects.filter(**annotation_filters(query))


# --- the parts of ExportQuery.from_dict: each reads its fields into ``values`` or says why not in ``errors``


def _read_ids(data: dict, values: dict, errors: dict) -> None:
    for key in ("project", "model_version", "annotator"):
        raw = data.get(key)
        if raw in (None, ""):
            continue
        try:
            number = int(raw)
            if isinstance(raw, bool) or not 1 <= number <= MAX_ID or str(raw).strip() != str(number):
                raise ValueError
        except (TypeError, ValueError):
            errors[key] = "must be a positive integer id"
            continue
        values[key] = number


def _read_filters(data: dict, values: dict, errors: dict, *, kind: str) -> None:
    status = data.get("status") or "submitted"
    if status not in STATUSES:
        errors["status"] = f"must be one of {', '.join(STATUSES)}"
    elif kind in ("kto", "dpo") and status != "submitted":
        errors["status"] = f"{kind} exports use submitted annotations only"
    else:
        values["status"] = status
    for key in ("submitted_after", "submitted_before"):
        raw = data.get(key)
        if raw in (None, ""):
            continue
        try:
            values[key] = _parse_moment(raw).isoformat()
        except (TypeError, ValueError, OverflowError):
            errors[key] = "must be an ISO 8601 date or date-time"
    fingerprint = data.get("tokenizer_fingerprint") or ""
    if not isinstance(fingerprint, str) or len(fingerprint) > 64 or not fingerprint.isprintable():
        errors["tokenizer_fingerprint"] = "must be a tokenizer fingerprint (at most 64 characters)"
    else:
        values["tokenizer_fingerprint"] = fingerprint
    for key in ("identify_annotators", "gold_only"):
        flag = _as_bool(data.get(key, False))
        if flag is None:
            errors[key] = "must be true or false"
        else:
            values[key] = flag
    origin = data.get("origin") or "any"
    if origin not in ORIGINS:
        errors["origin"] = f"must be one of {', '.join(ORIGINS)}"
    else:
        values["origin"] = origin
    review = data.get("review") or "any"
    if review not in REVIEWS:
        errors["review"] = f"must be one of {', '.join(REVIEWS)}"
    else:
        values["review"] = review


def _read_thresholds(data: dict, values: dict, errors: dict) -> None:
    for key, low, high in (
        ("kto_desirable_min", 1, 5),
        ("kto_undesirable_max", 1, 5),
        ("dpo_min_margin", 0, 4),
    ):
        raw = data.get(key)
        if raw in (None, ""):
            continue
        try:
            number = float(raw)
            if isinstance(raw, bool) or not low <= number <= high:
                raise ValueError
        except (TypeError, ValueError):
            errors[key] = f"must be a number from {low} to {high}"
            continue
        values[key] = number


def _cross_errors(query: ExportQuery) -> dict[str, str]:
    """What is wrong with fields taken together (each one alone was valid)."""
    errors = {}
    if query.kto_undesirable_max >= query.kto_desirable_min:
        errors["kto_undesirable_max"] = "must be below kto_desirable_min"
    if query.dpo_min_margin <= 0:
        errors["dpo_min_margin"] = "must be above 0 (a pair needs a preferred output)"
    if (
        query.submitted_after
        and query.submitted_before
        and _parse_moment(query.submitted_after) >= _parse_moment(query.submitted_before)
    ):
        errors["submitted_before"] = "must be after submitted_after"
    return errors

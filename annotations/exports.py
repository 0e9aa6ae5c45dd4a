"""Dataset exports: rows from querysets, and writers for JSONL, CSV and Parquet.

Four kinds of rows:

* ``spans``: one row per annotation: prompt, output, model version, annotator (a pseudonym unless asked),
  overall critique, rating and its spans (code-point offsets, text, label, weight, critique, origin);
* ``token-rewards``: one row per stored TokenReward: prompt and response token ids of the base tokenizer
  and one reward per response token, ready for a policy-gradient trainer;
* ``kto``: ``prompt``, ``completion``, ``label`` (TRL's unpaired preference format), one row per rated output;
* ``dpo``: ``prompt``, ``chosen``, ``rejected`` (TRL's preference format), pairs of outputs of one prompt
  ranked by their mean rating.

Rows come from generators that read in chunks (a server-side cursor on PostgreSQL plus one query for the
spans of each chunk), so memory does not grow with the size of the export. Writers take an iterable of rows
and a binary sink, write in batches and return the row count; ``HashingSink`` hashes exactly the bytes that
were written, which is the export's content hash. The largest export, ``spans`` as JSONL, has a fast path on
PostgreSQL (``spans_jsonl_chunks``: the database builds the lines) that writes the same bytes as the generic
one. Nothing here renders HTML or knows about requests.

>>> neutralise_cell("=HYPERLINK(1)")
"'=HYPERLINK(1)"
>>> neutralise_cell("fine")
'fine'
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import json
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime, time
from functools import lru_cache
from itertools import combinations, groupby, islice
from json.encoder import encode_basestring
from typing import IO, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Avg, Count, QuerySet

from .models import Annotation, Generation, Project, Prompt, Span, TokenReward

KINDS = ("spans", "token-rewards", "kto", "dpo")
FORMATS = ("jsonl", "csv", "parquet")
STATUSES = ("submitted", "draft", "any")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
DEFAULT_CHUNK = 2000
# Cells starting with these make spreadsheets evaluate a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# TokenReward rows gained their own prompt ids later; older schemas fall back to the generation's.
_REWARD_HAS_PROMPT_IDS = any(f.name == "prompt_token_ids" for f in TokenReward._meta.get_fields())


class ExportQueryError(ValueError):
    """An export query that cannot run; ``errors`` maps each bad field to a message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))


# --- the query ------------------------------------------------------------------------------------
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
        for key in ("project", "model_version", "annotator"):
            raw = data.get(key)
            if raw in (None, ""):
                continue
            try:
                number = int(raw)
                if isinstance(raw, bool) or number < 1 or str(raw).strip() != str(number):
                    raise ValueError
            except (TypeError, ValueError):
                errors[key] = "must be a positive integer id"
                continue
            values[key] = number
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
        identify = data.get("identify_annotators", False)
        if isinstance(identify, str) and identify.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
            "",
        ):
            identify = identify.lower() in ("1", "true", "yes", "on")
        if not isinstance(identify, bool):
            errors["identify_annotators"] = "must be true or false"
        else:
            values["identify_annotators"] = identify
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
        if not errors:
            query = cls(**values)
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
        if errors:
            raise ExportQueryError(errors)
        return query

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def resolve(kind: str, query: ExportQuery) -> ExportQuery:
    """Pin what "latest" means now (the tokenizer fingerprint), so the stored query reproduces the rows."""
    if kind == "token-rewards" and not query.tokenizer_fingerprint:
        latest = (
            TokenReward.objects.filter(**annotation_filters(query, prefix="annotation__"))
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
    return lookups


def annotations_for(query: ExportQuery) -> QuerySet[Annotation]:
    return Annotation.objects.filter(**annotation_filters(query))


# --- annotator pseudonyms -------------------------------------------------------------------------
def pseudonym(user_id: int) -> str:
    """A stable, non-reversible name for an annotator: an HMAC of the user id keyed by SECRET_KEY."""
    return _pseudonym(settings.SECRET_KEY, user_id)


@lru_cache(maxsize=4096)
def _pseudonym(secret: str, user_id: int) -> str:
    digest = hmac.new(secret.encode(), f"annotator:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:16]}"


def _annotator_names(query: ExportQuery) -> Callable[[int, str], str]:
    if query.identify_annotators:
        return lambda _user_id, username: username
    secret = settings.SECRET_KEY
    return lambda user_id, _username: _pseudonym(secret, user_id)


def _chunks(iterator: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterator)
    while batch := list(islice(iterator, size)):
        yield batch


# --- rows -----------------------------------------------------------------------------------------
SPAN_FIELDS = ("start", "end", "text", "label", "polarity", "weight", "critique", "origin")
ANNOTATION_COLUMNS = (
    "id",
    "generation_id",
    "generation__prompt_id",
    "generation__prompt__project__name",
    "generation__prompt__text",
    "generation__text",
    "generation__model_version__name",
    "generation__source_model",
    "annotator_id",
    "annotator__username",
    "status",
    "overall_critique",
    "rating",
    "submitted_at",
)


def _spans_by_annotation(annotation_ids: list[int]) -> dict[int, list[tuple]]:
    """The spans of these annotations, in (start, end, id) order, as tuples in SPAN_FIELDS order.

    On PostgreSQL: one query with the ids as a single array literal; the ORM's ``__in`` sends one
    placeholder per id, and adapting them costs more than the query itself at export sizes.
    """
    spans: dict[int, list[tuple]] = defaultdict(list)
    if not annotation_ids:
        return spans
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Span._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(Span._meta.get_field(f).column) for f in SPAN_FIELDS)
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT "annotation_id", {columns} FROM {table} WHERE "annotation_id" = ANY(%s::bigint[]) '
                'ORDER BY "annotation_id", "start", "end", "id"',
                ["{" + ",".join(map(str, annotation_ids)) + "}"],
            )
            rows = cursor.fetchall()
    else:  # SQLite, the embedded default: the ORM is fast enough for what it holds
        rows = (
            Span.objects.filter(annotation_id__in=annotation_ids)
            .order_by("annotation_id", "start", "end", "id")
            .values_list("annotation_id", *SPAN_FIELDS)
        )
    for annotation_id, *span in rows:
        spans[annotation_id].append(tuple(span))
    return spans


def _annotation_batches(query: ExportQuery, chunk_size: int) -> Iterator[tuple[list[tuple], dict[int, list]]]:
    """(annotations as ANNOTATION_COLUMNS tuples, their spans) per chunk, in annotation id order.

    A server-side cursor on PostgreSQL keeps one chunk in memory at a time, whatever the export's size.
    """
    cursor = (
        annotations_for(query).order_by("id").values_list(*ANNOTATION_COLUMNS).iterator(chunk_size=chunk_size)
    )
    for batch in _chunks(cursor, chunk_size):
        yield batch, _spans_by_annotation([row[0] for row in batch])


def spans_rows(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    """One row per annotation, with its spans, in annotation id order."""
    name_of = _annotator_names(query)
    for batch, spans in _annotation_batches(query, chunk_size):
        for (
            annotation_id,
            generation_id,
            prompt_id,
            project,
            prompt,
            output,
            model_version,
            source_model,
            annotator_id,
            username,
            status,
            overall_critique,
            rating,
            submitted_at,
        ) in batch:
            yield {
                "annotation_id": annotation_id,
                "generation_id": generation_id,
                "prompt_id": prompt_id,
                "project": project,
                "prompt": prompt,
                "output": output,
                "model_version": model_version,
                "source_model": source_model,
                "annotator": name_of(annotator_id, username),
                "status": status,
                "overall_critique": overall_critique,
                "rating": rating,
                "submitted_at": submitted_at,
                "spans": [dict(zip(SPAN_FIELDS, span, strict=True)) for span in spans.get(annotation_id, ())],
            }


# The `spans` JSONL line, built by PostgreSQL: to_json(text) escapes exactly as json.dumps(...,
# ensure_ascii=False) does (the same characters, the same lowercase \u00xx), so the bytes equal those of
# the generic path, which a test holds. Floats: PostgreSQL prints the shortest exact form like Python's
# repr, except that it drops ".0" from whole numbers, which is put back. Timestamps: datetime.isoformat()
# of an aware UTC time. The annotator's name is left out and spliced in by Python (the pseudonym is an
# HMAC keyed by SECRET_KEY, which stays out of SQL).
_SPANS_JSONL_SQL = """
SELECT a."annotator_id", u."username",
  '{{"annotation_id":' || a."id" || ',"generation_id":' || a."generation_id" || ',"prompt_id":' || g."prompt_id"
  || ',"project":' || to_json(pr."name")::text || ',"prompt":' || to_json(p."text")::text
  || ',"output":' || to_json(g."text")::text
  || ',"model_version":' || coalesce(to_json(mv."name")::text, 'null')
  || ',"source_model":' || to_json(g."source_model")::text || ',"annotator":',
  ',"status":' || to_json(a."status")::text || ',"overall_critique":' || to_json(a."overall_critique")::text
  || ',"rating":' || coalesce(a."rating"::text, 'null')
  || ',"submitted_at":' || coalesce('"' || {iso} || '"', 'null')
  || ',"spans":[' || coalesce((
    SELECT string_agg(
      '{{"start":' || s."start" || ',"end":' || s."end" || ',"text":' || to_json(s."text")::text
      || ',"label":' || to_json(s."label")::text || ',"polarity":' || s."polarity"
      || ',"weight":' || CASE WHEN s."weight" = trunc(s."weight") THEN trunc(s."weight")::bigint || '.0'
                              ELSE s."weight"::text END
      || ',"critique":' || to_json(s."critique")::text || ',"origin":' || to_json(s."origin")::text || '}}',
      ',' ORDER BY s."start", s."end", s."id")
    FROM {span} s WHERE s."annotation_id" = a."id"), '') || ']}}'
FROM {annotation} a
JOIN {generation} g ON g."id" = a."generation_id"
JOIN {prompt} p ON p."id" = g."prompt_id"
JOIN {project} pr ON pr."id" = p."project_id"
LEFT JOIN {version} mv ON mv."id" = g."model_version_id"
JOIN {user} u ON u."id" = a."annotator_id"
WHERE a."id" IN ({selected})
ORDER BY a."id"
"""
_ISO_UTC = (
    "to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
    "CASE WHEN date_trunc('second', {col}) = {col} THEN '' "
    "ELSE to_char({col} AT TIME ZONE 'UTC', '.US') END || '+00:00'"
)


def _spans_jsonl_sql(query: ExportQuery) -> tuple[str, list]:
    from django.contrib.auth import get_user_model

    from training.models import ModelVersion

    selected, params = annotations_for(query).values("id").query.sql_with_params()
    tables = {
        name: connection.ops.quote_name(model._meta.db_table)
        for name, model in (
            ("span", Span),
            ("annotation", Annotation),
            ("generation", Generation),
            ("prompt", Prompt),
            ("project", Project),
            ("version", ModelVersion),
            ("user", get_user_model()),
        )
    }
    sql = _SPANS_JSONL_SQL.format(iso=_ISO_UTC.format(col='a."submitted_at"'), selected=selected, **tables)
    return sql, list(params)


def _fetch_rows(sql: str, params: list, chunk_size: int) -> Iterator[list[tuple]]:
    """Stream a query's rows in chunks through a server-side cursor, inside a transaction (so the cursor
    streams instead of being materialised WITH HOLD, and every chunk reads one snapshot)."""
    with transaction.atomic():
        with connection.cursor() as setup:
            # extra_float_digits = 1 is PostgreSQL's default since 12 (shortest exact floats), set in case
            # a server overrides it. JIT compiling this big expression costs seconds and saves nothing.
            setup.execute("SET LOCAL extra_float_digits = 1; SET LOCAL jit = off")
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk_size):
                yield rows


def _prefetched(chunks: Callable[[], Iterator[list[tuple]]], depth: int = 2) -> Iterator[list[tuple]]:
    """Run ``chunks`` in a reader thread with its own database connection, ``depth`` chunks ahead.

    PostgreSQL builds the next chunk while this thread formats and writes the current one. The queue is
    bounded, so memory stays a few chunks whatever the export's size.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for rows in chunks():
                while not stop.is_set():
                    try:
                        handoff.put(rows, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            handoff.put(exc)
        finally:
            connection.close()  # this thread's own connection

    reader = threading.Thread(target=read, name="export-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        reader.join()


def spans_jsonl_chunks(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[bytes, int]]:
    """The fast path for the biggest export: the same bytes as ``jsonl_chunks(spans_rows(query))``.

    On PostgreSQL the lines are built by the database (in C) and streamed through a server-side cursor,
    read ahead by a second thread (its own connection and transaction) unless the caller is inside a
    transaction, whose uncommitted rows only its own connection can see. Python only splices in the
    annotator's name. Other databases take the generic path.
    """
    if connection.vendor != "postgresql":
        yield from jsonl_chunks(spans_rows(query, chunk_size=chunk_size), batch_size=chunk_size)
        return
    name_of = _annotator_names(query)
    names: dict[int, str] = {}
    sql, params = _spans_jsonl_sql(query)
    if connection.in_atomic_block:
        chunks = _fetch_rows(sql, params, chunk_size)
    else:
        chunks = _prefetched(lambda: _fetch_rows(sql, params, chunk_size))
    for rows in chunks:
        lines = []
        for annotator_id, username, head, tail in rows:
            name = names.get(annotator_id)
            if name is None:
                name = names[annotator_id] = encode_basestring(name_of(annotator_id, username))
            # Encoded line by line: one emoji would make a joined str four bytes per character.
            lines.append((head + name + tail).encode("utf-8"))
        lines.append(b"")
        yield b"\n".join(lines), len(lines) - 1


def token_reward_rows(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    """One row per TokenReward of the query's tokenizer: token ids and one reward per response token.

    ``behaviour_logprobs`` are the sampling-time log-probabilities, given only where the stored response
    ids are exactly the ones that were sampled (otherwise they would describe other tokens) and empty
    otherwise, e.g. for imported outputs.
    """
    name_of = _annotator_names(query)
    rewards = TokenReward.objects.filter(**annotation_filters(query, prefix="annotation__"))
    if query.tokenizer_fingerprint:
        rewards = rewards.filter(tokenizer_fingerprint=query.tokenizer_fingerprint)
    prompt_ids_column = (
        "prompt_token_ids" if _REWARD_HAS_PROMPT_IDS else "annotation__generation__prompt_token_ids"
    )
    columns = (
        "annotation_id",
        "annotation__generation_id",
        "annotation__generation__prompt_id",
        "annotation__generation__prompt__project__name",
        "annotation__generation__prompt__text",
        "annotation__generation__text",
        "annotation__generation__model_version__name",
        "annotation__annotator_id",
        "annotation__annotator__username",
        "annotation__rating",
        "tokenizer_fingerprint",
        prompt_ids_column,
        "token_ids",
        "rewards",
        "annotation__generation__tokenizer_fingerprint",
        "annotation__generation__response_token_ids",
        "annotation__generation__behaviour_logprobs",
    )
    cursor = rewards.order_by("annotation_id", "id").values_list(*columns).iterator(chunk_size=chunk_size)
    for (
        annotation_id,
        generation_id,
        prompt_id,
        project,
        prompt,
        response,
        model_version,
        annotator_id,
        username,
        rating,
        fingerprint,
        prompt_token_ids,
        token_ids,
        token_rewards,
        generation_fingerprint,
        sampled_ids,
        behaviour_logprobs,
    ) in cursor:
        same_tokenizer = generation_fingerprint == fingerprint
        if not _REWARD_HAS_PROMPT_IDS and not same_tokenizer:
            prompt_token_ids = []
        yield {
            "annotation_id": annotation_id,
            "generation_id": generation_id,
            "prompt_id": prompt_id,
            "project": project,
            "model_version": model_version,
            "annotator": name_of(annotator_id, username),
            "rating": rating,
            "tokenizer_fingerprint": fingerprint,
            "prompt": prompt,
            "response": response,
            "prompt_token_ids": list(prompt_token_ids or []),
            "response_token_ids": list(token_ids),
            "rewards": [float(r) for r in token_rewards],
            "behaviour_logprobs": (
                [float(x) for x in behaviour_logprobs]
                if same_tokenizer
                and sampled_ids == token_ids
                and len(behaviour_logprobs or []) == len(token_ids)
                else []
            ),
        }


def _rated_generations(query: ExportQuery):
    """(generation id, prompt id, mean rating, annotation count) of outputs with a rating, by prompt."""
    return (
        annotations_for(query)
        .filter(rating__isnull=False)
        .values("generation_id", "generation__prompt_id")
        .annotate(mean_rating=Avg("rating"), ratings=Count("id"))
        .order_by("generation__prompt_id", "generation_id")
        .values_list("generation_id", "generation__prompt_id", "mean_rating", "ratings")
    )


def _texts(generation_ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = Generation.objects.filter(id__in=generation_ids).values_list("id", "prompt__text", "text")
    return {pk: (prompt, text) for pk, prompt, text in rows}


def kto_rows(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    """TRL's unpaired preference rows: an output is desirable when its mean rating is high, else not.

    Outputs rated in between (by default a mean rating above 2 and below 4) are left out: a neutral
    output is neither a good nor a bad example.
    """
    cursor = _rated_generations(query).iterator(chunk_size=chunk_size)
    for batch in _chunks(cursor, chunk_size):
        kept = [
            row for row in batch if row[2] >= query.kto_desirable_min or row[2] <= query.kto_undesirable_max
        ]
        texts = _texts([row[0] for row in kept])
        for generation_id, prompt_id, mean_rating, ratings in kept:
            prompt, completion = texts[generation_id]
            yield {
                "prompt": prompt,
                "completion": completion,
                "label": bool(mean_rating >= query.kto_desirable_min),
                "prompt_id": prompt_id,
                "generation_id": generation_id,
                "rating": float(mean_rating),
                "ratings": ratings,
            }


def dpo_rows(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    """TRL's preference pairs: every two outputs of one prompt whose mean ratings differ by the margin.

    Within a prompt, outputs are ranked by mean rating (ties by id); a pair is (better, worse). Pairs of
    identical texts are skipped: they teach nothing.
    """
    cursor = _rated_generations(query).iterator(chunk_size=chunk_size)
    groups: list[list[tuple]] = []
    buffered = 0

    def flush() -> Iterator[dict[str, Any]]:
        texts = _texts([row[0] for group in groups for row in group])
        for group in groups:
            ranked = sorted(group, key=lambda row: (-row[2], row[0]))
            for better, worse in combinations(ranked, 2):
                if better[2] - worse[2] < query.dpo_min_margin:
                    continue
                prompt, chosen = texts[better[0]]
                _, rejected = texts[worse[0]]
                if chosen == rejected:
                    continue
                yield {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "prompt_id": better[1],
                    "chosen_generation_id": better[0],
                    "rejected_generation_id": worse[0],
                    "chosen_rating": float(better[2]),
                    "rejected_rating": float(worse[2]),
                }

    for _prompt_id, group in groupby(cursor, key=lambda row: row[1]):
        group = list(group)
        if len(group) < 2:
            continue
        groups.append(group)
        buffered += len(group)
        if buffered >= chunk_size:
            yield from flush()
            groups, buffered = [], 0
    if groups:
        yield from flush()


ROW_BUILDERS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "spans": spans_rows,
    "token-rewards": token_reward_rows,
    "kto": kto_rows,
    "dpo": dpo_rows,
}


def rows_for(kind: str, query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    return ROW_BUILDERS[kind](query, chunk_size=chunk_size)


def estimate_total(kind: str, query: ExportQuery) -> int:
    """Rows to expect, for the progress bar: exact for spans and token rewards, an upper bound for kto,
    and 0 (unknown) for dpo, whose pair count is only known once the outputs are ranked."""
    if kind == "spans":
        return annotations_for(query).count()
    if kind == "token-rewards":
        rewards = TokenReward.objects.filter(**annotation_filters(query, prefix="annotation__"))
        if query.tokenizer_fingerprint:
            rewards = rewards.filter(tokenizer_fingerprint=query.tokenizer_fingerprint)
        return rewards.count()
    if kind == "kto":
        return annotations_for(query).filter(rating__isnull=False).values("generation_id").distinct().count()
    return 0


# --- Parquet schemas (JSON and CSV carry the same columns) ----------------------------------------
def _schemas():
    import pyarrow as pa

    span = pa.struct(
        [
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("text", pa.string()),
            ("label", pa.string()),
            ("polarity", pa.int64()),
            ("weight", pa.float64()),
            ("critique", pa.string()),
            ("origin", pa.string()),
        ]
    )
    return {
        "spans": pa.schema(
            [
                ("annotation_id", pa.int64()),
                ("generation_id", pa.int64()),
                ("prompt_id", pa.int64()),
                ("project", pa.string()),
                ("prompt", pa.string()),
                ("output", pa.string()),
                ("model_version", pa.string()),
                ("source_model", pa.string()),
                ("annotator", pa.string()),
                ("status", pa.string()),
                ("overall_critique", pa.string()),
                ("rating", pa.int64()),
                ("submitted_at", pa.timestamp("us", tz="UTC")),
                ("spans", pa.list_(span)),
            ]
        ),
        "token-rewards": pa.schema(
            [
                ("annotation_id", pa.int64()),
                ("generation_id", pa.int64()),
                ("prompt_id", pa.int64()),
                ("project", pa.string()),
                ("model_version", pa.string()),
                ("annotator", pa.string()),
                ("rating", pa.int64()),
                ("tokenizer_fingerprint", pa.string()),
                ("prompt", pa.string()),
                ("response", pa.string()),
                ("prompt_token_ids", pa.list_(pa.int64())),
                ("response_token_ids", pa.list_(pa.int64())),
                ("rewards", pa.list_(pa.float64())),
                ("behaviour_logprobs", pa.list_(pa.float64())),
            ]
        ),
        "kto": pa.schema(
            [
                ("prompt", pa.string()),
                ("completion", pa.string()),
                ("label", pa.bool_()),
                ("prompt_id", pa.int64()),
                ("generation_id", pa.int64()),
                ("rating", pa.float64()),
                ("ratings", pa.int64()),
            ]
        ),
        "dpo": pa.schema(
            [
                ("prompt", pa.string()),
                ("chosen", pa.string()),
                ("rejected", pa.string()),
                ("prompt_id", pa.int64()),
                ("chosen_generation_id", pa.int64()),
                ("rejected_generation_id", pa.int64()),
                ("chosen_rating", pa.float64()),
                ("rejected_rating", pa.float64()),
            ]
        ),
    }


def parquet_schema(kind: str):
    return _schemas()[kind]


def columns_for(kind: str) -> list[str]:
    return list(parquet_schema(kind).names)


# --- writers --------------------------------------------------------------------------------------
class HashingSink:
    """A binary sink that hashes every byte written through it (the export's content hash)."""

    def __init__(self, raw: IO[bytes] | None = None):
        self.raw = raw
        self._sha = hashlib.sha256()
        self.bytes_written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        data = bytes(data)
        self._sha.update(data)
        self.bytes_written += len(data)
        if self.raw is not None:
            self.raw.write(data)
        return len(data)

    def tell(self) -> int:
        return self.bytes_written

    def flush(self) -> None:
        if self.raw is not None:
            self.raw.flush()

    def close(self) -> None:  # the owner of ``raw`` closes it; writers must not
        pass

    @property
    def hexdigest(self) -> str:
        return self._sha.hexdigest()


Progress = Callable[[int], None]


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# Datetimes become ISO 8601 text (``datasets`` reads them back as timestamps); NaN is refused, not written.
_json_line = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
).encode


def jsonl_chunks(rows: Iterable[dict], *, batch_size: int = DEFAULT_CHUNK) -> Iterator[tuple[bytes, int]]:
    """(bytes, rows in them) per batch: one compact JSON object per line, UTF-8."""
    for batch in _chunks(rows, batch_size):
        yield ("\n".join(map(_json_line, batch)) + "\n").encode("utf-8"), len(batch)


def neutralise_cell(value: str) -> str:
    """Prefix a cell a spreadsheet would run as a formula with a single quote."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise_cell(value)
    if isinstance(value, list | dict):
        return neutralise_cell(_json_line(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def csv_chunks(
    rows: Iterable[dict], columns: list[str], *, batch_size: int = DEFAULT_CHUNK
) -> Iterator[tuple[bytes, int]]:
    """(bytes, rows in them) per batch: a header, then one record per row; nested values as JSON text."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    header = buffer.getvalue().encode("utf-8")
    yielded = False
    for batch in _chunks(rows, batch_size):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_csv_cell(row[column]) for column in columns] for row in batch)
        data = buffer.getvalue().encode("utf-8")
        yield (header + data if not yielded else data), len(batch)
        yielded = True
    if not yielded:
        yield header, 0


def write_stream(
    chunks: Iterable[tuple[bytes, int]], sink: IO[bytes], progress: Progress | None = None
) -> int:
    written = 0
    for data, count in chunks:
        sink.write(data)
        written += count
        if progress is not None and count:
            progress(written)
    return written


def write_parquet(
    rows: Iterable[dict],
    sink: IO[bytes],
    kind: str,
    *,
    batch_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> int:
    """One row group per batch, with a fixed schema per kind (so empty and sparse columns keep their type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(kind)
    written = 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for batch in _chunks(rows, batch_size):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
            if progress is not None:
                progress(written)
        if not written:
            writer.write_table(schema.empty_table())
    return written


def write_rows(
    rows: Iterable[dict],
    sink: IO[bytes],
    *,
    kind: str,
    fmt: str,
    batch_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> int:
    """Write ``rows`` in ``fmt`` to ``sink``; returns the number of rows written."""
    if fmt == "jsonl":
        return write_stream(jsonl_chunks(rows, batch_size=batch_size), sink, progress)
    if fmt == "csv":
        return write_stream(csv_chunks(rows, columns_for(kind), batch_size=batch_size), sink, progress)
    if fmt == "parquet":
        return write_parquet(rows, sink, kind, batch_size=batch_size, progress=progress)
    raise ValueError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_export(
    kind: str,
    fmt: str,
    query: ExportQuery,
    sink: IO[bytes],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> int:
    """Write one export: the rows of ``kind`` selected by ``query``, as ``fmt``. Returns the row count."""
    if kind == "spans" and fmt == "jsonl":
        return write_stream(spans_jsonl_chunks(query, chunk_size=chunk_size), sink, progress)
    rows = rows_for(kind, query, chunk_size=chunk_size)
    return write_rows(rows, sink, kind=kind, fmt=fmt, batch_size=chunk_size, progress=progress)

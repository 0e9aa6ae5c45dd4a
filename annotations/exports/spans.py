"""``spans`` rows: one per annotation with its spans, read in chunks so memory stays flat."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db import connection

from ..models import Span
from .formats import _chunks
from .names import annotator_names
from .query import DEFAULT_CHUNK, ExportQuery, annotations_for

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
    "is_gold",
    "origin",
    "critic__name",
    "review__verdict",
    "generation__agreement__score",
    "generation__agreement__span_f1",
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
    name_of = annotator_names(query)
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
            is_gold,
            origin,
            critic,
            verdict,
            agreement,
            span_f1,
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
                "is_gold": is_gold,
                "origin": origin,
                "critic": critic,
                "review": verdict,
                "agreement": agreement,
                "span_f1": span_f1,
                "spans": [dict(zip(SPAN_FIELDS, span, strict=True)) for span in spans.get(annotation_id, ())],
            }


# The `spans` JSONL line, built by PostgreSQL: to_json(text) escapes exactly as json.dumps(...,
# ensure_ascii=False) does (the same characters, the same lowercase \u00xx), so the bytes equal those of
# the generic path, which a test holds. Floats: PostgreSQL prints the shortest exact form like Python's
# repr, except that it drops ".0" from whole numbers, which is put back. Timestamps: datetime.isoformat()
# of an aware UTC time. The annotator's name is left out and spliced in by Python (the pseudonym is an
# HMAC keyed by SECRET_KEY, which stays out of SQL).

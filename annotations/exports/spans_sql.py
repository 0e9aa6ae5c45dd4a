"""The PostgreSQL fast path for ``spans`` as JSONL: the database builds each line, Python streams them."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring

from django.db import connection, transaction

from ..models import Annotation, Generation, OutputAgreement, Project, Prompt, Review, Span
from .formats import jsonl_chunks
from .names import annotator_names
from .query import DEFAULT_CHUNK, ExportQuery, annotations_for
from .spans import spans_rows

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
  || ',"is_gold":' || CASE WHEN a."is_gold" THEN 'true' ELSE 'false' END
  || ',"review":' || coalesce(to_json(rv."verdict")::text, 'null')
  || ',"agreement":' || {agreement_score} || ',"span_f1":' || {agreement_f1}
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
LEFT JOIN {review} rv ON rv."annotation_id" = a."id"
LEFT JOIN {agreement} ag ON ag."generation_id" = a."generation_id"
WHERE a."id" IN ({selected})
ORDER BY a."id"
"""
# A nullable float as Python's json.dumps writes it (whole numbers keep their ".0").
_JSON_FLOAT = (
    "CASE WHEN {col} IS NULL THEN 'null' WHEN {col} = trunc({col}) THEN trunc({col})::bigint || '.0' "
    "ELSE {col}::text END"
)
_ISO_UTC = (
    "to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
    "CASE WHEN date_trunc('second', {col}) = {col} THEN '' "
    "ELSE to_char({col} AT TIME ZONE 'UTC', '.US') END || '+00:00'"
)


def _spans_jsonl_sql(query: ExportQuery) -> tuple[str, list]:
    from django.contrib.auth import get_user_model

    # training's model, reached through the relation (annotations imports no training; docs/architecture.md)
    ModelVersion = Generation._meta.get_field("model_version").related_model

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
            ("review", Review),
            ("agreement", OutputAgreement),
        )
    }
    sql = _SPANS_JSONL_SQL.format(
        iso=_ISO_UTC.format(col='a."submitted_at"'),
        agreement_score=_JSON_FLOAT.format(col='ag."score"'),
        agreement_f1=_JSON_FLOAT.format(col='ag."span_f1"'),
        selected=selected,
        **tables,
    )
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
    name_of = annotator_names(query)
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

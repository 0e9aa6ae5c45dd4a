"""The PostgreSQL fast path for ``spans`` as JSONL: the database builds each line and streams the file
with ``COPY ... TO STDOUT``; Python only hashes and writes the bytes."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

from django.db import connection, transaction

from ..models import Annotation, Generation, OutputAgreement, Project, Prompt, Review, Span
from .formats import jsonl_chunks
from .names import annotator_names
from .query import DEFAULT_CHUNK, ExportQuery, annotations_for
from .spans import spans_rows

_SPANS_JSONL_SQL = """
SELECT
  '{{"annotation_id":' || a."id" || ',"generation_id":' || a."generation_id" || ',"prompt_id":' || g."prompt_id"
  || ',"project":' || to_json(pr."name")::text || ',"prompt":' || to_json(p."text")::text
  || ',"output":' || to_json(g."text")::text
  || ',"model_version":' || coalesce(to_json(mv."name")::text, 'null')
  || ',"source_model":' || to_json(g."source_model")::text || ',"annotator":' || {annotator}
  || ',"status":' || to_json(a."status")::text || ',"overall_critique":' || to_json(a."overall_critique")::text
  || ',"rating":' || coalesce(a."rating"::text, 'null')
  || ',"submitted_at":' || coalesce('"' || {iso} || '"', 'null')
  || ',"is_gold":' || CASE WHEN a."is_gold" THEN 'true' ELSE 'false' END
  || ',"origin":' || to_json(a."origin")::text
  || ',"critic":' || coalesce(to_json(a."critic"->>'name')::text, 'null')
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
JOIN ({selected}) sel ON sel."id" = a."id"
JOIN {generation} g ON g."id" = a."generation_id"
JOIN {prompt} p ON p."id" = g."prompt_id"
JOIN {project} pr ON pr."id" = p."project_id"
LEFT JOIN {version} mv ON mv."id" = g."model_version_id"
JOIN {user} u ON u."id" = a."annotator_id"
LEFT JOIN {review} rv ON rv."annotation_id" = a."id"
LEFT JOIN {agreement} ag ON ag."generation_id" = a."generation_id"{names}
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


# The annotator: a username (to_json, as json.dumps writes it) or the pseudonym computed in Python for each
# annotator of the selection (an HMAC keyed by SECRET_KEY, which stays out of SQL) and joined in as arrays.
# An annotator without one (only possible if the selection gained an annotator between the two statements
# of a READ COMMITTED caller's transaction) fails the export with that message rather than write a wrong name.
_USERNAME = 'to_json(u."username")::text'
_PSEUDONYM = (
    'coalesce(to_json(nm."name")::text, (\'no pseudonym for annotator \' || a."annotator_id")::int::text)'
)
_PSEUDONYM_JOIN = (
    '\nLEFT JOIN unnest(%s::bigint[], %s::text[]) AS nm("id", "name") ON nm."id" = a."annotator_id"'
)


def _spans_jsonl_sql(query: ExportQuery, names: dict[int, str] | None) -> tuple[str, list]:
    """The query whose rows are the export's lines; ``names`` maps annotator ids to pseudonyms (None:
    usernames)."""
    from django.contrib.auth import get_user_model

    # training's model, reached through the relation (annotations imports no training; docs/architecture.md)
    ModelVersion = Generation._meta.get_field("model_version").related_model

    # Joined as a subquery rather than `a.id IN (...)`: the planner then joins the selection first and
    # sorts only the selected annotations' ids, not the finished lines (a 10% export took 0.5 s instead of
    # 0.75 s). The filters follow single-valued relations only, so each id appears once.
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
        annotator=_USERNAME if names is None else _PSEUDONYM,
        names="" if names is None else _PSEUDONYM_JOIN,
        selected=selected,
        **tables,
    )
    if names is None:
        return sql, list(params)
    return sql, [*params, list(names), list(names.values())]


def _pseudonyms(query: ExportQuery) -> dict[int, str] | None:
    """Each annotator of the selection's pseudonym, or None when the export names annotators."""
    if query.identify_annotators:
        return None
    name_of = annotator_names(query)
    ids = annotations_for(query).order_by().values_list("annotator_id", flat=True).distinct()
    return {user_id: name_of(user_id, "") for user_id in ids}


def _copy_lines(query: ExportQuery, chunk_size: int) -> Iterator[tuple[bytes, int]]:
    """(bytes, lines) per ``chunk_size`` lines, streamed with COPY: PostgreSQL builds and sends the lines
    without pause (no FETCH round trips, no row parsing or re-encoding in Python), and the socket's
    back-pressure keeps memory flat.

    COPY's text format doubles every backslash (the only character it escapes here: to_json already
    escaped the control characters, and each line is one column) and ends each row with a newline, so
    the stream is the JSONL file once the backslashes are halved. The pseudonyms and the lines are read in
    one REPEATABLE READ transaction (one snapshot for both). The connection is busy until the COPY ends:
    run it on a connection of its own (``_prefetched``).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # the transaction's first statement
        cursor.execute("SET LOCAL extra_float_digits = 1; SET LOCAL jit = off")
        sql, params = _spans_jsonl_sql(query, _pseudonyms(query))
        # psycopg's own cursor: Django's debug wrapper takes no parameters for copy()
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT", params) as copy:
            rows: list = []
            for row in copy:  # one row per block
                rows.append(row)
                if len(rows) >= chunk_size:
                    yield b"".join(rows).replace(b"\\\\", b"\\"), len(rows)
                    rows = []
            if rows:
                yield b"".join(rows).replace(b"\\\\", b"\\"), len(rows)


def _cursor_lines(query: ExportQuery, chunk_size: int) -> Iterator[tuple[bytes, int]]:
    """The same chunks through a server-side cursor, for a caller inside a transaction (whose uncommitted
    rows only its own connection sees, and which updates progress on that connection between chunks)."""
    with transaction.atomic():
        with connection.cursor() as setup:
            setup.execute("SET LOCAL extra_float_digits = 1; SET LOCAL jit = off")
        sql, params = _spans_jsonl_sql(query, _pseudonyms(query))
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk_size):
                # Encoded line by line: one emoji would make a joined str four bytes per character.
                yield b"".join((line + "\n").encode("utf-8") for (line,) in rows), len(rows)


def _prefetched(
    chunks: Callable[[], Iterator[tuple[bytes, int]]], depth: int = 2
) -> Iterator[tuple[bytes, int]]:
    """Run ``chunks`` in a reader thread with its own database connection, ``depth`` chunks ahead.

    PostgreSQL builds and sends the next lines while this thread hashes and writes the current ones (and
    updates progress on its own connection). The queue is bounded, so memory stays a few chunks whatever
    the export's size; a consumer that stops early stops the reader, which cancels its COPY.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            with contextlib.closing(chunks()) as source:
                for item in source:
                    while not stop.is_set():
                        try:
                            handoff.put(item, timeout=0.5)
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

    On PostgreSQL the database builds every line (in C) and streams them with COPY on a reader thread's
    own connection (``_copy_lines``), or through a server-side cursor when the caller is inside a
    transaction. Other databases take the generic path.
    """
    if connection.vendor != "postgresql":
        yield from jsonl_chunks(spans_rows(query, chunk_size=chunk_size), batch_size=chunk_size)
    elif connection.in_atomic_block:
        yield from _cursor_lines(query, chunk_size)
    else:
        yield from _prefetched(lambda: _copy_lines(query, chunk_size))

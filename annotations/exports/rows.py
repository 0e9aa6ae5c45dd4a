"""Rows of each kind, read in chunks so memory stays flat; annotator pseudonyms; and the PostgreSQL fast
path for ``spans`` as JSONL, where the database builds the lines."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import combinations, groupby
from json.encoder import encode_basestring
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Avg, Count

from ..models import Annotation, Generation, OutputAgreement, Project, Prompt, Review, Span, TokenReward
from .formats import _chunks, jsonl_chunks
from .query import DEFAULT_CHUNK, ExportQuery, annotation_filters, annotations_for


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
            is_gold,
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

    # The version that generated an output, reached through the relation: this app imports no training.
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
    prompt_ids_column = "prompt_token_ids"
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
        "annotation__is_gold",
        "annotation__review__verdict",
        "annotation__generation__agreement__score",
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
        is_gold,
        verdict,
        agreement,
    ) in cursor:
        same_tokenizer = generation_fingerprint == fingerprint
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
            "is_gold": is_gold,
            "review": verdict,
            "agreement": agreement,
        }


def _rated_generations(query: ExportQuery):
    """(generation id, prompt id, mean rating, annotation count) of outputs with a rating, by prompt. The
    gold's rating is not one more vote: it counts only in a ``gold_only`` export, alone."""
    return (
        annotations_for(query)
        .filter(rating__isnull=False, is_gold=query.gold_only)
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

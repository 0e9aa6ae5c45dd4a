"""Dataset exports: rows from querysets, and writers for JSONL, CSV and Parquet.

Four kinds of rows:

* ``spans``: one row per annotation: prompt, output, model version, annotator (a pseudonym unless asked),
  overall critique, rating, whether it is the output's gold annotation, the reviewer's verdict, the output's
  agreement (alpha over characters, mean pairwise span F1) and its spans (code-point offsets, text, label,
  weight, critique, origin); ``gold_only`` emits the adjudicated gold alone;
* ``token-rewards``: one row per stored TokenReward (training's model, reached through the ``token_rewards``
  relation): prompt and response token ids of the base tokenizer and one reward per response token, ready
  for a policy-gradient trainer;
* ``kto``: ``prompt``, ``completion``, ``label`` (TRL's unpaired preference format), one row per rated output;
* ``dpo``: ``prompt``, ``chosen``, ``rejected`` (TRL's preference format), pairs of outputs of one prompt
  ranked by their mean rating.

Rows come from generators that read in chunks (a server-side cursor on PostgreSQL plus one query for the
spans of each chunk), so memory does not grow with the size of the export. Writers take an iterable of rows
and a binary sink, write in batches and return the row count; ``HashingSink`` hashes exactly the bytes that
were written, which is the export's content hash. The largest export, ``spans`` as JSONL, has a fast path on
PostgreSQL (``spans_jsonl_chunks``: the database builds the lines) that writes the same bytes as the generic
one. Nothing here renders HTML or knows about requests.

Modules: ``query`` (what an export selects, validated), ``rows`` (the rows of each kind, and the fast
path), ``formats`` (the writers and Parquet schemas); ``write_export`` below joins them.

>>> neutralise_cell("=HYPERLINK(1)")
"'=HYPERLINK(1)"
>>> neutralise_cell("fine")
'fine'
"""

from __future__ import annotations

from typing import IO

from .formats import (
    CONTENT_TYPES,
    FORMULA_PREFIXES,
    HashingSink,
    Progress,
    columns_for,
    csv_chunks,
    jsonl_chunks,
    neutralise_cell,
    parquet_schema,
    write_parquet,
    write_rows,
    write_stream,
)
from .names import pseudonym
from .query import (
    DEFAULT_CHUNK,
    FORMATS,
    KINDS,
    ORIGINS,
    REVIEWS,
    STATUSES,
    ExportQuery,
    ExportQueryError,
    annotation_filters,
    annotations_for,
    resolve,
)
from .rows import estimate_total, rows_for
from .spans import spans_rows
from .spans_sql import spans_jsonl_chunks
from .trainer import dpo_rows, kto_rows, token_reward_rows

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_CHUNK",
    "FORMATS",
    "FORMULA_PREFIXES",
    "KINDS",
    "ORIGINS",
    "REVIEWS",
    "STATUSES",
    "ExportQuery",
    "ExportQueryError",
    "HashingSink",
    "Progress",
    "annotation_filters",
    "annotations_for",
    "columns_for",
    "csv_chunks",
    "dpo_rows",
    "estimate_total",
    "jsonl_chunks",
    "kto_rows",
    "neutralise_cell",
    "parquet_schema",
    "pseudonym",
    "resolve",
    "rows_for",
    "spans_jsonl_chunks",
    "spans_rows",
    "token_reward_rows",
    "write_export",
    "write_parquet",
    "write_rows",
    "write_stream",
]


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

"""Writers for JSONL, CSV and Parquet (with a fixed schema per kind) and the hashing sink."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import IO, Any

from .query import DEFAULT_CHUNK, FORMATS

CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
# Cells starting with these make spreadsheets evaluate a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
Progress = Callable[[int], None]


def _schemas():
    import pyarrow as pa

    return {kind: build(pa) for kind, build in _SCHEMA_BUILDERS.items()}


def _spans_schema(pa):
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
    return pa.schema(
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
            ("is_gold", pa.bool_()),
            ("origin", pa.string()),
            ("critic", pa.string()),
            ("review", pa.string()),
            ("agreement", pa.float64()),
            ("span_f1", pa.float64()),
            ("spans", pa.list_(span)),
        ]
    )


def _token_rewards_schema(pa):
    return pa.schema(
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
            ("is_gold", pa.bool_()),
            ("origin", pa.string()),
            ("critic", pa.string()),
            ("review", pa.string()),
            ("agreement", pa.float64()),
        ]
    )


def _kto_schema(pa):
    return pa.schema(
        [
            ("prompt", pa.string()),
            ("completion", pa.string()),
            ("label", pa.bool_()),
            ("prompt_id", pa.int64()),
            ("generation_id", pa.int64()),
            ("rating", pa.float64()),
            ("ratings", pa.int64()),
        ]
    )


def _dpo_schema(pa):
    return pa.schema(
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
    )


_SCHEMA_BUILDERS = {
    "spans": _spans_schema,
    "token-rewards": _token_rewards_schema,
    "kto": _kto_schema,
    "dpo": _dpo_schema,
}


def parquet_schema(kind: str):
    return _schemas()[kind]


def columns_for(kind: str) -> list[str]:
    return list(parquet_schema(kind).names)


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


def _chunks(iterator: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterator)
    while batch := list(islice(iterator, size)):
        yield batch


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# Datetimes become ISO 8601 text (``datasets`` reads it back as a string: pyarrow infers a timestamp only
# when no value has fractional seconds); NaN is refused, not written.
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

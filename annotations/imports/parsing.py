"""Parsing prompt files (JSONL or CSV) into rows, with an error per bad line and its line number.

Parsing is separate from writing: ``parse_prompts`` never touches the database, and
``services.prompts_import`` writes everything in one transaction or nothing.

Accepted fields per row: ``prompt`` (or ``text``, required), ``id`` (or ``external_id``), ``reference``,
``metadata`` (an object; in CSV a JSON string), and optionally an existing model output as ``output``
with ``source_model``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from .. import safejson

MAX_FIELD_CHARS = 100_000
MAX_METADATA_DEPTH = 8  # as in the API (serializers.MAX_JSON_DEPTH)
MAX_SOURCE_MODEL_CHARS = 300  # Generation.source_model


class ImportFileError(ValueError):
    """The file as a whole cannot be read (wrong format, too large, not UTF-8)."""


@dataclass
class PromptRow:
    line: int
    text: str
    external_id: str = ""
    reference: str = ""
    metadata: dict = field(default_factory=dict)
    output: str = ""
    source_model: str = ""


@dataclass
class ParseResult:
    rows: list[PromptRow]
    errors: list[tuple[int, str]]  # (line number, message)

    @property
    def ok(self) -> bool:
        return not self.errors


def detect_format(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    raise ImportFileError(f"{filename!r}: unknown format; use a .jsonl or .csv file")


def parse_prompts(data: bytes, fmt: str, *, max_bytes: int) -> ParseResult:
    """Parse an upload. Raises ImportFileError for whole-file problems; per-line problems go in errors."""
    if len(data) > max_bytes:
        raise ImportFileError(f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"The file is not UTF-8 text (byte {exc.start} is invalid)") from exc
    if fmt == "jsonl":
        return _parse_jsonl(text)
    if fmt == "csv":
        return _parse_csv(text)
    raise ImportFileError(f"Unknown format {fmt!r}; use jsonl or csv")


def _parse_jsonl(text: str) -> ParseResult:
    rows, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = safejson.loads(line, max_depth=MAX_METADATA_DEPTH + 1, name="the line")
        except safejson.UnsafeJSON as exc:
            errors.append((number, str(exc)))
            continue
        except json.JSONDecodeError as exc:
            errors.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            errors.append((number, "each line must be a JSON object"))
            continue
        _add_row(record, number, rows, errors)
    return ParseResult(rows, errors)


def _parse_csv(text: str) -> ParseResult:
    rows, errors = [], []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or not ({"prompt", "text"} & {f.strip() for f in reader.fieldnames if f}):
        raise ImportFileError("The CSV header must have a 'prompt' (or 'text') column")
    try:
        for record in reader:
            number = reader.line_num
            if None in record:
                errors.append((number, "more fields than the header has"))
                continue
            clean = {k.strip(): v for k, v in record.items() if k}
            if clean.get("metadata"):
                try:
                    clean["metadata"] = safejson.loads(
                        clean["metadata"], max_depth=MAX_METADATA_DEPTH, name="metadata"
                    )
                except safejson.UnsafeJSON as exc:
                    errors.append((number, str(exc)))
                    continue
                except json.JSONDecodeError:
                    errors.append((number, "metadata is not valid JSON"))
                    continue
            _add_row(clean, number, rows, errors)
    except csv.Error as exc:
        errors.append((reader.line_num, f"CSV error: {exc}"))
    return ParseResult(rows, errors)


def _add_row(record: dict, number: int, rows: list[PromptRow], errors: list[tuple[int, str]]) -> None:
    text = record.get("prompt", record.get("text"))
    if not isinstance(text, str) or not text.strip():
        errors.append((number, "missing 'prompt' (a non-empty string)"))
        return
    strings = {}
    for key, aliases in {
        "external_id": ("id", "external_id", "task_id"),
        "reference": ("reference",),
        "output": ("output", "completion"),
        "source_model": ("source_model", "model"),
    }.items():
        value = next((record[a] for a in aliases if record.get(a) not in (None, "")), "")
        if isinstance(value, int | float) and key == "external_id":
            value = str(value)
        if not isinstance(value, str):
            errors.append((number, f"'{aliases[0]}' must be a string"))
            return
        strings[key] = value
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        errors.append((number, "'metadata' must be an object"))
        return
    for key, value in (("prompt", text), *strings.items()):
        if len(value) > MAX_FIELD_CHARS:
            errors.append((number, f"'{key}' is {len(value):,} characters; the limit is {MAX_FIELD_CHARS:,}"))
            return
        problem = safejson.text_problem(value)
        if problem:
            errors.append((number, f"'{key}' {problem}"))
            return
    try:
        safejson.check_value(metadata, max_depth=MAX_METADATA_DEPTH, name="'metadata'")
    except safejson.UnsafeJSON as exc:
        errors.append((number, str(exc)))
        return
    if len(strings["external_id"]) > 200:
        errors.append((number, "'id' is longer than 200 characters"))
        return
    if len(strings["source_model"]) > MAX_SOURCE_MODEL_CHARS:
        errors.append((number, f"'source_model' is longer than {MAX_SOURCE_MODEL_CHARS} characters"))
        return
    if strings["output"] and not strings["source_model"]:
        errors.append((number, "an 'output' needs its 'source_model'"))
        return
    rows.append(PromptRow(line=number, text=text, metadata=metadata, **strings))

"""The `spans` export's bytes are pinned: a fixed dataset (explicit ids, times, secret) exports to the same
sha256 in every format, both annotator modes, chunked or not. A change that alters one byte of an export
(a faster path, a buffered store, a new column) fails here and must say so by updating the digests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from annotations import exports
from annotations.exports import jobs as export_jobs

pytestmark = pytest.mark.django_db

SECRET = "export-bytes-fixture-secret"
BASE = 970_000  # explicit primary keys far above any sequence a test reaches

# sha256 of the export of ``_dataset`` by (format, identify_annotators), recorded before the export's
# throughput fixes (issue 25) and unchanged by them. Updated once, for issue 27's two new columns after
# ``is_gold``: ``origin`` ("people" here) and ``critic`` (null); with those two removed from each JSONL line
# the bytes hashed to the earlier digests (888662bc… and c8609b07…).
GOLDEN = {
    ("jsonl", False): "3ad87a095aca82902d7be11a16a12e7c2b7f6883543428fddcabebcf8e493082",
    ("jsonl", True): "0ecc5ac61dd74db274984e8c9bd483f8cd233b530fdd05e7465c26afa5ff9d27",
    ("csv", False): "bd32cd83265692a59a9cb732ca964943529261a5b70b0d44e71ca9a53971dcc6",
    ("csv", True): "277142cd44c24be8560a1072ea5eb429979693511978a8d2318492cd70beb705",
    ("parquet", False): "13a6fc645f183fdc18b5d3c47a55efbffd8f8d407b86ef1915ae95f4878d554b",
    ("parquet", True): "bf87c7bdf09c060eef3dd00a3a885d7b011f774e0807d76036a7b98cbb492a36",
}


def _dataset() -> None:
    from django.contrib.auth import get_user_model

    from annotations.models import (
        Annotation,
        Generation,
        OutputAgreement,
        Project,
        Prompt,
        Review,
        Span,
    )
    from training.models import ModelVersion

    users = [
        get_user_model().objects.create(pk=BASE + i, username=name, password="!")
        for i, name in enumerate(("ann-one", "ann-two", "=ann three", "reviewer"))
    ]
    project = Project.objects.create(pk=BASE, name="Bytes 東京 project")
    version = ModelVersion.objects.create(pk=BASE, name="v-bytes", base_model="tiny", is_active=True)
    prompts = [
        Prompt(pk=BASE + i, project=project, text=text)
        for i, text in enumerate(('Summarize: "quoted"\nnew line, tab\tend.', "Write 😀 👍🏽 — naïve café"))
    ]
    for prompt in prompts:
        prompt.save()
    outputs = []
    for i, (prompt, text, with_version) in enumerate(
        (
            (prompts[0], "The cat sat. 数据 ok", True),
            (prompts[0], "=SUM(A1:A2) looks like a formula", False),
            (prompts[1], "ctl \x01\x1f\x7f \u2028 \\ / end", True),
        )
    ):
        output = Generation(
            pk=BASE + i,
            prompt=prompt,
            text=text,
            model_version=version if with_version else None,
            source_model="v-bytes" if with_version else "gpt-x",
        )
        output.save()
        outputs.append(output)
    specs = [  # (output, annotator, status, rating, critique, seconds, microseconds, gold)
        (0, 0, "submitted", 5, "Fine 👍🏽", 1, 0, False),
        (0, 1, "submitted", 2, "+1 misses the mat", 2, 4500, False),
        (1, 0, "submitted", None, "", 3, 0, False),
        (1, 2, "draft", 3, "draft critique", None, 0, False),
        (2, 1, "submitted", 1, '-bad "very" bad\nline two', 4, 999999, False),
        (0, 3, "submitted", 4, "gold", 5, 0, True),
    ]
    annotations = []
    for i, (out, user, status, rating, critique, seconds, micros, gold) in enumerate(specs):
        submitted = None if seconds is None else datetime(2026, 3, 9, 1, 2, seconds, micros, tzinfo=UTC)
        annotations.append(
            Annotation.objects.create(
                pk=BASE + i,
                generation=outputs[out],
                annotator=users[user],
                status=status,
                rating=rating,
                overall_critique=critique,
                submitted_at=submitted,
                is_gold=gold,
                gold_origin="adjudicated" if gold else "",
            )
        )
    span_specs = [  # (annotation, start, end, label, polarity, weight, critique)
        (0, 4, 7, "good", 1, 1.0, "right animal"),
        (0, 0, 3, "poor", -1, 1 / 3, "=weak start"),
        (1, 13, 15, "poor", -1, 0.00001, "数据?"),
        (1, 4, 7, "good", 1, 10.0, ""),
        (4, 0, 3, "poor", -1, 0.5, "control\tchars"),
        (5, 4, 7, "good", 1, 2.0, "gold span"),
    ]
    for i, (ann, start, end, label, polarity, weight, critique) in enumerate(span_specs):
        text = annotations[ann].generation.text
        Span.objects.create(
            pk=BASE + i,
            annotation=annotations[ann],
            start=start,
            end=end,
            text=text[start:end],
            label=label,
            polarity=polarity,
            weight=weight,
            critique=critique,
        )
    Review.objects.create(annotation=annotations[0], reviewer=users[3], verdict="accepted")
    Review.objects.create(annotation=annotations[4], reviewer=users[3], verdict="rejected")
    OutputAgreement.objects.update_or_create(generation=outputs[0], defaults={"score": 0.25, "span_f1": 1.0})
    OutputAgreement.objects.update_or_create(generation=outputs[2], defaults={"score": 1.0, "span_f1": None})


@pytest.fixture
def fixed_dataset(settings):
    settings.SECRET_KEY = SECRET
    _dataset()


def _export_bytes(fmt: str, identify: bool, chunk_size: int = exports.DEFAULT_CHUNK) -> bytes:
    query = exports.ExportQuery(status="any", project=BASE, identify_annotators=identify)
    chunks: list[bytes] = []

    class Collect:
        def write(self, data: bytes) -> int:
            chunks.append(bytes(data))
            return len(data)

        def flush(self) -> None:
            pass

    sink = exports.HashingSink(Collect())
    rows = exports.write_export("spans", fmt, query, sink, chunk_size=chunk_size)
    assert rows == 6
    data = b"".join(chunks)
    assert hashlib.sha256(data).hexdigest() == sink.hexdigest
    return data


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("identify", [False, True])
def test_spans_export_bytes_are_unchanged(fixed_dataset, fmt, identify):
    data = _export_bytes(fmt, identify)
    assert hashlib.sha256(data).hexdigest() == GOLDEN[(fmt, identify)]
    if fmt != "parquet":  # Parquet writes one row group per chunk: its bytes depend on the chunk size
        assert _export_bytes(fmt, identify, chunk_size=2) == data


@pytest.mark.django_db(transaction=True)
def test_the_worker_writes_the_pinned_bytes_to_the_store(settings):
    """Through the job framework and the artifact store (read-ahead thread, buffered writes, rename)."""
    settings.SECRET_KEY = SECRET
    _dataset()
    for fmt in ("jsonl", "csv"):
        export = export_jobs.export_create(
            kind="spans", fmt=fmt, query={"status": "any", "project": BASE}, enqueue=False
        )
        export = export_jobs.export_run(export_id=export.pk)
        assert export.row_count == 6
        assert export.content_hash == GOLDEN[(fmt, False)]
        with export_jobs.export_open(export) as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == GOLDEN[(fmt, False)]


def test_an_annotator_without_a_pseudonym_fails_the_export_instead_of_naming_them_wrongly(
    fixed_dataset, monkeypatch
):
    """The pseudonyms are computed before the lines; an annotator who joined the selection in between
    (a READ COMMITTED caller's transaction) stops the export with a message naming them."""
    from django.db import DataError

    from annotations.exports import spans_sql

    monkeypatch.setattr(spans_sql, "_pseudonyms", lambda query: {BASE: exports.pseudonym(BASE)})
    query = exports.ExportQuery(status="any", project=BASE)
    with pytest.raises(DataError, match=f"no pseudonym for annotator {BASE + 1}"):
        b"".join(data for data, _ in exports.spans_jsonl_chunks(query))

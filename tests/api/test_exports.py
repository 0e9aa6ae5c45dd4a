"""Exports: every kind in every format loads with `datasets` and matches the database row for row."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC
from pathlib import Path

import pytest
from django.conf import settings

from annotations import exports
from annotations.exports import jobs as export_jobs
from annotations.models import Annotation, DatasetExport
from jobs import lifecycle
from jobs.models import Outbox
from training.models import TokenReward

from .conftest import FINGERPRINT, OLD_FINGERPRINT
from .helpers import (
    expected_for_format,
    generation_texts,
    load_with_datasets,
    normalise_loaded,
    reference_mean_ratings,
    reference_spans_rows,
    reference_token_reward_rows,
    sha256_file,
)

pytestmark = pytest.mark.django_db
FORMATS = ["jsonl", "csv", "parquet"]


def run_export(kind: str, fmt: str, query: dict | None = None, user=None) -> tuple[DatasetExport, Path]:
    export = export_jobs.export_create(kind=kind, fmt=fmt, query=query, created_by=user, enqueue=False)
    export = export_jobs.export_run(export_id=export.pk)
    assert export.status == DatasetExport.Status.SUCCEEDED, export.error
    path = Path(settings.VAR_DIR) / export.file_path
    assert path.is_file()
    return export, path


def check_snapshot(export: DatasetExport, path: Path, rows: int) -> None:
    assert export.row_count == rows
    assert export.total_rows == rows
    assert export.content_hash == sha256_file(path)
    assert export.finished_at is not None
    assert not list(path.parent.glob(".*.part")), "a temporary file was left behind"


def pseudonymised(user) -> str:
    return exports.pseudonym(user.pk)


@pytest.mark.parametrize("fmt", FORMATS)
def test_spans_export_round_trip(feedback, fmt, tmp_path):
    export, path = run_export("spans", fmt)
    loaded = normalise_loaded(load_with_datasets(path, fmt, tmp_path / "hf"), fmt, ("spans",))
    reference = reference_spans_rows(Annotation.objects.filter(status="submitted"), pseudonymised)
    assert len(reference) == 7  # the draft is not training data
    assert loaded == expected_for_format(reference, fmt, ("spans",))
    check_snapshot(export, path, 7)
    # Code-point offsets: the span text is exactly output[start:end], emoji and CJK included.
    by_id = {row["annotation_id"]: row for row in reference}
    unicode_row = by_id[feedback.annotations["a5"].pk]
    assert [unicode_row["output"][s["start"] : s["end"]] for s in unicode_row["spans"]] == ["東京", "🌏"]
    assert export.query["status"] == "submitted"


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_rewards_export_round_trip(feedback, fmt, tmp_path):
    export, path = run_export("token-rewards", fmt)
    nested = ("prompt_token_ids", "response_token_ids", "rewards", "behaviour_logprobs")
    loaded = normalise_loaded(load_with_datasets(path, fmt, tmp_path / "hf"), fmt, nested)
    # The latest tokenizer is chosen, and pinned in the stored query so the snapshot can be rebuilt.
    assert export.query["tokenizer_fingerprint"] == FINGERPRINT
    reference = reference_token_reward_rows(
        TokenReward.objects.filter(tokenizer_fingerprint=FINGERPRINT, annotation__status="submitted"),
        pseudonymised,
    )
    assert len(reference) == 4
    assert loaded == expected_for_format(reference, fmt, nested)
    check_snapshot(export, path, 4)
    first = loaded[0]
    assert first["annotation_id"] == feedback.annotations["a1"].pk
    assert first["prompt_token_ids"] == [1, 2, 3]
    assert first["response_token_ids"] == [10, 11, 12, 13]
    assert first["rewards"] == [0.0, 1.0, 0.5, 0.0]
    assert len(first["rewards"]) == len(first["response_token_ids"])
    # Sampled ids equal the stored ids only for a1: only it carries behaviour log-probabilities.
    assert first["behaviour_logprobs"] == [-0.5, -0.25, -1.0, -0.125]
    assert all(row["behaviour_logprobs"] == [] for row in loaded[1:])


def test_token_rewards_for_an_older_tokenizer(feedback, tmp_path):
    export, path = run_export("token-rewards", "jsonl", {"tokenizer_fingerprint": OLD_FINGERPRINT})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["annotation_id"], r["response_token_ids"]) for r in rows] == [
        (feedback.annotations["a1"].pk, [7, 7])
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_kto_export_round_trip(feedback, fmt, tmp_path):
    export, path = run_export("kto", fmt)
    loaded = normalise_loaded(load_with_datasets(path, fmt, tmp_path / "hf"), fmt, ())
    means, texts = reference_mean_ratings(), generation_texts()
    reference = [
        {
            "prompt": texts[gid][0],
            "completion": texts[gid][1],
            "label": mean >= 4,
            "prompt_id": next(g.prompt_id for g in feedback.generations if g.pk == gid),
            "generation_id": gid,
            "rating": mean,
            "ratings": Annotation.objects.filter(generation_id=gid, status="submitted").count(),
        }
        for gid, mean in sorted(means.items())
        if mean >= 4 or mean <= 2
    ]
    assert loaded == expected_for_format(reference, fmt, ())
    g1a, g1b, g1c, g1d, g2a, g3a = feedback.generations
    # Hand-checked: 5 → good, (1+2)/2 → bad, 2 → bad, 4 → good, 3 → left out, 1 → bad.
    assert [(row["generation_id"], row["label"]) for row in loaded] == [
        (g1a.pk, True),
        (g1b.pk, False),
        (g1c.pk, False),
        (g1d.pk, True),
        (g3a.pk, False),
    ]
    check_snapshot(export, path, 5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_dpo_export_round_trip(feedback, fmt, tmp_path):
    export, path = run_export("dpo", fmt)
    loaded = normalise_loaded(load_with_datasets(path, fmt, tmp_path / "hf"), fmt, ())
    g1a, g1b, g1c, g1d, _g2a, _g3a = feedback.generations
    # Prompt 1 ranks g1a (5) > g1d (4) > g1c (2) > g1b (1.5); pairs need a margin of at least 1.
    assert [(row["chosen_generation_id"], row["rejected_generation_id"]) for row in loaded] == [
        (g1a.pk, g1d.pk),
        (g1a.pk, g1c.pk),
        (g1a.pk, g1b.pk),
        (g1d.pk, g1c.pk),
        (g1d.pk, g1b.pk),
    ]
    texts = generation_texts()
    for row in loaded:
        expected_prompt, chosen = texts[row["chosen_generation_id"]]
        _, rejected = texts[row["rejected_generation_id"]]
        assert (row["prompt"], row["chosen"], row["rejected"]) == tuple(
            expected_for_format([{"p": expected_prompt, "c": chosen, "r": rejected}], fmt, ())[0].values()
        )
        assert row["chosen_rating"] - row["rejected_rating"] >= 1
    check_snapshot(export, path, 5)


def test_dpo_margin_and_kto_thresholds_are_options(feedback):
    _, path = run_export("dpo", "jsonl", {"dpo_min_margin": 2.5})
    pairs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(p["chosen_rating"], p["rejected_rating"]) for p in pairs] == [(5.0, 2.0), (5.0, 1.5), (4.0, 1.5)]
    _, path = run_export("kto", "jsonl", {"kto_desirable_min": 3, "kto_undesirable_max": 1})
    labels = {row["generation_id"]: row["label"] for row in map(json.loads, path.read_text().splitlines())}
    g1a, _g1b, _g1c, g1d, g2a, g3a = feedback.generations
    assert labels == {g1a.pk: True, g1d.pk: True, g2a.pk: True, g3a.pk: False}


def test_csv_neutralises_formula_cells(feedback):
    _, path = run_export("spans", "csv")
    cells = [
        cell for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")) for cell in row
    ]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    for text in (
        "'=The cat, the mat.",
        "'-wrong animal",
        "'\tsubtracts",
        '\'@mentions, "quotes", and\nnewlines',
    ):
        assert text in cells
    # The span critique that looks like a formula sits inside the JSON cell, which starts with "[".
    spans_cells = [cell for cell in cells if cell.startswith("[{")]
    assert any('"critique":"=HYPERLINK(\\"x\\")"' in cell for cell in spans_cells)


def test_annotators_are_pseudonymised_unless_asked(feedback, annotator, annotator2, settings):
    _, path = run_export("spans", "jsonl")
    names = {row["annotator"] for row in map(json.loads, path.read_text().splitlines())}
    assert names == {exports.pseudonym(annotator.pk), exports.pseudonym(annotator2.pk)}
    assert not names & {annotator.username, annotator2.username}
    assert all(name.startswith("annotator-") and len(name) == len("annotator-") + 16 for name in names)
    # Stable within an install: the same export again gives the same bytes.
    again, again_path = run_export("spans", "jsonl")
    assert again_path.read_bytes() == path.read_bytes()
    _, named = run_export("spans", "jsonl", {"identify_annotators": True})
    assert {row["annotator"] for row in map(json.loads, named.read_text().splitlines())} == {"ann1", "ann2"}
    settings.SECRET_KEY = "another-install-another-key-" + "x" * 30
    assert exports.pseudonym(annotator.pk) not in names


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["a1", "a2", "a3", "a4", "a5", "a6", "a7"]),
        ({"status": "draft"}, ["draft"]),
        ({"status": "any"}, ["a1", "a2", "a3", "a4", "a5", "a6", "draft", "a7"]),
        ({"project": "other"}, ["a6"]),
        ({"annotator": "ann2"}, ["a3", "a4", "a6", "a7"]),
        ({"model_version": "v1"}, ["a2", "a4", "a7"]),
        ({"submitted_after": "2026-03-04", "submitted_before": "2026-03-06T12:00:00Z"}, ["a3", "a4"]),
    ],
)
def test_spans_export_filters(feedback, annotator2, query, expected):
    lookups = {"other": feedback.other_project.pk, "ann2": annotator2.pk, "v1": feedback.v1.pk}
    query = {key: lookups.get(value, value) for key, value in query.items()}
    export, path = run_export("spans", "jsonl", query)
    ids = [row["annotation_id"] for row in map(json.loads, path.read_text().splitlines())]
    assert ids == [feedback.annotations[name].pk for name in expected]
    assert export.row_count == len(expected)
    assert {k: v for k, v in export.query.items() if k in query} == {
        k: (exports.ExportQuery.from_dict(query, kind="spans").as_dict()[k]) for k in query
    }


@pytest.mark.parametrize(
    ("kind", "query", "bad_fields"),
    [
        ("spans", {"colour": "red"}, {"colour"}),
        ("spans", {"project": "abc", "annotator": -3}, {"project", "annotator"}),
        ("spans", {"project": True}, {"project"}),
        ("spans", {"submitted_after": "yesterday"}, {"submitted_after"}),
        ("spans", {"submitted_after": "2026-03-05", "submitted_before": "2026-03-01"}, {"submitted_before"}),
        ("spans", {"status": "deleted"}, {"status"}),
        ("kto", {"status": "draft"}, {"status"}),
        ("kto", {"kto_desirable_min": 2, "kto_undesirable_max": 3}, {"kto_undesirable_max"}),
        ("dpo", {"dpo_min_margin": 0}, {"dpo_min_margin"}),
        ("dpo", {"dpo_min_margin": "lots"}, {"dpo_min_margin"}),
        ("spans", {"identify_annotators": "maybe"}, {"identify_annotators"}),
        ("token-rewards", {"tokenizer_fingerprint": "x" * 65}, {"tokenizer_fingerprint"}),
    ],
)
def test_bad_queries_are_rejected_field_by_field(kind, query, bad_fields):
    with pytest.raises(exports.ExportQueryError) as caught:
        exports.ExportQuery.from_dict(query, kind=kind)
    assert set(caught.value.errors) == bad_fields


def test_unknown_kind_and_format(db):
    with pytest.raises(exports.ExportQueryError) as caught:
        export_jobs.export_create(kind="everything", fmt="xlsx", enqueue=False)
    assert set(caught.value.errors) == {"kind", "format"}
    assert not DatasetExport.objects.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_export_is_refused_with_a_reason_and_no_file(db, fmt, tmp_path):
    # An empty JSONL, a header-only CSV and a 0-row Parquet all fail in datasets.load_dataset: no such file
    # is offered; the export says why instead.
    export = export_jobs.export_create(kind="spans", fmt=fmt, enqueue=False)
    export = export_jobs.export_run(export_id=export.pk)
    assert export.status == DatasetExport.Status.FAILED and export.row_count == 0
    assert export.error.startswith("Nothing to export: no submitted annotation matches")
    assert export.file_path == "" and export_jobs.export_key(export) is None
    assert not list((Path(settings.VAR_DIR) / "exports").glob("*")), "no file, partial or final"
    with pytest.raises(export_jobs.EmptyExportError, match="no submitted annotation"):
        export_jobs.export_write(kind="spans", fmt=fmt, query=None, sink=(tmp_path / "out").open("wb"))


def test_empty_dpo_export_explains_what_a_pair_needs(feedback):
    export = export_jobs.export_create(kind="dpo", fmt="jsonl", query={"dpo_min_margin": 4.0}, enqueue=False)
    export = export_jobs.export_run(export_id=export.pk)
    assert export.status == DatasetExport.Status.FAILED
    assert "a DPO pair needs two rated outputs of the same prompt" in export.error
    assert "at least 4.0" in export.error


def test_jsonl_export_loads_with_datasets_and_submitted_at_is_a_string(feedback):
    load_dataset = pytest.importorskip("datasets").load_dataset
    # Real submissions carry microseconds (timezone.now()); pyarrow then infers a string, not a timestamp.
    one = Annotation.objects.filter(status="submitted").first()
    Annotation.objects.filter(pk=one.pk).update(submitted_at=one.submitted_at.replace(microsecond=123456))
    _, path = run_export("spans", "jsonl")
    table = load_dataset("json", data_files=str(path), split="train")
    assert table.num_rows > 0
    assert table.features["submitted_at"].dtype == "string"  # as docs/api.md says


def test_a_claimed_export_runs_once(feedback):
    export = export_jobs.export_create(kind="spans", fmt="jsonl", enqueue=False)
    first = export_jobs.export_run(export_id=export.pk)
    assert first.status == "succeeded"
    assert export_jobs.export_run(export_id=export.pk) is None
    assert DatasetExport.objects.get(pk=export.pk).content_hash == first.content_hash


def test_a_failed_write_leaves_no_file_and_says_why(feedback):
    export = export_jobs.export_create(kind="spans", fmt="jsonl", enqueue=False)
    # The final name is taken by a folder, so the rename fails after the rows were written.
    target = export_jobs.export_dir() / f"export-{export.pk}-spans.jsonl"
    target.mkdir(parents=True)
    with pytest.raises(OSError):
        export_jobs.export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == "failed"
    assert "IsADirectoryError" in export.error or "rror" in export.error
    assert export.finished_at is not None and export.file_path == ""
    assert not list(export_jobs.export_dir().glob(".*.part"))


def test_a_redelivered_task_leaves_a_running_export_to_its_owner_and_the_reaper(feedback):
    export = export_jobs.export_create(kind="spans", fmt="jsonl", enqueue=False)
    assert export.claim()  # a worker has it
    assert export_jobs.export_run(export_id=export.pk) is None  # a duplicate message: no second run
    export.refresh_from_db()
    assert export.status == "running" and export.attempts == 1
    # The owner is reaped (its heartbeat stopped) while it was only slow: its progress and its finish are
    # refused, so it cannot overwrite the row the next run owns.
    DatasetExport.objects.filter(pk=export.pk).update(status="queued", attempts=2)
    assert not lifecycle.progress(export, 1)
    assert not lifecycle.finish(export, "succeeded")
    assert DatasetExport.objects.get(pk=export.pk).status == "queued"


def test_exports_are_queued_on_commit(feedback, researcher, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        export = export_jobs.export_create(kind="kto", fmt="csv", created_by=researcher)
    assert len(callbacks) == 1
    assert export.status == "queued" and export.created_by == researcher
    # The need for the worker committed with the row: the outbox holds it until the broker takes it.
    assert Outbox.objects.filter(task_name="annotations.export_run", args=[export.pk]).count() == 1


def test_rerunning_an_export_reproduces_its_bytes(feedback, researcher):
    first, first_path = run_export("spans", "parquet", {"project": feedback.project.pk})
    again = export_jobs.export_again(export=first, created_by=researcher)
    again = export_jobs.export_run(export_id=again.pk)
    assert again.query == first.query
    assert again.content_hash == first.content_hash == sha256_file(first_path)


def test_progress_is_reported_while_writing(feedback):
    seen = []
    export = export_jobs.export_create(kind="spans", fmt="jsonl", enqueue=False)
    sink = exports.HashingSink(io.BytesIO())
    count = exports.write_rows(
        exports.rows_for("spans", exports.ExportQuery(), chunk_size=3),
        sink,
        kind="spans",
        fmt="jsonl",
        batch_size=3,
        progress=seen.append,
    )
    assert count == 7 and seen == [3, 6, 7]
    assert sink.bytes_written == len(sink.raw.getvalue()) and export.status == "queued"


def test_chunking_does_not_change_the_rows(feedback):
    small = list(exports.rows_for("spans", exports.ExportQuery(status="any"), chunk_size=2))
    large = list(exports.rows_for("spans", exports.ExportQuery(status="any"), chunk_size=1000))
    assert small == large and len(small) == 8
    assert list(exports.rows_for("dpo", exports.ExportQuery(), chunk_size=1)) == list(
        exports.rows_for("dpo", exports.ExportQuery(), chunk_size=1000)
    )


def test_the_fast_spans_jsonl_path_writes_exactly_the_generic_bytes(feedback, settings):
    from datetime import datetime

    from annotations.models import Span

    moment = datetime(2026, 3, 9, 1, 2, 3, 4500, tzinfo=UTC)  # microseconds must survive as-is
    Annotation.objects.filter(pk=feedback.annotations["a7"].pk).update(
        submitted_at=moment, overall_critique='ctl \x01\x1f\x7f \u2028 \\ / " \b\f é 👍🏽'
    )
    # Floats as Python prints them: shortest exact, ".0" on whole numbers, exponents for tiny ones.
    spans = list(Span.objects.filter(annotation=feedback.annotations["a5"]))
    Span.objects.filter(pk=spans[0].pk).update(weight=1 / 3)
    Span.objects.filter(pk=spans[1].pk).update(weight=0.00001)
    Span.objects.filter(annotation=feedback.annotations["a6"]).update(weight=10.0)
    for query in (exports.ExportQuery(status="any"), exports.ExportQuery(identify_annotators=True)):
        fast = b"".join(data for data, _ in exports.spans_jsonl_chunks(query, chunk_size=3))
        generic = b"".join(data for data, _ in exports.jsonl_chunks(exports.rows_for("spans", query)))
        assert fast == generic and fast.count(b"\n") == (8 if query.status == "any" else 7)
    assert json.loads(fast.splitlines()[0])["spans"][1]["weight"] == 0.5
    assert json.loads(fast.splitlines()[-1])["submitted_at"] == "2026-03-09T01:02:03.004500+00:00"
    for printed in (b'"weight":0.3333333333333333,', b'"weight":1e-05,', b'"weight":10.0,', b"\\u001f\x7f"):
        assert printed in fast


@pytest.mark.django_db(transaction=True)
def test_the_read_ahead_thread_writes_the_same_bytes_and_cleans_up(feedback):
    """Outside a transaction (the worker, the command) a reader thread streams the rows on its own
    connection; the bytes are the generic path's, and stopping early stops and closes the reader."""
    import threading

    from django.db import connection

    assert not connection.in_atomic_block
    query = exports.ExportQuery(status="any")
    threaded = b"".join(data for data, _ in exports.spans_jsonl_chunks(query, chunk_size=3))
    generic = b"".join(data for data, _ in exports.jsonl_chunks(exports.rows_for("spans", query)))
    assert threaded == generic and threaded.count(b"\n") == 8
    chunks = exports.spans_jsonl_chunks(query, chunk_size=2)
    first, count = next(chunks)
    assert count == 2 and first.count(b"\n") == 2
    chunks.close()  # the consumer goes away mid-export (a failed write, a killed request)
    assert not [t for t in threading.enumerate() if t.name == "export-reader"]

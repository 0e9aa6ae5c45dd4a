"""Reference rows built the slow, obvious way from the ORM, and loading exports back with `datasets`."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from annotations.models import Annotation, Generation

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_with_datasets(path: Path, fmt: str, cache_dir: Path) -> list[dict]:
    """Load an export exactly as a researcher would: datasets.load_dataset(json|csv|parquet)."""
    import datasets

    datasets.disable_progress_bars()
    builder = {"jsonl": "json", "csv": "csv", "parquet": "parquet"}[fmt]
    extra = {"keep_default_na": False} if fmt == "csv" else {}
    dataset = datasets.load_dataset(
        builder, data_files=str(path), split="train", cache_dir=str(cache_dir), **extra
    )
    return dataset.to_list()


def as_csv_cell(value):
    """What a value becomes in our CSV: None is empty, formula-looking text gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _moment(value):
    """Timestamps come back as text (CSV), naive UTC (JSON, by pyarrow's inference) or aware (Parquet)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value) if value else None
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def normalise_loaded(rows: list[dict], fmt: str, nested: tuple[str, ...]) -> list[dict]:
    """CSV carries nested values as JSON text: decode them so rows compare with the reference."""
    out = []
    for row in rows:
        row = {k: (json.loads(v) if fmt == "csv" and k in nested else v) for k, v in row.items()}
        if "submitted_at" in row:
            row["submitted_at"] = _moment(row["submitted_at"])
        out.append(row)
    return out


def expected_for_format(rows: list[dict], fmt: str, nested: tuple[str, ...]) -> list[dict]:
    if fmt != "csv":
        return rows
    return [
        {k: (v if k in nested or k == "submitted_at" else as_csv_cell(v)) for k, v in row.items()}
        for row in rows
    ]


def _verdict(annotation) -> str | None:
    review = getattr(annotation, "review", None)
    return review.verdict if review else None


def _agreement(generation, field: str) -> float | None:
    agreement = getattr(generation, "agreement", None)
    return getattr(agreement, field) if agreement else None


def reference_spans_rows(annotations, name_of) -> list[dict]:
    rows = []
    for a in annotations.order_by("id"):
        g = a.generation
        rows.append(
            {
                "annotation_id": a.pk,
                "generation_id": g.pk,
                "prompt_id": g.prompt_id,
                "project": g.prompt.project.name,
                "prompt": g.prompt.text,
                "output": g.text,
                "model_version": g.model_version.name if g.model_version else None,
                "source_model": g.source_model,
                "annotator": name_of(a.annotator),
                "status": a.status,
                "overall_critique": a.overall_critique,
                "rating": a.rating,
                "submitted_at": a.submitted_at,
                "is_gold": a.is_gold,
                "origin": a.origin,
                "critic": (a.critic or {}).get("name"),
                "review": _verdict(a),
                "agreement": _agreement(g, "score"),
                "span_f1": _agreement(g, "span_f1"),
                "spans": [
                    {
                        "start": s.start,
                        "end": s.end,
                        "text": s.text,
                        "label": s.label,
                        "polarity": s.polarity,
                        "weight": s.weight,
                        "critique": s.critique,
                        "origin": s.origin,
                    }
                    for s in a.spans.order_by("start", "end", "id")
                ],
            }
        )
    return rows


def reference_token_reward_rows(rewards, name_of) -> list[dict]:
    rows = []
    for r in rewards.order_by("annotation_id", "id"):
        a, g = r.annotation, r.annotation.generation
        sampled = g.tokenizer_fingerprint == r.tokenizer_fingerprint and g.response_token_ids == r.token_ids
        rows.append(
            {
                "annotation_id": a.pk,
                "generation_id": g.pk,
                "prompt_id": g.prompt_id,
                "project": g.prompt.project.name,
                "model_version": g.model_version.name if g.model_version else None,
                "annotator": name_of(a.annotator),
                "rating": a.rating,
                "tokenizer_fingerprint": r.tokenizer_fingerprint,
                "prompt": g.prompt.text,
                "response": g.text,
                "prompt_token_ids": list(getattr(r, "prompt_token_ids", g.prompt_token_ids)),
                "response_token_ids": r.token_ids,
                "rewards": [float(x) for x in r.rewards],
                "behaviour_logprobs": g.behaviour_logprobs if sampled else [],
                "is_gold": a.is_gold,
                "origin": a.origin,
                "critic": (a.critic or {}).get("name"),
                "review": _verdict(a),
                "agreement": _agreement(g, "score"),
            }
        )
    return rows


def reference_mean_ratings() -> dict[int, float]:
    """Mean rating of each output over its submitted, rated annotations."""
    ratings: dict[int, list[int]] = {}
    for a in Annotation.objects.filter(status="submitted", rating__isnull=False):
        ratings.setdefault(a.generation_id, []).append(a.rating)
    return {gid: sum(r) / len(r) for gid, r in ratings.items()}


def generation_texts() -> dict[int, tuple[str, str]]:
    return {g.pk: (g.prompt.text, g.text) for g in Generation.objects.select_related("prompt")}

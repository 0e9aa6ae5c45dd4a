"""Per-output agreement rows (``OutputAgreement``), kept in step with the annotations.

``agreement_refresh`` recomputes the rows of the given outputs from their submitted annotations and gold,
in one vectorised batch (``text2grad.agreement.batch_agreement``); it is the incremental path (one output,
after a submission or a review change) and the bulk one (a whole project, ``recompute_agreement``).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from django.db import connection, transaction
from django.db.models.functions import Length
from django.utils import timezone

from text2grad.agreement import OutputInput, batch_agreement

from ..models import Annotation, Generation, OutputAgreement, Span

logger = logging.getLogger(__name__)

CHUNK = 2000  # outputs per batch: bounds memory (about 3 MB of characters per 1,000 outputs)


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _matrix(matrix: np.ndarray) -> list[list[float]]:
    return np.round(matrix, 6).tolist()


def agreement_refresh(*, generation_ids: Iterable[int]) -> int:
    """Recompute the agreement rows of these outputs; an output with no submitted annotation loses its row.
    Returns the number of rows written."""
    ids = sorted(set(generation_ids))
    written = 0
    for offset in range(0, len(ids), CHUNK):
        written += _refresh_chunk(ids[offset : offset + CHUNK])
    return written


def _refresh_chunk(ids: list[int]) -> int:
    by_generation, order, inputs = _chunk_inputs(ids)
    result = batch_agreement(inputs)
    objects = _agreement_rows(result, by_generation, order)
    with transaction.atomic():
        OutputAgreement.objects.filter(generation_id__in=ids).exclude(generation_id__in=order).delete()
        if connection.vendor == "postgresql" and len(objects) > 50:
            _upsert_by_copy(objects)
        else:
            fields = [f.name for f in OutputAgreement._meta.concrete_fields if f.name != "generation"]
            OutputAgreement.objects.bulk_create(
                objects, update_conflicts=True, unique_fields=["generation"], update_fields=fields
            )
    return len(objects)


def _chunk_inputs(ids: list[int]) -> tuple[dict[int, list[tuple]], list[int], list[OutputInput]]:
    """The submitted annotations of these outputs (people's: machine drafts are compared with people in
    ``selectors.machine_agreement``) grouped by output, in the order of the measured inputs,
    and one ``OutputInput`` per output: its length, each coder's spans, the gold coder, ratings, offsets."""
    annotations = list(
        Annotation.objects.filter(generation_id__in=ids, status=Annotation.Status.SUBMITTED)
        .exclude(origin=Annotation.Origin.MACHINE)  # people's agreement; machine against people is its own
        .order_by("generation_id", "is_gold", "annotator_id")
        .values_list("id", "generation_id", "annotator_id", "is_gold", "rating", "submitted_at")
    )
    by_generation: dict[int, list[tuple]] = defaultdict(list)
    for row in annotations:
        by_generation[row[1]].append(row)
    annotation_ids = [row[0] for row in annotations]
    spans: dict[int, list[tuple]] = defaultdict(list)
    for annotation_id, start, end, polarity, label in (
        Span.objects.filter(annotation_id__in=annotation_ids)  # by the indexed key, not a join
        .order_by()
        .values_list("annotation_id", "start", "end", "polarity", "label")
        .iterator(chunk_size=20_000)
    ):
        spans[annotation_id].append((start, end, polarity, label))
    lengths = dict(
        Generation.objects.filter(pk__in=list(by_generation))
        .annotate(length=Length("text"))
        .values_list("pk", "length")
    )
    offsets = _token_offsets(annotation_ids)

    order, inputs = [], []
    for generation_id, rows in by_generation.items():
        gold_index = next((i for i, row in enumerate(rows) if row[3]), None)
        inputs.append(
            OutputInput(
                length=lengths[generation_id],
                coders=[spans.get(row[0], []) for row in rows],
                reference=gold_index,
                ratings=[row[4] for row in rows],
                token_offsets=offsets.get(generation_id),
            )
        )
        order.append(generation_id)
    return by_generation, order, inputs


def _pair_entries(result, by_generation: dict, order: list[int]) -> tuple[dict, dict]:
    """Per output position: each annotator pair's F1 and coincidence matrix, and each annotator's against gold."""
    pairs: dict[int, list[dict]] = defaultdict(list)
    gold: dict[int, list[dict]] = defaultdict(list)
    # Converted to Python lists once for the whole chunk (per row it costs more than the maths).
    pair_matrices = _matrix(result.pair_coincidence)
    pair_f1 = np.round(result.pair_f1, 6).tolist()
    for row, (position, first_index, second_index) in enumerate(
        zip(result.pair_output.tolist(), result.pair_first.tolist(), result.pair_second.tolist(), strict=True)
    ):
        rows = by_generation[order[position]]
        first, second = rows[first_index], rows[second_index]
        entry = {"f1": pair_f1[row] if np.isfinite(result.pair_f1[row]) else None, "o": pair_matrices[row]}
        if second[3]:
            gold[position].append({"annotator": first[2], **entry})
        else:
            pairs[position].append({"a": first[2], "b": second[2], **entry})
    return pairs, gold


def _agreement_rows(result, by_generation: dict, order: list[int]) -> list[OutputAgreement]:
    """One unsaved ``OutputAgreement`` per measured output."""
    pairs, gold = _pair_entries(result, by_generation, order)
    coincidences = _matrix(result.coincidence)
    rating_coincidences = _matrix(result.rating_coincidence)
    objects = []
    for position, generation_id in enumerate(order):
        rows = by_generation[generation_id]
        annotators = sum(1 for row in rows if not row[3])
        alpha = _finite(result.alpha[position])
        # Alpha undefined with two or more annotators (no variation: everyone gave every unit the same
        # value) stays undefined: ``score`` is NULL and ``alpha_undefined`` says so; the queue and the
        # training filter treat it explicitly, neither as perfect agreement nor as none.
        score = alpha
        objects.append(
            OutputAgreement(
                generation_id=generation_id,
                annotators=annotators,
                alpha=alpha,
                token_alpha=_finite(result.token_alpha[position]),
                span_f1=_finite(result.span_f1[position]),
                score=score if annotators >= 2 else None,
                coincidence=coincidences[position],
                rating_coincidence=rating_coincidences[position],
                pairs=pairs.get(position, []),
                gold=gold.get(position, []),
                has_gold=any(row[3] for row in rows),
                completed_at=max((row[5] for row in rows if not row[3] and row[5]), default=None),
            )
        )
    return objects


def _upsert_by_copy(objects: list[OutputAgreement]) -> None:
    """Many rows at once on PostgreSQL: COPY into a temporary table, then one INSERT ... ON CONFLICT (a bulk
    ``INSERT`` with one parameter per value spends most of its time adapting parameters)."""
    now = timezone.now()
    columns = [f.column for f in OutputAgreement._meta.concrete_fields]
    json_columns = {
        f.column for f in OutputAgreement._meta.concrete_fields if f.get_internal_type() == "JSONField"
    }
    table = connection.ops.quote_name(OutputAgreement._meta.db_table)
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    updates = ", ".join(
        f"{connection.ops.quote_name(c)} = EXCLUDED.{connection.ops.quote_name(c)}" for c in columns
    )
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE t2g_agreement_in (LIKE {table}) ON COMMIT DROP")
        with cursor.connection.cursor().copy(f"COPY t2g_agreement_in ({quoted}) FROM STDIN") as copy:
            for row in objects:
                row.computed_at = now
                copy.write_row(
                    [
                        json.dumps(getattr(row, f.attname))
                        if f.column in json_columns
                        else getattr(row, f.attname)
                        for f in OutputAgreement._meta.concrete_fields
                    ]
                )
        cursor.execute(
            f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM t2g_agreement_in "
            f"ON CONFLICT ({connection.ops.quote_name('generation_id')}) DO UPDATE SET {updates}"
        )
        cursor.execute("DROP TABLE t2g_agreement_in")


def _token_offsets(annotation_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Token offsets of each output under the most recent tokenizer that rewarded one of its annotations
    (all annotations of an output share them: they depend on the text and the tokenizer only). Read through
    the ``token_rewards`` relation: the rows are training's, which this app does not import."""
    found: dict[int, list[tuple[int, int]]] = {}
    rows = (
        Annotation.objects.filter(id__in=annotation_ids, token_rewards__isnull=False)
        .order_by("generation_id", "-token_rewards__computed_at")
        .values_list("generation_id", "token_rewards__offsets")
    )
    for generation_id, offsets in rows.iterator(chunk_size=500):
        if generation_id not in found and offsets:
            found[generation_id] = [tuple(pair) for pair in offsets]
    return found


def refresh_on_submit(sender, annotation_id: int, **kwargs) -> None:
    """``annotation_submitted`` receiver: recompute the agreement of that annotation's output."""
    generation_id = (
        Annotation.objects.filter(pk=annotation_id).values_list("generation_id", flat=True).first()
    )
    if generation_id is not None:
        agreement_refresh(generation_ids=[generation_id])

"""Reads for machine critics: a project's configured critics, its runs, and how each critic's drafts agree
with the people who annotated the same outputs (and how reviewers judged them).

People's agreement (``OutputAgreement``, the agreement page's figures) is measured among people only; a
critic is compared with people here, pair by pair: on each output that carries both the critic's draft
and people's submitted annotations, the critic against each person, characters pooled into one
coincidence matrix (Krippendorff's alpha over none / poor / good, as for people) and span F1 (same label,
IoU >= 0.5) averaged over those pairs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.db.models import QuerySet
from django.db.models.functions import Length

from text2grad.agreement import OutputInput, alpha_from_coincidence, batch_agreement

from ..models import Annotation, Generation, MachineCriticConfig, MachineCriticJob, Project, Review, Span


def machine_critics_of(project: Project) -> QuerySet[MachineCriticConfig]:
    return MachineCriticConfig.objects.filter(project=project).order_by("name")


def machine_critic_jobs(project: Project, limit: int = 20) -> QuerySet[MachineCriticJob]:
    return MachineCriticJob.objects.filter(project=project).order_by("-created_at")[:limit]


@dataclass
class MachineAgreement:
    critic: str  # registry name
    drafts: int = 0  # submitted machine annotations
    outputs: int = 0  # outputs with the draft and at least one person's annotation
    pairs: int = 0  # critic-person pairs measured
    alpha: float | None = None  # pooled over the pairs' characters
    span_f1: float | None = None  # mean over the pairs
    accepted: int = 0
    rejected: int = 0
    waiting: int = 0  # not yet reviewed


def _finite(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def machine_agreement(project: Project) -> list[MachineAgreement]:
    """One row per critic that wrote drafts on the project (by name, whatever its version or settings)."""
    machine = list(
        Annotation.objects.filter(
            generation__prompt__project=project,
            origin=Annotation.Origin.MACHINE,
            status=Annotation.Status.SUBMITTED,
            is_gold=False,
        ).values_list("id", "generation_id", "critic__name")
    )
    if not machine:
        return []
    generation_ids = {row[1] for row in machine}
    people = list(
        Annotation.objects.filter(
            generation_id__in=generation_ids,
            origin=Annotation.Origin.PEOPLE,
            status=Annotation.Status.SUBMITTED,
            is_gold=False,
        ).values_list("id", "generation_id")
    )
    by_output: dict[int, list[int]] = defaultdict(list)
    for annotation_id, generation_id in people:
        by_output[generation_id].append(annotation_id)
    spans: dict[int, list[tuple]] = defaultdict(list)
    ids = [row[0] for row in machine] + [row[0] for row in people]
    for annotation_id, start, end, polarity, label in Span.objects.filter(annotation_id__in=ids).values_list(
        "annotation_id", "start", "end", "polarity", "label"
    ):
        spans[annotation_id].append((start, end, polarity, label))
    lengths = dict(
        Generation.objects.filter(pk__in=generation_ids).annotate(n=Length("text")).values_list("pk", "n")
    )
    verdicts = dict(
        Review.objects.filter(annotation_id__in=[row[0] for row in machine]).values_list(
            "annotation_id", "verdict"
        )
    )
    rows: dict[str, MachineAgreement] = {}
    inputs: dict[str, list[OutputInput]] = defaultdict(list)
    for annotation_id, generation_id, name in machine:
        row = rows.setdefault(name, MachineAgreement(critic=name))
        row.drafts += 1
        verdict = verdicts.get(annotation_id)
        if verdict == Review.Verdict.ACCEPTED:
            row.accepted += 1
        elif verdict == Review.Verdict.REJECTED:
            row.rejected += 1
        else:
            row.waiting += 1
        others = by_output.get(generation_id, [])
        if others:
            row.outputs += 1
            coders = [spans.get(annotation_id, [])] + [spans.get(pk, []) for pk in others]
            inputs[name].append(OutputInput(length=lengths[generation_id], coders=coders))
    for name, outputs in inputs.items():
        result = batch_agreement(outputs)
        against = result.pair_first == 0  # the critic is coder 0; every pair it is in has it first
        row = rows[name]
        row.pairs = int(against.sum())
        if row.pairs:
            row.alpha = _finite(
                alpha_from_coincidence(result.pair_coincidence[against].sum(axis=0), "nominal")
            )
            f1 = result.pair_f1[against]
            f1 = f1[np.isfinite(f1)]
            row.span_f1 = _finite(f1.mean()) if len(f1) else None
    return sorted(rows.values(), key=lambda row: row.critic)

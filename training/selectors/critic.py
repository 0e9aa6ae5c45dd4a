"""Reads for the critic pages: versions, their held-out metrics next to the baselines, how annotators
treated their suggestions, and highlighted samples of on-policy rounds."""

from __future__ import annotations

from django.db.models import QuerySet

from annotations.models import Annotation, Span

from ..models import (
    AlignmentRequest,
    CriticPredictionJob,
    CriticTrainingJob,
    CriticVersion,
    OnPolicySample,
    TrainingRound,
)

BASELINE_NAMES = {
    "critic": "Critic",
    "all_neutral": "Every token neutral",
    "token_prior": "P(label | token id)",
    "minilm_similarity": "MiniLM similarity (poor only)",
}


def critic_versions(*, project_id: int) -> QuerySet[CriticVersion]:
    return CriticVersion.objects.filter(project_id=project_id).select_related("parent", "created_by_job")


def critic_jobs(*, project_id: int, limit: int = 10) -> QuerySet[CriticTrainingJob]:
    return CriticTrainingJob.objects.filter(project_id=project_id).select_related("output_version")[:limit]


def critic_prediction_jobs_open(*, project_id: int, limit: int = 20) -> QuerySet[CriticPredictionJob]:
    """The project's critic prediction jobs still queued or running (the critic page shows where each stands)."""
    return (
        CriticPredictionJob.objects.filter(critic_version__project_id=project_id)
        .exclude(status__in=CriticPredictionJob.FINISHED)
        .select_related("critic_version")
        .order_by("created_at", "id")[:limit]
    )


def metric_rows(version: CriticVersion) -> list[dict]:
    """One row per method (the critic first), with the numbers the critic page shows."""
    rows = []
    for key, title in BASELINE_NAMES.items():
        report = (version.metrics.get("reports") or {}).get(key)
        if not report:
            continue
        poor, good = report["labels"]["poor"], report["labels"]["good"]
        rows.append(
            {
                "key": key,
                "title": title,
                "poor": poor,
                "good": good,
                "macro_f1": report.get("macro_f1"),
                "ece": (report.get("calibration", {}).get("poor") or {}).get("ece"),
                "tokens": report.get("tokens"),
            }
        )
    return rows


def _chars(spans, polarity: int) -> set[int]:
    return {i for s in spans if s[2] == polarity for i in range(s[0], s[1])}


def review_stats(version: CriticVersion) -> dict:
    """How annotators treated this critic's suggestions.

    acceptance: accepted / (accepted + rejected) proposals; edit rate: share of submitted annotations that
    started from the critic's suggestions and ended with spans other than exactly the accepted ones;
    char_f1: agreement, by characters of poor and good spans pooled, between everything the critic proposed
    and what the annotator submitted (1.0: people changed nothing).

    From the spans' origin (``critic`` for an accepted critic suggestion, kept through later edits), over
    submitted annotations: kept_rate: accepted suggestions submitted unchanged (a ``critic`` span at the
    same place with the same polarity) / accepted suggestions; adjusted: ``critic`` spans whose place or
    polarity people changed after accepting; added: spans of any other origin (what the critic missed).
    """
    requests = list(
        AlignmentRequest.objects.filter(critic_version=version)
        .select_related("annotation")
        .prefetch_related("annotation__spans")
    )
    states = {"accepted": 0, "rejected": 0, "open": 0}
    submitted = edited = 0
    accepted_submitted = kept = adjusted = added = 0
    overlap = predicted_total = final_total = 0
    for request in requests:
        for proposal in request.proposals:
            states[proposal.get("state", "open")] = states.get(proposal.get("state", "open"), 0) + 1
        annotation = request.annotation
        if annotation.status != Annotation.Status.SUBMITTED:
            continue
        submitted += 1
        accepted = {
            (p["start"], p["end"], p["polarity"]) for p in request.proposals if p.get("state") == "accepted"
        }
        final = {(s.start, s.end, s.polarity) for s in annotation.spans.all() if s.polarity != 0}
        edited += final != accepted
        from_critic = {
            (s.start, s.end, s.polarity) for s in annotation.spans.all() if s.origin == Span.Origin.CRITIC
        }
        accepted_submitted += len(accepted)
        kept += len(accepted & from_critic)
        adjusted += len(from_critic - accepted)
        added += sum(1 for s in annotation.spans.all() if s.origin != Span.Origin.CRITIC)
        proposed = [(p["start"], p["end"], p["polarity"]) for p in request.proposals]
        for polarity in (-1, 1):
            a, b = _chars(proposed, polarity), _chars(final, polarity)
            overlap += len(a & b)
            predicted_total += len(a)
            final_total += len(b)
    decided = states["accepted"] + states["rejected"]
    denominator = predicted_total + final_total
    return {
        "proposals": sum(states.values()),
        **states,
        "acceptance_rate": states["accepted"] / decided if decided else None,
        "submitted": submitted,
        "edit_rate": edited / submitted if submitted else None,
        "char_f1": 2 * overlap / denominator if denominator else None,
        "kept_rate": kept / accepted_submitted if accepted_submitted else None,
        "adjusted": adjusted,
        "added": added,
    }


def highlight_segments(text: str, spans: list[dict]) -> list[dict]:
    """The text cut at span boundaries: ``[{text, polarity (None outside spans), score}]`` for templates
    (which escape every piece). Overlaps resolve to the earlier span.

    >>> [(s["text"], s["polarity"]) for s in highlight_segments("a bad day", [{"start": 2, "end": 5, "polarity": -1, "score": 0.9}])]
    [('a ', None), ('bad', -1), (' day', None)]
    """
    segments, position = [], 0
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        start, end = max(span["start"], position), min(span["end"], len(text))
        if start >= end:
            continue
        if start > position:
            segments.append({"text": text[position:start], "polarity": None, "score": None})
        segments.append({"text": text[start:end], "polarity": span["polarity"], "score": span.get("score")})
        position = end
    if position < len(text):
        segments.append({"text": text[position:], "polarity": None, "score": None})
    return segments


def on_policy_samples(training_round: TrainingRound, limit: int = 40) -> list[dict]:
    """The round's latest samples with their predicted spans, ready to render."""
    rows = (
        OnPolicySample.objects.filter(training_round=training_round)
        .select_related("prompt", "audit_generation")
        .order_by("-update", "-id")[:limit]
    )
    return [
        {
            "sample": row,
            "segments": highlight_segments(row.text, row.spans),
            "reward": sum(row.token_rewards),
        }
        for row in rows
    ]

"""The webhook events of training (``annotations.services.webhooks`` delivers them): what each says about
a round, a version or a critic, built in one place so every code path that emits one sends the same."""

from __future__ import annotations

from annotations.webhooks import webhook_event_emit

from ..models import CriticVersion, ModelVersion, TrainingRound


def _stamp(value) -> str | None:
    return value.isoformat() if value else None


def version_data(version: ModelVersion) -> dict:
    return {
        "id": version.pk,
        "name": version.name,
        "parent": version.parent_id,
        "created_by_round": version.created_by_round_id,
        "content_hash": version.content_hash,
        "is_active": version.is_active,
    }


def round_data(training_round: TrainingRound) -> dict:
    return {
        "id": training_round.pk,
        "project": training_round.project_id,
        "mode": training_round.mode,
        "status": training_round.status,
        "snapshot_hash": training_round.snapshot_hash,
        "snapshot_size": len(training_round.snapshot or []),
        "error": training_round.error,
        "finished_at": _stamp(training_round.finished_at),
    }


def round_finished_emit(*, training_round: TrainingRound, version: ModelVersion) -> int:
    """In the transaction that publishes the round's version."""
    training_round.refresh_from_db()
    return webhook_event_emit(
        event="round.finished", data={"round": round_data(training_round), "version": version_data(version)}
    )


def round_failed_emit(*, training_round: TrainingRound) -> int:
    return webhook_event_emit(event="round.failed", data={"round": round_data(training_round)})


def round_cancelled_emit(*, training_round: TrainingRound) -> int:
    """In the transaction that makes the round CANCELLED (a queued one at once, a running one when its
    worker stops)."""
    return webhook_event_emit(event="round.cancelled", data={"round": round_data(training_round)})


def version_activated_emit(*, version: ModelVersion, previous: ModelVersion | None, rollback: bool) -> int:
    data = {"version": version_data(version), "previous": version_data(previous) if previous else None}
    return webhook_event_emit(event="version.rolled_back" if rollback else "version.promoted", data=data)


def critic_version_ready_emit(*, version: CriticVersion) -> int:
    data = {
        "critic_version": {
            "id": version.pk,
            "name": version.name,
            "project": version.project_id,
            "parent": version.parent_id,
            "created_by_job": version.created_by_job_id,
            "snapshot_hash": version.snapshot_hash,
            "is_active": version.is_active,
            "metrics": {k: v for k, v in (version.metrics or {}).items() if k != "timings"},
        }
    }
    return webhook_event_emit(event="critic_version.ready", data=data)

"""Where a job stands, in words a page can show: "queued behind generation job #3 (running); position 2 in
the generation lane, starts in about 4 min", "running: 12 of 40, about 1 min left", or that no worker serves
its lane. Waits come from work timed on this deployment: a running job's own pace, else its kind's measured
pace (``JobKind.measured_s``: generation jobs' tokens per second, finished rounds' seconds per update); a
kind with nothing measured yet falls back on its ``typical_s`` and the words say it is a first guess."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from . import liveness, registry

FIRST_GUESS = " (a first guess: nothing of the kind has run here yet)"


@dataclass
class Standing:
    text: str
    position: int | None = None  # 1 = next to run
    eta_s: float | None = None  # until it finishes (running) or starts (queued)
    lane: str = ""
    lane_down: bool = False
    measured: bool = True  # False: eta_s rests on a kind's typical_s (a first guess), not on work timed here


class _Units:
    """Seconds per unit of progress for each kind, as measured here (or its first guess), read once per
    standing: a queue of 50 jobs ahead costs one query per kind, not one per job."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[float, bool]] = {}
        self.guessed = False

    def remaining_s(self, job, kind) -> float:
        """Seconds until ``job`` finishes: a running job's own pace once it made progress; otherwise the
        units it has left at the kind's measured pace (or first guess)."""
        total = job.progress_total or 0
        step = job.progress_step or 0
        if job.status == job.Status.RUNNING and step and job.started_at:
            elapsed = (timezone.now() - job.started_at).total_seconds()
            return max(0.0, elapsed / step * max(0, total - step))
        if kind.label not in self.seen:
            self.seen[kind.label] = registry.unit_seconds(kind)
        unit_s, measured = self.seen[kind.label]
        self.guessed |= not measured
        return unit_s * max(1, total - step)


def duration_words(seconds: float) -> str:
    """An estimate as a page says it: "about 40 s", "about 12 min", "about 2.5 h"."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def standing(job) -> Standing:
    kind = registry.kind_of(type(job))
    lane = registry.lane_of(kind.task)
    units = _Units()
    if job.status == job.Status.RUNNING:
        progress = f"{job.progress_step} of {job.progress_total}" if job.progress_total else "started"
        eta = units.remaining_s(job, kind) if job.progress_step or job.progress_total else None
        text = f"running: {progress}" + (f", {duration_words(eta)} left" if eta is not None else "")
        text += FIRST_GUESS if units.guessed else ""
        return Standing(text, eta_s=eta, lane=lane, measured=not units.guessed)
    if job.status != job.Status.QUEUED:
        return Standing(job.status, lane=lane)
    ahead = []
    for other_kind in registry.KINDS.values():
        if registry.lane_of(other_kind.task) != lane:
            continue
        model = other_kind.model
        rows = model.objects.filter(status__in=[model.Status.RUNNING, model.Status.QUEUED]).filter(
            created_at__lt=job.created_at
        ) | model.objects.filter(status=model.Status.RUNNING)
        if model is type(job):
            rows = rows.exclude(pk=job.pk)
        ahead += [(other_kind, row) for row in rows.distinct().order_by("created_at")[:50]]
    ahead.sort(key=lambda pair: (pair[1].status != pair[1].Status.RUNNING, pair[1].created_at))
    down = lane in liveness.lanes_down()
    eta = sum(units.remaining_s(row, other_kind) for other_kind, row in ahead)
    if not ahead:
        text = "queued: next to run"
    else:
        first_kind, first = ahead[0]
        state = "running" if first.status == first.Status.RUNNING else "queued"
        text = f"queued behind {first_kind.label} #{first.pk} ({state})"
        if len(ahead) > 1:
            text += f" and {len(ahead) - 1} more"
        text += f"; position {len(ahead) + 1} in the {lane} lane, starts in {duration_words(eta)}"
        text += FIRST_GUESS if units.guessed else ""
    if down:
        text += f". No worker serves the {lane} lane right now: it runs once one is back (admins are told)"
    return Standing(
        text, position=len(ahead) + 1, eta_s=eta, lane=lane, lane_down=down, measured=not units.guessed
    )

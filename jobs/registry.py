"""The kinds of job, registered by the apps that own them (in ``AppConfig.ready``), so the one reaper,
the lane positions and the health page know every kind without importing the apps above this floor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobKind:
    model: type
    label: str  # "generation job": how pages name one
    task: str  # the task that runs one, by name
    # What the reaper does with a job whose worker died: "resume" queues it again (up to
    # ``max_requeues`` times, with backoff), "fail" ends it with ``lost_message`` (what to do next).
    on_lost: str = "fail"
    lost_message: str = "Its worker stopped (killed or out of memory). Start it again."
    max_requeues: int = 3
    resume_note: str = "it continues where it can."
    # What a "resume" kind's job says when the reaper gives up on it (it stopped max_requeues + 1 times).
    given_up_note: str = "What it finished is kept; start a new one for the rest."
    cleanup: Callable[[int], None] | None = None  # called with the pk after a reap (partial files)
    # Seconds one unit of progress took on this deployment, from the kind's own finished work (a callable:
    # it reads the database each time; None back while nothing is measured). Waits use it before typical_s.
    measured_s: Callable[[], float | None] | None = None
    # Seconds one unit of progress is expected to take when nothing has been measured yet: a first guess,
    # and pages say so.
    typical_s: float = 30.0
    extra_filters: dict = field(default_factory=dict)


KINDS: dict[str, JobKind] = {}
SWEEPS: dict[str, Callable[[], int]] = {}


def register(kind: JobKind) -> None:
    KINDS[kind.model._meta.label_lower] = kind


def register_sweep(name: str, sweep: Callable[[], int]) -> None:
    """A periodic reconciliation (e.g. submitted annotations without token rewards): returns a count."""
    SWEEPS[name] = sweep


def unit_seconds(kind: JobKind) -> tuple[float, bool]:
    """Seconds one unit of ``kind``'s progress takes, and whether that was measured here (False: the kind's
    ``typical_s``, a first guess)."""
    measured = kind.measured_s() if kind.measured_s is not None else None
    if measured is not None and measured > 0:
        return measured, True
    return kind.typical_s, False


def kind_of(model) -> JobKind:
    return KINDS[model._meta.label_lower]


def lane_of(task_name: str) -> str:
    from django.conf import settings

    routes = getattr(settings, "CELERY_TASK_ROUTES", {}) or {}
    route = routes.get(task_name)
    if route is None:
        prefix = task_name.split(".")[0] + ".*"
        route = routes.get(prefix)
    return (route or {}).get("queue", getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "default"))

"""Periodic housekeeping for the beat (compose's ``beat`` service): every worker also runs the same steps
in its own thread (``jobs.liveness.Housekeeper``), so neither depends on the other."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="jobs.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    from . import dispatch

    return dispatch.relay()


@shared_task(name="jobs.sweep", ignore_result=True)
def sweep() -> dict:
    from . import reaper

    return reaper.sweep()


@shared_task(name="jobs.probe", ignore_result=True)
def probe(lane: str, token: str = "") -> None:
    """A no-op round trip through a lane: its worker took it and finished it (``jobs.liveness``)."""
    from . import liveness

    liveness.probe_finished(lane, token)

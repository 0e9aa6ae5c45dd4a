"""Hand work to the workers by task name, after the transaction that needs it commits."""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue(task_name: str, *args: object) -> None:
    """Send ``task_name(*args)`` to its queue once the current transaction commits (at once outside one).

    Tasks are named (``"training.train_round"``), so the caller imports no ``tasks`` module; routing
    follows ``CELERY_TASK_ROUTES`` by that name.
    """
    transaction.on_commit(lambda: send(task_name, *args))


def send(task_name: str, *args: object) -> None:
    app = current_app
    if app.conf.task_always_eager:
        app.tasks[task_name].apply(args=list(args))
        return
    app.send_task(task_name, args=list(args))

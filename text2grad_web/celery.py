"""The Celery app. Workers import the Django project; tasks live in each app's ``tasks.py``."""

import importlib
import logging
import os
import sys
import threading

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")

app = Celery("text2grad_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)
_housekeeper = {}


@worker_init.connect
def _preload_model_code(**_) -> None:
    """Import torch, transformers and peft (about 3 s here) when a worker starts rather than inside its
    first task, so the first round or generation job starts at once. This runs in the worker's main
    process, before its pool forks; nothing is computed, so no thread pool exists yet to be forked.
    ``T2G_WORKER_PRELOAD=0`` turns it off (a web-only tool or a test that wants a lean worker)."""
    if os.environ.get("T2G_WORKER_PRELOAD", "1") == "0":
        return
    import django

    django.setup()  # idempotent; the model code imports the apps' models
    for module in ("training.worker.generation", "training.worker.rounds"):  # generation and the PPO engine
        importlib.import_module(module)
    cap_compute_threads()  # the solo pool computes in this process


@worker_process_init.connect
def cap_compute_threads(**_) -> None:
    """Cap torch's intra-op threads in this worker process to its lane's share of the cores
    (``T2G_TORCH_THREADS``, which scripts/run.sh sets per lane beside OMP_NUM_THREADS): two lanes at
    torch's default, one thread per core each, run each other several times slower on two cores. Runs in
    each pool child after the fork, and in the main process after the preload. Only where torch is
    loaded already: a lean worker sets it when it loads a model (``training.worker.runtime``)."""
    if "torch" in sys.modules:
        importlib.import_module("training.worker.runtime").configure_threads()


@worker_ready.connect
def _start_housekeeping(sender=None, **_) -> None:
    """Once the worker consumes: record it alive, publish what the outbox holds and reap, from a thread
    of the main process that needs no broker (``jobs.liveness.Housekeeper``)."""
    from jobs.liveness import Housekeeper, worker_name  # Django is set up by now (celery's Django fixup)

    lanes = ",".join(sorted(sender.app.amqp.queues.consume_from)) if sender is not None else ""
    children = max(1, int(getattr(getattr(sender, "controller", None), "concurrency", 1) or 1))
    name = worker_name(getattr(sender, "hostname", None))
    _housekeeper["current"] = Housekeeper(name, lanes, concurrency=children).start()
    logger.info("Housekeeping thread started for lanes %s", lanes)
    if os.environ.get("T2G_WORKER_PRELOAD", "1") == "0":
        return
    # Sent from a thread: a broker that is down at start must not hold the worker up (the first request
    # then pays the load). Interactive: a pool child loads MiniLM and the clause classifier before the
    # first Suggest spans. Generation: a pool child loads the active version before the first job.
    # Interactive: one warm-up per pool child (each child has its own MiniLM; an idle child takes the next
    # message, so N messages reach N children); the clause classifier trains once, under a file lock.
    for lane, task, count in (
        ("interactive", "training.warm_alignment", children),
        ("generation", "training.warm_generation", 1),
    ):
        if lane in lanes.split(","):
            args = (sender.app, task, lane, count)
            threading.Thread(target=_queue_warm_up, args=args, daemon=True).start()


def _queue_warm_up(celery_app, task: str, lane: str, count: int = 1) -> None:
    try:
        for _ in range(count):
            celery_app.send_task(task, queue=lane)
    except Exception:
        logger.warning("Could not queue the warm-up %s", task, exc_info=True)


@worker_shutdown.connect
def _stop_housekeeping(**_) -> None:
    keeper = _housekeeper.pop("current", None)
    if keeper is not None:
        keeper.stop.set()
        keeper.thread.join(timeout=5)

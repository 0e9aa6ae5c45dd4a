"""The Celery app. Workers import the Django project; tasks live in each app's ``tasks.py``."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")

app = Celery("text2grad_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _preload_model_code(**_) -> None:
    """Import torch, transformers and peft (about 3 s here) when a worker starts rather than inside its
    first task, so the first round or generation job starts at once. This runs in the worker's main
    process, before its pool forks; nothing is computed, so no thread pool exists yet to be forked.
    ``T2G_WORKER_PRELOAD=0`` turns it off (a web-only tool or a test that wants a lean worker)."""
    if os.environ.get("T2G_WORKER_PRELOAD", "1") == "0":
        return
    import importlib

    import django

    django.setup()  # idempotent; the model code imports the apps' models
    for module in ("training.worker.generation", "training.worker.rounds"):  # generation and the PPO engine
        importlib.import_module(module)

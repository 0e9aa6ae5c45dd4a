"""What every worker-side service needs: the base model's folder, a version's adapter, the model cache."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from django.conf import settings

from text2grad import model_store
from training.models import ModelVersion

from .versions import version_dir

logger = logging.getLogger(__name__)

LOAD_POLL_S = 1.0  # how often a caller waiting for a model load asks whether it should stop waiting


class LoadAbandoned(Exception):
    """The caller stopped waiting for a model load (its job was cancelled or lost). The load goes on in
    the background and the process's cache keeps its result for the next task."""


def configure_threads() -> None:
    if settings.T2G_TORCH_THREADS > 0:
        torch.set_num_threads(settings.T2G_TORCH_THREADS)


def base_dir() -> Path:
    return model_store.ensure_base(models_dir=settings.T2G_MODELS_DIR, base_ref=settings.T2G_BASE_MODEL)


def adapter_dir(version: ModelVersion | None) -> Path | None:
    """The version's adapter on this host's disk, fetched from the artifact store when needed."""
    return version_dir(version)


def load_version(version: ModelVersion | None):
    """(model, tokenizer) for a version, from this process's cache."""
    configure_threads()
    return model_store.model_cache.get(base_dir(), adapter_dir(version))


def load_version_unless(
    version: ModelVersion | None, *, should_stop: Callable[[], bool], poll_s: float = LOAD_POLL_S
):
    """``load_version``, but a wait the caller can walk away from: the load runs in a helper thread while
    this thread asks ``should_stop()`` every ``poll_s`` seconds, and raises LoadAbandoned once it says yes.

    A cold load takes ~40 s on a loaded machine and cannot be interrupted; a cancelled generation job must
    not wait for it. The abandoned load finishes in the background into ``model_cache``, whose lock makes
    the next task asking for the same model wait for that very load rather than start a second one.
    """
    configure_threads()  # process-wide; set here, before the helper thread runs torch code
    outcome: dict = {}
    done = threading.Event()
    abandoned = threading.Event()

    def load() -> None:
        try:
            # Fetching the adapter (from the artifact store) is part of the wait too; no database here.
            outcome["value"] = model_store.model_cache.get(base_dir(), adapter_dir(version))
        except BaseException as exc:  # handed to the waiting thread, or logged if nobody waits any more
            outcome["error"] = exc
            if abandoned.is_set():
                logger.warning("Loading the model of %s failed in the background", version, exc_info=True)
        finally:
            done.set()

    threading.Thread(target=load, name="model-load", daemon=True).start()
    while not done.wait(poll_s):
        if should_stop():
            abandoned.set()
            logger.info("Stopped waiting for the model of %s; its load finishes in the background", version)
            raise LoadAbandoned
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]

"""What every worker-side service needs: the base model's folder, a version's adapter, the model cache."""

from __future__ import annotations

from pathlib import Path

import torch
from django.conf import settings

from text2grad import model_store
from training.models import ModelVersion

from .versions import version_dir


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

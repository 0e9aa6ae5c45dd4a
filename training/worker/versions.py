"""Worker-side: model versions, critics and round checkpoints in the artifact store.

A version's adapter folder is published under ``models/versions/<name>`` (uploaded, read back and checked
against its sha256 manifest) before the ModelVersion row that points to it is created, so a worker killed
mid-upload leaves objects that no row names, never a half-published version. Any worker loads a version
by fetching it once into ``T2G_MODEL_CACHE_DIR/<content hash>``. Checkpoints follow the same pattern under
``checkpoints/round-<id>/step-<n>``: the round's ``checkpoint_path`` moves to a step only once it is whole.
Critics (adapter + token head) too, under ``models/critics/<name>``: published before their CriticVersion
row, fetched by content hash on whichever host predicts or scores with them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings

from artifacts import default_store
from artifacts.folders import MANIFEST, content_hash, folder_fetch, folder_publish, folder_read_manifest
from training.models import CriticVersion, ModelVersion

logger = logging.getLogger(__name__)

VERSIONS_PREFIX = "models/versions"
CRITICS_PREFIX = "models/critics"
CHECKPOINTS_PREFIX = "checkpoints"


def version_key(name: str) -> str:
    return f"{VERSIONS_PREFIX}/{name}"


def version_publish(*, source_dir: Path, name: str) -> tuple[str, str]:
    """Upload and verify a version's folder. Returns (storage key, content hash) for its row."""
    key = version_key(name)
    started = time.perf_counter()
    digest = folder_publish(default_store(), source_dir, key)
    logger.info("Published %s (%s…) in %.2f s", key, digest[:12], time.perf_counter() - started)
    return key, digest


def version_dir(version: ModelVersion | None) -> Path | None:
    """A local folder with the version's adapter: fetched from the store once per content hash."""
    if version is None:
        return None
    if version.storage_key:
        return folder_fetch(
            default_store(), version.storage_key, version.content_hash, settings.T2G_MODEL_CACHE_DIR
        )
    if not version.adapter_path:
        return None
    path = Path(version.adapter_path)  # a version written before the artifact store: a local folder
    return path if path.is_absolute() else settings.T2G_MODELS_DIR / path


def critic_publish(*, source_dir: Path, name: str) -> tuple[str, str]:
    """Upload and verify a critic's folder (adapter + token head), like a version's. Returns (storage
    key, content hash) for its CriticVersion row, which is written only after this returns."""
    key = f"{CRITICS_PREFIX}/{name}"
    started = time.perf_counter()
    digest = folder_publish(default_store(), source_dir, key)
    logger.info("Published %s (%s…) in %.2f s", key, digest[:12], time.perf_counter() - started)
    return key, digest


def critic_fetch(*, storage_key: str, content_hash: str, adapter_path: str = "") -> Path:
    """A local folder with a critic's adapter and head: fetched from the store once per content hash, so
    any host can predict with it (a critic written before the store: its folder under T2G_MODELS_DIR)."""
    if storage_key:
        return folder_fetch(default_store(), storage_key, content_hash, settings.T2G_MODEL_CACHE_DIR)
    path = Path(adapter_path)
    return path if path.is_absolute() else settings.T2G_MODELS_DIR / path


def versions_collect_orphans(*, min_age_s: int = 24 * 3600) -> list[str]:
    """Delete version and critic folders in the store that no row names and that nobody wrote to for
    ``min_age_s``: what a worker killed between upload and commit left behind. Returns the deleted keys."""
    store = default_store()
    cutoff = time.time() - min_age_s
    orphans = []
    for prefix, model in ((VERSIONS_PREFIX, ModelVersion), (CRITICS_PREFIX, CriticVersion)):
        newest: dict[str, float] = {}
        for key, stamp in store.list_modified(prefix).items():
            folder = "/".join(key.split("/")[:3])
            newest[folder] = max(newest.get(folder, 0.0), stamp)
        named = set(model.objects.exclude(storage_key="").values_list("storage_key", flat=True))
        orphans += sorted(
            folder for folder, stamp in newest.items() if folder not in named and stamp < cutoff
        )
    for folder in orphans:
        logger.warning("Deleting %s: no row names it (an upload that never committed)", folder)
        store.delete(folder)
    return orphans


def checkpoint_key(round_id: int, step: int) -> str:
    return f"{CHECKPOINTS_PREFIX}/round-{round_id}/step-{step}"


def checkpoint_publish(*, source_dir: Path, round_id: int, step: int) -> str:
    key = checkpoint_key(round_id, step)
    folder_publish(default_store(), source_dir, key)
    return key


def checkpoint_fetch(checkpoint_path: str) -> Path | None:
    """A local folder with the round's last whole checkpoint, or None if there is none to resume from."""
    if not checkpoint_path:
        return None
    if checkpoint_path.startswith("/"):  # a checkpoint written before the artifact store
        path = Path(checkpoint_path)
        return path if path.is_dir() else None
    store = default_store()
    if not store.exists(f"{checkpoint_path}/{MANIFEST}"):
        return None
    digest = content_hash(folder_read_manifest(store, checkpoint_path))
    return folder_fetch(store, checkpoint_path, digest, settings.T2G_MODEL_CACHE_DIR / "checkpoints")


def checkpoints_delete(*, round_id: int, keep: str = "") -> None:
    """Delete the round's checkpoints in the store, except ``keep`` (the one its row points to)."""
    store = default_store()
    prefix = f"{CHECKPOINTS_PREFIX}/round-{round_id}"
    steps = {"/".join(key.split("/")[:3]) for key in store.list(prefix)}
    for step_key in steps - {keep}:
        store.delete(step_key)


def log_publish(*, name: str, text: str) -> str:
    """Store a log where any host can read it; returns its key."""
    key = f"logs/{name}"
    default_store().put_bytes(key, text.encode("utf-8"))
    return key

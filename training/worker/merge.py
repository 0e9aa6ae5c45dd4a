"""Worker side of downloads: build a version's adapter or merged folder with its model card, publish it.

The adapter folder is the version's stored peft files with ``adapter_config.json`` pointing at the base
as people resolve it (a Hub id); the value head, ``round.json`` and peft's own template README stay out.
The merged folder is the base with the adapter merged in (``merge_and_unload``, fp32, as the studio
scores it), saved with its tokenizer and generation config. Both get ``README.md`` (the card) and, when
matplotlib is installed, ``training_curves.png``. The folder is published under ``downloads/`` like a
version (uploaded, read back, manifest last) before the row says it is ready.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from artifacts import default_store
from artifacts.folders import folder_fetch, folder_publish, folder_read_manifest
from jobs import lifecycle
from text2grad import model_card, model_store
from training.models import ModelDownload, ModelVersion
from training.services.downloads import (
    DOWNLOADS_PREFIX,
    KIND_LIBRARY,
    download_folder_name,
    download_is_whole,
)

from . import runtime

logger = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class DownloadLost(lifecycle.Lost):
    """The build was reaped or cancelled while it ran: nothing of it is recorded."""


def adapter_folder_write(*, version: ModelVersion, folder: Path, base_model: str) -> None:
    """The version's peft files, loadable on ``base_model`` with nothing of the studio installed."""
    source = runtime.adapter_dir(version)
    if source is None:
        raise ValueError(f"{version.name} has no adapter")
    config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    config["inference_mode"] = True
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(source / "adapter_model.safetensors", folder / "adapter_model.safetensors")


def merged_folder_write(*, version: ModelVersion, folder: Path) -> None:
    """Base + adapter merged into plain weights (a fresh copy: the process's model cache is untouched)."""
    runtime.configure_threads()
    model, tokenizer = model_store.load(runtime.base_dir(), runtime.adapter_dir(version))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)


def download_build_run(*, download_id: int) -> ModelDownload | None:
    """Claim a queued build, write its folder, publish it and record where. None if it was not queued."""
    download = lifecycle.claim(ModelDownload, download_id)
    if download is None:
        logger.info("Download %s is not queued any more; nothing to do", download_id)
        return None
    version = download.version
    started = time.perf_counter()
    with lifecycle.running(download, f"Download {download_id}") as run:
        lifecycle.progress(download, 0, 3)
        settings.T2G_MODELS_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=settings.T2G_MODELS_DIR) as scratch:
            folder = Path(scratch) / download_folder_name(download)
            folder.mkdir()
            if download.kind == ModelDownload.Kind.ADAPTER:
                adapter_folder_write(version=version, folder=folder, base_model=download.card["base_model"])
            else:
                merged_folder_write(version=version, folder=folder)
            lifecycle.progress(download, 1, 3)
            figures = model_card.draw_curves(download.card.get("curves") or {}, folder)
            text = model_card.render_model_card(
                download.card, library=KIND_LIBRARY[download.kind], figures=figures
            )
            (folder / "README.md").write_text(text, encoding="utf-8")
            if not lifecycle.progress(download, 2, 3):
                raise DownloadLost
            key = f"{DOWNLOADS_PREFIX}/{folder.name}/{download.card_hash[:16]}-{download.pk}"
            digest = folder_publish(default_store(), folder, key)
        size = sum(entry["size"] for entry in folder_read_manifest(default_store(), key)["files"].values())
    if run.lost:
        return None
    if not lifecycle.finish(
        download,
        ModelDownload.Status.SUCCEEDED,
        storage_key=key,
        content_hash=digest,
        size_bytes=size,
        progress_step=3,
        progress_total=3,
    ):
        logger.warning(
            "Download %s finished but was no longer this run's; its folder %s is unused", download_id, key
        )
        return None
    logger.info(
        "Built %s of %s (%.1f MB) in %.1f s",
        download.kind,
        version.name,
        size / 1e6,
        time.perf_counter() - started,
    )
    download.refresh_from_db()
    return download


HUB_OFF_MESSAGE = "Pushing to the Hub is off: set T2G_HUB_TOKEN (or T2G_HUB_TOKEN_FILE) to turn it on."


class HubPushDisabled(ImproperlyConfigured):
    """Pushing to the Hugging Face Hub is off: T2G_HUB_TOKEN is not set."""


def hub_push_enabled() -> bool:
    return bool(settings.T2G_HUB_TOKEN)


def download_push_to_hub(*, download: ModelDownload, repo_id: str, private: bool = True) -> str:
    """Upload a built download's folder to a Hub model repository (created if needed, private by
    default). Off unless ``T2G_HUB_TOKEN`` is set; needs ``huggingface_hub`` (transformers brings it).
    Returns the commit URL."""
    token = settings.T2G_HUB_TOKEN
    if not token:
        raise HubPushDisabled(HUB_OFF_MESSAGE)
    if not download_is_whole(download):
        raise ValueError(f"Download {download.pk} is not built (or its files were deleted); build it first.")
    from huggingface_hub import HfApi

    folder = folder_fetch(
        default_store(),
        download.storage_key,
        download.content_hash,
        settings.T2G_MODEL_CACHE_DIR / DOWNLOADS_PREFIX,
    )
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        ignore_patterns=["MANIFEST.json"],
        commit_message=f"{download.version.name} ({download.kind}) from Text2Grad Studio",
    )
    return str(getattr(commit, "commit_url", commit))

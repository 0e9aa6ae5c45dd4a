"""Downloads of any model version, and its model card (web-safe: no torch here).

A version leaves the studio in two shapes, each a folder with a ``README.md`` model card in the Hugging
Face format:

- ``adapter``: a standard peft folder (``adapter_config.json`` + ``adapter_model.safetensors``) whose
  ``base_model_name_or_path`` names the base as people outside the studio resolve it;
- ``merged``: the adapter merged into the base (safetensors, ``config.json``, tokenizer files,
  ``generation_config.json``): ``AutoModelForCausalLM.from_pretrained(folder)`` alone loads it.

The value head and the trainer's state are the studio's and stay out of both. A worker builds the folder
(``training/worker/merge.py``: merging needs torch) and publishes it to the artifact store; the row
(``ModelDownload``) is keyed by (version, kind, sha256 of the card), so downloading the same version again
streams the stored folder instead of building it again, and a card that changed (a new evaluation) gets a
new build. The web process streams the folder as one ``.tar`` read from the store block by block
(``artifacts.archive``), never the whole file in memory. Admins and researchers only; every build request
and every download is audited.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from annotations import roles
from artifacts import StorageError, default_store
from artifacts.archive import folder_tar_members, tar_length, tar_stream
from artifacts.folders import MANIFEST
from audit.services import audit_record
from evaluation import selectors as evaluation_selectors
from jobs import dispatch
from text2grad import model_card

from ..models import ModelDownload, ModelVersion, RoundMetric

DOWNLOADS_PREFIX = "downloads"  # store keys: downloads/<version name>/<kind>-<card hash>-<build id>
LINEAGE_LIMIT = 200  # parents followed back for the card (a longer chain is cut, and says so)
EMBEDDED_SUFFIX = "(embedded)"  # how training.services.base_model_reference names the embedded base

KIND_LIBRARY = {ModelDownload.Kind.ADAPTER: "peft", ModelDownload.Kind.MERGED: "transformers"}
ACTIVE = (ModelDownload.Status.QUEUED, ModelDownload.Status.RUNNING, ModelDownload.Status.SUCCEEDED)


class DownloadUnavailable(Exception):
    """This version has no download of that kind (the bare base model has no adapter)."""


def can_download(user) -> bool:
    """Admins and researchers: the same people who see the Training pages."""
    return roles.is_researcher(user)


def require_download_role(user) -> None:
    """PermissionDenied unless researcher or admin; ``None`` is the command line (whoever runs the install)."""
    if user is not None and not can_download(user):
        raise PermissionDenied("Only researchers and admins can download model versions.")


# --- the card ------------------------------------------------------------------------------------------
def base_model_hub_id(version: ModelVersion) -> tuple[str, str, bool]:
    """(the base as a Hub id or path a user can resolve, its license, whether it is the embedded model)."""
    embedded = version.base_model.endswith(EMBEDDED_SUFFIX)
    hub_id = settings.T2G_BASE_MODEL_HUB_ID or (
        model_card.EMBEDDED_HUB_ID if embedded else version.base_model
    )
    license_ = settings.T2G_BASE_MODEL_LICENSE or (model_card.EMBEDDED_LICENSE if embedded else "")
    return hub_id, license_, embedded


def _stamp(value) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def version_card(version: ModelVersion) -> dict:
    """Everything the version's model card says, as plain JSON values (``text2grad.model_card``)."""
    hub_id, license_, embedded = base_model_hub_id(version)
    lineage = []
    seen = set()
    node = version
    while node is not None and node.pk not in seen and len(lineage) < LINEAGE_LIMIT:
        seen.add(node.pk)
        made_by = node.created_by_round
        lineage.append(
            {
                "name": node.name,
                "round": made_by.pk if made_by else None,
                "mode": made_by.mode if made_by else None,
                "created_at": _stamp(node.created_at),
            }
        )
        node = (
            ModelVersion.objects.select_related("created_by_round").filter(pk=node.parent_id).first()
            if node.parent_id
            else None
        )
    card: dict = {
        "name": version.name,
        "base_model": hub_id,
        "base_model_reference": version.base_model,
        "license": license_,
        "embedded_base": embedded,
        "content_hash": version.content_hash,
        "created_at": _stamp(version.created_at),
        "notes": version.notes,
        "lineage": lineage,
        "round": None,
        "curves": {},
        "evaluations": [],
        "limits": ["The lineage is cut after 200 versions."] if node is not None else [],
    }
    training_round = version.created_by_round
    if training_round is not None:
        final = (training_round.summary or {}).get("final") or {}
        card["round"] = {
            "id": training_round.pk,
            "mode": training_round.mode,
            "project": training_round.project.name if training_round.project_id else None,
            "config": training_round.config,
            "selection": training_round.selection,
            "snapshot_hash": training_round.snapshot_hash,
            "snapshot_size": training_round.snapshot_size,
            "finished_at": _stamp(training_round.finished_at),
            "final": final,
        }
        metrics = list(
            RoundMetric.objects.filter(training_round=training_round)
            .order_by("step")
            .values_list("data", flat=True)
        )
        card["curves"] = {
            key: [row.get(key) for row in metrics]
            for key, _ in model_card.CURVES
            if any(key in row for row in metrics)
        }
    standing = evaluation_selectors.version_standings([version]).get(version.pk)
    if standing is not None:
        result = standing["standing"]
        card["evaluations"].append(
            {
                "campaign": standing["campaign"].name,
                "campaign_id": standing["campaign"].pk,
                "rank": result.rank,
                "of": standing["of"],
                "score": result.theta,
                "lower": result.lower,
                "upper": result.upper,
                "judgements": result.judgements,
            }
        )
    return card


def card_hash(card: dict) -> str:
    return hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def version_card_text(version: ModelVersion) -> str:
    """The card as the version's page shows it (figures are only in the downloads: the worker draws them)."""
    library = "peft" if version.has_adapter else "transformers"
    return model_card.render_model_card(version_card(version), library=library)


# --- builds --------------------------------------------------------------------------------------------
def download_kinds(version: ModelVersion) -> list[str]:
    """The kinds this version can be downloaded as (a bare base model has no adapter)."""
    if version.has_adapter:
        return [ModelDownload.Kind.ADAPTER, ModelDownload.Kind.MERGED]
    return [ModelDownload.Kind.MERGED]


def download_is_whole(download: ModelDownload) -> bool:
    """A succeeded build whose folder is still in the store."""
    if download.status != ModelDownload.Status.SUCCEEDED or not download.storage_key:
        return False
    try:
        return default_store().exists(f"{download.storage_key}/{MANIFEST}")
    except StorageError:
        return False


def download_request(*, version: ModelVersion, kind: str, user) -> ModelDownload:
    """The build of ``version`` as ``kind`` for its current card: the stored one, the one under way, or a
    new one queued for a worker. Raises PermissionDenied or DownloadUnavailable."""
    require_download_role(user)
    if kind not in ModelDownload.Kind.values:
        raise DownloadUnavailable(
            f"Unknown download {kind!r}: choose {' or '.join(ModelDownload.Kind.values)}."
        )
    if kind not in download_kinds(version):
        raise DownloadUnavailable(
            f"{version.name} is the bare base model: it has no adapter. Download the merged weights."
        )
    card = version_card(version)
    digest = card_hash(card)
    with transaction.atomic():
        # One build per (version, kind, card) even when two people ask at once: they queue on this lock.
        ModelVersion.objects.select_for_update().filter(pk=version.pk).first()
        existing = (
            ModelDownload.objects.filter(version=version, kind=kind, card_hash=digest, status__in=ACTIVE)
            .order_by("-created_at")
            .first()
        )
        if existing is not None and (
            existing.status != ModelDownload.Status.SUCCEEDED or download_is_whole(existing)
        ):
            return existing
        download = ModelDownload.objects.create(
            version=version, kind=kind, card=card, card_hash=digest, created_by=user
        )
        audit_record(
            action="version.download_build",
            actor=user,
            obj=version,
            details={"kind": kind, "download": download.pk, "card_hash": digest},
        )
        dispatch.enqueue("training.build_download", download.pk)
    return download


def downloads_visible_to(user):
    if not can_download(user):
        return ModelDownload.objects.none()
    return ModelDownload.objects.select_related("version")


def download_folder_name(download: ModelDownload) -> str:
    """``<version>-<kind>``, safe as a file name (version names are people's text in older rows)."""
    name = (
        re.sub(r"[^A-Za-z0-9._-]+", "-", download.version.name).strip(".-")
        or f"version-{download.version_id}"
    )
    return f"{name}-{download.kind}"


def download_stream(*, download: ModelDownload, user) -> tuple[Iterator[bytes], int, str]:
    """(the folder as a tar, block by block; its exact length; its file name), recorded in the audit log.

    Raises PermissionDenied, or DownloadUnavailable when the build is not finished or its folder is gone.
    """
    require_download_role(user)
    if not download_is_whole(download):
        raise DownloadUnavailable("This download is not ready (or its files were deleted); request it again.")
    prefix = download_folder_name(download)
    members = folder_tar_members(default_store(), download.storage_key, download.content_hash, prefix=prefix)
    mtime = int(download.finished_at.timestamp()) if download.finished_at else 0
    length = tar_length([(name, size) for name, size, _ in members], mtime)
    audit_record(
        action="version.download",
        actor=user,
        obj=download.version,
        details={
            "kind": download.kind,
            "download": download.pk,
            "content_hash": download.content_hash,
            "bytes": length,
        },
    )
    return tar_stream(members, mtime=mtime), length, f"{prefix}.tar"

"""Folders (a model version's adapter, a round's checkpoint) published to the store and fetched back.

A published folder is its files plus ``MANIFEST.json`` (each file's size and sha256), written last. Its
*content hash* is the sha256 of that manifest, so one hash names the exact bytes. Publishing uploads,
then reads every object back to check its size and sha256 before it returns; only then does the caller
flip a pointer in the database. A process killed mid-upload leaves objects that no row points to.

Fetching downloads into ``cache_root/<content hash>`` (a temporary folder renamed into place after every
file's hash checked), so a worker downloads a version once and shares it between its tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .store import BLOCK_SIZE, ArtifactStore, StorageError

MANIFEST = "MANIFEST.json"


def _sha256_stream(stream) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(BLOCK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()


def folder_manifest(directory: str | os.PathLike[str]) -> dict:
    """``{"files": {relative path: {"size", "sha256"}}}`` for every file under ``directory``."""
    root = Path(directory)
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative == MANIFEST:
            continue
        with open(path, "rb") as stream:
            files[relative] = {"size": path.stat().st_size, "sha256": _sha256_stream(stream)}
    return {"files": files}


def manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")


def content_hash(manifest: dict) -> str:
    return hashlib.sha256(manifest_bytes(manifest)).hexdigest()


def folder_publish(store: ArtifactStore, directory: str | os.PathLike[str], key: str) -> str:
    """Upload ``directory`` under ``key/``, verify every object, write the manifest. Returns the hash.

    Raises StorageError when an object read back differs from what was uploaded.
    """
    directory = Path(directory)
    manifest = folder_manifest(directory)
    for relative in manifest["files"]:
        store.put_file(f"{key}/{relative}", directory / relative)
    folder_verify(store, key, manifest)
    store.put_bytes(f"{key}/{MANIFEST}", manifest_bytes(manifest))
    return content_hash(manifest)


def folder_verify(store: ArtifactStore, key: str, manifest: dict) -> None:
    for relative, expected in manifest["files"].items():
        object_key = f"{key}/{relative}"
        size = store.size(object_key)
        if size != expected["size"]:
            raise StorageError(f"{object_key}: {size} bytes in the store, {expected['size']} uploaded")
        with store.open(object_key) as stream:
            digest = _sha256_stream(stream)
        if digest != expected["sha256"]:
            raise StorageError(
                f"{object_key}: sha256 {digest[:12]}… in the store, {expected['sha256'][:12]}…"
            )


def folder_read_manifest(store: ArtifactStore, key: str, expected_hash: str = "") -> dict:
    """The manifest published under ``key`` (StorageError if absent or not matching ``expected_hash``)."""
    raw = store.get_bytes(f"{key}/{MANIFEST}")
    manifest = json.loads(raw)
    if expected_hash and content_hash(manifest) != expected_hash:
        raise StorageError(f"{key}: its manifest does not match content hash {expected_hash[:12]}…")
    return manifest


def folder_fetch(
    store: ArtifactStore, key: str, expected_hash: str, cache_root: str | os.PathLike[str]
) -> Path:
    """A local folder holding the published folder ``key``, downloaded once per content hash.

    A local store needs no copy: its folder is returned once its manifest matches.
    """
    if store.is_local:
        folder_read_manifest(store, key, expected_hash)
        return store.local_path(key)
    cache_root = Path(cache_root)
    target = cache_root / expected_hash
    if (target / MANIFEST).is_file():
        return target
    manifest = folder_read_manifest(store, key, expected_hash)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{expected_hash[:12]}-", dir=cache_root))
    try:
        for relative, expected in manifest["files"].items():
            local = tmp / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            store.get_file(f"{key}/{relative}", local)
            with open(local, "rb") as stream:
                digest = _sha256_stream(stream)
            if local.stat().st_size != expected["size"] or digest != expected["sha256"]:
                raise StorageError(f"{key}/{relative}: the downloaded bytes do not match the manifest")
        (tmp / MANIFEST).write_bytes(manifest_bytes(manifest))
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / MANIFEST).is_file():  # another process of this host fetched it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target

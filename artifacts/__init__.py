"""Where artifacts live: model versions, round checkpoints, exports and logs, by *key*.

A bottom-floor sibling of ``jobs``: it imports neither ``annotations`` nor ``training``. Every writer and
reader of a file that another process may need goes through :func:`default_store`; what travels between
processes (in the database, in task arguments) is a key such as ``exports/export-7-spans.jsonl``, never a
local path. The embedded default is the local folder ``T2G_VAR_DIR``; ``T2G_STORAGE_URL=s3://bucket/prefix``
selects S3-compatible object storage (AWS S3, MinIO, Ceph RGW…) through fsspec/s3fs.
"""

from __future__ import annotations

import os
import threading

from .store import ArtifactStore, StorageError

__all__ = ["ArtifactStore", "StorageError", "default_store"]

_lock = threading.Lock()
_cached: tuple[tuple, ArtifactStore] | None = None


def _settings_key() -> tuple:
    from django.conf import settings

    return (
        os.getpid(),
        settings.T2G_STORAGE_URL or f"file://{settings.VAR_DIR}",
        tuple(sorted(settings.T2G_STORAGE_OPTIONS.items(), key=lambda item: item[0])),
    )


def default_store() -> ArtifactStore:
    """The store configured by the settings, one per process (rebuilt when the settings change)."""
    global _cached
    key = _settings_key()
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, ArtifactStore(key[1], options=dict(key[2])))
        return _cached[1]


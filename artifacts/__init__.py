"""Where artifacts live: model versions, round checkpoints, exports and logs, by *key*.

A bottom-floor sibling of ``jobs``: it imports neither ``annotations`` nor ``training``. Every writer and
reader of a file that another process may need goes through :func:`default_store`; what travels between
processes (in the database, in task arguments) is a key such as ``exports/export-7-spans.jsonl``, never a
local path. The embedded default is the local folder ``T2G_VAR_DIR``; ``T2G_STORAGE_URL=s3://bucket/prefix``
selects S3-compatible object storage (AWS S3, MinIO, Ceph RGW…) through fsspec/s3fs.

Artifacts and hosts (issue 19)
------------------------------
Every file another process may need lives in one **artifact store**, addressed by keys:
`artifacts/` (a bottom-floor sibling of `jobs`: `"jobs | artifacts"` in the import-linter layers).

| key | written by | read by |
|---|---|---|
| `models/versions/<name>/…` + `MANIFEST.json` | training worker (`training/worker/versions.py`) | every worker, via its cache |
| `models/critics/<name>/…` + `MANIFEST.json` | training worker (a critic job; `training/worker/versions.py::critic_publish`) | whichever worker predicts or scores with it (generation lane, on-policy rounds), via its cache |
| `checkpoints/round-<id>/step-<n>/…` | training worker after each update (offline and on-policy rounds alike) | the training worker that resumes the round (any host) |
| `exports/export-<id>-<kind>.<ext>` | the worker running the export (`annotations/exports/jobs.py`) | the web process (streamed or signed URL) |
| `logs/round-<id>-ddp.log` | a multi-process round that failed | operators |

- `artifacts.store.ArtifactStore` wraps an fsspec filesystem: `file://` (the default: `T2G_VAR_DIR`, so
  one host works as before) or `s3://bucket/prefix` through s3fs (`T2G_STORAGE_URL`,
  `T2G_STORAGE_ENDPOINT_URL`, `T2G_STORAGE_ACCESS_KEY_ID`, `T2G_STORAGE_SECRET_ACCESS_KEY` (or `_FILE`),
  `T2G_STORAGE_REGION`; empty credentials fall back to botocore's chain). Keys are relative and may not
  climb (`..`); a key read from the database can never name a file outside the store.
- `writer(key)` appears at the key only on success: locally a partial file renamed after fsync, on S3 a
  multipart upload completed on success and aborted on an exception (a killed process leaves an
  incomplete upload that S3 never lists; MinIO drops them after a day, on AWS add an
  `AbortIncompleteMultipartUpload` lifecycle rule).
- **Publishing a version** (`artifacts.folders.folder_publish`): upload every file, read each back and
  check size + sha256, write `MANIFEST.json` last; only then the `ModelVersion` row (with `storage_key`
  and `content_hash` = sha256 of the manifest) commits. A worker killed mid-upload leaves objects no row
  names; the beat's `training.collect_orphan_versions` deletes such folders after a day.
- **Loading a version** (`training.worker.runtime.adapter_dir`): `folder_fetch` downloads into
  `T2G_MODEL_CACHE_DIR/<content hash>` (default `T2G_MODELS_DIR/cache`) through a temporary folder renamed
  into place after every file's sha256 matched; later loads on that host reuse it. A local store needs no
  copy. Bytes changed in the bucket are refused, not loaded.
- **Checkpoints**: saved to the worker's scratch folder, published to the store, and only then does the
  round's `checkpoint_path` move to the new step key (older steps deleted). Resume fetches it, so a round
  killed on one host resumes on another.
- **Critics** (issue 29) go the same way as versions: saved to a scratch folder, published and verified
  under `models/critics/<name>`, and only then does the `CriticVersion` row (`storage_key`,
  `content_hash`) commit; `critic_dir` fetches by content hash into `T2G_MODEL_CACHE_DIR`. Critics from
  before keep their `adapter_path` under `T2G_MODELS_DIR`. The orphan collector covers both prefixes.
- The exports' free-space check (`export_space_check`) measures the disk of the store's own folder
  (which `T2G_STORAGE_URL=file://…` may put anywhere), not `var/exports`; an S3 store is not checked.
- What stays per host: the base model (`T2G_BASE_MODEL` or the embedded wheel, converted once into
  `T2G_MODELS_DIR/base`), the version cache, scratch folders. Imports are parsed from the upload in the
  web request and never touch a disk.
- Tested as deployed (`tests/storage/test_deployed.py`, `-m deployed`): moto_server, gunicorn and two
  Celery workers with their own `T2G_VAR_DIR`, sharing only PostgreSQL, Redis and the bucket; a critic
  trained on the training worker predicts on the generation worker, and an on-policy round whose training
  worker is killed resumes on a second training worker with a disk of its own.
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

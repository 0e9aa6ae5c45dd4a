"""One interface over a local folder or S3-compatible object storage, addressed by keys.

No Django here: :func:`artifacts.default_store` builds the store from settings. Keys are relative,
``/``-separated and may not climb (``..``) or start at a root, so a key read from the database can never
name a file outside the store.

>>> store = ArtifactStore("file:///tmp/t2g-doctest")  # doctest: +SKIP
>>> store.put_bytes("exports/a.txt", b"hi"); store.get_bytes("exports/a.txt")  # doctest: +SKIP
b'hi'
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

# Reads and multipart writes move this much at a time: a download or an export holds at most about one
# block in memory, whatever the file's size (s3fs's own default is 50 MiB).
BLOCK_SIZE = 8 * 2**20


class StorageError(RuntimeError):
    """A key is malformed, missing, or the store refused an operation; the message says which."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise StorageError."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"{key!r} is not a storage key (relative, '/'-separated, no '..')")
    return key


def _fs_options(url: str, options: dict) -> dict:
    """fsspec options from the flat settings (endpoint_url, key, secret, region); empty values dropped
    so botocore's own chain (AWS_* variables, instance roles) still applies."""
    if not url.startswith("s3://"):
        return {}
    fs_options: dict = {"use_listings_cache": False}  # other processes write: never trust a cached listing
    if options.get("key"):
        fs_options["key"] = options["key"]
    if options.get("secret"):
        fs_options["secret"] = options["secret"]
    client_kwargs = {}
    if options.get("endpoint_url"):
        fs_options["endpoint_url"] = options["endpoint_url"]
    if options.get("region"):
        client_kwargs["region_name"] = options["region"]
    if client_kwargs:
        fs_options["client_kwargs"] = client_kwargs
    return fs_options


class ArtifactStore:
    """Put, get, stream, list and delete artifacts by key, in a local folder or an S3 bucket."""

    def __init__(self, url: str, *, options: dict | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url, **_fs_options(self.url, options or {}))
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # --- addressing -------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def describe(self, key: str) -> str:
        """Where a key lives, for people and logs (``s3://bucket/prefix/key`` or a local path)."""
        return self._path(key) if self.is_local else f"{self.fs.protocol[0]}://{self._path(key)}"

    def local_path(self, key: str) -> Path | None:
        """The key's file on this machine's disk when the store is local, else None."""
        return Path(self._path(key)) if self.is_local else None

    # --- writes -----------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as out:
            out.write(data)

    def put_file(self, key: str, local: str | os.PathLike[str]) -> None:
        if self.is_local:
            with open(local, "rb") as src, self.writer(key) as out:
                while chunk := src.read(BLOCK_SIZE):
                    out.write(chunk)
            return
        self.fs.put_file(str(local), self._path(key))

    @contextlib.contextmanager
    def writer(self, key: str, *, partial_key: str | None = None) -> Iterator[IO[bytes]]:
        """A binary stream that appears at ``key`` only if the block exits without an exception.

        Local: written to ``partial_key`` (default: a hidden sibling) and renamed into place after an
        fsync. S3: a multipart upload that completes on success and is aborted on failure; a process killed
        mid-way leaves only an incomplete upload, which S3 never lists (a bucket lifecycle rule removes it).
        """
        if self.is_local:
            final = Path(self._path(key))
            partial = (
                Path(self._path(partial_key))
                if partial_key
                else final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")
            )
            partial.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(partial, "wb") as out:
                    yield out
                    out.flush()
                    os.fsync(out.fileno())
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(partial, final)
            finally:
                partial.unlink(missing_ok=True)
            return
        out = self.fs.open(self._path(key), "wb", block_size=BLOCK_SIZE)
        try:
            yield out
        except BaseException:
            out.discard()  # aborts the multipart upload; nothing appears at the key
            out.closed = True
            raise
        out.close()

    def delete(self, key: str) -> None:
        """Delete one object, or every object under ``key/``; a missing key is not an error."""
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isdir(path):
                self.fs.rm(path, recursive=True)
            else:
                self.fs.rm_file(path)

    # --- reads ------------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def is_file(self, key: str) -> bool:
        return self.fs.isfile(self._path(key))

    def size(self, key: str) -> int:
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError as exc:
            raise StorageError(f"{key!r} is not in the store") from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError as exc:
            raise StorageError(f"{key!r} is not in the store") from exc

    def get_file(self, key: str, local: str | os.PathLike[str]) -> None:
        try:
            self.fs.get_file(self._path(key), str(local))
        except FileNotFoundError as exc:
            raise StorageError(f"{key!r} is not in the store") from exc

    def open(self, key: str) -> IO[bytes]:
        """A binary stream reading the object in blocks of BLOCK_SIZE (never the whole object at once)."""
        try:
            if self.is_local:
                return open(self._path(key), "rb")
            return self.fs.open(self._path(key), "rb", block_size=BLOCK_SIZE)
        except FileNotFoundError as exc:
            raise StorageError(f"{key!r} is not in the store") from exc

    def list(self, prefix: str) -> list[str]:
        """Keys of every object under ``prefix/``, sorted; empty if there are none."""
        base = self._path(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        return sorted(path[start:] for path in found if path.startswith(base + "/"))

    def list_modified(self, prefix: str) -> dict[str, float]:
        """``{key: last modified (epoch seconds)}`` for every object under ``prefix/``."""
        base = self._path(prefix)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        start = len(self.root) + 1
        modified = {}
        for path, info in found.items():
            if not path.startswith(base + "/"):
                continue
            stamp = info.get("LastModified", info.get("mtime", 0))
            modified[path[start:]] = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
        return modified

    def signed_url(
        self, key: str, *, expires_s: int = 300, filename: str = "", content_type: str = ""
    ) -> str:
        """A time-limited URL a browser can download from directly; StorageError for a local store."""
        if self.is_local:
            raise StorageError("a local store has no signed URLs; stream the file instead")
        params = {}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        if content_type:
            params["ResponseContentType"] = content_type
        return self.fs.url(self._path(key), expires=expires_s, **params)

"""A published folder streamed as one ``.tar``, straight from the store, block by block.

Nothing is assembled in memory or on disk: each member is a 512-byte header, then the object's bytes read
from the store in blocks of ``BLOCK_SIZE``, padded to 512; two zero blocks and the record padding end the
archive. The sizes come from the folder's manifest, so the total length is known before the first byte
(a ``Content-Length`` a client can show progress with).

>>> import io, tarfile
>>> members = [("m/a.txt", 2, lambda: io.BytesIO(b"hi"))]
>>> data = b"".join(tar_stream(members, mtime=0))
>>> len(data) == tar_length([("m/a.txt", 2)])
True
>>> tarfile.open(fileobj=io.BytesIO(data)).extractfile("m/a.txt").read()
b'hi'
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from .folders import MANIFEST, folder_read_manifest
from .store import BLOCK_SIZE, ArtifactStore, StorageError

_BLOCK = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 20 blocks: what tar pads an archive to


def _header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> int:
    return -size % _BLOCK


def tar_length(members: Iterable[tuple[str, int]], mtime: int = 0) -> int:
    """Bytes :func:`tar_stream` yields for members of these (name, size)."""
    total = sum(len(_header(name, size, mtime)) + size + _padding(size) for name, size in members)
    total += 2 * _BLOCK
    return total + (-total % _RECORD)


def tar_stream(
    members: Iterable[tuple[str, int, Callable[[], IO[bytes]]]], *, mtime: int = 0
) -> Iterator[bytes]:
    """Yield a tar archive of ``(name, size, opener)`` members; each opener returns a binary stream that
    is read in blocks and closed. A stream shorter or longer than its size raises StorageError (the
    archive would be corrupt; the client sees a truncated download rather than wrong bytes)."""
    written = 0
    for name, size, opener in members:
        header = _header(name, size, mtime)
        written += len(header)
        yield header
        sent = 0
        with opener() as stream:
            while chunk := stream.read(BLOCK_SIZE):
                sent += len(chunk)
                if sent > size:
                    raise StorageError(f"{name}: more bytes in the store than its manifest says ({size})")
                yield chunk
        if sent != size:
            raise StorageError(f"{name}: {sent} bytes in the store, the manifest says {size}")
        padding = _padding(size)
        written += size + padding
        if padding:
            yield b"\0" * padding
    end = 2 * _BLOCK
    end += -(written + end) % _RECORD
    yield b"\0" * end


def folder_tar_members(
    store: ArtifactStore, key: str, expected_hash: str, *, prefix: str
) -> list[tuple[str, int, Callable[[], IO[bytes]]]]:
    """The members of a published folder (its manifest checked against ``expected_hash``), named
    ``prefix/relative path``; the manifest itself stays out."""
    manifest = folder_read_manifest(store, key, expected_hash)
    members = []
    for relative, entry in sorted(manifest["files"].items()):
        if relative == MANIFEST:
            continue
        object_key = f"{key}/{relative}"
        members.append((f"{prefix}/{relative}", int(entry["size"]), lambda k=object_key: store.open(k)))
    return members

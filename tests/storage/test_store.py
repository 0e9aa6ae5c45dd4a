"""The artifact store on both backends: a local folder and a real S3-compatible server (moto_server)."""

from __future__ import annotations

import hashlib
import json

import pytest

from artifacts import ArtifactStore, StorageError
from artifacts.folders import MANIFEST, content_hash, folder_fetch, folder_publish, folder_read_manifest


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.heavy)])  # s3: a moto_server
def store(request, tmp_path):
    if request.param == "local":
        return ArtifactStore(f"file://{tmp_path / 'store'}")
    endpoint = request.getfixturevalue("s3_endpoint")
    from tests.storage.conftest import CREDENTIALS, make_bucket

    return ArtifactStore(
        f"s3://{make_bucket(endpoint)}/prefix", options={"endpoint_url": endpoint, **CREDENTIALS}
    )


def test_put_get_list_delete(store):
    store.put_bytes("exports/a.jsonl", b'{"a": 1}\n')
    store.put_bytes("exports/sub/b.csv", b"x,y\n")
    assert store.get_bytes("exports/a.jsonl") == b'{"a": 1}\n'
    assert store.size("exports/sub/b.csv") == 4
    assert store.exists("exports/a.jsonl") and not store.exists("exports/zzz")
    assert store.list("exports") == ["exports/a.jsonl", "exports/sub/b.csv"]
    assert store.list("nothing-here") == []
    store.delete("exports/sub")
    assert store.list("exports") == ["exports/a.jsonl"]
    store.delete("exports/missing")  # not an error
    with pytest.raises(StorageError):
        store.get_bytes("exports/sub/b.csv")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\b"])
def test_malformed_keys_are_refused(store, key):
    with pytest.raises(StorageError):
        store.put_bytes(key, b"x")


def test_writer_appears_only_on_success(store):
    with pytest.raises(RuntimeError), store.writer("exports/big.bin") as out:
        out.write(b"x" * (9 * 2**20))  # more than one block: S3 has started a multipart upload
        raise RuntimeError("the export failed half-way")
    assert not store.exists("exports/big.bin")
    assert store.list("exports") == []
    payload = bytes(range(256)) * (40 * 2**10)  # 10 MiB: two parts on S3
    with store.writer("exports/big.bin") as out:
        out.write(payload)
    with store.open("exports/big.bin") as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_folder_publish_and_fetch(store, tmp_path):
    source = tmp_path / "adapter"
    (source / "nested").mkdir(parents=True)
    (source / "adapter_model.safetensors").write_bytes(b"\x00" * 1000)
    (source / "nested" / "config.json").write_text('{"r": 8}')
    digest = folder_publish(store, source, "models/versions/v1")
    manifest = folder_read_manifest(store, "models/versions/v1", digest)
    assert manifest["files"]["adapter_model.safetensors"]["size"] == 1000
    assert content_hash(manifest) == digest
    fetched = folder_fetch(store, "models/versions/v1", digest, tmp_path / "cache")
    assert (fetched / "nested" / "config.json").read_text() == '{"r": 8}'
    assert json.loads((fetched / MANIFEST).read_text()) == manifest
    if not store.is_local:
        assert fetched == tmp_path / "cache" / digest
        assert folder_fetch(store, "models/versions/v1", digest, tmp_path / "cache") == fetched
    with pytest.raises(StorageError):
        folder_fetch(store, "models/versions/v1", "0" * 64, tmp_path / "cache2")


def test_fetch_refuses_bytes_that_changed(store, tmp_path):
    source = tmp_path / "adapter"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"good" * 100)
    digest = folder_publish(store, source, "models/versions/v2")
    store.put_bytes("models/versions/v2/weights.bin", b"evil" * 100)  # same size, other bytes
    if store.is_local:
        return  # a local store serves its own folder; the manifest still matches
    with pytest.raises(StorageError, match="do not match"):
        folder_fetch(store, "models/versions/v2", digest, tmp_path / "cache")
    assert not (tmp_path / "cache" / digest).exists()


def test_signed_url_downloads_without_credentials(store):
    store.put_bytes("exports/s.txt", b"signed")
    if store.is_local:
        with pytest.raises(StorageError):
            store.signed_url("exports/s.txt")
        return
    import urllib.request

    url = store.signed_url("exports/s.txt", filename="s.txt")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"signed"
        assert "s.txt" in response.headers["Content-Disposition"]


@pytest.mark.heavy
def test_a_storage_url_of_another_scheme_stops_the_start(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "T2G_STORAGE_URL": "ftp://files.example.org/studio", "T2G_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='text2grad_web.settings';"
         " django.setup()"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "T2G_STORAGE_URL='ftp://files.example.org/studio'" in result.stderr

"""A real S3-compatible server (moto's standalone ``moto_server``) started as a separate process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.process import stop_process
from tests.training.conftest import critiqued, labelled, tiny_settings  # noqa: F401 (shared fixtures)

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
CREDENTIALS = {"key": "testing", "secret": "testing", "region": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """The endpoint URL of a moto_server process, stopped (by its pid) at the end of the session."""
    if not MOTO_SERVER.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start:\n{log_path.read_text()[-2000:]}") from None
            time.sleep(0.2)
    yield endpoint
    stop_process(proc, grace_s=10)
    log.close()


def make_bucket(endpoint: str) -> str:
    import s3fs

    name = f"t2g-{uuid.uuid4().hex[:10]}"
    fs = s3fs.S3FileSystem(
        key=CREDENTIALS["key"], secret=CREDENTIALS["secret"], endpoint_url=endpoint, skip_instance_cache=True
    )
    fs.mkdir(name)
    return name


@pytest.fixture
def s3_options(s3_endpoint) -> dict:
    return {"endpoint_url": s3_endpoint, **CREDENTIALS}


@pytest.fixture
def s3_url(s3_endpoint) -> str:
    return f"s3://{make_bucket(s3_endpoint)}/studio"


@pytest.fixture
def s3_settings(settings, s3_url, s3_options):
    """Point this process's settings (and so ``artifacts.default_store()``) at a fresh bucket."""
    settings.T2G_STORAGE_URL = s3_url
    settings.T2G_STORAGE_OPTIONS = s3_options
    return settings

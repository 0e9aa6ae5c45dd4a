"""The per-worker isolation of parallel runs (`make test` runs pytest-xdist workers: tests/conftest.py)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.conftest import SESSION, xdist_broker_url


def test_each_xdist_worker_takes_its_own_redis_database():
    assert xdist_broker_url("redis://127.0.0.1:6379/15", "gw0") == "redis://127.0.0.1:6379/15"
    assert xdist_broker_url("redis://127.0.0.1:6379/15", "gw1") == "redis://127.0.0.1:6379/14"
    assert xdist_broker_url("redis://:pw@redis:6379/1", "gw3") == "redis://:pw@redis:6379/14"  # wraps in 16
    assert xdist_broker_url("redis://127.0.0.1:6379", "gw1") == "redis://127.0.0.1:6379/15"
    assert xdist_broker_url("memory://", "gw1") == "memory://"


@pytest.mark.django_db
def test_this_worker_uses_its_own_database_broker_and_folder():
    from django.conf import settings
    from django.db import connection

    from text2grad_web.celery import app

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        pytest.skip("not a pytest-xdist run")
    assert connection.settings_dict["NAME"].endswith(f"_{worker}")
    given = SESSION["broker_url"]
    assert xdist_broker_url(given, worker) == settings.CELERY_BROKER_URL
    assert (given == settings.CELERY_BROKER_URL) == (worker == "gw0")
    assert os.environ["CELERY_BROKER_URL"] == settings.CELERY_BROKER_URL
    with app.connection_for_write() as conn:  # what a published task really uses
        # The transport may be named by a class path (text2grad_web.broker:RedisTransport://...): compare the
        # database number, the part that tells one xdist worker's broker from another's.
        assert conn.as_uri().rsplit("/", 1)[-1] == urlsplit(settings.CELERY_BROKER_URL).path.lstrip("/")
    shared = SESSION["var_dir"]
    assert (shared if worker == "gw0" else shared / f"xdist-{worker}") == settings.VAR_DIR
    assert (settings.VAR_DIR / "cache").resolve() == (shared / "cache").resolve()  # caches are shared

"""The per-worker isolation of parallel runs (`make test` runs pytest-xdist workers: tests/conftest.py)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from django.core.management.color import no_style

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


@pytest.mark.django_db(transaction=True)
def test_the_flush_after_a_transactional_test_empties_every_table(annotator, project):
    """tests/postgresql/ deletes instead of truncating: rows that refer to each other go in one transaction,
    and the append-only audit log (its trigger refuses DELETE) is still truncated."""
    from django.core.management import call_command
    from django.db import connection

    from audit.models import AuditEvent

    AuditEvent.objects.create(action="test.flush", actor_id=annotator.pk, actor_username=annotator.username)
    assert connection.vendor != "postgresql" or "DELETE FROM" in " ".join(
        connection.ops.sql_flush(no_style(), ["annotations_project"])
    )
    call_command("flush", interactive=False, verbosity=0, reset_sequences=False)
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        filled = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            filled[table] = cursor.fetchone()[0]
    # post_migrate puts back the content types, permissions and role groups; nothing else is left.
    left = {t: n for t, n in filled.items() if n and not t.startswith(("django_content_type", "auth_"))}
    assert left == {}, left
    assert filled["auth_user"] == 0

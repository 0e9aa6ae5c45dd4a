"""The production profile: styled error pages with no debug output, and the container's health check
working under DEBUG=0 (Host from ALLOWED_HOSTS, /healthz exempt from the HTTPS redirect)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.security.test_login_protection import REPO, _free_port

pytestmark = pytest.mark.django_db


# Run with the settings module's own defaults: no DEBUG in the environment (pytest-django would force
# settings.DEBUG False whatever the default is). Only what production must set anyway is given.
DEFAULT_PROFILE_SCRIPT = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
page = Client().get("/no/such/page/", secure=True)
print(json.dumps({"debug": settings.DEBUG, "ssl_redirect": settings.SECURE_SSL_REDIRECT,
                  "secure_cookie": settings.SESSION_COOKIE_SECURE, "status": page.status_code,
                  "html": page.content.decode()}))
"""


def _default_profile_env(**extra) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if key not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS")
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, "DJANGO_SETTINGS_MODULE": "text2grad_web.settings", **extra}


@pytest.mark.heavy  # a Django subprocess
def test_the_settings_default_to_the_production_profile(tmp_path):
    env = _default_profile_env(
        SECRET_KEY="test-only-" + "x" * 50, ALLOWED_HOSTS="testserver", STATIC_MANIFEST="0",
        T2G_VAR_DIR=str(tmp_path / "var"),
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", DEFAULT_PROFILE_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["debug"] is False and report["ssl_redirect"] is True and report["secure_cookie"] is True
    html = report["html"]
    assert report["status"] == 404 and "Nothing here" in html and 'href="/static/css/app.css"' in html
    assert "URLconf" not in html and "projects/" not in html  # Django's debug 404 lists every pattern


@pytest.mark.heavy  # a Django subprocess
def test_the_default_profile_refuses_to_start_without_a_secret(tmp_path):
    env = _default_profile_env(ALLOWED_HOSTS="testserver", T2G_VAR_DIR=str(tmp_path / "var"))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set: DEBUG is off by default" in result.stderr
    assert not (tmp_path / "var" / "dev-secret-key").exists()  # no key invented for production


def test_error_pages_are_styled_and_say_nothing_internal(client, nobody, settings):
    missing = client.get("/no/such/page/")
    html = missing.content.decode()
    assert missing.status_code == 404 and "Nothing here" in html and 'href="/static/css/app.css"' in html
    assert "URLconf" not in html
    client.force_login(nobody)
    refused = client.get("/projects/")
    html = refused.content.decode()
    assert refused.status_code == 403 and "You can't open this page" in html
    assert "no role yet" in html and "Traceback" not in html


def test_a_refusal_is_logged_without_a_traceback(client, nobody, caplog):
    from text2grad_web.log_filters import QuietClientErrors

    client.force_login(nobody)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get("/projects/")
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records and all(QuietClientErrors().filter(r) for r in records)
    assert all(r.exc_info is None for r in records)
    server_error = logging.LogRecord(
        "django.request", logging.ERROR, "", 0, "boom", None, (ValueError, ValueError(), None)
    )
    server_error.status_code = 500
    QuietClientErrors().filter(server_error)
    assert server_error.exc_info is not None  # 5xx keep theirs


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)
def test_the_health_check_passes_under_debug_off(settings, tmp_path):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs the PostgreSQL test database (DATABASE_URL)")
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "test-only-" + "x" * 50,
        "ALLOWED_HOSTS": "studio.example.org",
        "STATIC_MANIFEST": "0",  # no collectstatic here
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "T2G_VAR_DIR": str(tmp_path / "var"),
        "PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "text2grad_web.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        check = [sys.executable, str(Path(REPO) / "scripts" / "healthcheck.py")]
        for _ in range(120):
            if subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0:
                break
            assert proc.poll() is None, "gunicorn exited"
        else:
            pytest.fail("the health check never passed")
        base = f"http://127.0.0.1:{port}"
        host = {"Host": "studio.example.org"}
        assert (
            requests.get(f"{base}/healthz", headers=host, timeout=10, allow_redirects=False).status_code
            == 200
        )
        page = requests.get(f"{base}/projects/", headers=host, timeout=10, allow_redirects=False)
        assert page.status_code == 301 and page.headers["Location"].startswith(
            "https://"
        )  # the rest redirects
        unknown_host = requests.get(f"{base}/healthz", headers={"Host": "evil.example"}, timeout=10)
        assert unknown_host.status_code == 400
        broken = subprocess.run(
            check, env={**env, "PORT": str(_free_port())}, capture_output=True, timeout=30
        )
        assert broken.returncode == 1  # nothing listening: unhealthy
    finally:
        proc.terminate()
        proc.wait(timeout=20)

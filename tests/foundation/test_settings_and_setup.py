"""Settings parsing, deploy checks, migrations, and the rule that the web process never imports torch."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.conftest import REPO
from text2grad_web import settings as settings_module


def _run(args, **env):
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("raw,expected", [("1", True), ("yes", True), ("off", False), ("0", False)])
def test_env_bool_accepts_clear_values(monkeypatch, raw, expected):
    monkeypatch.setenv("T2G_SOME_FLAG", raw)
    assert settings_module.env_bool("T2G_SOME_FLAG", not expected) is expected


def test_env_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("T2G_SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        settings_module.env_bool("T2G_SOME_FLAG", False)


def test_env_int_rejects_garbage(monkeypatch):
    monkeypatch.setenv("T2G_SOME_INT", "12abc")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        settings_module.env_int("T2G_SOME_INT", 3)


def test_secret_read_from_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cr3t-from-file\n")
    monkeypatch.setenv("T2G_X_FILE", str(secret))
    assert settings_module.env_str("T2G_X") == "s3cr3t-from-file"


@pytest.mark.heavy
def test_production_profile_refuses_missing_secret_key():
    result = _run(["manage.py", "check"], DEBUG="0", SECRET_KEY="", ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.heavy
def test_production_profile_passes_check_deploy():
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DEBUG="0",
        SECRET_KEY="x" * 20 + "a-long-random-production-secret-key-0123456789",
        ALLOWED_HOSTS="studio.example.org",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.heavy
def test_no_missing_migrations():
    result = _run(["manage.py", "makemigrations", "--check", "--dry-run"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.heavy
def test_unknown_base_model_fails_with_a_clear_message():
    result = _run(["manage.py", "check"], T2G_BASE_MODEL="/no/such/model")
    assert result.returncode != 0
    assert "T2G_BASE_MODEL='/no/such/model' is not a local model folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.heavy
def test_web_process_never_imports_torch():
    code = (
        "import django, importlib, sys; django.setup();"
        "from django.urls import get_resolver;"
        "resolver = get_resolver(); resolver.url_patterns;"
        "[importlib.import_module(m) for m in ('annotations.views', 'training.views', 'annotations.services',"
        " 'training.services', 'training.tasks', 'text2grad_web.wsgi')];"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = _run(["-c", code], DJANGO_SETTINGS_MODULE="text2grad_web.settings")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.heavy
@pytest.mark.parametrize(("preload", "expected"), [("1", "True"), ("0", "False")])
def test_a_starting_worker_imports_the_model_code_unless_told_not_to(preload, expected):
    # Fired by Celery in a worker's main process before its pool forks (the web process never fires it).
    code = (
        "import sys; from celery.signals import worker_init; import text2grad_web;"
        "worker_init.send(sender=None);"
        "print('torch' in sys.modules and 'peft' in sys.modules)"
    )
    result = _run(["-c", code], DJANGO_SETTINGS_MODULE="text2grad_web.settings", T2G_WORKER_PRELOAD=preload)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected

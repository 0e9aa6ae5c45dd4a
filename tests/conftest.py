"""Shared fixtures: named users per role, a tiny real transformers model, and a real Celery worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-9"


def base_model_dir() -> Path:
    return Path(os.environ.get("T2G_BASE_MODEL_DIR", REPO / "var" / "models" / "base"))


# --- users ----------------------------------------------------------------------------------------
def _make_user(django_user_model, username: str, role: str):
    from annotations import roles

    user = django_user_model.objects.create_user(username=username, password=PASSWORD)
    roles.assign_role(user, role)
    return user


@pytest.fixture
def annotator(db, django_user_model):
    return _make_user(django_user_model, "ann1", "annotator")


@pytest.fixture
def annotator2(db, django_user_model):
    return _make_user(django_user_model, "ann2", "annotator")


@pytest.fixture
def researcher(db, django_user_model):
    return _make_user(django_user_model, "res1", "researcher")


@pytest.fixture
def admin_user(db, django_user_model):
    return _make_user(django_user_model, "boss", "admin")


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login


# --- data -----------------------------------------------------------------------------------------
@pytest.fixture
def project(db):
    from annotations.services import project_create

    return project_create(name="Demo project", kind="summarization", annotations_per_output=2)


@pytest.fixture
def code_project(db):
    from annotations.services import project_create

    return project_create(name="Code project", kind="code", annotations_per_output=1)


@pytest.fixture
def make_generation(db):
    """Create a prompt + generation with the given output text (no model involved)."""
    from annotations.models import Generation, Prompt

    counter = {"n": 0}

    def _make(project, text: str, prompt_text: str | None = None, **fields):
        counter["n"] += 1
        prompt = Prompt(project=project, text=prompt_text or f"Prompt number {counter['n']}")
        prompt.save()
        generation = Generation(prompt=prompt, text=text, source_model="test", **fields)
        generation.save()
        return generation

    return _make


# --- models ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def base_tokenizer_dir() -> Path:
    path = base_model_dir()
    if not (path / "tokenizer.json").exists():
        pytest.skip(f"the embedded model cache is missing at {path}: run `make model`")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, base_tokenizer_dir) -> Path:
    """A tiny randomly initialised llama with SmolLM2's real tokenizer, saved like any local model."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(base_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --- a real Celery worker -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tiny_model_dir, tmp_path_factory):
    """Start `celery worker` as a separate process against the test database and the real broker.

    Tests using it must be ``django_db(transaction=True)`` so their rows are committed and visible.
    """
    from django.conf import settings
    from django.db import connection

    broker = settings.CELERY_BROKER_URL
    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        pytest.skip("the worker integration tests need PostgreSQL (set DATABASE_URL)")
    models_dir = tmp_path_factory.mktemp("worker-models")
    env.update(
        {
            "CELERY_BROKER_URL": broker,
            "T2G_BASE_MODEL": str(tiny_model_dir),
            "T2G_MODELS_DIR": str(models_dir),
            "T2G_VAR_DIR": str(settings.VAR_DIR),
            "T2G_MAX_NEW_TOKENS": "12",
            "T2G_TORCH_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if broker.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker).flushdb()  # stale messages from an earlier run must not leak in
    log_path = tmp_path_factory.mktemp("worker-log") / "worker.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "text2grad_web", "worker", "-Q", "default,generation,training",
         "-c", "1", "--pool", "solo", "-l", "info", "-n", f"test-{os.getpid()}@%h", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
        if "ready." in log_path.read_text():
            break
        time.sleep(0.3)
    else:
        proc.terminate()
        raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()[-3000:]}")
    proc.log_path = log_path
    proc.models_dir = models_dir
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(models_dir, ignore_errors=True)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, message: str = "condition"):
    """Poll until predicate() is truthy; fail with a message instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")

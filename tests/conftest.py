"""Shared fixtures: named users per role, a tiny real transformers model, and a real Celery worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.process import stop_process

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-9"


def base_model_dir() -> Path:
    return Path(os.environ.get("T2G_BASE_MODEL_DIR", REPO / "var" / "models" / "base"))


# --- parallel runs (pytest-xdist) ----------------------------------------------------------------
# pytest-django gives each xdist worker a database of its own (test_<name>_gw0, _gw1, ...). The broker and
# the local artifact folder are per worker too: the session worker fixture below flushes its broker
# database, and two workers writing exports or versions under the same ids to one folder would collide.
def xdist_broker_url(url: str, worker: str) -> str:
    """The broker for xdist worker ``gwN``: gw0 keeps the Redis database of ``url``, gwN takes the N-th one
    below it, wrapping within Redis' 16 (15 -> 15, 14, 13 ...). Other brokers are returned unchanged."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not worker.startswith("gw"):
        return url
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base - int(worker[2:])) % 16}"))


SESSION = {}  # what this run was given ("broker_url", "var_dir") before an xdist worker took its own


def torch_threads() -> int:
    """torch's intra-op threads for this test process: its share of the cores, as the studio's worker lanes
    get theirs (``text2grad_web.celery.cap_compute_threads``). At torch's default (one thread per core) two
    xdist workers on two cores each run two threads: every small op's threads wait for one another at a
    barrier while the other process holds the core, spinning meanwhile, so the CPU a run costs grows with
    the machine's load (a tiny model's generation test took 4 CPU s on a quiet machine, 30 under load).
    ``T2G_TEST_TORCH_THREADS`` overrides it."""
    if os.environ.get("T2G_TEST_TORCH_THREADS"):
        return int(os.environ["T2G_TEST_TORCH_THREADS"])
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers)


def pytest_configure(config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker or os.environ.get("T2G_TEST_TORCH_THREADS"):
        import torch

        torch.set_num_threads(torch_threads())
    if not worker:
        return
    from django.conf import settings

    from text2grad_web.celery import app

    SESSION.update(broker_url=settings.CELERY_BROKER_URL, var_dir=settings.VAR_DIR)
    broker = xdist_broker_url(settings.CELERY_BROKER_URL, worker)
    settings.CELERY_BROKER_URL = broker
    app.conf.broker_url = broker
    os.environ["CELERY_BROKER_URL"] = broker  # processes that tests start with this process's environment
    if worker != "gw0":
        shared = settings.VAR_DIR
        settings.VAR_DIR = shared / f"xdist-{worker}"  # kept between runs, like var/ itself
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        # Caches are shared (the aligner's clause classifier trains once, under a file lock).
        (shared / "cache").mkdir(exist_ok=True)
        cache = settings.VAR_DIR / "cache"
        if not (cache.is_symlink() or cache.exists()):
            cache.symlink_to(shared / "cache", target_is_directory=True)


@pytest.fixture(scope="session")
def django_db_setup(request, django_db_setup, django_db_blocker):
    """A database kept from an earlier run (``--reuse-db``) starts empty. A transactional test removes its
    rows when it ends; a run stopped in the middle of one (Ctrl-C) left them, and every later run would
    fail on them ("Project with this Name already exists"). Emptying the tables costs well under a second."""
    if request.config.getoption("reuse_db", False) and not request.config.getoption("create_db", False):
        from django.core.management import call_command

        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0, reset_sequences=False)


# A test that starts the session's Celery worker must say so: `make test-inner` deselects the marker.
WORKER_FIXTURES = frozenset({"celery_worker_process", "worker_env"})


def pytest_collection_modifyitems(config, items) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if WORKER_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("worker") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"mark these tests `worker` (they start a Celery worker): {unmarked}")


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
def reviewer(db, django_user_model):
    return _make_user(django_user_model, "rev1", "reviewer")


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
    return generation_maker()


def generation_maker():
    """``make_generation`` for fixtures of a wider scope than a test's."""
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
def _worker_env(tiny_model_dir: Path, models_dir: Path) -> dict:
    from django.conf import settings
    from django.db import connection

    from jobs.dburl import current_database_url

    db = connection.settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        pytest.skip("the worker integration tests need PostgreSQL (set DATABASE_URL)")
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": current_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "T2G_BASE_MODEL": str(tiny_model_dir),
            "T2G_MODELS_DIR": str(models_dir),
            "T2G_VAR_DIR": str(settings.VAR_DIR),
            # The session's own key: a process with another folder would generate another development
            # key there, and what this process signs (the playground's studio tokens) would not verify.
            "SECRET_KEY": settings.SECRET_KEY,
            "T2G_MAX_NEW_TOKENS": "12",
            "T2G_TORCH_THREADS": "1",
            # Generation jobs take turns after every chunk when work waits (seconds, not the default 20 s
            # turn), so tests/training/test_generation_turns_worker.py sees the order quickly.
            "T2G_GENERATION_TURN_S": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_worker(
    env: dict,
    log_path: Path,
    name: str,
    queues: str = "interactive,housekeeping,default,generation,training,critics",
) -> subprocess.Popen:
    """Start `celery worker` as a separate process and wait until it is ready to consume."""
    log = open(log_path, "w")  # noqa: SIM115 (the process owns it; closed by stop_worker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "text2grad_web", "worker", "-Q", queues,
         "-c", "1", "--pool", "solo", "-l", "info", "-n", f"{name}-{os.getpid()}@%h", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    proc.log_file = log
    proc.log_path = log_path
    deadline = time.monotonic() + 180  # importing torch and Django takes over a minute on 2 loaded cores
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
        if "ready." in log_path.read_text():
            return proc
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()[-3000:]}")


def stop_worker(proc: subprocess.Popen) -> None:
    stop_process(proc)
    proc.log_file.close()


@pytest.fixture(scope="session")
def worker_env(django_db_setup, tiny_model_dir, tmp_path_factory) -> dict:
    from django.conf import settings

    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker).flushdb()  # stale messages from an earlier run must not leak in
    return _worker_env(tiny_model_dir, tmp_path_factory.mktemp("worker-models"))


@pytest.fixture(scope="session")
def celery_worker_process(worker_env, tmp_path_factory):
    """A worker process against the test database and the real broker, shared by the session.

    Tests using it must be ``django_db(transaction=True)`` so their rows are committed and visible.
    """
    proc = start_worker(worker_env, tmp_path_factory.mktemp("worker-log") / "worker.log", "test")
    proc.models_dir = Path(worker_env["T2G_MODELS_DIR"])
    yield proc
    stop_worker(proc)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, message: str = "condition"):
    """Poll until predicate() is truthy; fail with a message instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")

"""Fault-injection fixtures: a redis-server of the test's own (stopped, frozen, restarted by pid, never the
shared one), a gunicorn web process and Celery workers on it, against the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, start_worker, stop_worker, wait_for
from tests.support.process import stop_process
from tests.training.conftest import critiqued  # noqa: F401  (a fixture: submitted annotations to train on)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server on a free port, in memory only. ``stop``/``start`` keep the port; ``freeze``
    SIGSTOPs it (connections are accepted by the kernel and then nothing answers)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(self.log_dir / f"redis-{self.port}.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, timeout=10, message="own redis-server to answer")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path):
    if not any((Path(p) / "redis-server").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("redis-server is not installed")
    redis = OwnRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def publish_to_own_redis(own_redis):
    """Services called by the test itself publish to the test's broker too (fresh connections per
    publish read ``broker_write_url``)."""
    from celery import current_app

    previous = current_app.conf.get("broker_write_url")
    current_app.conf.broker_write_url = own_redis.url
    reset_publisher(current_app)
    yield
    current_app.conf.broker_write_url = previous
    reset_publisher(current_app)


def reset_publisher(app) -> None:
    """Forget the app's pooled publishing connections, so the next publish connects to what
    ``broker_write_url`` says now (a pool made earlier keeps its broker)."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def fault_env(worker_env, own_redis, publish_to_own_redis, tmp_path) -> dict:
    """The session worker's environment on the test's own broker, with quicker job timings (the
    default 45 s staleness is checked on its own: tests/faults/test_worker_kills.py)."""
    var = tmp_path / "var"
    var.mkdir()
    return {
        **worker_env,
        "CELERY_BROKER_URL": own_redis.url,
        "T2G_VAR_DIR": str(var),
        "T2G_JOB_HEARTBEAT_S": "2",
        "T2G_JOB_STALE_AFTER_S": "12",
        "DEBUG": "1",
        "SECRET_KEY": "fault-injection-tests-only",
        "T2G_WORKER_PRELOAD": "0",
    }


class Web:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log


@pytest.fixture
def web_server(fault_env, tmp_path):
    """gunicorn (1 process, 8 threads) on the test's broker and database."""
    port = free_port()
    log = tmp_path / "web.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "text2grad_web.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
             "-k", "gthread", "--threads", "8", "--timeout", "120"],
            cwd=REPO, env=fault_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            return requests.get(f"{url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, timeout=60, message="the web server")
    yield Web(proc, url, log)
    stop_process(proc)


@pytest.fixture
def fault_worker(fault_env, tmp_path):
    """Workers started by the test (``start(name, queues)``), stopped at the end even when killed."""
    started = []

    def start(name: str, queues: str = "interactive,default,generation,training", **env) -> subprocess.Popen:
        proc = start_worker({**fault_env, **env}, tmp_path / f"{name}.log", name, queues=queues)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_worker(proc)


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


# As scripts/run.sh and docker-compose.yml start them: the prefork pool, without gossip, mingle and
# event heartbeats (the fault tests above run ``--pool solo``, which hides what the pool does).
DEPLOYED_WORKER_OPTIONS = ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"]


def start_deployed_worker(env: dict, log_path: Path, name: str, queues: str, concurrency: int = 2):
    """``celery worker`` with run.sh's pool and options, in a process group of its own (as run.sh's
    ``setsid``), ready to consume."""
    log = open(log_path, "w")  # noqa: SIM115 (the process owns it; closed by stop_deployed_worker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "text2grad_web", "worker", "-Q", queues, "-c", str(concurrency),
         "-n", f"{name}-{os.getpid()}@%h", *DEPLOYED_WORKER_OPTIONS],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    proc.log_file, proc.log_path = log, log_path
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
        if "ready." in log_path.read_text():
            return proc
        time.sleep(0.3)
    stop_deployed_worker(proc)
    raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()[-3000:]}")


def stop_deployed_worker(proc: subprocess.Popen) -> None:
    """TERM to the worker's process group, KILL what is left after 20 s (never beyond the group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    proc.log_file.close()


@pytest.fixture
def deployed_worker(fault_env, tmp_path):
    """Workers as deployed (``start(name, queues, concurrency=2, **env)``), stopped at the end."""
    started = []

    def start(name: str, queues: str, concurrency: int = 2, **env) -> subprocess.Popen:
        proc = start_deployed_worker(
            {**fault_env, **env}, tmp_path / f"{name}.log", name, queues, concurrency
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_deployed_worker(proc)

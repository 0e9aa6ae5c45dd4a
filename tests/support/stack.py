"""`make run`'s stack as a test starts it: ``scripts/run.sh`` on the settings' embedded defaults (SQLite, the
filesystem broker, local artifacts, every lane's worker with its thread cap, the endpoint) in a var folder
of the test's own, on free ports, in a process group the test stops by its id.

The steps are `make run`'s: migrate, collectstatic, ``seed_demo --credentials-to-file-only``, then
``scripts/run.sh`` with `make run`'s production profile over plain HTTP (``LOCAL_ENV`` in the Makefile).
Differences, each for a test's time: the base model is the given one (``T2G_BASE_MODEL``, a tiny random
model), outputs are short (``T2G_MAX_NEW_TOKENS``), the critique aligner's trained cache is shared with the
test session's (a link), and static files are collected into the var folder, not the checkout's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What the test session's environment may hold that `make run` from a plain shell does not: left out (with
# every T2G_ variable), so the stack takes the settings' embedded defaults and its own settings module.
NOT_MAKE_RUN = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "CACHE_URL", "STATIC_ROOT",
                "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST", "DJANGO_ALLOW_ASYNC_UNSAFE")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedStack:
    var: Path
    env: dict
    url: str
    process: subprocess.Popen | None = None
    log: object = field(default=None, repr=False)

    def manage(self, *args: str, timeout: float = 300) -> str:
        """``manage.py ARGS`` with the stack's environment (as `make run` runs its steps); its output."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        if done.returncode:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
        return done.stdout

    def start(self) -> None:
        self.log = open(self.var / "run.log", "a")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def health(self) -> dict:
        import requests

        try:
            return requests.get(f"{self.url}/healthz", timeout=5).json()
        except (requests.RequestException, ValueError):
            return {}

    def lanes_up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"scripts/run.sh exited ({self.process.returncode}):\n{self.logs()[-3000:]}")
        lanes = self.health().get("lanes") or {}
        return bool(lanes) and all(state == "up" for state in lanes.values())

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows from the stack's SQLite database, read-only (WAL: readers never block its writers)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.var / 'db.sqlite3'}?mode=ro", uri=True,
                                                timeout=30)) as db:  # fmt: skip
            return db.execute(sql, params).fetchall()

    def logs(self) -> str:
        """The supervisor's, the run's and every lane's log, each under its name."""
        paths = [self.var / "run.log", *sorted((self.var / "log").glob("*.log"))]
        return "\n".join(f"==> {p.name} <==\n{p.read_text(errors='replace')}" for p in paths if p.exists())

    def stop(self) -> None:
        """TERM to run.sh's process group (it stops its supervisors, which stop their workers' groups), KILL
        to whatever of it is left after a grace period."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def embedded_stack(
    var: Path, *, base_model: Path, aligner_cache: Path | None, extra_env: dict
) -> EmbeddedStack:
    """The stack's environment and folders, prepared as `make run` prepares them (nothing started yet)."""
    var.mkdir(parents=True, exist_ok=True)
    secret = var / "secret-key"
    secret.write_text(os.urandom(32).hex())
    secret.chmod(0o600)
    if aligner_cache is not None and aligner_cache.exists():
        (var / "cache").mkdir(exist_ok=True)
        (var / "cache" / "alignment").symlink_to(aligner_cache, target_is_directory=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in NOT_MAKE_RUN and not k.startswith("T2G_")}
    env.update(
        {
            # The Makefile's LOCAL_ENV: the production profile on localhost over plain HTTP.
            "DEBUG": "0", "SECRET_KEY_FILE": str(secret), "ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
            "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0", "HOST": "127.0.0.1", "PORT": str(port),
            "T2G_ENDPOINT_PORT": str(free_port()), "T2G_VAR_DIR": str(var), "STATIC_ROOT": str(var / "static"),
            "T2G_BASE_MODEL": str(base_model), "PYTHONUNBUFFERED": "1",
        }
    )  # fmt: skip
    env.update(extra_env)
    return EmbeddedStack(var=var, env=env, url=f"http://127.0.0.1:{port}")


def wait_until(
    predicate, timeout: float, what: str, interval: float = 0.5, stack: EmbeddedStack | None = None
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = f"\n{stack.logs()[-6000:]}" if stack is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")

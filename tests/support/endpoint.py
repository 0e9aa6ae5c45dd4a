"""The studio's own OpenAI-compatible endpoint as a test starts it: ``manage.py serve_openai --port 0`` in a
process of its own, on the test database, until the test is done with it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.process import stop_process

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def serve_openai(env: dict, log_path: Path, *, start_timeout_s: float = 120) -> Iterator[str]:
    """Start the endpoint with ``env``, its output in ``log_path``; yield its base URL (``.../v1``) once it
    says where it listens, and stop it afterwards. Raises with the log's tail if it exits or never starts."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve_openai", "--port", "0"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield _wait_for_url(process, log_path, start_timeout_s)
        finally:
            stop_process(process)


def _wait_for_url(process: subprocess.Popen, log_path: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve_openai exited:\n{log_path.read_text()[-3000:]}")
        for line in log_path.read_text().splitlines():
            if "listening on " in line:
                return line.split("listening on ", 1)[1].strip()
        time.sleep(0.2)
    raise RuntimeError(f"serve_openai did not start:\n{log_path.read_text()[-3000:]}")

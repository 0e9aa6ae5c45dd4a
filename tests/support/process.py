"""Stopping a process a test started: ask it to end, and kill it if it has not within the grace period."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL; always reaps the process. A no-op once it has exited."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""Run untrusted Python (a model's code and its unit tests) in a separate, limited process.

The child is a fresh interpreter (``python -I``) started by ``_sandbox_child.py``, which before running the
code:
- moves into a new network namespace (``unshare(CLONE_NEWNET)``: no interface but a downed loopback),
  when the kernel allows it; otherwise an audit hook refuses every socket (weaker, reported in
  ``SandboxResult.network_isolation``);
- when started as root, drops to a uid of its own for this run (no password entry, no groups), so the
  process-count limit counts only its processes, files outside its folder are not its own, and every
  process it left behind can be found and killed afterwards;
- sets rlimits: CPU seconds, address space, file size, process count, no core dumps;
- installs an audit hook that refuses writes, renames and deletions outside its throwaway folder
  (``/tmp`` and ``/dev/shm`` are world-writable, so permissions alone do not stop those) and ``ctypes``
  (the usual way around an audit hook).
Common standard-library modules are imported before the uid drop (``PRELOAD`` in the child): where the
interpreter lives in a folder other users cannot read (a Python under ``/root``), only those import.
The parent kills the child's process group at the wall-clock timeout, then every process of the run's
uid, and deletes the folder. Audit hooks are not a security boundary against a determined attacker; the
namespace, the uid and the rlimits are. Never call this from the web process: it forks.

>>> run_python("print(1 + 1)").stdout  # doctest: +SKIP
'2\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("_sandbox_child.py")
_UID_BASE = 1_500_000  # far above any real account's uid


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_bytes: int = 512 * 1024 * 1024
    file_bytes: int = 1024 * 1024
    processes: int = 16
    output_bytes: int = 64 * 1024


@dataclass(frozen=True)
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    network_isolation: str  # "namespace" or "audit-hook"

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def signal_name(self) -> str:
        return signal.Signals(-self.returncode).name if self.returncode < 0 else ""


def _uid_processes(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _kill_uid(uid: int) -> None:
    """Kill every process of this run's private uid, until none is left (a fork bomb keeps forking)."""
    for _ in range(50):
        pids = _uid_processes(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def run_python(code: str, *, limits: Limits | None = None) -> SandboxResult:
    """Run ``code`` as a script in a throwaway folder under ``limits``; returns its exit and output."""
    limits = limits or Limits()
    workdir = Path(tempfile.mkdtemp(prefix="t2g-sandbox-"))
    as_root = os.geteuid() == 0
    uid = _UID_BASE + secrets.randbelow(1_000_000) if as_root else None
    try:
        (workdir / "main.py").write_text(code, encoding="utf-8")
        config = {
            "workdir": str(workdir),
            "uid": uid,
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "processes": limits.processes,
        }
        (workdir / "sandbox.json").write_text(json.dumps(config), encoding="utf-8")
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(workdir / "main.py", uid, uid)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir), "PYTHONHASHSEED": "0"}
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", str(CHILD), str(workdir / "sandbox.json")],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = False
        try:
            stdout, stderr = process.communicate(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        finally:
            if uid is not None:
                _kill_uid(uid)
        seconds = time.monotonic() - started
        text_err = stderr[: limits.output_bytes].decode("utf-8", "replace")
        isolation = "audit-hook" if "T2G_SANDBOX_NET=audit-hook" in text_err else "namespace"
        text_err = text_err.replace("T2G_SANDBOX_NET=audit-hook\n", "")
        return SandboxResult(
            returncode=process.returncode,
            stdout=stdout[: limits.output_bytes].decode("utf-8", "replace"),
            stderr=text_err,
            timed_out=timed_out,
            seconds=round(seconds, 3),
            network_isolation=isolation,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The script that passes (exit 0) when ``completion`` passes a HumanEval-style ``check`` function.

    ``completion`` may repeat the prompt's signature (chat models usually answer with the whole
    function): then it follows the prompt, whose imports it may need, and replaces its stub.
    """
    body = prompt + "\n" + completion if f"def {entry_point}" in completion else prompt + completion
    return f"{body}\n\n{test}\n\ncheck({entry_point})\n"

"""Run untrusted Python (a model's code and its unit tests) in a separate, isolated, limited process.

Isolation (``isolation_mode()``), the same guarantees as root or as any other user:
- ``unshare`` (util-linux) starts the child in new mount, PID and network namespaces; as a user other
  than root also in a new user namespace (unprivileged user namespaces: the child is "root" only inside
  it, mapped to the worker's own uid outside);
- the child builds a new root file system and ``pivot_root``s into it: the interpreter's folders and the
  system's (``/usr``, ``/lib``...) read-only, a few devices, its own ``/proc``, and its throwaway folder,
  the only writable place. Nothing else of the host exists in there (no ``/tmp``, no ``/home``, no
  project folder, no database socket, no secret file, not even the worker's 0600 files);
- the network namespace has only a downed loopback: no TCP, not even to ``127.0.0.1``;
- the PID namespace shows only the run's processes (no ``/proc/<ppid>/environ`` of the worker, nothing
  of the worker's to kill), and when the run's first process ends the kernel kills every other one, so a
  detached (``setsid``) grandchild cannot outlive ``run_python``;
- the child then gives up every privilege: as root it drops to a uid of its own for this run; in a user
  namespace it drops every capability (bounding set, effective, permitted, ambient; ``no_new_privs``);
- rlimits: CPU seconds, address space, file size, process count, no core dumps; an audit hook still
  refuses writes outside the folder and ``ctypes`` (defence in depth, not the boundary).
Output goes to files, not pipes, so the wall-clock limit bounds ``run_python`` whatever the code leaves
running: at the limit the whole process group is killed, which ends the PID namespace and all in it.

**Fail closed.** Where neither root nor unprivileged user namespaces are available, ``run_python``
raises ``SandboxUnavailable`` instead of running the code. An admin who accepts the risk may set
``T2G_SANDBOX_ALLOW_UNISOLATED=1``: then the code runs with the rlimits and the audit hook only
(``SandboxResult.isolation == "none"``), which does not stop child processes from writing files,
connecting to local services, or reading what the worker's user can read. Never call this from the web
process: it forks.

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
OPT_OUT_ENV = "T2G_SANDBOX_ALLOW_UNISOLATED"
_NAMESPACES = ["--mount", "--net", "--pid", "--fork", "--kill-child"]


class SandboxUnavailable(RuntimeError):
    """No real isolation is available here, and the admin has not opted out: untrusted code is not run."""


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
    isolation: str = "namespaces"  # "namespaces" (root or a user namespace) or "none" (the admin opted out)

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


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _command(mode: str) -> list[str]:
    """How the child is started: the namespaces of ``mode`` around ``python -I -S -B _sandbox_child.py``."""
    python = [sys.executable, "-I", "-S", "-B", str(CHILD)]
    unshare = shutil.which("unshare") or "unshare"
    if mode == "root":
        return [unshare, *_NAMESPACES, *python]
    if mode == "userns":
        return [unshare, "--user", "--map-root-user", *_NAMESPACES, *python]
    return python


_MODES: dict[int, str] = {}


def isolation_mode() -> str:
    """``root`` (namespaces, then a private uid), ``userns`` (unprivileged user namespaces), or ``none``.

    Probed once per effective uid by building the whole sandbox for an empty program."""
    euid = os.geteuid()
    if euid not in _MODES:
        mode = "root" if euid == 0 else "userns"
        if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
            _MODES[euid] = "none"
        else:
            try:
                result = _run("", Limits(wall_seconds=30), mode)
                _MODES[euid] = mode if result.returncode == 0 and not result.timed_out else "none"
            except OSError:
                _MODES[euid] = "none"
    return _MODES[euid]


def run_python(code: str, *, limits: Limits | None = None) -> SandboxResult:
    """Run ``code`` as a script in a throwaway folder under ``limits``; returns its exit and output.

    Raises ``SandboxUnavailable`` where no isolation is available (unless ``T2G_SANDBOX_ALLOW_UNISOLATED``)."""
    mode = isolation_mode()
    if mode == "none" and not _opted_out():
        raise SandboxUnavailable(
            "The code sandbox needs Linux namespaces: run the worker as root, or allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; in a "
            "container, a seccomp profile that permits unshare), with util-linux's unshare installed. "
            f"An admin may accept running untrusted code without isolation by setting {OPT_OUT_ENV}=1."
        )
    return _run(code, limits or Limits(), mode)


def _run(code: str, limits: Limits, mode: str) -> SandboxResult:
    base = Path(tempfile.mkdtemp(prefix="t2g-sandbox-"))
    workdir = base / "work"
    uid = _UID_BASE + secrets.randbelow(1_000_000) if mode == "root" else None
    try:
        workdir.mkdir()
        (base / "root").mkdir()  # the mount point of the child's new root
        (workdir / "main.py").write_text(code, encoding="utf-8")
        config = {
            "mode": mode,
            "workdir": str(workdir),
            "newroot": str(base / "root"),
            "readonly": _readonly_paths(),
            "uid": uid,
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "processes": limits.processes,
        }
        status_read, status_write = os.pipe()  # how the program ended, from the namespace's PID 1
        config["status_fd"] = status_write
        (base / "sandbox.json").write_text(json.dumps(config), encoding="utf-8")
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(workdir / "main.py", uid, uid)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir),
            "TMPDIR": str(workdir), "PYTHONHASHSEED": "0",
        }  # fmt: skip
        started = time.monotonic()
        # Files, not pipes: a grandchild holding stdout open cannot make this wait past the limit.
        with open(base / "stdout", "w+b") as out, open(base / "stderr", "w+b") as err:
            process = subprocess.Popen(
                [*_command(mode), str(base / "sandbox.json")],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                pass_fds=(status_write,),
            )
            os.close(status_write)
            timed_out = False
            try:
                process.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # Whatever is left of the run's process group: in the namespaces, killing the first process
                # ends the PID namespace and everything in it, detached or not.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                if uid is not None:
                    _kill_uid(uid)
            seconds = time.monotonic() - started
            returncode = _ended_as(status_read, process.returncode)
            out.seek(0)
            stdout = out.read(limits.output_bytes)
            err.seek(0)
            stderr = err.read(limits.output_bytes)
        text_err = stderr.decode("utf-8", "replace")
        isolation = "audit-hook" if "T2G_SANDBOX_NET=audit-hook" in text_err else "namespace"
        text_err = text_err.replace("T2G_SANDBOX_NET=audit-hook\n", "")
        return SandboxResult(
            returncode=returncode,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=text_err,
            timed_out=timed_out,
            seconds=round(seconds, 3),
            network_isolation=isolation,
            isolation="none" if mode == "none" else "namespaces",
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _ended_as(status_read: int, returncode: int) -> int:
    """The program's own end as PID 1 reported it (a signal as ``-N``, like ``Popen.returncode``); what
    ``unshare`` returned where nothing was reported (killed at the wall clock, or no namespace)."""
    os.set_blocking(status_read, False)  # never wait on it: a report is written before PID 1 exits
    try:
        report = os.read(status_read, 64).decode("ascii", "replace").split()
    except BlockingIOError:
        report = []
    finally:
        os.close(status_read)
    if len(report) == 2 and report[1].lstrip("-").isdigit():
        if report[0] == "signal":
            return -int(report[1])
        if report[0] == "exit":
            return int(report[1])
    return returncode


def _readonly_paths() -> list[str]:
    """What the child's new root shows read-only: the system's programs and libraries, and the
    interpreter's own prefix wherever it lives (a Python under /root or /opt)."""
    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives",
             "/etc/ld.so.cache"]  # fmt: skip
    for extra in (sys.base_prefix, str(Path(sys.executable).resolve().parent.parent)):
        if not any(extra == p or extra.startswith(p + "/") for p in paths):
            paths.append(extra)
    return [p for p in paths if os.path.lexists(p)]


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The script that passes (exit 0) when ``completion`` passes a HumanEval-style ``check`` function.

    ``completion`` may repeat the prompt's signature (chat models usually answer with the whole
    function): then it follows the prompt, whose imports it may need, and replaces its stub.
    """
    body = prompt + "\n" + completion if f"def {entry_point}" in completion else prompt + completion
    return f"{body}\n\n{test}\n\ncheck({entry_point})\n"

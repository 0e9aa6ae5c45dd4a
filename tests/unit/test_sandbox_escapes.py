"""The code sandbox holds as root and as an unprivileged user: an attacker's code given to ``run_python``
writes no file outside its folder (not through ``open``, ``os.system`` or ``subprocess``), reaches no
local TCP listener, reads neither the caller's environment nor its 0600 files, kills none of its
processes, is stopped by the process, memory and wall-clock limits, and leaves no detached process
behind. Where no isolation is available it refuses to run the code unless an admin opted out.

Each attempt runs in tests/unit/sandbox_attempts.py, in a subprocess: as root with this interpreter,
and as ``nobody`` (``setpriv``) with the system's Python (this one may live where nobody can read)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.heavy,  # each attempt waits on the sandbox (and its wall clock)
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux"),
]
ATTEMPTS = Path(__file__).with_name("sandbox_attempts.py")
SYSTEM_PYTHON = "/usr/bin/python3"
LIMITS_WALL = 5


def _as_root() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root (the tests run as root on the build machine)")
    return [sys.executable, "-I"]


def _as_nobody() -> list[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs root, setpriv and a system Python to become nobody")
    return [
        shutil.which("setpriv"),
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        SYSTEM_PYTHON,
        "-I",
    ]


@pytest.fixture(scope="module", params=["root", "nobody"])
def report(request) -> dict:
    command = _as_root() if request.param == "root" else _as_nobody()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    result = subprocess.run(
        [*command, str(ATTEMPTS), str(REPO)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["euid"] == (0 if request.param == "root" else 65534)
    assert data["mode"] == ("root" if request.param == "root" else "userns")
    return data


def test_plain_code_runs_isolated(report):
    plain = report["plain"]
    assert plain["returncode"] == 0 and plain["stdout"] == "ok\n"
    assert plain["isolation"] == "namespaces" and plain["network_isolation"] == "namespace"


@pytest.mark.parametrize("how", ["open", "system", "subprocess", "tmp"])
def test_no_file_is_written_outside_the_folder(report, how):
    assert report["write_control"] is True  # the caller itself can write there
    assert report["writes"][how]["written"] is False, report["writes"][how]


def test_no_secret_of_the_caller_is_readable(report):
    attempt = report["read_secrets"]
    assert attempt["returncode"] == 0 and attempt["secret_seen"] is False, attempt["stdout"][-500:]


def test_no_process_of_the_caller_can_be_killed(report):
    assert report["kill"]["victim_alive"] is True
    assert report["kill"]["returncode"] != 0 and "killed" not in report["kill"]["stdout"]


def test_no_tcp_connection_to_a_local_listener(report):
    tcp = report["tcp"]
    assert tcp["returncode"] != 0 and "connected" not in tcp["stdout"]
    assert tcp["accepted_before_control"] == 0 and tcp["accepted_after_control"] == 1


def test_the_fork_bomb_is_capped(report):
    bomb = report["fork_bomb"]
    assert bomb["returncode"] == 3 and int(bomb["stdout"].strip()) < 8
    assert bomb["took"] < 10


def test_memory_is_capped(report):
    memory = report["memory"]
    assert memory["returncode"] != 0 and "MemoryError" in memory["stderr"]
    assert "allocated" not in memory["stdout"]


def test_the_wall_clock_bounds_the_run(report):
    sleep = report["sleep"]
    assert sleep["timed_out"] is True and sleep["took"] < LIMITS_WALL + 3


def test_a_detached_grandchild_neither_holds_the_run_nor_survives_it(report):
    held = report["held_stdout"]
    assert held["took"] < LIMITS_WALL + 3, held
    assert held["survivors"] == []
    left = report["left_behind"]
    assert left["returncode"] == 0 and left["stdout"] == "bye\n"
    assert left["survivors"] == []


FAIL_CLOSED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from text2grad import sandbox
try:
    result = sandbox.run_python("print('ran')")
    print(json.dumps({"ran": result.stdout, "isolation": result.isolation}))
except sandbox.SandboxUnavailable as exc:
    print(json.dumps({"refused": str(exc)}))
"""


@pytest.mark.parametrize("opt_out", [False, True])
def test_without_isolation_untrusted_code_is_refused_unless_an_admin_opts_out(tmp_path, opt_out):
    """No ``unshare`` on the PATH stands for a host without namespaces (as nobody, so root's fallback
    cannot apply either)."""
    command = _as_nobody()
    env = {"PATH": str(tmp_path), "LANG": "C.UTF-8"}  # an empty folder: no unshare
    if opt_out:
        env["T2G_SANDBOX_ALLOW_UNISOLATED"] = "1"
    result = subprocess.run(
        [*command, "-c", FAIL_CLOSED, str(REPO)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if opt_out:
        assert answer == {"ran": "ran\n", "isolation": "none"}
    else:
        assert "T2G_SANDBOX_ALLOW_UNISOLATED=1" in answer["refused"] and "namespaces" in answer["refused"]

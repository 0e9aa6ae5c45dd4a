"""`make run`'s launcher (scripts/run.sh) keeps the web server up when a worker dies and starts the worker
again, logging it; /healthz tells which lanes have a live worker meanwhile, and admins are told of the
restart. Each worker runs in a process group of its own, which is gone with it (nothing it started runs
on), and stopping the launcher stops every group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from jobs.models import WorkerBeat
from tests.conftest import REPO, wait_for

from .conftest import free_port

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _interactive_pid() -> int | None:
    beat = WorkerBeat.objects.filter(lanes__contains="interactive").order_by("-seen_at").first()  # not probes
    return beat.pid if beat else None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_is_restarted_and_the_web_server_stays_up(fault_env, tmp_path):
    port = free_port()
    env = {**fault_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": "1", "WEB_THREADS": "4",
           "T2G_INTERACTIVE_CONCURRENCY": "1"}  # fmt: skip
    supervisor_log = REPO / "var" / "log" / "supervisor.log"
    before = supervisor_log.read_text() if supervisor_log.exists() else ""
    out = open(tmp_path / "run.log", "w")  # noqa: SIM115 (closed below)
    launcher = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/healthz"
    try:

        def lanes_up():
            try:
                body = requests.get(url, timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            return body.get("lanes") and all(state == "up" for state in body["lanes"].values())

        wait_for(lanes_up, timeout=180, message="the web server and every lane's worker")
        first = _interactive_pid()
        worker_groups = {beat.pid for beat in WorkerBeat.objects.exclude(lanes="")}
        assert len(worker_groups) == 4  # interactive, generation, training, critics
        assert all(os.getpgid(pid) == pid for pid in worker_groups)  # each worker leads a group of its own
        # Each lane's compute threads are capped so the lanes do not oversubscribe the cores.
        cores = len(os.sched_getaffinity(0))  # what nproc counts
        generation = max(1, (cores - 1) // 3)
        expected = {
            "interactive": "1",
            "generation": str(generation),
            "training": str(max(1, cores - 1 - generation)),
            "critics": "1",  # the sandbox runs the code in processes of its own
        }
        for beat in WorkerBeat.objects.exclude(lanes=""):
            environ = dict(
                item.split("=", 1)
                for item in Path(f"/proc/{beat.pid}/environ").read_text().split("\0")
                if "=" in item
            )
            lane = next(lane for lane in expected if lane in beat.lanes.split(","))
            assert environ["OMP_NUM_THREADS"] == environ["T2G_TORCH_THREADS"] == expected[lane], (
                lane,
                environ,
            )
        os.kill(first, signal.SIGKILL)  # the interactive worker's main process, as the OOM killer would
        # The web server answers all along; /healthz goes degraded once the dead worker's beat is old.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert requests.get(url, timeout=5).status_code == 200
            time.sleep(1)
        wait_for(lambda: not _group_alive(first), timeout=15, message="the killed worker's whole group to go")
        wait_for(
            lambda: (_interactive_pid() or first) != first, timeout=120, message="a new interactive worker"
        )
        health = requests.get(url, timeout=5).json()
        assert [r["worker"] for r in health["restarts"]] == [
            WorkerBeat.objects.exclude(lanes="").get(pid=_interactive_pid()).name
        ]  # admins see it in the page header (tests/jobs/test_liveness_probe.py)
        assert launcher.poll() is None
        log = supervisor_log.read_text()[len(before) :]
        assert "interactive worker exited with status" in log and "restarting in 1s" in log
        assert requests.get(url, timeout=5).status_code == 200
    finally:
        groups = {beat.pid for beat in WorkerBeat.objects.exclude(lanes="")}
        os.killpg(launcher.pid, signal.SIGTERM)  # run.sh's cleanup stops what it started
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        out.close()
    # The workers' groups are not the launcher's: run.sh itself stopped each of them.
    wait_for(lambda: not any(_group_alive(pgid) for pgid in groups), timeout=20, message="every worker group")

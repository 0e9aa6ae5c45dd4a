"""CPU seconds per test and phase (setup, call, teardown), which depend much less on the machine's load than
wall time: a pytest plugin that writes one JSON line per phase to ``$PYTEST_CPU_DIR/cpu-<worker>.jsonl``
(one file per xdist worker), and a summary of one run or of two runs side by side, by module.

    PYTEST_CPU_DIR=/tmp/cpu-main PYTHONPATH=benchmarks .venv/bin/python -m pytest -p pytest_cpu ...
    .venv/bin/python benchmarks/pytest_cpu.py /tmp/cpu-main [/tmp/cpu-branch]

The CPU is this process's and the children it reaped (user + sys), so a test's subprocesses count too. Two
runs are compared on the tests both finished, so a run still going can be compared with a finished one.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import time
from pathlib import Path

import pytest


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_out = None


def _write(record: dict) -> None:
    global _out
    if _out is None:
        folder = Path(os.environ.get("PYTEST_CPU_DIR", "."))
        folder.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _out = open(folder / f"cpu-{worker}.jsonl", "w")  # noqa: SIM115 (open for the session)
    _out.write(json.dumps(record) + "\n")
    _out.flush()


def _timed(phase: str):
    @pytest.hookimpl(hookwrapper=True)
    def hook(item):
        cpu, wall = _cpu(), time.monotonic()
        yield
        _write({"id": item.nodeid, "phase": phase, "cpu": _cpu() - cpu, "wall": time.monotonic() - wall})

    return hook


pytest_runtest_setup = _timed("setup")
pytest_runtest_call = _timed("call")
pytest_runtest_teardown = _timed("teardown")


def pytest_sessionfinish(session) -> None:
    _write({"id": "<session>", "phase": "total", "cpu": _cpu(), "wall": 0.0})


def _load(folder: Path) -> tuple[dict, dict]:
    phases, totals = {}, {}
    for path in sorted(folder.glob("cpu-*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["phase"] == "total":
                totals[path.stem] = record["cpu"]
            else:
                phases[(record["id"], record["phase"])] = record["cpu"]
    return phases, totals


def main() -> None:
    runs = [_load(Path(arg)) for arg in sys.argv[1:3]]
    common = set.intersection(*({test for test, _ in phases} for phases, _ in runs))
    print(f"{len(common)} tests in every run")
    by_module = collections.defaultdict(lambda: [0.0] * len(runs))
    for n, (phases, totals) in enumerate(runs):
        split = collections.Counter()
        for (test, phase), cpu in phases.items():
            if test in common:
                split[phase] += cpu
                by_module[test.split("::")[0]][n] += cpu
        shown = ", ".join(f"{phase} {cpu:.1f}" for phase, cpu in sorted(split.items()))
        whole = ", ".join(f"{worker} {cpu:.1f}" for worker, cpu in totals.items())
        print(
            f"run {n + 1}: tests {sum(split.values()):.1f} CPU s ({shown}); processes: {whole or 'running'}"
        )
    for module, cpus in sorted(by_module.items(), key=lambda kv: -max(kv[1]))[:25]:
        print(" ".join(f"{cpu:7.1f}" for cpu in cpus), module)


if __name__ == "__main__":
    main()

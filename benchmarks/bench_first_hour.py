"""The first hour on a laptop (issue 24): first outputs of every seeded project, and a round's wall time
while generation runs.

Runs the stack with `scripts/run.sh` as `make run` does (web, the interactive, generation and training
workers with their thread caps; SQLite and the filesystem broker under a throwaway var/ folder; the
embedded SmolLM2), after `seed_demo` queued its generation jobs (the summaries, then the HumanEval
problems), and measures from the moment every lane is up:

1. ``first_output_s``: per seeded project, seconds until its first output is written;
2. ``round``: a 4-update round on 6 submitted annotations of a project of its own, launched once the
   first outputs came (or their wait ended) while a seeded generation job runs: its wall time (launch →
   succeeded), the CPU seconds each lane spent meanwhile and how many outputs generation wrote meanwhile.

``--before`` measures the behaviour this issue replaced: no turns on the generation lane (a job runs to its
end before the next starts) and every lane at torch's default thread count (one per core).

    .venv/bin/python benchmarks/bench_first_hour.py --json benchmarks/results/first_hour.json
    .venv/bin/python benchmarks/bench_first_hour.py --before --json benchmarks/results/first_hour_before.json

``--code-limit`` seeds fewer HumanEval problems (164 by default); ``--timeout`` bounds each wait.
``--goals-only`` bounds each wait by its goal instead (first outputs: 600 s from every lane up; the round:
300 s from its launch), so a run ends within about 17 minutes however slow the stack is, and a goal not met
reads "not within". The end prints the two goals (met or not) and, with ``--compare`` naming the other
mode's JSON, before and after side by side. CPU seconds (user + system) are read per lane from /proc for the
stack's whole process tree: they depend much less on other load than the wall times do.

    .venv/bin/python benchmarks/bench_first_hour.py --goals-only --json benchmarks/results/first_hour.json
    .venv/bin/python benchmarks/bench_first_hour.py --goals-only --before \\
        --json benchmarks/results/first_hour_before.json --compare benchmarks/results/first_hour.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench_jobs import REPO, Stack, free_port, loadavg, wait

SEEDED = ("News summaries", "HumanEval code")
GOAL_FIRST_OUTPUTS_S = 600  # every seeded project's first output, from every lane up
GOAL_ROUND_S = 300  # a 4-update round on 6 annotations, while generation runs


def _lane_of(cmdline: str) -> str:
    for lane in ("interactive", "default", "training", "critics"):
        if f"{lane}@" in cmdline:
            return "generation" if lane == "default" else lane
    if "serve_openai" in cmdline:
        return "endpoint"
    if "gunicorn" in cmdline:
        return "web"
    return "other"


def stack_cpu_s(root_pid: int) -> dict[str, float]:
    """CPU seconds (user + system, with reaped children's) of every process under ``root_pid``, per lane.
    The workers run in sessions of their own (setsid), so the tree is walked by parent id, not by group."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu, names = {}, {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        names[pid] = cmdline
    per_lane: dict[str, float] = {}
    for pid in cpu:
        node, lane = pid, "other"  # the lane: the nearest process, itself or above, that names one
        while node in parents and node != root_pid:
            if lane == "other":
                lane = _lane_of(names.get(node, ""))
            node = parents[node]
        if node == root_pid:
            per_lane[lane] = round(per_lane.get(lane, 0.0) + cpu[pid], 1)
    return per_lane


def cpu_delta(before: dict, after: dict) -> dict:
    lanes = set(before) | set(after)
    delta = {lane: round(after.get(lane, 0.0) - before.get(lane, 0.0), 1) for lane in sorted(lanes)}
    return {**delta, "total": round(sum(delta.values()), 1)}


def round_data(count: int = 6):
    """A project of its own with ``count`` outputs, each with a submitted annotation (a poor and a good
    span), so the round's snapshot does not depend on what the generation worker wrote."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotations import roles
    from annotations.models import Annotation, Generation, Prompt, Span
    from annotations.services import project_create

    annotator, _ = get_user_model().objects.get_or_create(username="bench-first-hour")
    roles.assign_role(annotator, roles.ANNOTATOR)
    project = project_create(name="Bench first-hour round", kind="summarization", annotations_per_output=1)
    for i in range(count):
        text = f"The ferry takes {i + 20} minutes. It was built by aliens in 1999."
        prompt = Prompt.objects.create(project=project, text=f"Summarize: the ferry takes {i + 20} minutes.")
        generation = Generation.objects.create(prompt=prompt, text=text, source_model="bench")
        annotation = Annotation.objects.create(generation=generation, annotator=annotator, status="submitted",
                                               submitted_at=timezone.now(), rating=2)  # fmt: skip
        poor = "built by aliens in 1999"
        start = text.index(poor)
        Span.objects.create(annotation=annotation, start=start, end=start + len(poor), text=poor, label="poor",
                            polarity=-1, critique="made up")  # fmt: skip
        Span.objects.create(annotation=annotation, start=0, end=text.index("."), text=text[: text.index(".")],
                            label="good", polarity=1, critique="right")  # fmt: skip
    return project


def first_outputs(projects: dict, started: float, timeout: float) -> dict:
    """Seconds from ``started`` until each project's first output (None: not within ``timeout``)."""
    from annotations.models import Generation

    first: dict[str, float | None] = {name: None for name in projects}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(v is None for v in first.values()):
        for name, project in projects.items():
            if first[name] is None and Generation.objects.filter(prompt__project=project).exists():
                first[name] = round(time.monotonic() - started, 1)
                print(f"first output of {name}: {first[name]} s (load {loadavg()})", flush=True)
        time.sleep(0.5)
    return first


def round_while_generating(seeded: list, train_project, timeout: float, stack=None) -> dict:
    """A 4-update round on ``train_project`` launched while a seeded generation job runs (after the first
    outputs: the HumanEval job with turns; before: whichever job has the lane, often still the summaries)."""
    from annotations.models import Generation
    from training import services
    from training.models import GenerationJob, TrainingRound

    jobs = GenerationJob.objects.filter(project__in=seeded)
    try:
        wait(lambda: jobs.filter(status="running").first(), timeout, "a seeded generation job to run")
    except TimeoutError:
        return {"status": "not launched: no seeded generation job ran", "wall_s": None, "load": loadavg()}
    running = jobs.filter(status="running").first()
    outputs = Generation.objects.filter(prompt__project__in=seeded)
    outputs_before = outputs.count()
    cpu_before = stack_cpu_s(stack.proc.pid) if stack is not None else {}
    started = time.monotonic()
    training_round = services.round_launch(selection={"project_id": train_project.pk}, config={"steps": 4})
    try:
        wait(lambda: TrainingRound.objects.get(pk=training_round.pk).is_finished, timeout, "the round")
    except TimeoutError:
        print(f"the round did not finish within {timeout:.0f} s", flush=True)
    wall = time.monotonic() - started
    cpu = cpu_delta(cpu_before, stack_cpu_s(stack.proc.pid)) if stack is not None else {}
    training_round.refresh_from_db()
    return {
        "status": training_round.status, "error": training_round.error[:300],
        "wall_s": round(wall, 1) if training_round.is_finished else None, "waited_s": round(wall, 1),
        "updates": training_round.progress_step, "annotations": training_round.snapshot_size,
        "timings": training_round.summary.get("timings", {}),
        "generating_when_launched": running.project.name,
        "generation_outputs_meanwhile": outputs.count() - outputs_before,
        "generation_after": dict(jobs.values_list("project__name", "status")), "load": loadavg(), "cpu_s": cpu,
    }  # fmt: skip


def goals(results: dict) -> dict:
    """The issue's two goals, met or not, from one run's results."""
    first = results.get("first_output_s", {})
    latest = None if any(v is None for v in first.values()) or not first else max(first.values())
    wall = results.get("round", {}).get("wall_s")
    succeeded = results.get("round", {}).get("status") == "succeeded"
    return {
        "first_outputs_of_every_project_s": latest,
        "first_outputs_within_10_min": latest is not None and latest <= GOAL_FIRST_OUTPUTS_S,
        "round_wall_s": wall,
        "round_within_5_min": succeeded and wall is not None and wall <= GOAL_ROUND_S,
    }


def _figure(value) -> str:
    return "not within the wait" if value is None else f"{value} s"


def report(results: dict, other: dict | None) -> None:
    """The goals, and before and after side by side when the other mode's results are given."""
    runs = [results] + ([other] if other else [])
    runs.sort(key=lambda r: r.get("mode") != "before")
    print("\n" + " | ".join(["measurement"] + [r.get("mode", "?") for r in runs]))
    rows = [(f"first output, {name}", lambda r, n=name: _figure(r.get("first_output_s", {}).get(n)))
            for name in SEEDED]  # fmt: skip
    rows += [
        ("every project's first output (goal <= 600 s)",
         lambda r: _figure(goals(r)["first_outputs_of_every_project_s"])),
        ("4-update round while generating (goal <= 300 s)", lambda r: _figure(goals(r)["round_wall_s"])),
        ("round: stack CPU s during it", lambda r: r.get("round", {}).get("cpu_s", {}).get("total", "-")),
        ("round: training lane CPU s", lambda r: r.get("round", {}).get("cpu_s", {}).get("training", "-")),
        ("generation outputs during the round", lambda r: r.get("round", {}).get("generation_outputs_meanwhile", "-")),
        ("load at start", lambda r: r.get("machine", {}).get("load_at_start", "-")),
    ]  # fmt: skip
    for label, value in rows:
        print(" | ".join([label] + [str(value(r)) for r in runs]))
    mine = goals(results)
    print(f"goals ({results['mode']}): first outputs of every project within 10 min: "
          f"{'met' if mine['first_outputs_within_10_min'] else 'NOT met'}; a 4-update round within 5 min while "
          f"generating: {'met' if mine['round_within_5_min'] else 'NOT met'}", flush=True)  # fmt: skip


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", action="store_true", help="no generation turns, no per-lane thread caps")
    parser.add_argument("--code-limit", type=int, default=164)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each wait may take")
    parser.add_argument(
        "--goals-only", action="store_true", help="bound each wait by its goal (600 s, 300 s)"
    )
    parser.add_argument("--skip-round", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--compare", type=Path, help="the other mode's --json, printed beside this run")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="t2g-first-hour-"))
    models = var / "models"
    models.mkdir()
    (models / "base").symlink_to(
        Path(os.environ.get("T2G_BASE_MODEL_DIR", REPO / "var/models/base")).resolve()
    )
    env = {**os.environ, "T2G_VAR_DIR": str(var), "T2G_MODELS_DIR": str(models), "PORT": str(free_port()),
           "T2G_ENDPOINT_PORT": str(free_port()),
           "DJANGO_SETTINGS_MODULE": "text2grad_web.settings", "WEB_WORKERS": "2"}  # fmt: skip
    for key in ("DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(key, None)  # make run's embedded defaults
    secret = var / "secret-key"
    secret.write_text(secrets.token_urlsafe(50))
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY_FILE": str(secret),
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
        }
    )  # fmt: skip  (make run's LOCAL_ENV: its production profile)
    if args.before:
        cores = str(os.cpu_count() or 2)
        env.update({"T2G_GENERATION_TURN_S": "1e9", "T2G_GENERATION_THREADS": cores,
                    "T2G_TRAINING_THREADS": cores, "T2G_INTERACTIVE_THREADS": cores})  # fmt: skip
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    from annotations.models import Project

    call_command("migrate", verbosity=0)
    call_command("prepare_model")  # as `make run`: the base model and the aligner's cache
    train = round_data()
    call_command("seed_demo", "--code-limit", str(args.code_limit), "--credentials-to-file-only", verbosity=0)
    projects = {name: Project.objects.get(name=name) for name in SEEDED}
    results = {
        "mode": "before" if args.before else "after",
        "machine": {"cpus": os.cpu_count(), "load_at_start": loadavg()},
        "code_limit": args.code_limit,
    }
    first_timeout = GOAL_FIRST_OUTPUTS_S if args.goals_only else args.timeout
    round_timeout = GOAL_ROUND_S if args.goals_only else args.timeout
    stack = Stack(env, var)
    try:
        wait(stack.lanes_up, 600, "the stack (web + 3 workers)")
        started = time.monotonic()
        cpu_start = stack_cpu_s(stack.proc.pid)
        results["first_output_s"] = first_outputs(projects, started, first_timeout)
        results["first_outputs_cpu_s"] = cpu_delta(cpu_start, stack_cpu_s(stack.proc.pid))
        if not args.skip_round:
            results["round"] = round_while_generating(list(projects.values()), train, round_timeout, stack)
            print("round", results["round"], flush=True)
        results["stack_cpu_s"] = stack_cpu_s(stack.proc.pid)
        results["goals"] = goals(results)
    finally:
        stack.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    report(results, json.loads(args.compare.read_text()) if args.compare and args.compare.exists() else None)


if __name__ == "__main__":
    main()

"""Background work under load and under faults (issue 12): the interactive lane, cancel, outages, dead workers.

Runs the stack with `scripts/run.sh` exactly as `make run` does (its lanes: an interactive worker, a
default+generation worker, a training worker; SQLite in WAL mode and the filesystem broker under a
throwaway var/ folder; the embedded SmolLM2), then measures:

1. idle, then busy (a 164-prompt HumanEval generation job and a training round running): Suggest spans
   (request → proposals), token rewards (submit over HTTP → TokenReward row), a 1,000-row export, and
   generation cancel (cancel → the generation worker takes its next job);
2. a dead worker: SIGKILL the generation worker mid-job → the job is queued again (default timings);
3. with `--outage`: the same stack on a redis-server of its own, stopped for 20 s while 50 annotators
   submit and 5 exports are created: requests slower than 2 s, reward computations lost, exports stuck.

    .venv/bin/python benchmarks/bench_jobs.py --samples 6 --outage     # a few minutes; writes results/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2)


def wait(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class Stack:
    """scripts/run.sh in its own process group, on the given environment."""

    def __init__(self, env: dict, var: Path) -> None:
        self.env, self.var = env, var
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(var / "run.log", "a")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def lanes_up(self) -> bool:
        import requests

        try:
            body = requests.get(f"{self.url}/healthz", timeout=5).json()
        except Exception:
            return False
        return bool(body.get("lanes")) and all(s == "up" for s in body["lanes"].values())

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=40)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def setup_data(n_drafts: int):
    """Users with API tokens, the HumanEval project (seed_demo), a 1,000-output project with submitted
    annotations (the export), a small project for the round, and drafts to submit."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from annotations import roles
    from annotations.models import Annotation, Generation, Project, Prompt, Span, content_hash
    from annotations.services import project_create

    call_command("seed_demo", "--no-generate", verbosity=0)
    user_model = get_user_model()

    def user(name, role):
        u, _ = user_model.objects.get_or_create(username=name)
        roles.assign_role(u, role)
        return u, Token.objects.get_or_create(user=u)[0].key

    researcher, research_token = user("bench-res", roles.RESEARCHER)
    big = project_create(name="Bench export", kind="summarization", annotations_per_output=1)
    text = "The council voted 7 to 2 to build a library. It opens next year. Costs are 4.2 million."
    prompts = [Prompt(project=big, text=f"Summarize item {i}.") for i in range(1000)]
    for prompt in prompts:
        prompt.content_hash = content_hash(prompt.text)  # save() sets it; bulk_create does not call save()
    prompts = Prompt.objects.bulk_create(prompts)
    gens = [Generation(prompt=p, text=text, source_model="bench") for p in prompts]
    for generation in gens:
        generation.content_hash = content_hash(generation.prompt.text, generation.text)
    gens = Generation.objects.bulk_create(gens)
    annotations = Annotation.objects.bulk_create(
        [Annotation(generation=g, annotator=researcher, status="submitted", submitted_at=timezone.now(),
                    overall_critique="The numbers are right.", rating=4) for g in gens]
    )  # fmt: skip
    Span.objects.bulk_create(
        [Span(annotation=a, start=0, end=11, text=text[:11], label="good", polarity=1, critique="ok")
         for a in annotations]
    )  # fmt: skip
    train = project_create(name="Bench round", kind="summarization", annotations_per_output=1)
    drafts = []
    for i in range(n_drafts):
        prompt = Prompt.objects.create(project=train, text=f"Summarize: the ferry takes {i} minutes.")
        generation = Generation.objects.create(prompt=prompt, text=f"The ferry takes {i} minutes. It is red.",
                                               source_model="bench")  # fmt: skip
        annotator, token = user(f"bench-ann{i}", roles.ANNOTATOR)
        annotation = Annotation.objects.create(generation=generation, annotator=annotator, status="draft")
        Span.objects.create(annotation=annotation, start=0, end=9, text=generation.text[:9], label="good",
                            polarity=1, critique="right")  # fmt: skip
        drafts.append((annotation.pk, token))
    return {
        "code": Project.objects.get(name="HumanEval code"),
        "big": big,
        "train": train,
        "research_token": research_token,
        "drafts": drafts,
        "critique_target": annotations[0],
    }


def measure(stack: Stack, data: dict, drafts: list, samples: int) -> dict:
    """Suggest spans, token rewards after submit, a 1,000-row export."""
    import requests

    from annotations.exports import jobs as export_jobs
    from annotations.models import DatasetExport
    from training import services
    from training.models import AlignmentRequest, TokenReward

    suggest = []
    for _ in range(samples):
        started = time.monotonic()
        request = services.alignment_request_create(
            annotation=data["critique_target"], critique='"The council voted 7 to 2" is right.'
        )
        wait(lambda r=request: AlignmentRequest.objects.get(pk=r.pk).is_finished, 300, "suggestions")
        suggest.append(time.monotonic() - started)
    rewards = []
    for annotation_id, token in drafts[:samples]:
        started = time.monotonic()
        response = requests.post(f"{stack.url}/api/v1/annotations/{annotation_id}/submit/",
                                 json={"rating": 4}, headers={"Authorization": f"Token {token}"}, timeout=60)  # fmt: skip
        response.raise_for_status()
        wait(lambda a=annotation_id: TokenReward.objects.filter(annotation_id=a).exists(), 300, "rewards")
        rewards.append(time.monotonic() - started)
    started = time.monotonic()
    export = export_jobs.export_create(kind="spans", fmt="jsonl", query={"project": data["big"].pk})
    wait(lambda: DatasetExport.objects.get(pk=export.pk).is_finished, 600, "the export")
    export.refresh_from_db()
    return {
        "suggest_p95_s": p95(suggest), "suggest_s": [round(x, 2) for x in suggest],
        "rewards_p95_s": p95(rewards), "rewards_s": [round(x, 2) for x in rewards],
        "export_s": round(time.monotonic() - started, 2), "export_rows": export.row_count,
        "export_status": export.status, "load": loadavg(),
    }  # fmt: skip


def cancel_latency(project) -> dict:
    """Cancel the running generation job; the clock stops when the worker claims the next job. "cold":
    the job may still be loading the model; "warm": the next job, cancelled while it samples."""
    from training import services
    from training.models import GenerationJob

    prompt_ids = list(project.prompts.order_by("id").values_list("id", flat=True)[:4])

    def cancel_then_probe(running) -> tuple[float, GenerationJob]:
        started = time.monotonic()
        services.generation_job_cancel(job=running)
        probe = services.generation_job_create(project=project, prompt_ids=prompt_ids)
        wait(lambda: GenerationJob.objects.get(pk=probe.pk).status != "queued", 600, "the worker to be free")
        return round(time.monotonic() - started, 2), probe

    cold, probe = cancel_then_probe(GenerationJob.objects.filter(status="running").first())
    time.sleep(5)  # the probe is sampling now (the model is loaded)
    warm, last = cancel_then_probe(probe)
    services.generation_job_cancel(job=last)
    return {"cold_s": cold, "warm_s": warm}


def generation_worker_pids() -> list[int]:
    from jobs.models import WorkerBeat

    beat = WorkerBeat.objects.filter(lanes__contains="generation").order_by("-seen_at").first()
    pids = [beat.pid]
    for entry in Path("/proc").iterdir():  # its pool children
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split()[3]) == beat.pid:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def dead_worker(project) -> dict:
    from training import services
    from training.models import GenerationJob

    job = services.generation_job_create(project=project)
    wait(lambda: GenerationJob.objects.get(pk=job.pk).status == "running", 600, "generation to start")
    time.sleep(20)  # mid-job: loading the model or sampling, heartbeating all along
    for pid in generation_worker_pids():
        os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    wait(lambda: GenerationJob.objects.get(pk=job.pk).status != "running", 300, "the reaper")
    noticed = time.monotonic() - started
    job.refresh_from_db()
    result = {"noticed_s": round(noticed, 1), "then": job.status, "message": job.error}
    services.generation_job_cancel(job=job)
    return result


def outage(stack: Stack, data: dict, drafts: list, redis_proc_start, redis_stop, seconds: float = 20) -> dict:
    """50 annotators submit and 5 exports are created while the broker is stopped for ``seconds``."""
    import requests

    from annotations.models import DatasetExport
    from training.models import TokenReward

    timings, errors, export_ids = [], [], []
    lock = threading.Lock()

    def submit(annotation_id, token, delay):
        time.sleep(delay)
        started = time.monotonic()
        try:
            response = requests.post(f"{stack.url}/api/v1/annotations/{annotation_id}/submit/",
                                     json={"rating": 3}, headers={"Authorization": f"Token {token}"}, timeout=60)  # fmt: skip
            ok = response.status_code == 200
        except requests.RequestException as exc:
            ok, response = False, exc
        with lock:
            timings.append(time.monotonic() - started)
            if not ok:
                errors.append(str(response)[:200])

    def create_export(delay):
        time.sleep(delay)
        started = time.monotonic()
        response = requests.post(f"{stack.url}/api/v1/exports/", timeout=60,
                                 json={"kind": "spans", "format": "jsonl", "query": {"project": data["train"].pk}},
                                 headers={"Authorization": f"Token {data['research_token']}"})  # fmt: skip
        with lock:
            timings.append(time.monotonic() - started)
            if response.status_code == 202:
                export_ids.append(response.json()["id"])
            else:
                errors.append(response.text[:200])

    redis_stop()
    threads = [threading.Thread(target=submit, args=(a, t, i * seconds / len(drafts))) for i, (a, t) in
               enumerate(drafts)] + [threading.Thread(target=create_export, args=(i * 4,)) for i in range(5)]  # fmt: skip
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    redis_proc_start()
    for thread in threads:
        thread.join()
    ids = [a for a, _ in drafts]
    started = time.monotonic()
    try:
        wait(lambda: TokenReward.objects.filter(annotation_id__in=ids).count() == len(ids), 300, "rewards")
        wait(
            lambda: all(e.is_finished for e in DatasetExport.objects.filter(pk__in=export_ids)),
            300,
            "exports",
        )
    except TimeoutError:
        pass
    return {
        "requests": len(timings), "slower_than_2s": sum(t > 2 for t in timings),
        "max_request_s": round(max(timings), 2), "errors": errors,
        "lost_reward_computations": len(ids) - TokenReward.objects.filter(annotation_id__in=ids).count(),
        "exports_stuck": sum(not e.is_finished for e in DatasetExport.objects.filter(pk__in=export_ids)),
        "recovered_in_s": round(time.monotonic() - started, 1), "load": loadavg(),
    }  # fmt: skip


def under_load(stack: Stack, data: dict, drafts: list, args, results: dict) -> None:
    """Idle figures, then the same with a 164-prompt generation job and a round running; cancel; a
    dead generation worker."""
    from training import services
    from training.models import GenerationJob, TrainingRound

    results["idle"] = measure(stack, data, drafts[: args.samples], args.samples)
    print("idle", results["idle"], flush=True)
    job = services.generation_job_create(project=data["code"])
    round_ = services.round_launch(
        selection={"project_id": data["big"].pk},
        config={"steps": args.round_steps, "batch_size": 4, "ppo_epochs": 1},
    )
    wait(lambda: GenerationJob.objects.get(pk=job.pk).status == "running", 600, "generation to start")
    wait(lambda: TrainingRound.objects.get(pk=round_.pk).status == "running", 600, "the round to start")
    results["busy"] = measure(stack, data, drafts[args.samples : 2 * args.samples], args.samples)
    results["busy"]["round_status"] = TrainingRound.objects.get(pk=round_.pk).status
    results["busy"]["generation_progress"] = GenerationJob.objects.get(pk=job.pk).progress_step
    print("busy", results["busy"], flush=True)
    results["cancel_under_load"] = cancel_latency(data["code"])
    print("cancel under load", results["cancel_under_load"], flush=True)
    services.round_cancel(training_round=round_)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument(
        "--outage", action="store_true", help="also the 20 s broker outage (own redis-server)"
    )
    parser.add_argument("--round-steps", type=int, default=40)
    parser.add_argument(
        "--only",
        choices=["load", "cancel", "dead", "outage"],
        action="append",
        help="run only these parts (repeatable); default: load, cancel, dead (+ outage with --outage)",
    )
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="t2g-jobs-bench-"))
    models = var / "models"
    models.mkdir()
    (models / "base").symlink_to(
        Path(os.environ.get("T2G_BASE_MODEL_DIR", REPO / "var/models/base")).resolve()
    )
    env = {**os.environ, "T2G_VAR_DIR": str(var), "T2G_MODELS_DIR": str(models), "PORT": str(free_port()),
           "DJANGO_SETTINGS_MODULE": "text2grad_web.settings", "WEB_WORKERS": "2"}  # fmt: skip
    for key in ("DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(key, None)  # make run's embedded defaults
    # The development profile, as measured so far (the settings default to production).
    env.setdefault("DEBUG", "1")
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("prepare_model")  # as `make run` (its `model` step): the base model and the aligner's cache
    data = setup_data(2 * args.samples + 50)
    drafts = data["drafts"]
    # The export project's annotations get their rewards now (the batched path), as a live install's would.
    from training.worker.rewards import rewards_recompute_all

    rewards_recompute_all(project_id=data["big"].pk)
    results = {"machine": {"cpus": os.cpu_count(), "load_at_start": loadavg()}}
    parts = set(args.only or ["load", "cancel", "dead"] + (["outage"] if args.outage else []))
    stack = Stack(env, var)
    try:
        wait(stack.lanes_up, 600, "the stack (web + 3 workers)")
        from training import services
        from training.models import GenerationJob

        if "load" in parts:
            under_load(stack, data, drafts, args, results)
        if "cancel" in parts:
            job = services.generation_job_create(project=data["code"])
            wait(lambda: GenerationJob.objects.get(pk=job.pk).status == "running", 600, "generation to start")
            results["cancel"] = cancel_latency(data["code"])
            print("cancel", results["cancel"], flush=True)
        if "dead" in parts:
            results["dead_worker"] = dead_worker(data["code"])
            print("dead worker", results["dead_worker"], flush=True)
    finally:
        stack.stop()

    if "outage" in parts:
        port = free_port()
        redis_cmd = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        holder = {"proc": subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)}

        def redis_stop():
            holder["proc"].terminate()
            holder["proc"].wait()

        def redis_start():
            holder["proc"] = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)

        env2 = {**env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0", "PORT": str(free_port())}
        stack = Stack(env2, var)
        try:
            wait(stack.lanes_up, 600, "the stack on its own redis")
            results["outage"] = outage(stack, data, drafts[2 * args.samples : 2 * args.samples + 50],
                                       redis_start, redis_stop)  # fmt: skip
            print("outage", results["outage"], flush=True)
        finally:
            stack.stop()
            holder["proc"].terminate()
            holder["proc"].wait()
    results["machine"]["load_at_end"] = loadavg()
    out = REPO / "benchmarks" / "results" / f"bench_jobs_{'_'.join(sorted(parts))}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"var folder: {var}")


if __name__ == "__main__":
    main()

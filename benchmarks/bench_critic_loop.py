"""The critic through the studio's own code paths: one critic training job and one on-policy round.

A project of synthetic news items (the task of ``bench_sample_efficiency.py``) gets one base-model summary
per item, annotated by the programmatic news critic as a person would (its spans become Span rows of a
submitted Annotation). Then, exactly as the training worker does:

1. a critic job (``training.worker.critic.critic_job_run``) on all the annotations, ``held_out_fraction``
   of the outputs kept out: its held-out token metrics against the baselines and its stage timings;
2. the critic is activated and an on-policy round (``training.worker.rounds.round_run``) of
   ``--updates`` PPO updates of ``--batch`` fresh samples runs on the project's prompts: its stage timings
   and the critic's view of the samples (the share with a predicted poor span, per update).

Sampled outputs are cached in ``var/bench/`` and sampling stops after ``--sample-minutes`` (rerun to
continue), so no single run holds the shared machine for long. Needs its own PostgreSQL database:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/t2g_critic_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/8 \\
      .venv/bin/python benchmarks/bench_critic_loop.py --outputs 260 --held-out-fraction 0.23
    ... --quick    # 40 outputs, 1 epoch, 2 updates of 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")
# A local tool: the development profile (the settings default to production).
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("T2G_MODELS_DIR", str(REPO / "var" / "bench" / "critic-models"))
os.environ.setdefault("T2G_TORCH_THREADS", "1")  # OpenMP threads spin against other work on a shared box

from bench_sample_efficiency import PROMPT_PREFIX, critique, make_items, messages  # noqa: E402

CACHE = REPO / "var" / "bench" / "critic_loop_outputs.json"


def sample_cached(items: list[dict], max_new_tokens: int, budget_s: float) -> list[dict] | None:
    """One base-model summary per item, cached chunk by chunk; None when the time budget ran out first."""
    from text2grad.generation import sample
    from text2grad.model_store import load

    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    key = f"tokens={max_new_tokens}"
    done = cache.setdefault(key, {})
    todo = [i for i in items if i["text"] not in done]
    started = time.perf_counter()
    if todo:
        import torch

        torch.set_num_threads(1)  # as T2G_TORCH_THREADS does for the worker stages later
        model, tokenizer = load(REPO / "var" / "models" / "base")
        for start in range(0, len(todo), 16):
            if time.perf_counter() - started > budget_s:
                print(
                    f"sampling budget used: {len(items) - len(todo) + start}/{len(items)} cached; rerun to continue"
                )
                return None
            chunk = todo[start : start + 16]
            outs = sample(model, tokenizer, [messages(i) for i in chunk], max_new_tokens=max_new_tokens,
                          temperature=0.8, top_p=1.0, seed=1000 + len(done), batch_size=len(chunk))  # fmt: skip
            for item, out in zip(chunk, outs, strict=True):
                done[item["text"]] = out[0].text
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            tmp = CACHE.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, CACHE)
            print(f"  sampled {len(items) - len(todo) + start + len(chunk)}/{len(items)}", flush=True)
    return [{"item": i, "text": done[i["text"]]} for i in items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--outputs", type=int, default=260)
    parser.add_argument("--held-out-fraction", type=float, default=0.23)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lookahead", type=int, default=3, help="critic head window (0: the token alone)")
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--sample-minutes", type=float, default=9.0)
    parser.add_argument("--skip-round", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "critic_loop.json")
    args = parser.parse_args()
    if args.quick:
        args.outputs, args.epochs, args.updates = 40, 1, 2
        args.out = args.out.with_name("critic_loop_quick.json")

    load_before = os.getloadavg()
    items = make_items(args.outputs, seed=1)
    rows = sample_cached(items, args.max_new_tokens, args.sample_minutes * 60)
    if rows is None:
        return

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from annotations.models import Annotation, Generation, Project, Prompt, Span
    from annotations.services import project_create
    from training import services
    from training.models import OnPolicySample, RoundMetric
    from training.worker import critic as critic_worker
    from training.worker import rounds

    call_command("migrate", "--noinput", verbosity=0)
    Project.objects.filter(name__startswith="critic-bench").delete()
    project = project_create(name=f"critic-bench {timezone.now():%H%M%S}", kind="summarization")
    user, _ = get_user_model().objects.get_or_create(username="critic-bench-annotator")
    started = time.perf_counter()
    poor_outputs = 0
    for row in rows:
        prompt = Prompt.objects.create(project=project, text=PROMPT_PREFIX + row["item"]["text"])
        generation = Generation(prompt=prompt, text=row["text"], source_model="base")
        generation.save()
        annotation = Annotation.objects.create(generation=generation, annotator=user, status="submitted",
                                               submitted_at=timezone.now())  # fmt: skip
        spans, notes, facts = critique(row["item"], row["text"])
        poor_outputs += facts["unsupported"] > 0
        Span.objects.bulk_create(
            [Span(annotation=annotation, start=s, end=e, text=row["text"][s:e], polarity=p, weight=w,
                  label="poor" if p < 0 else "good", critique=note)
             for (s, e, p, w), note in zip(spans, notes, strict=True)]
        )  # fmt: skip
    seed_s = time.perf_counter() - started

    job = services.critic_job_create(
        project=project,
        config={
            "epochs": args.epochs,
            "held_out_fraction": args.held_out_fraction,
            "lookahead": args.lookahead,
        },
    )
    started = time.perf_counter()
    status = critic_worker.critic_job_run(job_id=job.pk)
    job_s = time.perf_counter() - started
    job.refresh_from_db()
    if status != "succeeded":
        raise SystemExit(f"critic job {status}: {job.error}")
    version = job.output_version
    result = {
        "outputs": len(rows),
        "outputs_with_unsupported_detail": poor_outputs / len(rows),
        "critic_job": {"wall_s": round(job_s, 1), "stages_s": version.metrics["timings"],
                       "train_outputs": version.metrics["train_outputs"],
                       "held_out_outputs": version.metrics["held_out_outputs"], "steps": job.summary["steps"]},
        "reports": version.metrics["reports"],
        "seed_db_s": round(seed_s, 1),
        "loadavg_before": load_before,
    }  # fmt: skip

    if not args.skip_round:
        services.critic_version_activate(version=version)
        config = {"steps": args.updates, "batch_size": args.batch, "minibatch_size": min(4, args.batch),
                  "learning_rate": args.lr, "ppo_epochs": 4}  # fmt: skip
        training_round = services.on_policy_round_launch(
            project=project,
            config=config,
            audit_share=0.25,
            max_new_tokens=args.max_new_tokens,
            enqueue=False,
        )
        started = time.perf_counter()
        status = rounds.round_run(round_id=training_round.pk)
        round_s = time.perf_counter() - started
        training_round.refresh_from_db()
        if status != "succeeded":
            raise SystemExit(f"on-policy round {status}: {training_round.error}")
        per_update = {}
        for metric in RoundMetric.objects.filter(training_round=training_round):
            per_update[metric.data["update"]] = round(metric.data["critic_poor_share"], 3)
        result["on_policy_round"] = {
            "wall_s": round(round_s, 1),
            "stages_s": {k: round(v, 2) for k, v in training_round.summary["timings"].items()},
            "updates": args.updates,
            "batch": args.batch,
            "samples": OnPolicySample.objects.filter(training_round=training_round).count(),
            "audited": OnPolicySample.objects.filter(training_round=training_round, audit_generation__isnull=False).count(),
            "critic_poor_share_per_update": per_update,
        }  # fmt: skip
    result["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))

    print("\n| method | poor P | poor R | poor F1 | poor AUROC | good F1 | good AUROC | ECE (poor) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rep in result["reports"].items():
        poor, good = rep["labels"]["poor"], rep["labels"]["good"]

        def fmt(x):
            return "–" if x is None else f"{x:.3f}"

        print(f"| {name} | {fmt(poor['precision'])} | {fmt(poor['recall'])} | {fmt(poor['f1'])} | {fmt(poor['auroc'])} "
              f"| {fmt(good['f1'])} | {fmt(good['auroc'])} | {fmt(rep['calibration']['poor']['ece'])} |")  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "reports"}, indent=1))


if __name__ == "__main__":
    main()

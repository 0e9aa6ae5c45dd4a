"""Active learning: critic F1 against the number of annotated outputs, uncertainty order vs arrival order.

Everything goes through the studio's own code: a project per arm holds a fixed pool of base-model
summaries of synthetic news items (the task of ``bench_sample_efficiency.py``), inserted in a seeded
arrival order. "Annotating" takes the next outputs of the project's annotation queue
(``annotations.selectors.next_candidates``, ordered by ``queue_order``) and submits the programmatic news
critic's spans as a person's Span rows (the stand-in for people, as in ``bench_critic_loop.py``).

* Arrival arm: the queue in arrival order (the project's default).
* Uncertainty arm: ``CriticSettings.queue_order = "uncertainty"``. The first batch comes in arrival order
  (no critic yet: the queue falls back to it); then, repeatedly, a critic job trains on everything
  annotated so far (``critic_job_create`` + ``critic_job_run``), the version is activated, it scores the
  unannotated pool (``critic_predict_run``, which stores the queue's uncertainty: the mean normalised
  entropy of the response's 5 most uncertain tokens), and the next batch is the head of the queue.

At each annotated count both arms' critics (trained with the same config and seed) are measured on a
frozen held-out set of outputs that nothing is trained or tuned on (a project of its own, annotated by the
same programmatic critic): pooled token precision/recall/F1 and AUROC of the poor label, F1 of good.
The first count is the same annotated outputs in both arms (the seed batch): it is trained once and
reported for both.

PROTOCOL 2 (issue 27; fixed before the run, stored in the result file under "protocol"; change it only with
the reason in docs/benchmarks.md. Protocol 1 was 5 seeds, two arms, no control: results/active_learning.json)

Arms, each a project of its own holding the same pool in a seeded arrival order (the seed's shuffle):
  uncertainty   the queue in the critic's uncertainty order after the seed batch (above).
  arrival       control: the queue in arrival order, i.e. uniform random selection (the classic baseline).
  length        control: the same pool inserted longest output first (characters), the queue in arrival
                order. Uncertainty summed or averaged over a response's least certain tokens can favour
                long outputs, and long outputs carry more poor tokens: a gain that length alone buys is
                not the critic's uncertainty.
Floor: the all-neutral critic's poor F1 on the held-out set (no training), printed once.
Counts: 20 / 40 / 80 annotated outputs (fixed in advance); the first 20 are the same outputs in the
  uncertainty and arrival arms (the seed batch, trained once); the length arm's first 20 are its own.
Seeds: 0-9 (10). Pool 160, held-out 60 (frozen: nothing trained or tuned on it), critic defaults, 2 epochs.
Measure per seed and count: poor-label F1 (pooled over tokens) on the held-out set; the paired differences
  uncertainty - arrival and length - arrival.
Decision rule: uncertainty order HELPS at a count only if
  (1) the median paired difference uncertainty - arrival over the 10 seeds is > 0 and its order-statistic
      interval (coverage >= 0.95 where 10 seeds allow it; printed) excludes 0, and
  (2) the length control's median paired difference is below half of uncertainty's (else length buys it).
  Otherwise: no effect shown at that count. Every seed is reported with the median, the order-statistic
  interval and a percentile bootstrap interval (2,000 resamples of seeds).
Stopping rule: none (every arm runs every count); a run resumes per seed from its result file and a report
  over fewer than 10 complete seeds says PARTIAL and is not the protocol's result.

Sampled outputs share ``bench_critic_loop.py``'s cache (``var/bench/critic_loop_outputs.json``; the
first 220 of its 260 items with the defaults: a pool of 160, a held-out set of 60). The defaults (counts
20/40/80, 2 epochs) are sized for a shared 2-core machine; a job's own in-sample report is skipped. Needs its own PostgreSQL database:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/t2g_critic_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/8 \\
      T2G_TORCH_THREADS=1 .venv/bin/python benchmarks/bench_active_learning.py --seeds 0 \\
        --out benchmarks/results/active_learning_s0.json
    .venv/bin/python benchmarks/bench_active_learning.py --summarize benchmarks/results/active_learning_s*.json \\
        --out benchmarks/results/active_learning.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
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

from bench_critic_loop import sample_cached  # noqa: E402
from bench_sample_efficiency import PROMPT_PREFIX, critique, make_items  # noqa: E402

ARMS = ("arrival", "uncertainty", "length")
PROTOCOL_VERSION = 2
PROTOCOL_SEEDS = list(range(10))
PAIRED = ("uncertainty", "length")  # each compared with arrival, seed by seed


def summarize(paths: list[Path]) -> dict:
    """Medians over seeds of every arm's metrics at every annotated count."""
    runs = [json.loads(p.read_text()) for p in paths]
    seeds = [s for run in runs for s in run["seeds"]]
    table: dict[str, dict[str, dict]] = {}
    for arm in ARMS:
        counts = sorted({int(c) for s in seeds for c in s["arms"].get(arm, {})})
        for count in counts:
            points = [s["arms"][arm][str(count)] for s in seeds if str(count) in s["arms"].get(arm, {})]
            table.setdefault(arm, {})[str(count)] = {
                "seeds": len(points),
                **{
                    key: round(statistics.median(p[key] for p in points), 4)
                    for key in ("poor_f1", "poor_auroc", "poor_precision", "poor_recall", "good_f1")
                },
                "poor_f1_per_seed": [round(p["poor_f1"], 4) for p in points],
                "selected_poor_share_median": round(statistics.median(p["annotated_poor_share"] for p in points), 3),
            }  # fmt: skip
    return {"config": runs[0]["config"], "medians": table, "paired": paired(seeds), "seeds": seeds}


def paired(seeds: list[dict]) -> dict:
    """Per count: arm - arrival poor F1 for every seed that has both, the median, its intervals, the verdict."""
    from bench_human_budget import bootstrap_interval, order_statistic_interval

    out: dict[str, dict] = {}
    counts = sorted({int(c) for s in seeds for c in s["arms"].get("arrival", {})})
    for count in counts:
        row: dict = {}
        for arm in PAIRED:
            diffs = [
                round(s["arms"][arm][str(count)]["poor_f1"] - s["arms"]["arrival"][str(count)]["poor_f1"], 4)
                for s in seeds
                if str(count) in s["arms"].get(arm, {}) and str(count) in s["arms"].get("arrival", {})
            ]
            if not diffs:
                continue
            low, high, coverage = order_statistic_interval(diffs)
            row[arm] = {"per_seed": diffs, "median": round(statistics.median(diffs), 4),
                        "order_statistic": [low, high, coverage],
                        "bootstrap": list(bootstrap_interval(diffs, 2000))}  # fmt: skip
        unc, length = row.get("uncertainty"), row.get("length")
        if unc and length:
            helps = (
                unc["median"] > 0 and unc["order_statistic"][0] > 0 and length["median"] < unc["median"] / 2
            )
            row["verdict"] = "helps" if helps else "no effect shown"
        out[str(count)] = row
    return out


def print_table(summary: dict) -> None:
    counts = sorted({int(c) for arm in summary["medians"].values() for c in arm})
    print("\n| annotated | arrival poor F1 | uncertainty poor F1 | arrival poor AUROC | uncertainty poor AUROC "
          "| poor share of annotated (arr / unc) | seeds |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count in counts:
        a = summary["medians"].get("arrival", {}).get(str(count))
        u = summary["medians"].get("uncertainty", {}).get(str(count))

        def cell(row, key):
            return "–" if row is None else f"{row[key]:.3f}"

        print(f"| {count} | {cell(a, 'poor_f1')} | {cell(u, 'poor_f1')} | {cell(a, 'poor_auroc')} "
              f"| {cell(u, 'poor_auroc')} | {cell(a, 'selected_poor_share_median')} / "
              f"{cell(u, 'selected_poor_share_median')} | {(a or u or {}).get('seeds')} |")  # fmt: skip
    complete = [s for s in summary["seeds"] if s.get("complete", True)]
    if not summary.get("paired"):
        return
    status = "" if len(complete) >= len(PROTOCOL_SEEDS) else f" (PARTIAL: {len(complete)} of 10 seeds)"
    print(f"\nPaired poor-F1 differences against arrival{status}:")
    print(
        "| annotated | arm | per seed | median | order-statistic interval (coverage) | bootstrap 95% | verdict |"
    )
    print("|---:|---|---|---:|---|---|---|")
    for count, row in summary["paired"].items():
        for arm in PAIRED:
            if arm in row:
                r = row[arm]
                low, high, cov = r["order_statistic"]
                print(f"| {count} | {arm} | {', '.join(f'{d:+.3f}' for d in r['per_seed'])} | {r['median']:+.3f} "
                      f"| [{low:+.3f}, {high:+.3f}] ({cov}) | [{r['bootstrap'][0]:+.3f}, {r['bootstrap'][1]:+.3f}] "
                      f"| {row.get('verdict', '–') if arm == 'uncertainty' else ''} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=160, help="outputs annotators can be given")
    parser.add_argument("--held-out", type=int, default=60, help="frozen held-out outputs")
    parser.add_argument("--counts", default="20,40,80", help="annotated counts to measure at")
    parser.add_argument("--seeds", type=int, nargs="+", default=PROTOCOL_SEEDS,
                        help="the protocol's seeds by default; a seed complete in --out is skipped (resume)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--sample-minutes", type=float, default=20.0)
    parser.add_argument("--summarize", type=Path, nargs="+", help="per-seed result files to combine")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "active_learning_protocol.json"
    )
    args = parser.parse_args()

    if args.summarize:
        summary = summarize(args.summarize)
        args.out.write_text(json.dumps(summary, indent=1))
        print_table(summary)
        return

    counts = sorted({int(c) for c in args.counts.split(",")})
    if not counts or counts[0] < 4 or counts[-1] > args.pool:
        raise SystemExit(f"counts must lie between 4 and the pool size {args.pool}")
    items = make_items(args.pool + args.held_out, seed=1)
    rows = sample_cached(items, args.max_new_tokens, args.sample_minutes * 60)
    if rows is None:
        return
    pool_rows, held_rows = rows[: args.pool], rows[args.pool :]

    import django

    django.setup()
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from annotations.models import Annotation, Generation, Project, Prompt, Span
    from annotations.selectors import next_candidates
    from annotations.services import project_create
    from text2grad import critic_metrics as cm
    from text2grad import model_store
    from text2grad.critic import predict_token_probs
    from training import services
    from training.worker import critic as critic_worker
    from training.worker.runtime import base_dir

    call_command("migrate", "--noinput", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="al-bench-annotator")
    tag = "-".join(map(str, args.seeds))
    Project.objects.filter(name__startswith=f"al-bench s{tag} ").delete()

    def fill(name: str, ordered: list[dict]) -> tuple[Project, dict[int, dict]]:
        project = project_create(name=f"al-bench s{tag} {name} {timezone.now():%H%M%S}", kind="summarization")
        by_generation = {}
        for row in ordered:
            prompt = Prompt.objects.create(project=project, text=PROMPT_PREFIX + row["item"]["text"])
            generation = Generation.objects.create(prompt=prompt, text=row["text"], source_model="base")
            by_generation[generation.pk] = row
        return project, by_generation

    def annotate(generation: Generation, row: dict) -> bool:
        annotation = Annotation.objects.create(generation=generation, annotator=user, status="submitted",
                                               submitted_at=timezone.now())  # fmt: skip
        spans, notes, facts = critique(row["item"], row["text"])
        Span.objects.bulk_create(
            [Span(annotation=annotation, start=s, end=e, text=row["text"][s:e], polarity=p, weight=w,
                  label="poor" if p < 0 else "good", critique=note)
             for (s, e, p, w), note in zip(spans, notes, strict=True)]
        )  # fmt: skip
        return facts["unsupported"] > 0

    def annotate_next(project: Project, rows_by_id: dict[int, dict], n: int) -> list[bool]:
        """The head of the project's annotation queue, as the studio would lease it to the annotator."""
        project = Project.objects.get(pk=project.pk)  # the critic settings relation is read fresh
        batch = list(next_candidates(project, user, timezone.now())[:n])
        if len(batch) < n:
            raise SystemExit(f"the queue ran dry: {len(batch)} < {n}")
        return [annotate(g, rows_by_id[g.pk]) for g in batch]

    # The frozen held-out set: a project of its own, its token labels read as a critic job reads them.
    held_project, held_by_id = fill("held-out", held_rows)
    for generation in Generation.objects.filter(prompt__project=held_project).order_by("id"):
        annotate(generation, held_by_id[generation.pk])
    tokenizer = model_store.load_tokenizer(base_dir())
    held = critic_worker.labelled_outputs(
        list(
            Annotation.objects.filter(generation__prompt__project=held_project).values_list("id", flat=True)
        ),
        tokenizer,
    )
    truth = [np.array(r["labels"]) for r in held]

    def measure(version) -> dict:
        critic, _, config = critic_worker.critic_cache.get(version)
        probs = predict_token_probs(critic, [r["prompt_ids"] for r in held], [r["response_ids"] for r in held],
                                    config=config)  # fmt: skip
        poor, good = (report := cm.evaluate(truth, probs))["labels"]["poor"], report["labels"]["good"]
        return {"poor_f1": poor["f1"], "poor_precision": poor["precision"], "poor_recall": poor["recall"],
                "poor_auroc": poor["auroc"], "good_f1": good["f1"], "good_auroc": good["auroc"]}  # fmt: skip

    # Every job here trains on all it is given (held_out_fraction 0): its own report would be in-sample, so
    # it is skipped (the MiniLM baseline alone took ~100 s a job on the loaded machine); the critics are
    # measured on the frozen held-out set instead.
    critic_worker.evaluate_with_baselines = lambda critic, train_rows, test_rows, config: {}

    def train(project: Project, seed: int):
        job = services.critic_job_create(
            project=project, config={"epochs": args.epochs, "held_out_fraction": 0.0, "seed": seed}
        )
        started = time.perf_counter()
        status = critic_worker.critic_job_run(job_id=job.pk)
        job.refresh_from_db()
        if status != "succeeded":
            raise SystemExit(f"critic job {status}: {job.error}")
        return job.output_version, {
            "wall_s": round(time.perf_counter() - started, 1),
            "steps": job.summary["steps"],
        }

    base_report = cm.evaluate(truth, cm.all_neutral_probs([len(t) for t in truth]))
    result = {
        "config": {"pool": args.pool, "held_out": len(held), "counts": counts, "epochs": args.epochs,
                   "max_new_tokens": args.max_new_tokens, "critic": "CriticConfig defaults (LoRA r=8, lookahead 3, "
                   "lr 1e-3, batch 8, class weights 1/2/1), held_out_fraction 0, seed = run seed",
                   "held_out_tokens": base_report["tokens"],
                   "held_out_poor_tokens": base_report["labels"]["poor"]["support"],
                   "held_out_outputs_with_poor": sum(bool((t == cm.POOR).any()) for t in truth),
                   "pool_outputs_with_unsupported_detail": sum(critique(r["item"], r["text"])[2]["unsupported"] > 0
                                                               for r in pool_rows)},
        "seeds": [],
        "loadavg_before": os.getloadavg(),
        "protocol": {"version": PROTOCOL_VERSION, "text": __doc__[__doc__.index("PROTOCOL 2"):]},
        "floor_poor_f1_all_neutral": base_report["labels"]["poor"]["f1"],
    }  # fmt: skip
    if args.out.exists():  # resume: keep the complete seeds of the same protocol, redo the others
        previous = json.loads(args.out.read_text())
        if previous.get("protocol", {}).get("version") == PROTOCOL_VERSION:
            result["seeds"] = [s for s in previous["seeds"] if s.get("complete")]
    done = {s["seed"] for s in result["seeds"]}

    def save() -> None:
        result["loadavg_now"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))

    for seed in args.seeds:
        if seed in done:
            print(f"seed {seed}: complete in {args.out}, skipped", flush=True)
            continue
        order = list(pool_rows)
        random.Random(seed).shuffle(order)
        record: dict = {"seed": seed, "arms": {arm: {} for arm in ARMS}, "score_s": [], "complete": False}
        result["seeds"].append(record)

        # The arms advance count by count, so a run cut short still compares them.
        unc_project, unc_rows = fill("uncertainty", order)
        services.critic_settings_update(project=unc_project, queue_order="uncertainty")
        arr_project, arr_rows = fill("arrival", order)
        # the length control: longest first, ties in the seed's order (sorted() is stable)
        len_project, len_rows = fill("length", sorted(order, key=lambda row: -len(row["text"])))
        selected: dict[str, list[bool]] = {arm: [] for arm in ARMS}
        for index, count in enumerate(counts):
            for arm, project, rows_by_id in (
                ("uncertainty", unc_project, unc_rows),
                ("arrival", arr_project, arr_rows),
                ("length", len_project, len_rows),
            ):
                selected[arm] += annotate_next(project, rows_by_id, count - len(selected[arm]))
                share = round(sum(selected[arm]) / len(selected[arm]), 3)
                if arm == "arrival" and index == 0:  # the same seed batch: trained once, above
                    record["arms"][arm][str(count)] = {**record["arms"]["uncertainty"][str(count)],
                                                       "annotated_poor_share": share, "shared_seed_batch": True}  # fmt: skip
                    continue
                version, timing = train(project, seed)
                record["arms"][arm][str(count)] = {
                    **measure(version),
                    **timing,
                    "annotated_poor_share": share,
                }
                print(f"seed {seed} {arm} {count}: {record['arms'][arm][str(count)]}", flush=True)
                save()
                if arm == "uncertainty" and index + 1 < len(counts):
                    started = time.perf_counter()
                    services.critic_version_activate(version=version)
                    unannotated = list(
                        Generation.objects.filter(prompt__project=project)
                        .exclude(annotations__status=Annotation.Status.SUBMITTED)
                        .values_list("id", flat=True)
                    )
                    critic_worker.critic_predict_run(critic_version_id=version.pk, generation_ids=unannotated)
                    record["score_s"].append(
                        {"outputs": len(unannotated), "s": round(time.perf_counter() - started, 1)}
                    )
        record["complete"] = True
        save()
    save()
    print_table(summarize([args.out]))


if __name__ == "__main__":
    main()

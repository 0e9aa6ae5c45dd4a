"""Agreement for 10,000 outputs × 3 annotators (about 90,000 spans): how long the whole batch takes.

Two measurements:

1. ``core``: ``text2grad.agreement.batch_agreement`` on synthetic outputs (no database): character alpha,
   pairwise span F1, pair coincidences and rating coincidences for every output;
2. ``--database-url``: the same data seeded into a throwaway PostgreSQL database, then
   ``annotations.services.agreement_refresh`` over all outputs (read spans, compute, write one
   OutputAgreement row per output), and the incremental path: one output recomputed after one annotation
   changes (what a submission pays).

    .venv/bin/python benchmarks/bench_agreement.py --outputs 10000 --annotators 3 --repeat 3
    .venv/bin/python benchmarks/bench_agreement.py --database-url postgres://postgres@127.0.0.1:5432/t2g_bench_agreement
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from text2grad.agreement import OutputInput, batch_agreement


def synthetic(outputs: int, annotators: int, seed: int = 0) -> list[OutputInput]:
    """Outputs of 300-900 characters; each annotator draws about 3 spans near 3 'true' spans, sometimes
    with the other label, sometimes missing one, sometimes adding one."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(outputs):
        length = int(rng.integers(300, 900))
        truth = []
        for _ in range(3):
            start = int(rng.integers(0, length - 60))
            end = start + int(rng.integers(5, 60))
            polarity = int(rng.choice([-1, 1]))
            truth.append((start, end, polarity))
        coders = []
        for _ in range(annotators):
            spans = []
            for start, end, polarity in truth:
                if rng.random() < 0.15:
                    continue
                flip = -polarity if rng.random() < 0.1 else polarity
                shift = int(rng.integers(-8, 9))
                s, e = max(0, start + shift), min(length, end + int(rng.integers(-8, 9)))
                if s < e:
                    spans.append((s, e, flip, "poor" if flip < 0 else "good"))
            if rng.random() < 0.15:
                s = int(rng.integers(0, length - 20))
                spans.append((s, s + 20, -1, "poor"))
            coders.append(spans)
        ratings = [int(rng.integers(1, 6)) for _ in range(annotators)]
        result.append(OutputInput(length=length, coders=coders, ratings=ratings))
    return result


def bench_core(args) -> None:
    data = synthetic(args.outputs, args.annotators)
    spans = sum(len(c) for o in data for c in o.coders)
    chars = sum(o.length for o in data)
    times, cpu = [], []
    for _ in range(args.repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = batch_agreement(data)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(f"core: {args.outputs} outputs x {args.annotators} annotators, {spans} spans, {chars} characters")
    print(f"core: batch_agreement median {statistics.median(times):.2f} s (runs: "
          + ", ".join(f"{t:.2f}" for t in times) + f"); CPU time median {statistics.median(cpu):.2f} s")  # fmt: skip
    print(f"core: mean alpha {np.nanmean(result.alpha):.3f}, mean span F1 {np.nanmean(result.span_f1):.3f}")


def bench_database(args) -> None:
    """Seed a throwaway database, then time the full refresh and one incremental recompute."""
    import django
    import psycopg

    url = args.database_url
    admin_url, name = url.rsplit("/", 1)
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")
    # A local tool: the development profile (the settings default to production).
    os.environ.setdefault("DEBUG", "1")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from annotations.models import Annotation, Generation, OutputAgreement, Project, Prompt, Span
    from annotations.services import agreement_refresh

    try:
        call_command("migrate", verbosity=0)
        data = synthetic(args.outputs, args.annotators)
        started = time.perf_counter()
        project = Project.objects.create(name="bench", annotations_per_output=args.annotators)
        users = [get_user_model().objects.create(username=f"bench{i}") for i in range(args.annotators)]
        prompts = Prompt.objects.bulk_create(
            [Prompt(project=project, text=f"p{i}", content_hash=f"{i:064d}") for i in range(len(data))]
        )
        generations = Generation.objects.bulk_create(
            [
                Generation(
                    prompt=p, text="x" * o.length, content_hash=f"{i:064d}", annotation_count=args.annotators
                )
                for i, (p, o) in enumerate(zip(prompts, data, strict=True))
            ]
        )
        now = timezone.now()
        annotations = Annotation.objects.bulk_create(
            [
                Annotation(
                    generation=g, annotator=u, status="submitted", submitted_at=now, rating=o.ratings[k]
                )
                for g, o in zip(generations, data, strict=True)
                for k, u in enumerate(users)
            ]
        )
        spans = []
        for index, output in enumerate(data):
            for k, coder in enumerate(output.coders):
                annotation = annotations[index * args.annotators + k]
                for s, e, pol, label in coder:
                    spans.append(Span(annotation=annotation, start=s, end=e, text="x" * (e - s), label=label,
                                      polarity=pol))  # fmt: skip
        Span.objects.bulk_create(spans, batch_size=5000)
        print(
            f"database: seeded {len(generations)} outputs, {len(spans)} spans in {time.perf_counter() - started:.1f} s"
        )
        ids = [g.pk for g in generations]
        times, cpu = [], []
        for _ in range(args.repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            agreement_refresh(generation_ids=ids)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        assert OutputAgreement.objects.count() == len(ids)
        print(f"database: agreement_refresh over all outputs median {statistics.median(times):.2f} s (runs: "
              + ", ".join(f"{t:.2f}" for t in times) + f"); this process's CPU time median "
              f"{statistics.median(cpu):.2f} s")  # fmt: skip
        single = []
        for generation_id in ids[:50]:
            started = time.perf_counter()
            agreement_refresh(generation_ids=[generation_id])
            single.append(time.perf_counter() - started)
        print(
            f"database: one output recomputed (incremental) median {1000 * statistics.median(single):.1f} ms"
        )
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="also time the database path (a throwaway database)")
    args = parser.parse_args()
    bench_core(args)
    if args.database_url:
        bench_database(args)


if __name__ == "__main__":
    main()

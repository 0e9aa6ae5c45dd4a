"""Export throughput and memory: `spans` JSONL from PostgreSQL, at 10,000 and 100,000 annotations.

Populates a dedicated database (default ``postgres://postgres@127.0.0.1:5432/t2g_bench_export``, created and
migrated if missing, reused if already populated) with 100,000 submitted annotations carrying about 300,000
spans (1–5 each, mean 3), on 50,000 outputs of 25,000 prompts (realistic lengths, some non-ASCII). Then, for
each size, it runs the export exactly as the worker does (``export_jobs.export_run``: server-side cursor, spans
per chunk, progress updates, temp file, rename, content hash) in a fresh subprocess, and reports rows per
second and the peak RSS of that process (``resource.getrusage``), next to its RSS before the export began.
The smaller export selects the first 10,000 annotations by submission time, as a researcher would.

    .venv/bin/python benchmarks/bench_export.py            # populate if needed, then measure
    .venv/bin/python benchmarks/bench_export.py --formats jsonl,csv,parquet --repeats 3

Anchor: Label Studio 1.23.2 exported 10,000 annotated tasks as JSON in 10–12 s (about 900 rows/s).
Goal here: at least 20,000 rows/s, and peak RSS under 300 MB that does not grow with the row count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/t2g_bench_export"
N_ANNOTATIONS = 100_000
N_OUTPUTS = 50_000
N_PROMPTS = 25_000
N_ANNOTATORS = 40
SMALL = 10_000
BASE_TIME = "2026-01-01T00:00:00+00:00"

WORDS = [
    "the",
    "model",
    "returns",
    "a",
    "summary",
    "of",
    "the",
    "article",
    "but",
    "omits",
    "key",
    "figures",
    "and",
    "misstates",
    "who",
    "signed",
    "the",
    "agreement",
    "in",
    "March",
    "while",
    "the",
    "second",
    "paragraph",
    "repeats",
    "the",
    "first",
    "one",
    "so",
    "the",
    "reader",
    "learns",
    "nothing",
    "new",
    "about",
    "costs",
    "risks",
    "or",
    "the",
    "timeline",
    "def",
    "return",
    "if",
    "else",
    "for",
    "in",
    "range",
    "len",
    "list",
    "dict",
    "value",
]
EXTRA = ["café", "naïve", "東京", "数据", "😀", "👍🏽", "—", "“quoted”"]


def _setup_django(database_url: str, var_dir: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["T2G_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")
    # A local tool: the development profile (the settings default to production).
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _ensure_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}", file=sys.stderr)


def _text(rng: random.Random, low: int, high: int) -> str:
    target = rng.randint(low, high)
    words, size = [], 0
    while size < target:
        word = rng.choice(EXTRA) if rng.random() < 0.03 else rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def populate() -> None:
    """Bulk-create the dataset once; a populated database is reused as it is."""
    from datetime import datetime, timedelta

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction

    call_command("migrate", verbosity=0)
    from annotations.models import Annotation, Generation, Project, Prompt, Span, content_hash
    from training.models import ModelVersion

    have = Annotation.objects.count()
    if have >= N_ANNOTATIONS:
        print(f"reusing {have:,} annotations and {Span.objects.count():,} spans", file=sys.stderr)
        _analyze()
        return
    if have:
        raise SystemExit(f"the benchmark database holds {have:,} annotations, not {N_ANNOTATIONS:,}: drop it")
    rng = random.Random(6)
    started = time.perf_counter()
    with transaction.atomic():
        user_model = get_user_model()
        users = user_model.objects.bulk_create(
            [user_model(username=f"bench-annotator-{i}", password="!") for i in range(N_ANNOTATORS)]
        )
        project = Project.objects.create(name="Export benchmark", kind="summarization")
        version = ModelVersion.objects.create(name="bench-v0", base_model="bench", is_active=True)
        prompts = []
        for i in range(N_PROMPTS):
            text = f"Summarize article {i}: " + _text(rng, 150, 600)
            prompts.append(Prompt(project=project, text=text, content_hash=content_hash(text)))
        Prompt.objects.bulk_create(prompts, batch_size=5000)
        outputs = []
        for i in range(N_OUTPUTS):
            prompt = prompts[i % N_PROMPTS]
            text = _text(rng, 200, 1200)
            outputs.append(
                Generation(
                    prompt=prompt,
                    model_version=version,
                    source_model=version.name,
                    text=text,
                    content_hash=content_hash(prompt.text, text),
                    annotation_count=2,
                )
            )
        Generation.objects.bulk_create(outputs, batch_size=5000)
        base = datetime.fromisoformat(BASE_TIME)
        annotations = []
        for i in range(N_ANNOTATIONS):
            output = outputs[i % N_OUTPUTS]
            annotator = users[(i // N_OUTPUTS + 2 * (i % N_OUTPUTS)) % N_ANNOTATORS]
            annotations.append(
                Annotation(
                    generation=output,
                    annotator=annotator,
                    status="submitted",
                    rating=rng.randint(1, 5),
                    overall_critique=_text(rng, 20, 200),
                    submitted_at=base + timedelta(seconds=i),
                )
            )
        Annotation.objects.bulk_create(annotations, batch_size=5000)
        spans = []
        for annotation in annotations:
            text = annotation.generation.text
            for _ in range(rng.randint(1, 5)):
                start = rng.randrange(0, len(text) - 20)
                end = min(len(text), start + rng.randint(5, 80))
                positive = rng.random() < 0.4
                spans.append(
                    Span(
                        annotation=annotation,
                        start=start,
                        end=end,
                        text=text[start:end],
                        label="good" if positive else "poor",
                        polarity=1 if positive else -1,
                        weight=1.0,
                        critique=_text(rng, 10, 120),
                        origin="manual",
                    )
                )
            if len(spans) >= 20_000:
                Span.objects.bulk_create(spans, batch_size=5000)
                spans = []
        Span.objects.bulk_create(spans, batch_size=5000)
    _analyze()
    print(
        f"populated {N_ANNOTATIONS:,} annotations and {Span.objects.count():,} spans "
        f"in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )


def _analyze() -> None:
    """Fresh planner statistics: after a bulk load the planner would otherwise guess (and seq-scan)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _rss_mb() -> float:
    """Peak RSS of this process so far (Linux reports ru_maxrss in kilobytes).

    ru_maxrss survives exec, so the parent of the measuring processes stays small (it never imports Django).
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hwm_mb() -> float:
    """The kernel's own high-water mark for this process image (VmHWM), as a cross-check."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(size: int, fmt: str) -> dict:
    """In this (fresh) process: one export of ``size`` annotations, timed, with the process's peak RSS."""
    from datetime import datetime, timedelta

    from annotations.exports import jobs as export_jobs

    query = {"status": "submitted"}
    if size < N_ANNOTATIONS:
        cutoff = datetime.fromisoformat(BASE_TIME) + timedelta(seconds=size)
        query["submitted_before"] = cutoff.isoformat()
    export = export_jobs.export_create(kind="spans", fmt=fmt, query=query, enqueue=False)
    rss_before = _rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    export = export_jobs.export_run(export_id=export.pk)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    from artifacts import default_store

    store = default_store()
    result = {
        "rows": export.row_count,
        "format": fmt,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows_per_s": export.row_count / seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb(),
        "vm_hwm_mb": _hwm_mb(),
        "file_mb": store.size(export.file_path) / 1e6,
        "store": store.url.split("://")[0],
        "load": os.getloadavg()[0],
        "spans": None,
    }
    if fmt == "jsonl":
        with store.open(export.file_path) as handle:
            result["spans"] = sum(len(json.loads(line)["spans"]) for line in handle)
    store.delete(export.file_path)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--formats", default="jsonl", help="comma-separated: jsonl,csv,parquet")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--sizes", default=f"{SMALL},{N_ANNOTATIONS}", help="comma-separated annotation counts"
    )
    parser.add_argument(
        "--stores", default="local", help="comma-separated: local,s3 (s3: a moto_server here)"
    )
    parser.add_argument(
        "--baseline",
        help="another checkout of the repository (e.g. `git archive <commit> | tar -x -C DIR`): its export "
        "is measured too, alternating run by run with this one's, local store only",
    )
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # internal: child process
    parser.add_argument("--populate", action="store_true", help=argparse.SUPPRESS)  # internal: child
    parser.add_argument("--format", default="jsonl", help=argparse.SUPPRESS)
    args = parser.parse_args()

    var_dir = os.environ.get("BENCH_VAR_DIR") or tempfile.mkdtemp(prefix="t2g-bench-export-")
    if args.measure:
        _setup_django(args.database_url, var_dir)
        print(json.dumps(measure(args.measure, args.format)))
        return

    if args.populate:
        _setup_django(args.database_url, var_dir)
        populate()
        return

    _ensure_database(args.database_url)
    # Populating holds the whole dataset in memory: a child does it, so this parent stays small.
    subprocess.run([sys.executable, __file__, "--populate", "--database-url", args.database_url], check=True)
    moto = None
    targets = []  # (label, script, extra environment)
    for store in args.stores.split(","):
        env = {}
        if store == "s3":
            from bench_storage import CREDENTIALS, start_moto

            moto, endpoint = start_moto()
            env = {
                "T2G_STORAGE_URL": "s3://bench/exports-bench",
                "T2G_STORAGE_ENDPOINT_URL": endpoint,
                "T2G_STORAGE_ACCESS_KEY_ID": CREDENTIALS["key"],
                "T2G_STORAGE_SECRET_ACCESS_KEY": CREDENTIALS["secret"],
            }
        targets.append((f"this checkout, {store} store", Path(__file__), env))
        if store == "local" and args.baseline:
            targets.append(
                ("baseline, local store", Path(args.baseline) / "benchmarks" / "bench_export.py", {})
            )
    try:
        results = _run_all(args, targets, var_dir)
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)
    print(
        f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at the "
        f"end, database {args.database_url}\n"
    )
    print("| code, store | format | annotations | spans | rows/s, median | rows/s, best | wall s, median | CPU s of "
          "the exporting process | load (1 min) | peak RSS (ru_maxrss) | VmHWM | file |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        spans = f"{r['spans']:,}" if r["spans"] is not None else "—"
        print(
            f"| {r['target']} | {r['format']} | {r['rows']:,} | {spans} | {r['median_rows_per_s']:,.0f} | "
            f"{r['rows_per_s']:,.0f} | {r['rows'] / r['median_rows_per_s']:.2f} | {r['median_cpu_s']:.2f} | "
            f"{r['loads']} | {r['max_peak_rss_mb']:.0f} MB | {r['vm_hwm_mb']:.0f} MB | {r['file_mb']:.0f} MB |"
        )


def _run_all(args, targets: list, var_dir: str) -> list[dict]:
    """Every (format, size): the targets' runs interleaved (A, B, A, B, ...) so load changes hit all."""
    results = []
    for fmt in args.formats.split(","):
        for size in (int(n) for n in args.sizes.split(",")):
            runs: dict[str, list] = {label: [] for label, _, _ in targets}
            for _ in range(args.repeats):
                for label, script, env in targets:
                    child = subprocess.run(
                        [sys.executable, str(script), "--measure", str(size), "--format", fmt,
                         "--database-url", args.database_url],
                        env={**os.environ, **env, "BENCH_VAR_DIR": var_dir},
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    run = json.loads(child.stdout.strip().splitlines()[-1])
                    run["load"] = run.get("load", os.getloadavg()[0])
                    runs[label].append(run)
                    print(f"{label} {fmt} {size:,}: {json.dumps(run)}", file=sys.stderr, flush=True)
            for label, done in runs.items():
                best = max(done, key=lambda r: r["rows_per_s"])
                results.append(
                    {
                        **best,
                        "target": label,
                        "median_rows_per_s": statistics.median(r["rows_per_s"] for r in done),
                        "median_cpu_s": statistics.median(r["cpu_seconds"] for r in done),
                        "max_peak_rss_mb": max(r["peak_rss_mb"] for r in done),
                        "loads": " / ".join(f"{r['load']:.1f}" for r in done),
                    }
                )
    return results


if __name__ == "__main__":
    main()

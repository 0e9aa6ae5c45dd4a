"""Artifacts through object storage vs the local disk: model versions, and 100,000-row exports.

(a) Publish and first load of a version of the embedded SmolLM2's adapter (LoRA with the default
    TrainingConfig + value head, as a round saves it): before the artifact store (``save_policy_atomic``
    into the models folder, then load), through the local store (upload + sha256 read-back + manifest,
    then load), and through S3 (the same into a moto_server bucket, then fetch into an empty cache,
    then load). Each repeat uses a fresh key and a fresh cache, so every load is a *first* load.
(b) ``spans`` JSONL exports of 100,000 annotations (the database of ``bench_export.py``, populated if
    missing) written by ``export_jobs.export_run`` to the local store and to S3, each in a fresh process:
    rows/s and that process's peak RSS.

The S3 server is moto's ``moto_server`` on this machine (an in-memory Python server: it measures our code
paths and protocol overheads, not a production object store's bandwidth).

    .venv/bin/python benchmarks/bench_storage.py --repeats 3
    .venv/bin/python benchmarks/bench_storage.py --skip-exports
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

CREDENTIALS = {"key": "bench", "secret": "bench", "region": "us-east-1"}
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/t2g_storage_bench"


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    import s3fs

    s3fs.S3FileSystem(key="bench", secret="bench", endpoint_url=endpoint).mkdir("bench")
    return proc, endpoint


def _median(values: list[float]) -> float:
    return statistics.median(values)


# --- (a) versions -------------------------------------------------------------------------------------
def bench_versions(endpoint: str, repeats: int, scratch: Path) -> list[dict]:
    import torch

    from artifacts import ArtifactStore
    from artifacts.folders import folder_fetch, folder_publish
    from text2grad import model_store
    from text2grad.config import TrainingConfig
    from text2grad.policy import build_policy, save_policy, save_policy_atomic

    torch.manual_seed(0)
    base = model_store.ensure_base(models_dir=REPO_ROOT / "var" / "models")
    base_model, _ = model_store.load(base, None, trainable=True)
    policy = build_policy(base_model, TrainingConfig())
    source = scratch / "adapter"
    save_policy(policy, source)
    size_mb = sum(p.stat().st_size for p in source.rglob("*") if p.is_file()) / 1e6

    stores = {
        "local disk, before the store (save_policy_atomic + load)": None,
        "local store (save + publish + verify, load in place)": ArtifactStore(f"file://{scratch / 'store'}"),
        "S3 / moto_server (save + publish + verify, fetch to cache, load)": ArtifactStore(
            "s3://bench/studio", options={"endpoint_url": endpoint, **CREDENTIALS}
        ),
    }
    rows = []
    for label, store in stores.items():
        publish, fetch, load = [], [], []
        for repeat in range(repeats):
            name = f"v{repeat}-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            if store is None:  # what a round did before: write the version folder in place, atomically
                folder = save_policy_atomic(policy, scratch / "models" / name)
                publish.append(time.perf_counter() - started)
                fetch.append(0.0)
            else:  # what a round does now: save to a scratch folder, publish it, and any worker fetches it
                save_policy(policy, scratch / "publish" / name)
                digest = folder_publish(store, scratch / "publish" / name, f"models/versions/{name}")
                publish.append(time.perf_counter() - started)
                started = time.perf_counter()
                folder = folder_fetch(store, f"models/versions/{name}", digest, scratch / f"cache-{name}")
                fetch.append(time.perf_counter() - started)
            started = time.perf_counter()
            model_store.load(base, folder)
            load.append(time.perf_counter() - started)
        rows.append(
            {
                "path": label,
                "adapter_mb": size_mb,
                "publish_s": _median(publish),
                "fetch_s": _median(fetch),
                "load_s": _median(load),
                "total_s": _median([a + b + c for a, b, c in zip(publish, fetch, load, strict=True)]),
            }
        )
        print(f"{label}: publish {publish} fetch {fetch} load {load}", file=sys.stderr)
    return rows


# --- (b) exports --------------------------------------------------------------------------------------
def measure_export() -> dict:
    """In this fresh process (Django set up by the caller): one 100,000-row spans export to the store."""
    from bench_export import _hwm_mb, _rss_mb

    from annotations.exports import jobs as export_jobs
    from artifacts import default_store

    export = export_jobs.export_create(
        kind="spans", fmt="jsonl", query={"status": "submitted"}, enqueue=False
    )
    rss_before = _rss_mb()
    started = time.perf_counter()
    export = export_jobs.export_run(export_id=export.pk)
    seconds = time.perf_counter() - started
    store = default_store()
    result = {
        "rows": export.row_count,
        "seconds": seconds,
        "rows_per_s": export.row_count / seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb(),
        "vm_hwm_mb": _hwm_mb(),
        "file_mb": store.size(export.file_path) / 1e6,
        "store": store.url.split("://")[0],
    }
    store.delete(export.file_path)
    return result


def bench_exports(endpoint: str, repeats: int, database_url: str, scratch: Path) -> list[dict]:
    from bench_export import _ensure_database

    _ensure_database(database_url)
    subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_export.py"), "--populate",
                    "--database-url", database_url], check=True)  # fmt: skip
    targets = {
        "local store (T2G_VAR_DIR)": {},
        "S3 / moto_server": {
            "T2G_STORAGE_URL": "s3://bench/exports-bench",
            "T2G_STORAGE_ENDPOINT_URL": endpoint,
            "T2G_STORAGE_ACCESS_KEY_ID": CREDENTIALS["key"],
            "T2G_STORAGE_SECRET_ACCESS_KEY": CREDENTIALS["secret"],
        },
    }
    rows = []
    for label, extra in targets.items():
        runs = []
        for _ in range(repeats):
            env = {**os.environ, **extra, "BENCH_VAR_DIR": str(scratch / "export-var")}
            child = subprocess.run(
                [sys.executable, __file__, "--measure-export", "--database-url", database_url],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"{label}: {json.dumps(runs)}", file=sys.stderr)
        rows.append(
            {
                "target": label,
                "rows": runs[0]["rows"],
                "rows_per_s": _median([r["rows_per_s"] for r in runs]),
                "seconds": _median([r["seconds"] for r in runs]),
                "rss_before_mb": _median([r["rss_before_mb"] for r in runs]),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "vm_hwm_mb": max(r["vm_hwm_mb"] for r in runs),
                "file_mb": runs[0]["file_mb"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--skip-exports", action="store_true")
    parser.add_argument("--skip-versions", action="store_true")
    parser.add_argument("--measure-export", action="store_true", help=argparse.SUPPRESS)  # internal: child
    args = parser.parse_args()

    if args.measure_export:
        from bench_export import _setup_django

        _setup_django(args.database_url, os.environ["BENCH_VAR_DIR"])
        print(json.dumps(measure_export()))
        return

    scratch = Path(tempfile.mkdtemp(prefix="t2g-bench-storage-"))
    moto, endpoint = start_moto()
    load_before = os.getloadavg()[0]
    try:
        # Exports first: ru_maxrss survives exec, so their processes must not inherit a model-sized parent.
        exports = (
            [] if args.skip_exports else bench_exports(endpoint, args.repeats, args.database_url, scratch)
        )
        versions = [] if args.skip_versions else bench_versions(endpoint, args.repeats, scratch)
    finally:
        moto.terminate()
        moto.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; medians of {args.repeats} runs\n"
    )
    if versions:
        print("| path | adapter + value head | publish s | fetch s | load s (base + adapter) | total s |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in versions:
            print(f"| {r['path']} | {r['adapter_mb']:.1f} MB | {r['publish_s']:.2f} | {r['fetch_s']:.2f} | "
                  f"{r['load_s']:.2f} | {r['total_s']:.2f} |")  # fmt: skip
        print()
    if exports:
        print(
            "| spans JSONL export to | rows | rows/s | wall s | RSS before | peak RSS (ru_maxrss) | VmHWM | file |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in exports:
            print(f"| {r['target']} | {r['rows']:,} | {r['rows_per_s']:,.0f} | {r['seconds']:.1f} | "
                  f"{r['rss_before_mb']:.0f} MB | {r['peak_rss_mb']:.0f} MB | {r['vm_hwm_mb']:.0f} MB | "
                  f"{r['file_mb']:.0f} MB |")  # fmt: skip


if __name__ == "__main__":
    main()

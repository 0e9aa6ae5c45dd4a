"""Download time of a version of the embedded SmolLM2-135M-Instruct, adapter and merged, via the local store.

A version like a round's (LoRA with the default TrainingConfig, its B factors moved off zero, plus the
value head) is published to a local store in a temporary folder. For each kind it measures:

- **build**: the worker's ``download_build_run`` (merged: load base + adapter, ``merge_and_unload``, save
  fp32 safetensors + tokenizer; both: the card and its PNG, publish with sha256 read-back), cold, once;
- **request again**: ``download_request`` for the same version and card (what a second download costs
  before its bytes: the card is collected again and the stored build found);
- **stream**: the web route ``/training/downloads/<id>/file/`` through Django's test client, every byte
  consumed, in a fresh process that imports no torch: seconds, MB/s, and that process's peak RSS
  (``VmHWM``) before and after the request: the file is never held in memory, so the peak hardly moves
  even for the 540 MB merged folder.

    .venv/bin/python benchmarks/bench_downloads.py --repeats 3 --out benchmarks/results/downloads.json
    .venv/bin/python benchmarks/bench_downloads.py --repeats 1 --verify   # + load each outside the studio

Uses its own database (default ``postgres://postgres@127.0.0.1:5432/t2g_bench_downloads``, created and
migrated if missing) and the base model cache under ``var/models`` (``make model``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/t2g_bench_downloads"


def _environment(database_url: str, scratch: Path) -> dict:
    return {
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "text2grad_web.settings",
        "T2G_VAR_DIR": str(scratch / "var"),  # the local store: a temporary folder
        "T2G_MODELS_DIR": str(REPO_ROOT / "var" / "models"),  # the converted base model cache
        "T2G_MODEL_CACHE_DIR": str(scratch / "cache"),
        "T2G_BASE_MODEL": "",
    }


def _django(env: dict) -> None:
    os.environ.update(env)
    import django

    django.setup()


def _ensure_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (``ru_maxrss`` would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stream_once(download_id: int) -> dict:
    """Child process: stream one build through the web route; no torch is imported here."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.get(username="bench-researcher")
    client = Client()
    client.force_login(user)
    before_mb = _status_mb("VmHWM")
    started = time.perf_counter()
    response = client.get(f"/training/downloads/{download_id}/file/", HTTP_HOST="localhost")
    assert response.status_code == 200, response.status_code
    size = sum(len(chunk) for chunk in response.streaming_content)
    seconds = time.perf_counter() - started
    assert size == int(response["Content-Length"])
    assert "torch" not in sys.modules
    return {"seconds": seconds, "bytes": size, "peak_rss_mb": _status_mb("VmHWM"), "rss_before_mb": before_mb}


VERIFY = """
import sys, numpy as np, torch
from transformers import AutoModelForCausalLM
kind, folder, base, out = sys.argv[1:5]
if kind == "adapter":
    from peft import PeftModel
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), folder)
else:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
with torch.no_grad():
    np.save(out, model.eval()(input_ids=torch.tensor([[1, 504, 2205, 314, 260, 3467, 30, 198]])).logits.numpy())
"""


def verify(kind: str, folder: Path, base: Path, studio, scratch: Path) -> float:
    """Load the built folder with plain transformers/peft in ``python -I`` (no repo on the path) and
    return the max abs logit difference from the studio's own model of the version."""
    import numpy as np

    out = scratch / f"{kind}.npy"
    subprocess.run(
        [sys.executable, "-I", "-c", VERIFY, kind, str(folder), str(base), str(out)],
        check=True,
        cwd=scratch,
        env={"PATH": os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1"},
    )
    return float(np.abs(np.load(out) - studio).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--verify", action="store_true", help="also load each folder outside the studio and compare logits"
    )
    parser.add_argument("--stream-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stream_child:
        _django({})  # the parent passed the environment
        print(json.dumps(stream_once(args.stream_child)))
        return

    _ensure_database(args.database_url)
    with tempfile.TemporaryDirectory(prefix="bench-downloads-") as scratch_name:
        scratch = Path(scratch_name)
        env = _environment(args.database_url, scratch)
        _django(env)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import torch
        from django.contrib.auth import get_user_model

        from annotations import roles
        from text2grad import model_store
        from text2grad.config import TrainingConfig
        from text2grad.policy import build_policy, save_policy
        from training import services
        from training.models import ModelDownload, ModelVersion
        from training.services import downloads
        from training.worker import merge, runtime
        from training.worker.versions import version_publish

        user, _ = get_user_model().objects.get_or_create(username="bench-researcher")
        roles.assign_role(user, roles.RESEARCHER)
        torch.manual_seed(0)
        base_model, _ = model_store.load(runtime.base_dir(), None, trainable=True)
        policy = build_policy(base_model, TrainingConfig())
        with torch.no_grad():
            for name, parameter in policy.model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.01)
        save_policy(policy, scratch / "adapter")
        del policy, base_model
        version_name = f"bench-{int(time.time())}"
        key, digest = version_publish(source_dir=scratch / "adapter", name=version_name)
        version = ModelVersion.objects.create(
            name=version_name,
            base_model=services.base_model_reference(),
            storage_key=key,
            content_hash=digest,
        )

        studio = None
        if args.verify:
            studio_model, _ = model_store.load(runtime.base_dir(), scratch / "adapter")
            with torch.no_grad():
                ids = torch.tensor([[1, 504, 2205, 314, 260, 3467, 30, 198]])
                studio = studio_model(input_ids=ids).logits.numpy()
            del studio_model
        results = {}
        for kind in (ModelDownload.Kind.ADAPTER, ModelDownload.Kind.MERGED):
            download = downloads.download_request(version=version, kind=kind, user=user)
            started = time.perf_counter()
            merge.download_build_run(download_id=download.pk)
            build_s = time.perf_counter() - started
            started = time.perf_counter()
            again = downloads.download_request(version=version, kind=kind, user=user)
            again_s = time.perf_counter() - started
            assert again.pk == download.pk
            streams = []
            for _ in range(args.repeats):
                child = subprocess.run(
                    [sys.executable, __file__, "--stream-child", str(download.pk)],
                    env={**os.environ, **env},
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=REPO_ROOT,
                )
                streams.append(json.loads(child.stdout.strip().splitlines()[-1]))
            seconds = statistics.median(s["seconds"] for s in streams)
            size = streams[0]["bytes"]
            results[kind] = {
                "build_s": round(build_s, 2),
                "request_again_s": round(again_s, 3),
                "tar_mb": round(size / 1e6, 1),
                "stream_s_median": round(seconds, 3),
                "stream_mb_per_s": round(size / 1e6 / seconds, 1),
                "stream_rss_before_mb": round(max(s["rss_before_mb"] for s in streams), 1),
                "stream_peak_rss_mb": round(max(s["peak_rss_mb"] for s in streams), 1),
                "streams": [round(s["seconds"], 3) for s in streams],
            }
            if args.verify:
                from artifacts import default_store

                download.refresh_from_db()
                folder = default_store().local_path(download.storage_key)
                results[kind]["max_abs_logit_difference"] = verify(
                    kind, folder, runtime.base_dir(), studio, scratch
                )
            print(f"{kind}: {json.dumps(results[kind])}", flush=True)
        ModelDownload.objects.filter(version=version).delete()
        version.delete()
        report = {
            "load": os.getloadavg(),
            "cpus": os.cpu_count(),
            "repeats": args.repeats,
            "results": results,
        }
        print(json.dumps(report, indent=2))
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Outputs from production and webhooks (issue 26): what one ingest request costs, and what one webhook
delivery costs, on this machine's PostgreSQL.

Boots Django with the test settings against a throwaway test database (``test_<DATABASE_URL's name>``,
created and dropped here), then measures:

1. ``POST /api/v1/projects/{id}/outputs/`` through the full stack (key check, throttle, JSON, one
   transaction): batches of 1 and 100 records, as records per second and milliseconds per request
   (p50/p95); the same batches sent again (idempotent replays: nothing written). New records are written
   by two arms that alternate request by request in the same run: ``batched`` (the service as it is: one
   insert per table) and ``per_record`` (the same requests through ``_ingest_each``, the record-by-record
   path the service falls back to under a race, which was the only path before issue 26's follow-up);
2. webhooks: the cost a promotion pays to record events for 10 subscribed webhooks (rows + outbox, in
   its transaction), and one delivery attempt to a local receiver (sign, POST, log), p50/p95.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/t2g_automation \\
      .venv/bin/python benchmarks/bench_ingest_webhooks.py --requests 40      # about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> dict:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p95_ms": round(_pct(values, 0.95) * 1000, 2),
    }


def bench_ingest(requests: int) -> dict:
    from rest_framework.test import APIClient

    from annotations.services import ingest, project_create

    project = project_create(name="bench ingest", kind="general")
    _, raw = ingest.ingest_key_create(project=project, name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    url = f"/api/v1/projects/{project.pk}/outputs/"
    arms = {"batched": ingest._ingest_batch, "per_record": ingest._ingest_each}
    results = {}
    for batch in (1, 100):
        bodies = [
            {
                "records": [
                    {
                        "prompt": f"Prompt {r % 50} of the bench.",
                        "output": f"Output {n}-{r} " * 20,
                        "source_model": "bench",
                        "metadata": {"n": n, "r": r},
                        "idempotency_key": f"b{batch}-{n}-{r}",
                    }
                    for r in range(batch)
                ]
            }  # fmt: skip
            for n in range(requests)
        ]
        for label, expect in (("new", 201), ("replay", 200)):
            times: dict[str, list[float]] = {arm: [] for arm in arms}
            for n, body in enumerate(bodies):
                arm = list(arms)[n % 2] if label == "new" else "batched"
                ingest._ingest_batch = arms[arm]
                started = time.perf_counter()
                response = client.post(url, body, format="json")
                times[arm].append(time.perf_counter() - started)
                assert response.status_code == expect, response.content[:300]
            ingest._ingest_batch = arms["batched"]
            for arm, values in times.items():
                if values:
                    key = f"batch_{batch}_{label}" + ("" if arm == "batched" else f"_{arm}")
                    results[key] = {
                        **_ms(values),
                        "records_per_s": round(batch * len(values) / sum(values), 1),
                    }
        per_record, batched = results[f"batch_{batch}_new_per_record"], results[f"batch_{batch}_new"]
        results[f"batch_{batch}_new_speedup_p50"] = round(per_record["p50_ms"] / batched["p50_ms"], 2)
    return results


def bench_webhooks(deliveries: int) -> dict:
    from annotations import webhooks
    from annotations.models import Webhook, WebhookDelivery
    from tests.automation.receiver import Receiver
    from training import services
    from training.models import ModelVersion

    v0 = ModelVersion.objects.create(name="bench-v0", base_model="tiny", is_active=True)
    v1 = ModelVersion.objects.create(name="bench-v1", base_model="tiny", parent=v0)
    with Receiver() as receiver:
        hooks = [webhooks.webhook_create(url=receiver.url, events=["version.promoted", "version.rolled_back"])
                 for _ in range(10)]  # fmt: skip
        receiver.secret = hooks[0].secret
        Webhook.objects.update(secret=hooks[0].secret)  # the one receiver checks every delivery
        bare, with_hooks = [], []
        for n in range(deliveries // 10):
            for active, bucket in ((True, with_hooks), (False, bare)):
                for hook in hooks:
                    hook.is_active = active
                    hook.save(update_fields=["is_active"])
                started = time.perf_counter()
                services.model_version_activate(version=v1 if n % 2 == 0 else v0)
                bucket.append(time.perf_counter() - started)
                services.model_version_activate(version=v0 if n % 2 == 0 else v1)
        attempts = []
        for delivery in WebhookDelivery.objects.filter(status="pending").order_by("id")[:deliveries]:
            started = time.perf_counter()
            assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "delivered"
            attempts.append(time.perf_counter() - started)
        signed = sum(1 for r in receiver.requests if r["signature_ok"])
    return {
        "activate_without_webhooks": _ms(bare),
        "activate_with_10_webhooks": _ms(with_hooks),
        "delivery_attempt": _ms(attempts),
        "deliveries": len(attempts),
        "signatures_verified": signed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per batch size")
    parser.add_argument("--deliveries", type=int, default=100)
    parser.add_argument("--out", default="ingest_webhooks.json", help="file name under benchmarks/results/")
    args = parser.parse_args()

    import django
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    django.setup()
    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False)
    try:
        from django.core.cache import cache
        from django.db import connection

        cache.clear()
        result = {
            "database": connection.vendor,
            "cpus": os.cpu_count(),
            "ingest": bench_ingest(args.requests),
            "webhooks": bench_webhooks(args.deliveries),
        }
    finally:
        teardown_databases(old, verbosity=0)
    out = REPO / "benchmarks" / "results" / args.out
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Prompt imports (issue 12): how long the request holds on, in the request vs as a background job.

In-process, against a throwaway SQLite database under a temporary var/ (as `make run`), or the database of
DATABASE_URL if set: the same JSONL file imported inside the request (``import_jobs.prompts_upload``, the path
small files keep) and queued as a job (``prompt_import_create``: the request's part) then run by the code
the worker runs (``prompt_import_run``).

    .venv/bin/python benchmarks/bench_imports.py --rows 20000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rows_jsonl(n: int, tag: str) -> bytes:
    lines = (
        json.dumps({"prompt": f"{tag}: summarize document {i} about topic {i % 97}.", "id": f"d-{i}",
                    "metadata": {"source": "bench"}})
        for i in range(n)
    )  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("T2G_VAR_DIR", tempfile.mkdtemp(prefix="t2g-import-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")
    # A local tool: the development profile (the settings default to production).
    os.environ.setdefault("DEBUG", "1")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from annotations import roles
    from annotations.imports import jobs as import_jobs
    from annotations.services import project_create

    call_command("migrate", verbosity=0)
    admin, _ = get_user_model().objects.get_or_create(username="bench-import-admin")
    roles.assign_role(admin, "admin")
    stamp = str(int(time.time()))

    project = project_create(name=f"bench-import-sync-{stamp}")
    data = rows_jsonl(args.rows, "sync")
    started = time.perf_counter()
    report = import_jobs.prompts_upload(project=project, data=data, fmt="jsonl", user=admin)
    sync_s = time.perf_counter() - started

    project = project_create(name=f"bench-import-job-{stamp}")
    data = rows_jsonl(args.rows, "job")
    started = time.perf_counter()
    job = import_jobs.prompt_import_create(
        project=project, upload=io.BytesIO(data), size=len(data), fmt="jsonl", file_name="b.jsonl", user=admin
    )
    request_s = time.perf_counter() - started
    started = time.perf_counter()
    import_jobs.prompt_import_run(import_id=job.pk)
    job_s = time.perf_counter() - started
    job.refresh_from_db()
    result = {
        "rows": args.rows,
        "bytes": len(data),
        "database": connection.vendor,
        "chunk_rows": settings.T2G_IMPORT_CHUNK_ROWS,
        "in_request_s": round(sync_s, 2),
        "in_request_created": report.created_prompts,
        "background_request_s": round(request_s, 3),
        "background_job_s": round(job_s, 2),
        "background_status": job.status,
        "background_created": job.report.get("created_prompts"),
        "rows_per_s": round(args.rows / job_s),
        "load": "/".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    out = REPO / "benchmarks" / "results" / "bench_imports.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

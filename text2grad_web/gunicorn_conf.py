"""Gunicorn settings shared by ``make run`` (scripts/run.sh), the Docker image and the workspace benchmark.

Many processes with a few threads each: a request spends most of its time in Python, so threads of one
process wait for each other's GIL, while separate processes use every core. On 2 cores, 6 processes of 4
threads halved the p95 of a save at 50 concurrent annotators compared with 2 of 8 (docs/benchmarks.md).
gthread keeps idle keep-alive connections in a poller instead of a thread, so 50 browsers polling and
autosaving do not need 50 threads. Override with WEB_WORKERS / WEB_THREADS.
"""

import multiprocessing
import os

workers = int(os.environ.get("WEB_WORKERS") or 3 * multiprocessing.cpu_count())
threads = int(os.environ.get("WEB_THREADS") or 4)
worker_class = "gthread"
keepalive = 30
backlog = 2048
# Recycle a worker now and then, so that a slow leak in a dependency cannot grow without bound.
max_requests = 5000
max_requests_jitter = 500
# A request that takes longer than this is stuck (exports and training run in Celery, never here).
timeout = 60
graceful_timeout = 30

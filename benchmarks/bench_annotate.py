"""Load test of the annotation workspace: gunicorn, a real database, 10,000 outputs, many annotators.

What it does, for each backend asked for (PostgreSQL through ``--database-url``, and/or the embedded SQLite
default with ``--sqlite``):

1. creates a throwaway database (PostgreSQL: a database of its own, dropped at the end; SQLite: a file in
   a temporary ``T2G_VAR_DIR``, removed at the end), migrates it, and seeds one project with
   ``--generations`` outputs (default 10,000; 1,500 of them already annotated with three spans each, so
   the queue has to look past them), plus one annotator account per client with a login session;
2. starts gunicorn (``DEBUG=0``) on a free loopback port;
3. for each client count in ``--clients``: every client presses "Next" at the same moment (an output
   each), then, for ``--duration`` seconds after a warm-up, loops: GET its annotate page, POST a draft save
   carrying an overall critique, a rating and three spans with their critiques (htmx, CSRF token); the
   spans move on every save, and each carries its text copy, which the server checks;
4. checks the database afterwards: every client's draft holds exactly three spans (no lost or duplicated
   writes), no output is leased to more annotators than its quota, nothing answered with an error;
5. prints a markdown table: requests, requests per second, median and p95 latency per endpoint, errors.

``--think-ms 0`` is a closed loop (each client fires its next request as soon as the last one answers: the
server's saturation point); ``--think-ms 1000`` makes each simulated annotator pause 0.5-1.5 s between
requests, which is still several times faster than a person autosaving a critique.

The load client is Python threads with ``http.client`` (keep-alive, one connection per client), on the same
machine as the server and the database, so the numbers include the client's own CPU use.

    .venv/bin/python benchmarks/bench_annotate.py --database-url postgres://postgres@127.0.0.1:5432/t2g_bench \\
        --sqlite --clients 1,50 --think-ms 0,1000 --duration 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

SENTENCE = (
    "the model returns a summary of the article but omits the key figures and misstates who signed the "
    "agreement in March while the second paragraph repeats the first one almost word for word"
)
WORDS = SENTENCE.split()
EXTRA = [
    "café",
    "naïve",
    "東京",
    "数据",
    "😀",
    "👍🏽",
    "👩‍💻",
    "—",
    "“quoted”",
    "مرحبا",
    "שלום",
    "\t",
    "\r\n",
]


# --- database and server ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_admin(url: str, sql: str) -> None:
    import psycopg

    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


@dataclass
class Backend:
    name: str
    env: dict
    cleanup: list = field(default_factory=list)


def _backend_postgres(url: str) -> Backend:
    dbname = urlparse(url).path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", dbname):
        raise SystemExit(f"refusing to drop and create database {dbname!r}")
    _pg_admin(url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    _pg_admin(url, f'CREATE DATABASE "{dbname}"')
    var_dir = tempfile.mkdtemp(prefix="t2g-bench-var-")
    backend = Backend("PostgreSQL", {"DATABASE_URL": url, "T2G_VAR_DIR": var_dir})
    backend.cleanup.append(lambda: _pg_admin(url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
    backend.cleanup.append(lambda: shutil.rmtree(var_dir, ignore_errors=True))
    return backend


def _backend_sqlite() -> Backend:
    var_dir = tempfile.mkdtemp(prefix="t2g-bench-sqlite-")
    backend = Backend("SQLite (WAL)", {"T2G_VAR_DIR": var_dir})
    backend.cleanup.append(lambda: shutil.rmtree(var_dir, ignore_errors=True))
    return backend


def _base_env(backend: Backend) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "T2G_VAR_DIR")}
    env.update(backend.env)
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + "x" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "STATIC_MANIFEST": "0",
            "CELERY_BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
            "DB_CONN_MAX_AGE": "600",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    return env


SEED_CODE = r"""
import json, random, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.db import transaction
from annotations import roles
from annotations.models import Annotation, Assignment, Generation, Prompt, Span, content_hash
from annotations.services import project_create

n_generations, n_annotated, n_clients, words, extra = json.loads(sys.argv[1])
rng = random.Random(7)

def text(low, high):
    out = []
    while sum(map(len, out)) < rng.randint(low, high):
        out.append(rng.choice(extra) if rng.random() < 0.12 else rng.choice(words))
    return " ".join(out)

with transaction.atomic():
    project = project_create(name="Bench", kind="summarization", annotations_per_output=1)
    prompts = [Prompt(project=project, text=f"[{i}] Summarize: " + text(300, 900)) for i in range(n_generations)]
    for p in prompts:
        p.content_hash = content_hash(p.text)
    Prompt.objects.bulk_create(prompts, batch_size=2000)
    generations = []
    for p in prompts:
        g = Generation(prompt=p, text=text(200, 1500), source_model="bench")
        g.content_hash = content_hash(p.text, g.text)
        generations.append(g)
    Generation.objects.bulk_create(generations, batch_size=2000)
    User = get_user_model()
    password = make_password("bench-password")
    veterans = [User(username=f"veteran{i}", password=password) for i in range(10)]
    clients = [User(username=f"bench{i}", password=password) for i in range(n_clients)]
    User.objects.bulk_create(veterans + clients)
    veterans = list(User.objects.filter(username__startswith="veteran").order_by("id"))
    clients = list(User.objects.filter(username__startswith="bench").order_by("id"))
    for user in veterans + clients:
        roles.assign_role(user, roles.ANNOTATOR)
    from django.utils import timezone
    now = timezone.now()
    done = generations[:n_annotated]
    annotations = [
        Annotation(generation=g, annotator=veterans[i % len(veterans)], status="submitted",
                   overall_critique="Seeded.", rating=3, submitted_at=now)
        for i, g in enumerate(done)
    ]
    Annotation.objects.bulk_create(annotations, batch_size=2000)
    Assignment.objects.bulk_create(
        [Assignment(generation=a.generation, annotator=a.annotator, status="completed", expires_at=now)
         for a in annotations], batch_size=2000)
    spans = []
    for a in annotations:
        t = a.generation.text
        for k in range(3):
            s = rng.randrange(0, len(t) - 1)
            e = min(len(t), s + rng.randint(1, 40))
            spans.append(Span(annotation=a, start=s, end=e, text=t[s:e], label="poor" if k else "good",
                              polarity=-1 if k else 1, critique="seeded critique"))
    Span.objects.bulk_create(spans, batch_size=5000)
    Generation.objects.filter(pk__in=[g.pk for g in done]).update(annotation_count=1)
# Planner statistics, as autovacuum / a production database would have them after a bulk load.
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
sessions = []
for user in clients:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    sessions.append(session.session_key)
print(json.dumps({"project": project.pk, "sessions": sessions}))
"""

CHECK_CODE = r"""
import json, sys
import django
django.setup()
from django.db.models import Count
from annotations.models import Annotation, Assignment
ids = json.loads(sys.argv[1])
span_counts = dict(Annotation.objects.filter(pk__in=ids).annotate(n=Count("spans")).values_list("pk", "n"))
over = list(Assignment.objects.filter(status="active").values("generation").annotate(n=Count("id"))
            .filter(n__gt=1).values_list("generation", "n"))
drafts = Annotation.objects.filter(pk__in=ids, status="draft").count()
print(json.dumps({"span_counts": span_counts, "over_assigned": over, "drafts": drafts}))
"""


def _run_django(code: str, env: dict, arg) -> dict:
    out = subprocess.run(
        [PYTHON, "-c", code, json.dumps(arg)],
        cwd=REPO_ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": "text2grad_web.settings"},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _start_gunicorn(env: dict, port: int, workers: int, threads: int) -> subprocess.Popen:
    command = [
        str(Path(PYTHON).parent / "gunicorn"),
        "text2grad_web.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--config", "python:text2grad_web.gunicorn_conf",  # what `make run` and the image use
        "--log-level", "warning",
    ]  # fmt: skip
    command += ["--workers", str(workers)] if workers else []
    command += ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited during start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not answer /healthz")


def _cpu_seconds(root_pid: int) -> float:
    """User + system CPU time of a process and its children (the gunicorn workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids, total = [root_pid], 0.0
    while pids:
        pid = pids.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(child) for child in children)
    return total


# --- the load client ----------------------------------------------------------------------------------
class Annotator:
    """One simulated annotator: its own keep-alive connection, session and CSRF cookies."""

    def __init__(self, port: int, session_key: str, seed: int):
        self.port = port
        self.cookies = {"sessionid": session_key}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.rng = random.Random(seed)
        self.annotation_id: int | None = None
        self.text = ""

    def request(self, method: str, path: str, body: dict | None = None, htmx: bool = False):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), "Host": "127.0.0.1"}
        payload = None
        if body is not None:
            payload = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        if htmx:
            headers["HX-Request"] = "true"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # the server closed an idle keep-alive connection: reconnect once
                if attempt:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.getheader("Location"), data

    def start(self, project_id: int) -> None:
        self.request("GET", "/queue/")  # sets the CSRF cookie
        status, location, _ = self.request("POST", f"/projects/{project_id}/next/", {})
        if status != 302 or not location or "/annotations/" not in location:
            raise RuntimeError(f"next answered {status} {location}")
        self.annotation_id = int(location.rstrip("/").split("/")[-1])
        status, _, page = self.request("GET", f"/annotations/{self.annotation_id}/")
        match = re.search(rb'<script id="t2g-output" type="application/json">(.*?)</script>', page, re.S)
        self.text = json.loads(match.group(1))

    def three_spans(self) -> list[dict]:
        spans, seen = [], set()
        labels = ["poor", "good", "poor"]
        while len(spans) < 3:
            start = self.rng.randrange(0, len(self.text) - 1)
            end = min(len(self.text), start + self.rng.randint(1, 60))
            label = labels[len(spans)]
            if (start, end, label) in seen:
                continue
            seen.add((start, end, label))
            spans.append(
                {
                    "start": start,
                    "end": end,
                    "text": self.text[start:end],
                    "label": label,
                    "weight": round(self.rng.uniform(0.5, 3), 1),
                    "critique": f"Critique {self.rng.randint(0, 10**6)}: this part {'misstates' if label == 'poor' else 'keeps'} the facts.",
                }
            )
        return spans

    def page(self) -> int:
        status, _, _ = self.request("GET", f"/annotations/{self.annotation_id}/")
        return status

    def save(self) -> int:
        body = {
            "overall_critique": f"Overall critique {self.rng.randint(0, 10**6)}: misses one key figure.",
            "rating": str(self.rng.randint(1, 5)),
            "time_spent": str(self.rng.randint(10, 600)),
            "spans": json.dumps(self.three_spans(), ensure_ascii=False),
        }
        status, _, _ = self.request("POST", f"/annotations/{self.annotation_id}/save/", body, htmx=True)
        return status


def _load(annotators: list[Annotator], duration: float, warmup: float, think: float) -> dict:
    results = {"page": [], "save": []}
    errors = {"page": 0, "save": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + warmup + duration
    record_from = time.monotonic() + warmup
    barrier = threading.Barrier(len(annotators))

    def run(annotator: Annotator):
        barrier.wait()
        local = {"page": [], "save": []}
        local_errors = {"page": 0, "save": 0}
        while time.monotonic() < stop_at:
            for kind, call in (("page", annotator.page), ("save", annotator.save)):
                began = time.monotonic()
                try:
                    ok = call() == 200
                except Exception:  # any failure counts as an error; the run goes on
                    ok = False
                    annotator.conn.close()
                elapsed = time.monotonic() - began
                if began >= record_from:
                    local[kind].append(elapsed)
                    local_errors[kind] += 0 if ok else 1
                if think:
                    time.sleep(annotator.rng.uniform(0.5 * think, 1.5 * think))
        with lock:
            for kind in results:
                results[kind].extend(local[kind])
                errors[kind] += local_errors[kind]

    threads = [threading.Thread(target=run, args=(a,)) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": results, "errors": errors, "duration": duration}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


def _simultaneous_next(annotators: list[Annotator], project_id: int) -> float:
    barrier = threading.Barrier(len(annotators))
    failures = []

    def run(annotator):
        barrier.wait()
        try:
            annotator.start(project_id)
        except Exception as exc:
            failures.append(repr(exc))

    began = time.monotonic()
    threads = [threading.Thread(target=run, args=(a,)) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"'next' failed for {len(failures)} clients: {failures[:3]}")
    return time.monotonic() - began


def bench_backend(backend: Backend, args) -> list[dict]:
    env = _base_env(backend)
    rows = []
    print(f"\n## {backend.name}: migrating and seeding {args.generations} outputs ...", file=sys.stderr)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, env=env, check=True
    )
    seeded = _run_django(
        SEED_CODE,
        env,
        [args.generations, min(args.annotated, args.generations), max(args.clients), WORDS, EXTRA],
    )
    port = _free_port()
    server = _start_gunicorn(env, port, args.workers, args.threads)
    try:
        annotators = [Annotator(port, key, seed) for seed, key in enumerate(seeded["sessions"])]
        took = _simultaneous_next(annotators, seeded["project"])
        print(f"{len(annotators)} simultaneous 'next' requests served in {took:.2f} s", file=sys.stderr)
        for clients, think_ms in [(c, t) for c in args.clients for t in args.think_ms]:
            cpu_before = _cpu_seconds(server.pid)
            result = _load(annotators[:clients], args.duration, args.warmup, think_ms / 1000)
            served = sum(len(values) for values in result["latencies"].values())
            # Includes the warm-up's requests in the CPU but not in the count: an upper bound.
            cpu_ms = 1000 * (_cpu_seconds(server.pid) - cpu_before) / max(1, served)
            for kind in ("page", "save"):
                values = result["latencies"][kind]
                rows.append(
                    {
                        "backend": backend.name,
                        "clients": clients,
                        "think_ms": think_ms,
                        "endpoint": "GET annotate page" if kind == "page" else "POST save (3 spans)",
                        "requests": len(values),
                        "rps": len(values) / result["duration"],
                        "median_ms": statistics.median(values) * 1000 if values else float("nan"),
                        "p95_ms": _pct(values, 0.95) if values else float("nan"),
                        "errors": result["errors"][kind],
                        "cpu_ms": cpu_ms,
                    }
                )
                print(_format_row(rows[-1]), file=sys.stderr)
        check = _run_django(CHECK_CODE, env, [a.annotation_id for a in annotators])
        wrong = {pk: n for pk, n in check["span_counts"].items() if n != 3}
        over = check["over_assigned"]
        spans_note = "all hold exactly 3 spans" if not wrong else f"WRONG span counts {wrong}"
        over_note = "no output over-assigned" if not over else f"OVER-ASSIGNED {over}"
        integrity = f"{len(check['span_counts'])} drafts checked: {spans_note}; {over_note}; {check['drafts']} still drafts"
        print(integrity, file=sys.stderr)
        rows.append({"backend": backend.name, "integrity": integrity, "next_s": took})
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    return rows


def _format_row(row: dict) -> str:
    return (
        f"| {row['backend']} | {row['clients']} | {row['think_ms']:g} | {row['endpoint']} | {row['requests']} | "
        f"{row['rps']:.0f} | "
        f"{row['median_ms']:.1f} | {row['p95_ms']:.1f} | {row['errors']} | {row['cpu_ms']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="a PostgreSQL URL for a throwaway database (dropped at the end)"
    )
    parser.add_argument("--sqlite", action="store_true", help="also run on the embedded SQLite default")
    parser.add_argument("--clients", default="1,50", help="comma-separated concurrent client counts")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per client count")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each run")
    parser.add_argument(
        "--think-ms", default="0", help="comma-separated mean pauses between requests, ms (0: closed loop)"
    )
    parser.add_argument("--generations", type=int, default=10_000)
    parser.add_argument("--annotated", type=int, default=1_500, help="outputs already annotated by others")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="gunicorn worker processes (default: text2grad_web/gunicorn_conf.py)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="threads per gunicorn worker (default: the same config)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the seeded database (for profiling)")
    args = parser.parse_args()
    args.clients = [int(n) for n in args.clients.split(",")]
    args.think_ms = [float(n) for n in args.think_ms.split(",")]
    load_before = os.getloadavg()
    backends = []
    if args.database_url:
        backends.append(lambda: _backend_postgres(args.database_url))
    if args.sqlite:
        backends.append(_backend_sqlite)
    if not backends:
        parser.error("give --database-url and/or --sqlite")
    rows = []
    for make in backends:
        backend = make()
        try:
            rows += bench_backend(backend, args)
        finally:
            for clean in [] if args.keep else backend.cleanup:
                clean()
    sys.path.insert(0, str(REPO_ROOT))
    from text2grad_web import gunicorn_conf

    print(
        f"\ngunicorn gthread {args.workers or gunicorn_conf.workers}x{args.threads or gunicorn_conf.threads}, "
        f"{args.generations} outputs, "
        f"{args.duration:g} s measured per row, {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after\n"
    )
    print(
        "| database | clients | think ms | endpoint | requests | req/s | median ms | p95 ms | errors "
        "| app CPU ms/request |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if "endpoint" in row:
            print(_format_row(row))
    for row in rows:
        if "integrity" in row:
            print(
                f"\n{row['backend']}: {row['integrity']}; simultaneous 'next' for all clients took {row['next_s']:.2f} s"
            )


if __name__ == "__main__":
    main()

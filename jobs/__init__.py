"""Background work shared by both apps: how a change asks for work to run in a worker.

The lowest Django app: it imports neither ``annotations`` nor ``training``. Services record the need for
work with :func:`jobs.dispatch.enqueue` by task *name*, so no service imports a ``tasks`` module and the
web process never loads the code that runs in workers.

Background work you can trust (issue 12)
----------------------------------------
**One job framework (`jobs/`).** Generation jobs, training rounds, Suggest-spans requests, exports,
background prompt imports, critic training and predictions, download builds and evaluation campaigns'
generation (issue 29: `evaluation.CampaignGeneration`, `training.CriticPredictionJob`) are all
`jobs.models.Job` rows; nothing runs in the background outside it, and there is one reaper. `jobs/lifecycle.py` is the only place that claims (`QUEUED → RUNNING` by
conditional update, bumping `attempts`: the fencing token), writes progress, finishes, fails and cancels;
every write of a run is filtered on its `attempts`, so a run the reaper gave up on can never write again.
A run's body goes in `lifecycle.running(job, name, ended=...)`: the heartbeat around it,
`lifecycle.Lost` raised inside (the run found the job no longer its own) ends it quietly,
`lifecycle.Stopped(reason)` (a cancel seen at a safe point) ends the job cancelled with that reason (or
as lost, if it is no longer the run's), any other error fails the job and is raised again; `ended(job)`
is called in the transaction in which this run itself ended the job failed or cancelled (campaign
generation ends its campaign there, a round tells the webhooks). Every kind runs in it: exports,
imports, machine critic runs, download builds, generation jobs, campaign generation, critic training and
predictions, round critic scores and training rounds.
While a job runs, a heartbeat thread refreshes `heartbeat_at` every `T2G_JOB_HEARTBEAT_S` (5 s). The one
reaper (`jobs/reaper.py`) finds RUNNING jobs silent for `T2G_JOB_STALE_AFTER_S` (45 s) and, per kind
(`jobs/registry.py`, registered in each app's `AppConfig.ready`), queues them again with backoff
(generation jobs resume after their committed outputs; exports start over and their `.part` file is
deleted) or fails them with a message saying what happened and what to do (rounds: "Resume … from its
last checkpoint"; suggestions: "press Suggest spans again"). Every worker runs the reaper every
`T2G_REAP_JOBS_EVERY_S` (15 s), so a dead worker is noticed within about a minute.

**No lost dispatch (transactional outbox).** `dispatch.enqueue(task, *ids)` writes a `jobs.Outbox` row in
the caller's transaction: the change and the need for work commit together, or neither does. After the
commit a background publisher thread hands it to the broker (one bounded attempt: a 2 s connect timeout,
5 s socket timeout); a request never touches the broker. Rows the broker did not take are published by
the relay, which every worker's housekeeping thread runs every 3 s (and the beat's `jobs.relay_outbox`).
Token rewards go the same way: `annotations` sends `annotation_submitting` *inside* the submit
transaction and `training.receivers` records the reward task there. A sweep re-queues rewards still
missing a minute after submission, and queued jobs whose message went missing are dispatched again. Tasks
stay idempotent (claims), so a message sent twice does nothing the second time.

**Lanes.** `CELERY_TASK_ROUTES` puts everything a person waits for on a page on the `interactive` queue
(token rewards, Suggest spans, exports, prompt imports, housekeeping); `generation` and `training` have their own. Each
lane has its own worker process in `make run` and in compose, so interactive work never waits behind a
generation job or a round. Generation samples `T2G_GENERATION_CHUNK` (2) outputs per chunk and checks
for cancel between chunks. Pages say where a queued job stands (`jobs/standing.py`, the `standing`
template filter): "queued behind generation job #3 (running); position 2 in the generation lane, starts
in about 4 min", or that no worker serves its lane.

**Supervision and health.** `scripts/run.sh` supervises each worker (restart with doubling backoff, 1 s
to 60 s, logged to `var/log/supervisor.log`); only the web server's exit stops everything. Workers run
`--without-gossip --without-mingle --without-heartbeat`: nothing uses them, and their reconnect paths
crash on a broker outage (`AttributeError` on a connection already closed). Each worker's housekeeping
thread writes a `jobs.WorkerBeat` row every 5 s, without the broker. `/healthz` answers
`{"status": "ok"|"degraded"|"down", "database", "broker", "lanes": {lane: "up"|"down"}, "outbox_pending"}`
(200 unless the database is down: 503), each check bounded to about a second; admins see a banner in the
page header while a lane has no live worker. Compose services restart `unless-stopped`.

**Cancel while the model loads.** A cold load of the model (base + adapter, ~40 s on a loaded machine)
cannot be interrupted, so a generation job no longer blocks on it: `training/worker/runtime.py::
load_version_unless` runs the load in a helper thread and asks `lifecycle.cancel_requested(job)` every
second while it waits; on cancel the job ends `cancelled` at once and the load finishes in the background
into the process's `model_cache`. The cache loads under its lock, so the next job asking for the same
model waits for that very load instead of starting a second one (one "Loaded model … in N s" line in the
worker log). A generation-lane worker also queues `training.warm_generation` when it starts (as the
interactive lane queues `training.warm_alignment`), so the first job usually finds the active version
loaded. Test hook: `T2G_TEST_MODEL_LOAD_DELAY_S` makes every cache-missing load sleep first, so a test can
cancel during a cold load (`tests/jobs/test_generation_cancel.py`); never set it elsewhere.

**Imports are jobs too.** `annotations.PromptImport` is a `Job`. An upload over
`T2G_IMPORT_SYNC_MAX_BYTES` (256 KiB), or any sent with `background`, gets only the quick checks in the
request (admin, project not archived, size, format, UTF-8 and the CSV header in its first 64 KiB), is
written to the artifact store under `imports/` (never a local path: web and worker may be different
hosts) and queued with `dispatch.enqueue("annotations.import_run", id)` on the interactive lane. The
worker (`annotations.imports.jobs.prompt_import_run`) parses it with the same `imports.parsing.parse_prompts` as a small import
and, if the file has bad lines and no `allow_partial`, fails with "N bad lines; nothing was imported"
and the lines in its report, writing nothing. Otherwise it writes `T2G_IMPORT_CHUNK_ROWS` (500) rows per
transaction with the same `services.PromptWriter` as the synchronous path; each chunk commits its rows
together with `progress_step` and the running report, under the fence, so a reaped import resumes after
its committed rows, and cancel is honoured between chunks (the rows written before are kept and the
message says so; importing the file again skips them as duplicates). The upload is deleted when the job
ends (a registered sweep deletes those of imports cancelled while queued or failed by the reaper). Small
files still import inside the request (one transaction, the report at once): the same parser and writer.
Admins alone see import jobs (`/data/import/<id>/`, htmx-polled: standing, progress, report, Cancel;
`/api/v1/imports/`).

| process (make run) | queues | why |
|---|---|---|
| interactive worker (`-c 2`, with `-B`) | `interactive` | token rewards, Suggest spans, exports, imports: seconds, never behind bulk work |
| generation worker (`-c 1`) | `default,generation` | sampling in chunks of 2, campaign outputs, critic predictions; keeps the model loaded |
| training worker (`-c 1`) | `training` | one round at a time |
"""

"""Evaluation campaigns (issue 15)
-------------------------------
A sixth floor sits between `training` and `annotations`:
`text2grad_web > training > evaluation > annotations > jobs > text2grad`.

| you are looking for… | open |
|---|---|
| Bradley–Terry fit, bootstrap intervals (pure) | `text2grad/pairwise.py` |
| the sandbox for unit tests (pure, forks) | `text2grad/sandbox.py`, its child `text2grad/_sandbox_child.py` |
| campaigns, outputs, tasks, judgements | `evaluation/models.py` |
| create, lease, submit, close | `evaluation/services.py` |
| results, metrics, promotion evidence, DPO rows | `evaluation/selectors.py` |
| pages, chart geometry, API | `evaluation/views.py`, `evaluation/chart.py`, `evaluation/api.py` |
| sampling every version, code tests (worker) | `training/worker/campaigns.py`, task `training.evaluation_generate` (generation queue) |
| the generation job of a campaign | `evaluation.models.CampaignGeneration`, a `jobs.models.Job` registered in `evaluation/apps.py` |

`evaluation` refers to `training.ModelVersion` by a lazy foreign key, as `annotations` does; `training`
reads `evaluation.selectors` for the version standings and the promotion check. The worker code lives
in `training/worker/` because it loads models; it calls `evaluation.services.campaign_outputs_ready` to
open the campaign. Evaluation outputs are `EvaluationOutput` rows, not `Generation`s, so the annotation
queue, the exports and training snapshots never see them. Every version samples the same prompts in
the same chunks with the same seeds.

**One framework (issue 29).** A campaign's outputs are written by a `CampaignGeneration` job, like any
generation job: claimed and fenced by `jobs.lifecycle` (each chunk's outputs commit only while the run
still owns the job), kept alive by its heartbeat, cancelled by an admin (`campaign_cancel`, the campaign
page's *Cancel generation*: between chunks; the outputs written are kept), reaped by the one reaper
(`jobs/reaper.py`: a dead worker's job is queued again within about a minute and resumes after the
outputs written; after three requeues it fails, and the registry's cleanup ends the campaign failed), and
shown in "queued behind" on the generation lane. *Retry* queues a new job that resumes after the written
outputs. The campaign's `worker_status`, progress and error are its latest job's. There is no second,
campaign-only reaper.

**The sandbox** (code projects' pass rate) runs on the worker only, the same way as root or as any other
user: `unshare` starts a fresh `python -I -S -B` in new mount, PID and network namespaces (plus a user
namespace when the worker is not root); it `pivot_root`s into a new root holding only the system's and
the interpreter's folders read-only, four devices, its own `/proc` and its throwaway folder (the only
writable place), then gives up every privilege (a private uid as root; no capabilities at all in a user
namespace), sets rlimits (CPU, address space, file size, processes, no core) and keeps an audit hook as a
second layer. Output goes to files, so a grandchild holding stdout cannot hold `run_python`; at the
wall-clock limit the process group is killed, which ends the PID namespace and every process in it
(detached ones too). Without namespaces it **fails closed** (`SandboxUnavailable`) unless the admin sets
`T2G_SANDBOX_ALLOW_UNISOLATED=1`. Tests: `tests/unit/test_sandbox.py`, and the escape attempts as root
and as `nobody`: `tests/unit/test_sandbox_escapes.py`.
"""

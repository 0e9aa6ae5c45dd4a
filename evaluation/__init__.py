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

`evaluation` refers to `training.ModelVersion` by a lazy foreign key, as `annotations` does; `training`
reads `evaluation.selectors` for the version standings and the promotion check. The worker code lives
in `training/worker/` because it loads models; it calls `evaluation.services.campaign_outputs_ready` to
open the campaign. Evaluation outputs are `EvaluationOutput` rows, not `Generation`s, so the annotation
queue, the exports and training snapshots never see them. Every version samples the same prompts in
the same chunks with the same seeds.

**The sandbox** (code projects' pass rate) runs on the worker only: a fresh `python -I -S -B`, which moves
into a new network namespace, drops to a private uid (when the worker is root), sets rlimits (CPU,
address space, file size, processes, no core), refuses writes outside its throwaway folder and `ctypes`
by an audit hook, and is killed with its whole process group and uid at the wall-clock timeout. Where
network namespaces are unavailable the audit hook refuses sockets instead (weaker; the result says
which). Tests: `tests/unit/test_sandbox.py`.
"""

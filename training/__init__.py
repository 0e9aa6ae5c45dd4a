"""Data flow in detail
-------------------
1. **Generation.** A GenerationJob row is created and its task enqueued on commit. The worker claims it
   (`QUEUED → RUNNING` by conditional update), loads the active version (base + adapter, cached between
   tasks), samples with the chat template, and stores text, prompt/response token ids and the
   log-probabilities of the sampled tokens under the untempered policy.
2. **Annotation.** The queue leases outputs (never the same annotator twice, never over the project's
   quota, leases expire). Spans are stored in code points; the browser converts from UTF-16 and the server
   re-checks the stored text copy.
3. **Rewards.** Submitting sends `annotation_submitted` after commit; the worker tokenizes the output with
   offsets and stores a TokenReward per (annotation, tokenizer fingerprint). Poor spans −w, good +w,
   conflicts resolve negative, nothing else 0 (per-project scheme). The mapping is exact: every token gets
   a reward, none is matched by decoded text. One submission and a recomputation of 100,000 take the same
   batched path.
4. **Round.** A round freezes its snapshot (annotation ids + hash) and config. The worker combines the
   annotators' vectors per output (mean), builds the policy from the active version's adapter and value head,
   and runs `steps` PPO updates (each minibatch's forward/backward in micro-batches of `micro_batch_size`
   rows whose gradients accumulate into one optimiser step); each update checkpoints adapter, value head,
   optimizer, KL coefficient and step. The new version is written to a temporary folder and renamed into
   `var/models/versions/<name>`; its row, lineage and (if asked) promotion commit in one transaction.
5. **Failure.** An exception marks the round failed with its reason; a killed worker stops heartbeating and
   the round is reaped as failed. Either way the active version is untouched and Resume continues from the
   checkpoint. A run that lost its round (reaped, then resumed elsewhere) notices at its next step and stops.

The learned span critic (issue 16)
----------------------------------
The paper's second part, a reward model that predicts span feedback, in a form a CPU trains in minutes.

| piece | where |
|---|---|
| the critic: base + its own LoRA + a token head (neutral / poor / good), a lookahead window of the next 3 tokens' hidden states, training, span prediction, atomic save/load, the `SpanCritic` protocol a generative critic would implement | `text2grad/critic.py` |
| token P/R/F1, AUROC (rank statistic with ties), calibration bins + ECE, baselines (all neutral, P(label \\| token id), MiniLM similarity) | `text2grad/critic_metrics.py` (numpy only) |
| rows: `CriticVersion` (project, parent, snapshot + hash, config, metrics, one active per project), `CriticTrainingJob` (a `Job`), `CriticPrediction` (spans + uncertainty per output and version), `OnPolicySample`, `CriticSettings` (queue order); `TrainingRound.Mode.ON_POLICY` with `critic_version` and `on_policy` settings; `AlignmentRequest.critic_version` | `training/models.py`, migration `0008_critic_and_on_policy` |
| writes (web-safe): train, cancel, activate / roll back (a pointer move that queues pre-annotation of unsubmitted outputs), suggestions, queue order, on-policy launch / retry | `training/services/critic.py` |
| reads: metric rows vs baselines, acceptance / edit rates, highlighted on-policy samples | `training/selectors/critic.py` |
| pages: `/projects/<id>/critic/` (metrics, calibration SVG, versions with acceptance, jobs, train, queue order, on-policy launch) | `training/views/critic.py`, `templates/training/critic.html` |
| REST API (`/api/v1/critic-versions/`: list/detail with metrics, lineage, snapshot, suggestion stats; activate / roll back / deactivate. `/api/v1/critic-jobs/`: list/detail, launch, cancel; researchers read, admins write) and Django admin (read-only rows, activate / deactivate / cancel actions through the services) | `training/api/`, `training/serializers.py`, `training/admin.py`; docs/api.md |
| worker: a critic job (data → load → train → evaluate → save → record, timed), predictions for outputs | `training/worker/critic.py`; tasks `training.train_critic` (training queue), `training.critic_predict` (generation queue; each a `CriticPredictionJob`: fenced, cancellable, reaped, "queued behind") |
| on-policy round: per update sample (the policy being trained) → score (critic) → `text2grad.trainer.train` → record; save/promote shared with offline rounds (`rounds.save_round_version`) | `training/worker/on_policy.py` (`OnPolicyBatches`, a batch source for the core trainer); the `training.train_round` task calls `rounds.round_run` for every mode |

Flow: a critic job labels each token of every snapshot output by the reward offset mapping
(`critic.token_labels`: a token touching a poor span is poor, conflicts resolve negative; several
annotators: the sign of the mean), keeps a seeded held-out share of outputs, trains, and stores the
held-out reports of the critic and the baselines on the version. A fresh head starts at the training
tokens' label frequencies (`critic.set_prior_bias`): at 1/3 per label an undertrained critic gave every
token an expected reward of (good + poor) / 3, and an on-policy round learnt from it to write less (a
version trained further from its parent keeps its head). Activating a version queues its
predictions for the project's outputs nobody has submitted; generation jobs queue predictions for the
outputs they write while a critic is active. The annotate page posts once on load to
`annotations/<id>/critic-suggestions/`, which turns the active critic's prediction into an
`AlignmentRequest` (method `critic`, `critic_version` set) rendered by the Suggest-spans partial: dashed
highlights, accept / reject as for aligned critiques (accepted spans get origin `critic`, migration
`annotations/0010_span_origin_critic`, kept through later edits, shown on the span panel and in the span
exports' `origin`). Acceptance = accepted / decided proposals; edit rate = submitted annotations whose
spans differ from the accepted suggestions; kept = accepted suggestions submitted unchanged (a `critic`
span at the same place and polarity); adjusted = `critic` spans people moved or relabelled; added = spans
of other origins; char F1 = agreement of all proposed spans with the submitted ones.

On-policy rounds sample `batch_size` prompts of the project per update with the policy being trained,
score each token with the active critic (expected reward `P(good)·good + P(poor)·poor` under the project's
reward scheme), and run one `ppo_update` per update (behaviour logprobs kept when the text retokenizes to
the sampled ids). Every sample is stored with its predicted spans (shown on the round page); `audit_share`
of them also become ordinary queue outputs (`sampling_params.purpose = "on_policy_audit"`, no model
version: the policy mid-round) with a `CriticPrediction`, so auditors see the critic's spans as suggestions.

Active learning: `CriticSettings.queue_order = "uncertainty"` makes `annotations.selectors.next_candidates`
order by the active critic's uncertainty (mean normalised entropy of the 5 least certain tokens), reached
through `project.critic_settings` and `generation.critic_predictions` (annotations imports no training).

The web process never loads a critic: only `training/worker/critic.py` and `on_policy.py` import the
model code; the critic of a process is cached (one entry, its own base model, since peft modifies the
model it wraps in place).
"""

"""Writes for model versions, generation jobs, training rounds, suggested spans and the learned critic,
safe to call from the web process (no torch here). The work that needs the model runs in the worker
(``training/worker/``); a service only records what is asked and queues it by task name.

One module per subject: ``versions`` (the base version, promote and roll back), ``generation``
(generation jobs and the outputs of the version compare page), ``rounds`` (snapshot filters, launch,
cancel, resume, retry), ``suggestions`` ("Suggest spans": alignment requests and their proposals),
``critic`` (critic training jobs, activation, pre-annotation, on-policy rounds) and ``housekeeping``
(jobs left running by a stopped process, token rewards that never arrived).
"""

from .critic import (
    MAX_AUDIT_SHARE,
    MIN_ANNOTATIONS,
    PREDICT_CHUNK,
    critic_active,
    critic_config_checked,
    critic_job_cancel,
    critic_job_create,
    critic_predictions_request,
    critic_settings_update,
    critic_snapshot,
    critic_suggestions_for,
    critic_version_activate,
    critic_version_deactivate,
    on_policy_round_launch,
    on_policy_round_retry,
)
from .generation import (
    COMPARE_PROMPTS,
    compare_outputs_generate,
    generation_job_cancel,
    generation_job_create,
)
from .housekeeping import (
    REWARDS_OVERDUE_AFTER_S,
    REWARDS_RETRY_EVERY_S,
    jobs_recover_after_restart,
    rewards_sweep_missing,
)
from .rounds import (
    REVIEW_CHOICES,
    round_cancel,
    round_launch,
    round_resume,
    round_retry,
    round_snapshot,
    selection_clean,
)
from .suggestions import (
    MAX_CRITIQUE_CHARS,
    PROPOSAL_ORIGINS,
    alignment_proposal_decide,
    alignment_proposal_flip,
    alignment_request_create,
    llm_pass_available,
)
from .versions import (
    BASE_VERSION_NAME,
    base_model_reference,
    model_version_activate,
    model_version_auto_promote,
    model_version_bootstrap,
)

__all__ = [
    "BASE_VERSION_NAME",
    "COMPARE_PROMPTS",
    "MAX_AUDIT_SHARE",
    "MAX_CRITIQUE_CHARS",
    "MIN_ANNOTATIONS",
    "PREDICT_CHUNK",
    "PROPOSAL_ORIGINS",
    "REVIEW_CHOICES",
    "REWARDS_OVERDUE_AFTER_S",
    "REWARDS_RETRY_EVERY_S",
    "alignment_proposal_decide",
    "alignment_proposal_flip",
    "alignment_request_create",
    "llm_pass_available",
    "base_model_reference",
    "compare_outputs_generate",
    "critic_active",
    "critic_config_checked",
    "critic_job_cancel",
    "critic_job_create",
    "critic_predictions_request",
    "critic_settings_update",
    "critic_snapshot",
    "critic_suggestions_for",
    "critic_version_activate",
    "critic_version_deactivate",
    "generation_job_cancel",
    "generation_job_create",
    "jobs_recover_after_restart",
    "model_version_activate",
    "model_version_auto_promote",
    "model_version_bootstrap",
    "on_policy_round_launch",
    "on_policy_round_retry",
    "rewards_sweep_missing",
    "round_cancel",
    "round_launch",
    "round_resume",
    "round_retry",
    "round_snapshot",
    "selection_clean",
]

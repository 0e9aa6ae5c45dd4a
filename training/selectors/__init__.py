"""Reads for the training app. One module per subject: ``rounds`` (model versions, generation jobs, rounds,
the compare page's rows), ``critic`` (critic versions and jobs, their metrics and review statistics,
on-policy samples) and ``rewards`` (token rewards, for the heatmap). The names other modules use are
re-exported here.
"""

from .critic import (
    critic_jobs,
    critic_prediction_jobs_open,
    critic_versions,
    highlight_segments,
    metric_rows,
    on_policy_samples,
    review_stats,
)
from .rewards import latest_token_reward
from .rounds import (
    active_version,
    compare_rows,
    critic_active_for,
    generation_job_pending,
    generation_job_size,
    generation_jobs_for_project,
    generation_speed,
    project_has_outputs,
    projects_open,
    round_critic_score_latest,
    round_for_page,
    round_metrics,
    round_parent_campaign,
    rounds_recent,
    version_list,
    versions_by_ids,
)

__all__ = [
    "latest_token_reward",
    "active_version",
    "compare_rows",
    "critic_active_for",
    "critic_jobs",
    "critic_prediction_jobs_open",
    "critic_versions",
    "generation_job_pending",
    "generation_speed",
    "generation_job_size",
    "generation_jobs_for_project",
    "project_has_outputs",
    "highlight_segments",
    "metric_rows",
    "on_policy_samples",
    "projects_open",
    "review_stats",
    "round_for_page",
    "round_metrics",
    "round_critic_score_latest",
    "round_parent_campaign",
    "rounds_recent",
    "version_list",
    "versions_by_ids",
]

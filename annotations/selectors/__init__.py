"""Reads for the annotations app. One module per subject: ``workspace`` (projects, prompts, outputs, the
annotator's queue and its candidates, progress and counts) and ``review`` (the review queue, one output's
annotations side by side, a project's agreement report). The names other modules use are re-exported here.
"""

from .machine import MachineAgreement, machine_agreement, machine_critic_jobs, machine_critics_of
from .review import (
    AgreementReport,
    AnnotatorWork,
    lowest_agreement,
    output_for_review,
    project_agreement,
    review_counts,
    review_queue,
    reviews_of,
)
from .workspace import (
    AVAILABLE_CAP,
    QueueRow,
    annotation_for_page,
    annotator_counts,
    annotator_submitted_count,
    for_annotation,
    holding_slot,
    model_version_model,
    model_versions_with_outputs,
    next_candidates,
    project_list_with_counts,
    project_progress,
    prompts_with_generations,
    queue_for_annotator,
    queue_order,
    recent_annotations,
    span_with_annotation,
)

__all__ = [
    "MachineAgreement",
    "machine_agreement",
    "machine_critic_jobs",
    "machine_critics_of",
    "AVAILABLE_CAP",
    "AgreementReport",
    "AnnotatorWork",
    "QueueRow",
    "annotation_for_page",
    "annotator_counts",
    "annotator_submitted_count",
    "for_annotation",
    "holding_slot",
    "lowest_agreement",
    "model_version_model",
    "model_versions_with_outputs",
    "next_candidates",
    "output_for_review",
    "project_agreement",
    "project_list_with_counts",
    "project_progress",
    "prompts_with_generations",
    "queue_for_annotator",
    "queue_order",
    "recent_annotations",
    "review_counts",
    "review_queue",
    "reviews_of",
    "span_with_annotation",
]

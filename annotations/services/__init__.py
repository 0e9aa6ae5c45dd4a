"""Writes for projects, prompts, assignments, annotations and spans.

Each service runs in one transaction and takes keyword arguments. Every write path (the HTML views, the
REST API, commands) goes through these functions, so the checks here (offsets, labels, weights, ownership,
quotas) hold whatever the client. One module per subject: ``projects`` (projects, prompt imports),
``validation`` (the checks and limits every write shares), ``queue`` (leases, skips, expiry) and
``annotating`` (drafts, spans, submission), ``agreement`` (per-output agreement rows) and ``review``
(verdicts and gold annotations).
"""

from .agreement import agreement_refresh
from .annotating import (
    SPAN_EDITABLE_FIELDS,
    DraftConflict,
    annotation_save_draft,
    annotation_submit,
    span_create,
    span_delete,
    span_update,
)
from .projects import ImportReport, PromptWriter, project_create, prompts_import
from .queue import assignment_next, assignment_skip, assignments_expire
from .review import (
    MAX_REVIEW_COMMENT_CHARS,
    gold_delete,
    gold_save,
    gold_spans_from,
    review_clear,
    review_set,
)
from .validation import (
    MAX_CRITIQUE_CHARS,
    MAX_OVERALL_CRITIQUE_CHARS,
    MAX_SKIP_REASON_CHARS,
    MAX_SPANS_PER_ANNOTATION,
    MAX_TIME_SPENT_SECONDS,
    SPAN_WEIGHT_MAX,
    UNSET,
    project_labels,
    validate_spans,
)

__all__ = [
    "MAX_CRITIQUE_CHARS",
    "MAX_OVERALL_CRITIQUE_CHARS",
    "MAX_REVIEW_COMMENT_CHARS",
    "MAX_SKIP_REASON_CHARS",
    "MAX_SPANS_PER_ANNOTATION",
    "MAX_TIME_SPENT_SECONDS",
    "SPAN_EDITABLE_FIELDS",
    "SPAN_WEIGHT_MAX",
    "UNSET",
    "DraftConflict",
    "ImportReport",
    "PromptWriter",
    "agreement_refresh",
    "annotation_save_draft",
    "annotation_submit",
    "assignment_next",
    "assignment_skip",
    "assignments_expire",
    "gold_delete",
    "gold_save",
    "gold_spans_from",
    "project_create",
    "project_labels",
    "prompts_import",
    "review_clear",
    "review_set",
    "span_create",
    "span_delete",
    "span_update",
    "validate_spans",
]

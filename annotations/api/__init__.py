"""REST API for projects, prompts, outputs, annotations, exports and imports (/api/v1/; token rewards are
training's, ``training.api.rewards``).

Roles: every role reads projects, prompts and outputs; annotators read only their own annotations (another's
id is a 404, not a 403, so ids leak nothing); researchers read all feedback and run exports but write nothing
else; admins write. Lists use cursor pagination; every endpoint is throttled.

One module per subject: ``permissions`` (roles, the id pattern), ``plumbing`` (throttles, pagination,
renderers), ``auth``, ``filters``, ``projects`` (projects, prompts, outputs), ``feedback``
(annotations), ``exports``, ``imports`` and ``review`` (verdicts, agreement, gold; its serializers too).
The names other modules use are re-exported here.
"""

from .auth import MeView, TokenObtainView
from .exports import ExportViewSet
from .feedback import AnnotationViewSet, annotations_visible_to
from .filters import DateTimeFilter, IdFilter
from .imports import ImportViewSet
from .permissions import (
    ID_REGEX,
    MAX_ID,
    HasRole,
    ReadAnyRoleWriteAdmin,
    ResearcherOnly,
    ResearcherReadAdminWrite,
)
from .plumbing import IdCursorPagination, NewestFirstPagination
from .projects import GenerationViewSet, ProjectViewSet, PromptViewSet
from .review import AgreementViewSet, GoldView, ProjectAgreementView, ReviewViewSet

__all__ = [
    "AgreementViewSet",
    "GoldView",
    "ProjectAgreementView",
    "ReviewViewSet",
    "ID_REGEX",
    "MAX_ID",
    "AnnotationViewSet",
    "DateTimeFilter",
    "ExportViewSet",
    "GenerationViewSet",
    "HasRole",
    "IdCursorPagination",
    "IdFilter",
    "ImportViewSet",
    "MeView",
    "NewestFirstPagination",
    "ProjectViewSet",
    "PromptViewSet",
    "ReadAnyRoleWriteAdmin",
    "ResearcherOnly",
    "ResearcherReadAdminWrite",
    "TokenObtainView",
    "annotations_visible_to",
]

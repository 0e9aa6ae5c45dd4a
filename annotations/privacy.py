"""Who may see an annotator's username: admins and the annotator themself. Everyone else (researchers)
sees one stable pseudonym per annotator, the same one the exports write, on every page and in the API."""

from __future__ import annotations

from . import roles
from .exports.names import pseudonym


def may_identify_annotators(viewer) -> bool:
    return roles.is_admin(viewer)


def annotator_name(viewer, annotator_id: int | None, username: str) -> str:
    """``username`` for admins and for the annotator themself; the export pseudonym for anyone else."""
    if annotator_id is None:
        return ""
    if viewer is not None and (viewer.pk == annotator_id or may_identify_annotators(viewer)):
        return username
    return pseudonym(annotator_id)

"""Who may see an annotator's username: admins and the annotator themself. Everyone else (researchers)
sees one stable pseudonym per annotator, the same one the exports write, on every page and in the API,
and no user id beside it."""

from __future__ import annotations

from . import roles
from .exports.names import pseudonym


def may_identify_annotators(viewer) -> bool:
    return roles.is_admin(viewer)


def may_identify(viewer, annotator_id: int | None) -> bool:
    """Whether ``viewer`` may see who ``annotator_id`` is (username, user id): admins and that annotator."""
    if viewer is None or annotator_id is None or not getattr(viewer, "is_authenticated", False):
        return False
    return viewer.pk == annotator_id or may_identify_annotators(viewer)


def annotator_name(viewer, annotator_id: int | None, username: str) -> str:
    """``username`` for admins and for the annotator themself; the export pseudonym for anyone else."""
    if annotator_id is None:
        return ""
    if may_identify(viewer, annotator_id):
        return username
    return pseudonym(annotator_id)

"""Who may see and change the training pages: researchers and admins see them, admins alone change them."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from annotations import roles


def require_admin(request: HttpRequest) -> None:
    if not roles.is_admin(request.user):
        raise PermissionDenied("Only admins can do this.")


def require_viewer(request: HttpRequest) -> None:
    if not roles.is_researcher(request.user):
        raise PermissionDenied("Training is visible to researchers and admins.")

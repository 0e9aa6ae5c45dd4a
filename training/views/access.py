"""Who may see and change the training pages: researchers and admins see them, admins alone change them
(the one admins-only gate, ``annotations.views.access.admin_page``)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from annotations import roles
from annotations.views.access import admin_page

# A training page or action only admins open: anonymous visitors are sent to log in, other accounts get 403.
admins_only = admin_page("Only admins can do this.")


def require_viewer(request: HttpRequest) -> None:
    if not roles.is_researcher(request.user):
        raise PermissionDenied("Training is visible to researchers and admins.")

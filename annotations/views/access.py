"""Who may open a page: the one admins-only gate of every admin page (integrations, machine critics,
imports, training and critic actions, campaign management): tests/security/test_access_matrix.py checks
that every page its table says only admins open goes through it."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from .. import roles

View = Callable[..., HttpResponse]


def admin_page(denied: str) -> Callable[[View], View]:
    """A page only admins open: a visitor who is not logged in is sent to log in, any other account gets
    403 with ``denied`` (which says what only admins do here)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def admins_only(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not roles.is_admin(request.user):
                raise PermissionDenied(denied)
            return view(request, *args, **kwargs)

        gated = login_required(admins_only)
        gated.admin_page = denied  # the mark of the one gate (kept by decorators that use functools.wraps)
        return gated

    return decorate

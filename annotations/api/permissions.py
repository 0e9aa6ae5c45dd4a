"""Who may call what: the role checks every endpoint uses, and the id pattern of every route."""

from __future__ import annotations

from rest_framework import permissions

from .. import roles

ID_REGEX = r"[0-9]{1,18}"  # ids beyond bigint are a 404 from the router, never a database error
MAX_ID = 2**63 - 1


# --- permissions ----------------------------------------------------------------------------------
class HasRole(permissions.BasePermission):
    """Any of the three roles; an account with no role sees nothing."""

    message = roles.NO_ROLE_MESSAGE

    def has_permission(self, request, view) -> bool:
        return bool(roles.role_names(request.user))


class ReadAnyRoleWriteAdmin(HasRole):
    message = "Only admins can change this."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        return roles.is_admin(request.user)


class ResearcherReadAdminWrite(permissions.BasePermission):
    message = "Researchers and admins can read this; only admins can change it."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return roles.can_read_all_feedback(request.user)
        return roles.is_admin(request.user)


class ResearcherOnly(permissions.BasePermission):
    message = "Only researchers and admins can do this."

    def has_permission(self, request, view) -> bool:
        return roles.can_read_all_feedback(request.user)


class AdminOnly(permissions.BasePermission):
    message = "Only admins can do this."

    def has_permission(self, request, view) -> bool:
        return roles.is_admin(request.user)

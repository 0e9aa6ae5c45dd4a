"""Events that Django itself signals: logins, failed logins, logouts and role (group) changes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed

from .context import client_ip
from .services import audit_record


def _logged_in(sender, request, user, **kwargs):
    audit_record(action="login", actor=user, obj=user, ip=client_ip(request) if request else None)


def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="logout", actor=user, obj=user, ip=client_ip(request) if request else None)


def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]  # Django masks the password already
    # A DRF request wraps the HttpRequest; META is read through it either way.
    audit_record(
        action="login.failed", details={"username": username}, ip=client_ip(request) if request else None
    )


def _groups_changed(sender, instance, action, pk_set, model, reverse, **kwargs):
    """user.groups.add(...) (roles.assign_role, the admin site) or, reversed, group.user_set.add(...)."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    others = sorted(str(row) for row in model.objects.filter(pk__in=pk_set or []))
    key = "users" if reverse else "groups"
    audit_record(
        action="role.change", obj=instance, details={"change": action.removeprefix("post_"), key: others}
    )


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    user_logged_out.connect(_logged_out, dispatch_uid="audit-logout")
    user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")
    m2m_changed.connect(_groups_changed, sender=get_user_model().groups.through, dispatch_uid="audit-groups")

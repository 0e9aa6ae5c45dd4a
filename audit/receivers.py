"""Events that Django itself signals: logins, failed logins, logouts and role (group) changes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save

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


ACCOUNT_FLAGS = ("is_staff", "is_superuser", "is_active")


def _account_before(sender, instance, **kwargs):
    """Remember the account's staff/superuser/active flags as stored, to compare after the save."""
    update_fields = kwargs.get("update_fields")
    if instance.pk is None or (update_fields and not set(update_fields) & set(ACCOUNT_FLAGS)):
        instance._audit_flags = None  # a new account, or a save that cannot change a flag (last_login)
        return
    instance._audit_flags = sender.objects.filter(pk=instance.pk).values(*ACCOUNT_FLAGS).first()


def _account_after(sender, instance, created, **kwargs):
    before = getattr(instance, "_audit_flags", None)
    now = {flag: getattr(instance, flag) for flag in ACCOUNT_FLAGS}
    if created:
        audit_record(
            action="account.create", obj=instance, details={"username": instance.get_username(), **now}
        )
    elif before is not None and before != now:
        changed = {flag: [before[flag], now[flag]] for flag in ACCOUNT_FLAGS if before[flag] != now[flag]}
        audit_record(action="role.change", obj=instance, details={"flags": changed})


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    user_logged_out.connect(_logged_out, dispatch_uid="audit-logout")
    user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")
    user_model = get_user_model()
    m2m_changed.connect(_groups_changed, sender=user_model.groups.through, dispatch_uid="audit-groups")
    pre_save.connect(_account_before, sender=user_model, dispatch_uid="audit-account-before")
    post_save.connect(_account_after, sender=user_model, dispatch_uid="audit-account-after")

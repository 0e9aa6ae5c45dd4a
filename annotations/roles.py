"""The roles, as Django groups: annotator, researcher, reviewer, admin (staff). Admins are reviewers too.

Checks go through these helpers so every view and API endpoint asks the same question the same way.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import PermissionDenied

ANNOTATOR = "annotator"
RESEARCHER = "researcher"
ADMIN = "admin"
REVIEWER = "reviewer"
ROLES = (ANNOTATOR, RESEARCHER, ADMIN, REVIEWER)

# Model permissions each group holds; object-level rules (own annotations only) live in the services.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    ANNOTATOR: [
        "annotations.view_project",
        "annotations.view_prompt",
        "annotations.view_generation",
        "annotations.add_annotation",
        "annotations.change_annotation",
        "annotations.view_annotation",
        "annotations.add_span",
        "annotations.change_span",
        "annotations.delete_span",
    ],
    RESEARCHER: [
        "annotations.view_project",
        "annotations.view_prompt",
        "annotations.view_generation",
        "annotations.view_annotation",
        "annotations.view_span",
        "training.view_tokenreward",
        "annotations.view_datasetexport",
        "annotations.add_datasetexport",
        "training.view_modelversion",
        "training.view_traininground",
    ],
    REVIEWER: [
        "annotations.view_project",
        "annotations.view_prompt",
        "annotations.view_generation",
        "annotations.view_annotation",
        "annotations.view_span",
        "annotations.view_review",
        "annotations.add_review",
        "annotations.change_review",
        "annotations.view_outputagreement",
    ],
    ADMIN: ["*"],
}


def _group_names(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_t2g_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._t2g_groups = cached
    return cached


def is_admin(user) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.is_staff or ADMIN in _group_names(user)))


def is_researcher(user) -> bool:
    return is_admin(user) or RESEARCHER in _group_names(user)


def is_annotator(user) -> bool:
    return user.is_authenticated and (ANNOTATOR in _group_names(user) or is_admin(user))


def is_reviewer(user) -> bool:
    """Reviewers judge submitted annotations and build gold ones; admins are reviewers too."""
    return is_admin(user) or REVIEWER in _group_names(user)


def can_read_all_feedback(user) -> bool:
    """Researchers and admins read every annotation; annotators only their own."""
    return is_researcher(user)


def reads_quality(user) -> bool:
    """Agreement figures and gold annotations: researchers, reviewers and admins (page and API alike)."""
    return can_read_all_feedback(user) or is_reviewer(user)


NO_ROLE_MESSAGE = "Your account has no role yet: ask an admin to make you an annotator or a researcher."


def require_role(user) -> None:
    """PermissionDenied for an account with none of the three roles (what the API's HasRole refuses too)."""
    if not role_names(user):
        raise PermissionDenied(NO_ROLE_MESSAGE)


def role_names(user) -> list[str]:
    return [
        role
        for role, check in (
            (ADMIN, is_admin),
            (RESEARCHER, is_researcher),
            (REVIEWER, is_reviewer),
            (ANNOTATOR, is_annotator),
        )
        if check(user)
    ]


def assign_role(user, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    if role == ADMIN and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    if hasattr(user, "_t2g_groups"):
        del user._t2g_groups


def roles_sync(app_config=None, **_kwargs) -> None:
    """Create the role groups and give them their permissions (run after every migrate and flush).

    ``post_migrate`` is sent once per app, in the order of INSTALLED_APPS: the groups are set once, after
    the last app's, when every app's permissions exist (a test database is flushed after each
    transactional test, so a sync per app cost every such test a dozen)."""
    from django.apps import apps
    from django.contrib.auth.models import Permission

    if app_config is not None:
        with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
        if app_config is not with_models[-1]:
            return

    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        if codes == ["*"]:
            perms = Permission.objects.filter(
                content_type__app_label__in=["annotations", "training", "evaluation", "audit"]
            )
        else:
            wanted = [code.split(".", 1) for code in codes]
            perms = [
                p
                for p in Permission.objects.filter(
                    content_type__app_label__in={a for a, _ in wanted}
                ).select_related("content_type")
                if [p.content_type.app_label, p.codename] in wanted
            ]
        group.permissions.set(perms)

"""The three roles, as Django groups: annotator, researcher, admin (staff).

Checks go through these helpers so every view and API endpoint asks the same question the same way.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group

ANNOTATOR = "annotator"
RESEARCHER = "researcher"
ADMIN = "admin"
ROLES = (ANNOTATOR, RESEARCHER, ADMIN)

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
        "annotations.view_tokenreward",
        "annotations.view_datasetexport",
        "annotations.add_datasetexport",
        "training.view_modelversion",
        "training.view_traininground",
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


def can_read_all_feedback(user) -> bool:
    """Researchers and admins read every annotation; annotators only their own."""
    return is_researcher(user)


def role_names(user) -> list[str]:
    return [
        role
        for role, check in ((ADMIN, is_admin), (RESEARCHER, is_researcher), (ANNOTATOR, is_annotator))
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


def roles_sync(**_kwargs) -> None:
    """Create the role groups and give them their permissions (run after every migrate)."""
    from django.contrib.auth.models import Permission

    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        if codes == ["*"]:
            perms = Permission.objects.filter(
                content_type__app_label__in=["annotations", "training", "evaluation"]
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

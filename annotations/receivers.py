"""Audit of project settings: every save of a project (API, admin site, command) is recorded with the
settings it now has, so a reviewer can see who changed the reward scheme or the quota, and when."""

from __future__ import annotations

from audit.services import audit_record

AUDITED_SETTINGS = (
    "name",
    "kind",
    "annotations_per_output",
    "reward_scheme",
    "label_set",
    "is_archived",
    "system_prompt",
)


def project_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    fields = (
        AUDITED_SETTINGS if update_fields is None else [f for f in AUDITED_SETTINGS if f in update_fields]
    )
    audit_record(
        action="project.create" if created else "project.update",
        obj=instance,
        details={field: getattr(instance, field) for field in fields},
    )
